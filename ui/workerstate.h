#pragma once
// Engine state owned by the worker thread (private to the EngineWorker sources).
#include "api/layerwise.h"
#include "api_server.h"

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

} // namespace layerwise::ui
