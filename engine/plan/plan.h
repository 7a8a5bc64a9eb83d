#pragma once
// Plans: where every tensor goes, whether it fits (counting the KV cache for the chosen
// context, activations, runtime overhead and offload staging), and how fast it will run.
// Pure functions: the devices and limits come in, nothing is read or probed here.
#include "devices/inventory.h"
#include "model/config.h"
#include "model/module_tree.h"
#include "plan/accelerate_planner.h"
#include "plan/advice.h"
#include "plan/device_map.h"
#include "plan/weight_format.h"

#include <functional>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

namespace layerwise {

enum class Verdict { fits_on_gpu, fits_with_cpu_offload, fits_with_disk_offload, does_not_fit };
std::string_view verdict_name(Verdict v);

struct PlanRequest {
    std::vector<DeviceInfo> devices; // GPUs, cpu, disk: detected and/or hypothetical
    MaxMemory max_memory;            // limits; a device without one may use its available memory
    Strategy strategy = Strategy::auto_;
    bool accelerate = false;         // reproduce accelerate's map for `strategy` instead of planning
    DeviceMap custom_map;            // used with Strategy::custom
    std::int64_t context = 4096;     // tokens of KV cache per sequence
    std::int64_t batch = 1;
    std::optional<DType> kv_dtype;   // default: the compute dtype
    std::int64_t prefill_chunk = 512;
    WeightFormat weights;            // dtype / quantization as loaded
    // Mixtures of experts: the experts of the first N decoder blocks stay in CPU RAM and compute
    // there, the rest of each block being placed as usual (llama.cpp's --n-cpu-moe N; N at least
    // the number of blocks: --cpu-moe). nullopt: the planner chooses the fewest such blocks that
    // keep everything else on the GPUs.
    std::optional<std::int64_t> cpu_moe_layers;
    // false: a plan that does not fit comes without advice (what would fit takes many more
    // plans to find; a search over many candidate plans does not need it).
    bool advise = true;
};

struct DeviceFootprint {
    DeviceInfo device;
    std::int64_t limit = 0;
    std::int64_t weights = 0;
    std::int64_t kv_cache = 0;
    std::int64_t activations = 0; // prefill workspace of the largest layer + logits
    std::int64_t overhead = 0;    // CUDA context and allocator slack
    std::int64_t staging = 0;     // buffers for layers streamed in from CPU or disk
    int layers = 0;               // decoder blocks whose weights live here
    std::int64_t read_per_token = 0; // weight bytes one decode step reads here (a mixture of experts reads its chosen experts only)
    int experts = 0;              // experts whose weights live here
    std::int64_t used() const { return weights + kv_cache + activations + overhead + staging; }
    std::int64_t free() const { return limit - used(); }
};

struct Estimate {
    double seconds_per_token = 0;
    double decode_tokens_per_s = 0;  // at the full context
    double prefill_tokens_per_s = 0;
};

struct Plan {
    std::string mode;                 // "layerwise auto", "accelerate balanced", "custom"
    DeviceMap device_map;             // hf_device_map
    Verdict verdict = Verdict::does_not_fit;
    std::string reason;
    std::vector<Advice> advice;       // does_not_fit: what would fit, each checked (see advice.h)
    std::vector<DeviceFootprint> devices;
    Estimate estimate;
    std::vector<Device> layer_devices; // per decoder block
    std::optional<Device> execution_device;
    std::int64_t context = 0;
};

// The plan for a request: layerwise planning (default), accelerate's map, or a custom map.
Plan make_plan(const ModuleTree& tree, const ModelConfig& config, const PlanRequest& request);

// Footprints, verdict and estimate of a given map (validated first; PlanError if invalid).
Plan evaluate_plan(const ModuleTree& tree, const ModelConfig& config, const PlanRequest& request, DeviceMap map,
                   std::string mode);

// Moves decoder blocks [first, last] (or one named module) to `device` and returns the
// re-evaluated plan: the drag-and-drop of the placement map.
Plan move_layers_in_plan(const ModuleTree& tree, const ModelConfig& config, const PlanRequest& request, const Plan& plan,
                         int first_layer, int last_layer, const Device& device);
Plan move_module_in_plan(const ModuleTree& tree, const ModelConfig& config, const PlanRequest& request, const Plan& plan,
                         const std::string& module, const Device& device);

nlohmann::json plan_to_json(const Plan& plan);
std::string plan_to_text(const Plan& plan);
// The footprint table of plan_to_text, a row per device; `label` names the devices (default: "cuda:0", "cpu", "disk").
std::string device_table(const Plan& plan, const std::function<std::string(const Device&)>& label = {});

} // namespace layerwise
