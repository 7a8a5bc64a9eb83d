#pragma once
// One tensor of a checkpoint, described by its header: where its bytes are, never the bytes.
#include "core/dtype.h"

#include <cstdint>
#include <string>
#include <vector>

namespace layerwise {

struct TensorEntry {
    std::string name;
    DType dtype = DType::f32;
    std::vector<std::int64_t> shape;
    std::size_t file = 0;         // index into the checkpoint's file list
    std::uint64_t offset = 0;     // absolute byte offset of the first element in that file
    std::uint64_t size = 0;       // bytes
    std::vector<std::int64_t> strides; // element strides; empty = contiguous row-major

    std::uint64_t numel() const
    {
        std::uint64_t n = 1;
        for (auto d : shape)
            n *= static_cast<std::uint64_t>(d);
        return n;
    }
};

std::string shape_string(const std::vector<std::int64_t>& shape); // "[64, 512]"

} // namespace layerwise
