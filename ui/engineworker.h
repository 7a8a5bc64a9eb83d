#pragma once
// The only UI object that calls the engine. It lives on its own QThread; requests arrive
// as queued slot calls, results leave as queued signals carrying value types.
#include "enginework.h"

#include <QObject>

namespace layerwise::ui {

class EngineWorker : public QObject {
    Q_OBJECT
public:
    using QObject::QObject;

public Q_SLOTS:
    // A folder, a config.json or a preset name.
    void describe(const QString& what);

Q_SIGNALS:
    void described(const layerwise::ui::ModelSummary& summary);
    void failed(const QString& what, const QString& message);
};

} // namespace layerwise::ui
