#pragma once
// Tensors the fixture generators write as base64 of their little-endian bytes (exact and compact).
#include <ATen/ATen.h>

#include <cstring>
#include <string>

namespace layerwise::test {

inline std::string b64decode(const std::string& in)
{
    static const std::string chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    int val = 0, bits = -8;
    for (char c : in) {
        const auto pos = chars.find(c);
        if (pos == std::string::npos)
            break;
        val = (val << 6) + static_cast<int>(pos);
        bits += 6;
        if (bits >= 0) {
            out.push_back(static_cast<char>((val >> bits) & 0xFF));
            bits -= 8;
        }
    }
    return out;
}

// A flat tensor of `dtype` from base64 bytes.
inline at::Tensor tensor_from_base64(const std::string& b64, at::ScalarType dtype)
{
    const std::string raw = b64decode(b64);
    const auto elem = static_cast<std::int64_t>(c10::elementSize(dtype));
    at::Tensor t = at::empty({static_cast<std::int64_t>(raw.size()) / elem}, at::TensorOptions().dtype(dtype));
    std::memcpy(t.data_ptr(), raw.data(), raw.size());
    return t;
}

} // namespace layerwise::test
