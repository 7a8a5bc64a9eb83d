#pragma once
// The main toolbar's choosers: a well-known model (a preset, planned from its config facts
// alone) and a hypothetical GPU profile to add to the plan's devices.
#include <QComboBox>

namespace layerwise::ui {

class PresetChooser : public QComboBox {
    Q_OBJECT
public:
    explicit PresetChooser(QWidget* parent = nullptr);

Q_SIGNALS:
    void presetChosen(const QString& name); // the preset's name, as the engine opens it
};

class GpuProfileChooser : public QComboBox {
    Q_OBJECT
public:
    explicit GpuProfileChooser(QWidget* parent = nullptr);

Q_SIGNALS:
    void profileChosen(const QString& profile); // "RTX-4090"; the chooser returns to "(profile)"
};

} // namespace layerwise::ui
