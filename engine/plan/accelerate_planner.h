#pragma once
// The device map from_pretrained(device_map="auto"|"balanced"|"balanced_low_0"|"sequential",
// max_memory=..., dtype=...) computes, reproduced exactly (transformers 5.24's _get_device_map:
// its own get_balanced_memory and infer_auto_device_map, derived from accelerate's, over
// accelerate 1.15's get_max_memory and clean_device_map). Pure functions over the module tree.
// A device without a limit in the table gets nothing (what no device takes goes to "disk").
#include "model/module_tree.h"
#include "devices/device.h"
#include "plan/device_map.h"

#include <string_view>

namespace layerwise {

enum class Strategy { auto_, balanced, balanced_low_0, sequential, custom };
Strategy parse_strategy(std::string_view text); // PlanError for an unknown name
std::string_view strategy_name(Strategy s);

struct AccelerateOptions {
    // Module sizes: transformers builds the model in the requested dtype before sizing it, so
    // SizeRule::as_loaded(dtype) (floating parameters in dtype, buffers as they are).
    SizeRule sizes = SizeRule::stored();
    bool no_split = true;                // use the model's _no_split_modules
};

// transformers' get_balanced_memory(model, max_memory, no_split_module_classes, low_zero)
MaxMemory accelerate_balanced_memory(const ModuleTree& tree, const MaxMemory& max_memory,
                                     const AccelerateOptions& options, bool low_zero);

// infer_auto_device_map(model, max_memory, no_split_module_classes, dtype) with clean_result.
DeviceMap accelerate_infer_device_map(const ModuleTree& tree, const MaxMemory& max_memory,
                                      const AccelerateOptions& options);

// The whole strategy: balanced memory (not for sequential) then inference.
DeviceMap accelerate_device_map(const ModuleTree& tree, const MaxMemory& max_memory, Strategy strategy,
                                const AccelerateOptions& options);

} // namespace layerwise
