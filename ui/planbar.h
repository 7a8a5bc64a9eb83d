#pragma once
// Strategy, context length, dtype and quantization; the verdict in words and colour; the
// estimated decode and prefill speed.
#include "enginework.h"

#include <QWidget>

class QCheckBox;
class QComboBox;
class QLabel;
class QSpinBox;

namespace layerwise::ui {

// "<b style='color:…'>Fits on the GPU</b> — reason" for a plan's verdict.
QString verdictHtml(const PlanView& plan);

class PlanBar : public QWidget {
    Q_OBJECT
public:
    explicit PlanBar(QWidget* parent = nullptr);
    // Fills strategy/context/dtype/quant of `settings`.
    void apply(PlanSettings& settings) const;
    // Shows `settings` (undo, redo) without emitting settingsChanged.
    void setSettings(const PlanSettings& settings);
    void setPlan(const PlanView& plan);
    QString verdictText() const;

Q_SIGNALS:
    void settingsChanged();

private:
    QComboBox* m_strategy = nullptr;
    QSpinBox* m_context = nullptr;
    QComboBox* m_dtype = nullptr;
    QComboBox* m_quant = nullptr;
    QCheckBox* m_accelerate = nullptr;
    QLabel* m_verdict = nullptr;
    QLabel* m_estimate = nullptr;
};

} // namespace layerwise::ui
