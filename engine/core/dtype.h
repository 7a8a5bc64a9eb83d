#pragma once
// Element types of checkpoint tensors: the safetensors names ("F32"), the torch
// names ("float32") and sizes. Torch-free so header-only work stays fast to build.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace layerwise {

enum class DType : std::uint8_t {
    f64, f32, f16, bf16, f8_e4m3, f8_e5m2,
    i64, i32, i16, i8, u64, u32, u16, u8, boolean,
    // Packed sub-byte integer types used for planning quantized loads (never in a file header).
    int4,
};

// "F32" etc. as written in safetensors headers; nullopt for an unknown name.
std::optional<DType> dtype_from_safetensors(std::string_view name);
std::string_view safetensors_name(DType dtype);

// "float32", "bfloat16", "int8", "int4"... (torch spelling; also accepts "fp16", "bf16", "fp32", "half", "float").
std::optional<DType> dtype_from_torch_name(std::string_view name);
std::string_view torch_name(DType dtype);

// Size in bits of one element (int4: 4, bool: 8 as stored by torch).
int dtype_bits(DType dtype);
bool is_floating(DType dtype);

// Bytes of `numel` elements, rounding sub-byte types up.
inline std::uint64_t dtype_bytes(DType dtype, std::uint64_t numel)
{
    return (numel * static_cast<std::uint64_t>(dtype_bits(dtype)) + 7) / 8;
}

} // namespace layerwise
