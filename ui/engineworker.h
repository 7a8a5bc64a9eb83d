#pragma once
// The only UI object that calls the engine. It lives on its own QThread; requests arrive
// as queued slot calls, results leave as queued signals carrying value types.
#include "chatwork.h"
#include "enginework.h"
#include "quantwork.h"
#include "serverwork.h"

#include <QObject>
#include <atomic>
#include <memory>

namespace layerwise::ui {

struct WorkerState;

class EngineWorker : public QObject {
    Q_OBJECT
public:
    explicit EngineWorker(QObject* parent = nullptr);
    ~EngineWorker() override;
    bool probeBandwidth = true; // tests turn the one-second probe off
    QString offloadFolder;      // where converted disk weights go ("" : the system temp folder)
    // Thread-safe, called directly from the GUI thread while the worker is busy:
    void cancelLoad() { m_cancelLoad.store(true); }
    void resetCancel() { m_cancelLoad.store(false); }
    void stopGeneration() { m_stop.store(true); }
    // Cancels the running quantization or evaluation (thread-safe, as cancelLoad).
    void cancelJob() { m_cancelJob.store(true); }
    void resetJobCancel() { m_cancelJob.store(false); }

public Q_SLOTS:
    // A folder, a config.json or a preset name.
    void describe(const QString& what);
    // Detects this machine's devices plus the hypothetical ones in `settings`.
    void detectDevices(const layerwise::ui::PlanSettings& settings);
    // Plans the described model; `planned` carries the result.
    void plan(const layerwise::ui::PlanSettings& settings);
    // Moves decoder blocks [first, last] of the current plan to the device `key` ("0", "cpu", "disk").
    void moveLayers(int first, int last, const QString& key);
    // Moves one module outside the decoder blocks (and the modules tied to it) to `key`.
    void moveModule(const QString& module, const QString& key);
    // Replaces the current plan's map by an hf_device_map (JSON or Python dict printout).
    void useDeviceMap(const QString& text);
    // Plans with `settings` and, when `map` is not empty, that hf_device_map (undo and redo).
    void restorePlan(const layerwise::ui::PlanSettings& settings, const QString& map);
    // Another machine running `layerwise worker` joins the plan (its devices become cards and
    // lanes "host2/cpu"..., the layers are planned in pipeline stages); machinesChanged says so,
    // failed says why not (unreachable, wrong token). All machines share one token.
    void addMachine(const QString& address, const QString& token);
    // That machine leaves the plan (after it failed, say).
    void removeMachine(const QString& address);
    void removeAllMachines();
    // Loads the described model with the current plan's device map and dtype (a pipeline: each
    // other machine loads its stage).
    void load();
    void unload();
    // Answers the last message; pieces stream through answerPiece.
    void chat(const layerwise::ui::ChatTurnRequest& request);
    // The prompt text the request would feed (promptPreview).
    void previewPrompt(const layerwise::ui::ChatTurnRequest& request);
    // A plan for `settings` that does not replace the current one (previewPlanned echoes `tag`).
    void previewPlan(const layerwise::ui::PlanSettings& settings, const QString& tag);
    // Writes a quantized copy of a model folder (engineworker_quant.cpp).
    void quantize(const layerwise::ui::QuantizeRequest& request);
    // Perplexity of a model folder on a text.
    void evaluate(const layerwise::ui::EvalRequest& request);
    // The local OpenAI-compatible server over the loaded model (engineworker_server.cpp).
    void startServer(const layerwise::ui::ServerSettings& settings);
    void stopServer();

Q_SIGNALS:
    void described(const layerwise::ui::ModelSummary& summary);
    void devicesDetected(const QVector<layerwise::ui::DeviceRow>& devices);
    void planned(const layerwise::ui::PlanView& plan);
    void failed(const QString& what, const QString& message);
    // The machines in the plan besides this one, "host2  10.0.0.2:7070" each.
    void machinesChanged(const QStringList& machines);
    // A machine of the loaded pipeline stopped answering (the answer failed too).
    void machineFailed(const QString& address, const QString& message);
    void loadProgress(const layerwise::ui::LoadProgressView& progress);
    void loaded(const layerwise::ui::LoadedView& view);
    void loadFailed(const QString& message, bool cancelled);
    void unloaded();
    // One value per decoder block (LayerActivity), at most every 40 ms while the model runs.
    void layerStates(const QVector<int>& states);
    void answerPiece(const QString& text);
    void answerFinished(const QString& text, const layerwise::ui::AnswerStats& stats);
    void answerFailed(const QString& message);
    void promptPreview(const QString& text, int tokens);
    void previewPlanned(const QString& tag, const layerwise::ui::PlanView& plan);
    void quantizeProgress(const layerwise::ui::QuantizeProgressView& progress);
    void quantized(const layerwise::ui::QuantizeResultView& result);
    void quantizeFailed(const QString& message, bool cancelled);
    void evalProgress(const QString& tag, int done, int total);
    void evaluated(const layerwise::ui::EvalResultView& result);
    void evalFailed(const QString& tag, const QString& message, bool cancelled);
    void serverStarted(const QString& address, const QString& note); // note: what serving holds
    void serverStopped(const QString& message); // empty: stopped as asked
    void serverRequest(const layerwise::ui::ServerRequestView& request); // from the server's threads
    void serverClients(int active);

private:
    void quantizeGptq(const layerwise::ui::QuantizeRequest& request);
    void stopServerBecause(const QString& reason);
    // One generation step of the server's requests on this thread (the one that loaded the
    // model); queued again while they need more. Requests coalesce into one queued call.
    void pumpServer();
    void schedulePump();
    std::atomic<bool> m_pumpQueued{false};
    void publish();
    // With other machines in the plan the pipeline planner places the layers: hand placement
    // (`what`) is refused with a `failed` saying so; false without machines.
    bool refusedWithMachines(const QString& what);
    void publishMachines();
    void publishLayerStates(bool force);
    std::unique_ptr<WorkerState> m_state;
    std::atomic<bool> m_cancelLoad{false};
    std::atomic<bool> m_stop{false};
    std::atomic<bool> m_cancelJob{false};
    QVector<int> m_layerStates;
    qint64 m_lastLayerEmit = 0;
};

} // namespace layerwise::ui
