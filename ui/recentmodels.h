#pragma once
// The models opened last (most recent first, at most 8), kept in QSettings.
#include <QStringList>

class QSettings;

namespace layerwise::ui {

constexpr int maxRecentModels = 8;
QStringList recentModels(QSettings& settings);
void addRecentModel(QSettings& settings, const QString& model);

} // namespace layerwise::ui
