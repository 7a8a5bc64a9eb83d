#pragma once
// The only UI object that calls the engine. It lives on its own QThread; requests arrive
// as queued slot calls, results leave as queued signals carrying value types.
#include "enginework.h"

#include <QObject>
#include <memory>

namespace layerwise::ui {

struct WorkerState;

class EngineWorker : public QObject {
    Q_OBJECT
public:
    explicit EngineWorker(QObject* parent = nullptr);
    ~EngineWorker() override;
    bool probeBandwidth = true; // tests turn the one-second probe off

public Q_SLOTS:
    // A folder, a config.json or a preset name.
    void describe(const QString& what);
    // Detects this machine's devices plus the hypothetical ones in `settings`.
    void detectDevices(const layerwise::ui::PlanSettings& settings);
    // Plans the described model; `planned` carries the result.
    void plan(const layerwise::ui::PlanSettings& settings);
    // Moves decoder blocks [first, last] of the current plan to the device `key` ("0", "cpu", "disk").
    void moveLayers(int first, int last, const QString& key);
    // Replaces the current plan's map by an hf_device_map (JSON or Python dict printout).
    void useDeviceMap(const QString& text);

Q_SIGNALS:
    void described(const layerwise::ui::ModelSummary& summary);
    void devicesDetected(const QVector<layerwise::ui::DeviceRow>& devices);
    void planned(const layerwise::ui::PlanView& plan);
    void failed(const QString& what, const QString& message);

private:
    void publish();
    std::unique_ptr<WorkerState> m_state;
};

} // namespace layerwise::ui
