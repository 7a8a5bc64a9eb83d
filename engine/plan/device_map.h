#pragma once
// hf_device_map: module prefixes -> device, exactly the dict a Python user passes as
// `device_map=` (and reads back from `model.hf_device_map`).
#include "devices/device.h"

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <utility>
#include <vector>

namespace layerwise {

class ModuleTree;

using DeviceMap = std::vector<std::pair<std::string, Device>>; // in insertion order

// {"model.embed_tokens": 0, "model.layers.0": "cuda:1", "lm_head": "cpu", ...}
nlohmann::json device_map_to_json(const DeviceMap& map);
// The same dict as indented JSON text, keys in the map's order (the order a user reads them).
std::string device_map_to_text(const DeviceMap& map);
// Accepts JSON, and the printout of a Python dict ({'model.norm': 0, 'lm_head': 'cpu'}).
// PlanError for a malformed text or an unknown device.
DeviceMap parse_device_map(const std::string& text);
DeviceMap device_map_from_json(const nlohmann::json& j);

// Checks a map against a model: every key names a module or tensor, no key covers another
// (each tensor gets exactly one device), every tensor is covered, no no-split block is cut
// across devices. PlanError naming the key and what to do otherwise.
void validate_device_map(const ModuleTree& tree, const DeviceMap& map);

// The device of every node (-1 entries for nodes whose tensors sit on several devices),
// for a validated map. Indexed like tree.nodes().
struct Placement {
    std::vector<int> node_device;   // index into devices, or -1 when mixed or empty
    std::vector<Device> devices;    // distinct devices, in accelerate's order
};

// The device of one tensor (full name) under a map; nullptr if no key covers it.
const Device* device_of(const DeviceMap& map, const std::string& tensor_name);

// accelerate's clean_device_map: merges the keys under a module when they all share a device.
DeviceMap clean_device_map(DeviceMap map);

// Expands a map so that each decoder block (and every top-level module) has its own key,
// moves blocks [first, last] to `device`, and cleans the result. PlanError for a bad range.
DeviceMap move_layers(const ModuleTree& tree, const DeviceMap& map, int first_layer, int last_layer, const Device& device);
// Moves the experts of decoder blocks `layers` (a mixture of experts) to `device`, the rest of
// each block staying where it is: llama.cpp's --cpu-moe / --n-cpu-moe as a map.
DeviceMap move_experts(const ModuleTree& tree, const DeviceMap& map, const std::vector<int>& layers, const Device& device);
// The keys in the model's module order (cleaning appends the keys it merges), so that a block's
// keys read together.
DeviceMap in_model_order(const ModuleTree& tree, DeviceMap map);
// Moves one module (not a layer: embeddings, norm, head; an expert or a layer's experts) to `device`.
DeviceMap move_module(const ModuleTree& tree, const DeviceMap& map, const std::string& module, const Device& device);

} // namespace layerwise
