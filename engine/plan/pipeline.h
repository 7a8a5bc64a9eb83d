#pragma once
// Plans across machines: a model's decoder layers in contiguous stages (a pipeline), the first on
// this machine with the embeddings and the head, the others on machines running `layerwise
// worker`, in the order given. Each stage is planned on its machine's devices by the one-machine
// planner (plan.h); the link between machines is counted in the speed estimate, and a machine
// takes a stage only when that is faster than leaving it out (fewest link crossings first among
// splits within 1% of the fastest). Pure functions: devices and links come in, nothing is probed.
//
// Time per generated token = the stages' times + crossings x (latency + hidden state bytes / link
// bandwidth); a remote stage is two crossings (there and back: the coordinator sends each stage
// its input). Prefill of one chunk likewise, with a chunk's hidden states crossing.
#include "plan/plan.h"

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace layerwise {

struct MachineLink {
    double bandwidth = 0; // bytes/s, one way
    double latency = 0;   // seconds, one way
    std::string source;   // "measured", "assumed"
};

struct Machine {
    std::string name;    // "host2": its devices read "host2/cuda:0", "host2/cpu"
    std::string address; // "10.0.0.2:7070", where its worker listens
    std::vector<DeviceInfo> devices;
    MaxMemory max_memory; // limits of its devices; a device without one may use its available memory
    MachineLink link;    // between it and this machine
};

struct PipelineStage {
    int machine = -1;                // -1: this machine; else an index into the remote machines
    std::int64_t first = 0, end = 0; // decoder blocks [first, end)
    Plan plan;                       // the stage's share on its machine's devices
};

struct PipelinePlan {
    std::vector<Machine> machines;     // the remote machines planned with, used or not
    std::vector<PipelineStage> stages; // in layer order; this machine's first
    Verdict verdict = Verdict::does_not_fit;
    std::string reason;
    Estimate estimate;                 // the stages' and the link's time together
    double link_seconds_per_token = 0;
    int crossings = 0;                 // link crossings of one decode step

    const Machine* machine_of(const PipelineStage& s) const
    {
        return s.machine < 0 ? nullptr : &machines[static_cast<std::size_t>(s.machine)];
    }
};

// The pipeline for `request` (this machine's devices and limits) with `machines` beside it.
// PlanError for a custom map (a map file places one machine's devices) or a request the
// one-machine planner refuses.
PipelinePlan make_pipeline_plan(const ModuleTree& tree, const ModelConfig& config, const PlanRequest& request,
                                const std::vector<Machine>& machines);

// A stage's map over the whole model, for loading it: the stage's tensors where `stage_map` puts
// them (the CPU where it names none), every other tensor on "disk" (mapped, never read). With
// `with_rest`, tensors outside any decoder block belong to the stage.
DeviceMap whole_model_map(const ModuleTree& tree, const DeviceMap& stage_map, std::int64_t first, std::int64_t end,
                          bool with_rest);

// "host2/cuda:0" for a device of a remote machine, "cuda:0" for this machine's.
std::string device_label(const PipelinePlan& plan, const PipelineStage& stage, const Device& device);

nlohmann::json pipeline_plan_to_json(const PipelinePlan& plan);
std::string pipeline_plan_to_text(const PipelinePlan& plan);

} // namespace layerwise
