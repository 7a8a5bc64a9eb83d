#include "recentmodels.h"

#include <QSettings>

namespace layerwise::ui {

QStringList recentModels(QSettings& settings)
{
    return settings.value(QStringLiteral("recentModels")).toStringList().mid(0, maxRecentModels);
}

void addRecentModel(QSettings& settings, const QString& model)
{
    QStringList list = recentModels(settings);
    list.removeAll(model);
    list.prepend(model);
    settings.setValue(QStringLiteral("recentModels"), list.mid(0, maxRecentModels));
}

} // namespace layerwise::ui
