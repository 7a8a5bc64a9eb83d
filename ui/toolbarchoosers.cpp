#include "toolbarchoosers.h"

#include "api/layerwise.h"

namespace layerwise::ui {

PresetChooser::PresetChooser(QWidget* parent) : QComboBox(parent)
{
    setObjectName(QStringLiteral("presets"));
    addItem(tr("(choose a well-known model)"), QString());
    for (const auto& p : list_presets())
        addItem(QString::fromStdString(p.display_name), QString::fromStdString(p.name));
    connect(this, &QComboBox::activated, this, [this](int index) {
        const QString name = itemData(index).toString();
        if (!name.isEmpty())
            Q_EMIT presetChosen(name);
    });
}

GpuProfileChooser::GpuProfileChooser(QWidget* parent) : QComboBox(parent)
{
    setObjectName(QStringLiteral("gpuProfiles"));
    addItem(tr("(profile)"));
    for (const char* p : {"RTX-3090", "RTX-4090", "RTX-5090", "RTX-4060-Ti-16GB", "A100-40GB", "A100-80GB", "H100-80GB",
                          "H200-141GB", "L4", "L40S", "T4"})
        addItem(QString::fromLatin1(p));
    connect(this, &QComboBox::activated, this, [this](int index) {
        if (index > 0)
            Q_EMIT profileChosen(itemText(index));
        setCurrentIndex(0);
    });
}

} // namespace layerwise::ui
