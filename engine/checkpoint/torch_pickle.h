#pragma once
// A restricted reader for the data.pkl of a torch.save'd state dict. It understands
// only what a state dict is made of (OrderedDict, _rebuild_tensor_v2, _rebuild_parameter,
// typed storages); any other pickle global is refused, so no code in a checkpoint ever runs.
#include "core/dtype.h"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace layerwise {

struct PickledTensor {
    std::string name;
    DType dtype = DType::f32;
    std::string storage_key;         // record "<archive>/data/<key>"
    std::uint64_t storage_numel = 0; // elements in the storage
    std::int64_t storage_offset = 0; // elements
    std::vector<std::int64_t> shape;
    std::vector<std::int64_t> strides;
};

// Parses the pickle bytes; `where` names the file in errors.
std::vector<PickledTensor> read_state_dict_pickle(std::string_view pickle, const std::string& where);

} // namespace layerwise
