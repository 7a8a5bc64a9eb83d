#pragma once
// Sampling settings (temperature, top-k, top-p, min-p, repetition penalty, max new tokens,
// seed, greedy), remembered per model in QSettings.
#include "chatwork.h"

#include <QWidget>

class QCheckBox;
class QDoubleSpinBox;
class QSettings;
class QSpinBox;

namespace layerwise::ui {

class SamplingForm : public QWidget {
    Q_OBJECT
public:
    explicit SamplingForm(QWidget* parent = nullptr);
    SamplingSettings settings() const;
    void setSettings(const SamplingSettings& s);

    static SamplingSettings load(QSettings& settings, const QString& model);
    static void save(QSettings& settings, const QString& model, const SamplingSettings& s);

Q_SIGNALS:
    void changed();

private:
    void updateEnabled();
    QCheckBox* m_greedy = nullptr;
    QDoubleSpinBox* m_temperature = nullptr;
    QSpinBox* m_topK = nullptr;
    QDoubleSpinBox* m_topP = nullptr;
    QDoubleSpinBox* m_minP = nullptr;
    QDoubleSpinBox* m_repetition = nullptr;
    QSpinBox* m_maxNewTokens = nullptr;
    QSpinBox* m_seed = nullptr;
};

} // namespace layerwise::ui
