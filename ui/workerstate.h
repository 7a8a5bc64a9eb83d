#pragma once
// Engine state owned by the worker thread (private to the EngineWorker sources).
#include "api/layerwise.h"
#include "api_server.h"
#include "enginework.h"

#include <memory>
#include <optional>
#include <thread>
#include <vector>

namespace layerwise::ui {

struct WorkerState {
    std::optional<Model> model; // the opened model
    std::vector<DeviceInfo> detected;
    PlanRequest request;
    std::optional<Plan> plan;
    // Other machines running `layerwise worker` ("Add machine…"), the token they share, and the
    // pipeline planned over them and this machine (then `plan` is this machine's stage).
    std::vector<Machine> machines;
    std::string machineToken;
    int nextMachine = 2; // the number of the next machine's name ("host2")
    std::optional<PipelinePlan> pipeline;
    std::unique_ptr<Session> session; // the loaded model and its conversation
    // The local server over `session` and the thread it serves on (stopped before the session goes).
    std::unique_ptr<server::ApiServer> server;
    std::thread serverThread;
    // The devices of this machine, detected once (`probe_bandwidth`: measure RAM/disk speed).
    const std::vector<DeviceInfo>& devices(bool probe_bandwidth)
    {
        if (detected.empty()) {
            DetectOptions o;
            o.probe_bandwidth = probe_bandwidth;
            detected = detect_devices(o);
        }
        return detected;
    }
    void stopServer()
    {
        if (server)
            server->stop();
        if (serverThread.joinable())
            serverThread.join();
        server.reset();
    }
    void unload()
    {
        stopServer();
        session.reset();
    }
    ~WorkerState() { stopServer(); }
};

// Shared by the EngineWorker sources: the request of the user's settings (limits of other
// machines' devices left to limitedMachines), and the views of plans.
PlanRequest requestFrom(const PlanSettings& s, const std::vector<DeviceInfo>& detected, const Model& d);
FootprintRow footprintRow(const DeviceFootprint& f, const Machine* machine);
PlanView viewOf(const Plan& plan, const Model& d, const PlanRequest& r);
// engineworker_machines.cpp: a pipeline's view (lanes "host2/cpu"... grouped by machine), other
// machines' device cards, and their devices with the user's limits applied.
PlanView viewOfPipeline(const PipelinePlan& pipeline, const Model& d, const PlanRequest& r);
QVector<DeviceRow> machineDeviceRows(const std::vector<Machine>& machines);
std::vector<Machine> limitedMachines(std::vector<Machine> machines, const PlanSettings& settings);

} // namespace layerwise::ui
