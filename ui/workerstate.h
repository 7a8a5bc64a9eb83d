#pragma once
// Engine state owned by the worker thread (private to the EngineWorker sources).
#include "engine.h"
#include "plan/plan.h"
#include "runtime/chat.h"
#include "runtime/loaded_model.h"

#include <memory>
#include <optional>
#include <vector>

namespace layerwise::ui {

struct WorkerState {
    std::optional<ModelDescription> model; // the described model
    std::vector<DeviceInfo> detected;
    PlanRequest request;
    std::optional<Plan> plan;
    // The loaded model and its conversation (the session refers to the model: destroy it first).
    std::unique_ptr<LoadedModel> loaded;
    std::unique_ptr<ChatSession> chat;
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
    void unload()
    {
        chat.reset();
        loaded.reset();
    }
};

} // namespace layerwise::ui
