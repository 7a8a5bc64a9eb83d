#pragma once
// Reference values of the fixtures (JSON rows of floats) as LibTorch tensors.
#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <vector>

namespace layerwise::test {

// [[...], [...]] -> a float32 tensor [rows, cols].
inline at::Tensor tensor_of(const nlohmann::json& rows)
{
    std::vector<float> flat;
    std::int64_t cols = 0;
    for (const auto& r : rows) {
        cols = static_cast<std::int64_t>(r.size());
        for (const auto& v : r)
            flat.push_back(v.get<float>());
    }
    return at::tensor(flat).reshape({static_cast<std::int64_t>(rows.size()), cols});
}

// [...] -> a float32 tensor [n].
inline at::Tensor row_of(const nlohmann::json& values)
{
    return tensor_of(nlohmann::json::array({values}))[0];
}

} // namespace layerwise::test
