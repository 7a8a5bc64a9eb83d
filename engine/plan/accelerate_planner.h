#pragma once
// accelerate's device-map inference, reproduced exactly (accelerate 1.15):
// get_balanced_memory + infer_auto_device_map + clean_device_map, as
// from_pretrained(device_map="auto"|"balanced"|"balanced_low_0"|"sequential", max_memory=...)
// ran them through accelerate. Pure functions over the module tree.
#include "model/module_tree.h"
#include "devices/device.h"
#include "plan/device_map.h"

#include <string_view>

namespace layerwise {

enum class Strategy { auto_, balanced, balanced_low_0, sequential, custom };
Strategy parse_strategy(std::string_view text); // PlanError for an unknown name
std::string_view strategy_name(Strategy s);

struct AccelerateOptions {
    SizeRule sizes = SizeRule::stored(); // compute_module_sizes(dtype=...): stored = dtype None
    bool no_split = true;                // use the model's _no_split_modules
};

// get_balanced_memory(model, max_memory, no_split_module_classes, dtype, low_zero)
MaxMemory accelerate_balanced_memory(const ModuleTree& tree, const MaxMemory& max_memory,
                                     const AccelerateOptions& options, bool low_zero);

// infer_auto_device_map(model, max_memory, no_split_module_classes, dtype) with clean_result.
DeviceMap accelerate_infer_device_map(const ModuleTree& tree, const MaxMemory& max_memory,
                                      const AccelerateOptions& options);

// The whole strategy: balanced memory (not for sequential) then inference.
DeviceMap accelerate_device_map(const ModuleTree& tree, const MaxMemory& max_memory, Strategy strategy,
                                const AccelerateOptions& options);

} // namespace layerwise
