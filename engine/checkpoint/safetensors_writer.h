#pragma once
// Writes a safetensors file: to `path`.tmp, then renamed, so a failure never leaves a
// half-written file behind. Used for disk offload of converted weights and by quantizers.
#include "core/dtype.h"

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace layerwise {

struct TensorToWrite {
    std::string name;
    DType dtype = DType::f32;
    std::vector<std::int64_t> shape;
    std::function<void(std::byte* out)> fill; // writes exactly the tensor's bytes
};

// Throws IoError naming the path (no space, no permission) after removing the temporary file.
void write_safetensors(const std::filesystem::path& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

} // namespace layerwise
