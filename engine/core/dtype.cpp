#include "core/dtype.h"

#include <array>

namespace layerwise {
namespace {

struct DTypeRow {
    DType dtype;
    std::string_view safetensors;
    std::string_view torch;
    int bits;
    bool floating;
};

constexpr std::array<DTypeRow, 16> rows{{
    {DType::f64, "F64", "float64", 64, true},
    {DType::f32, "F32", "float32", 32, true},
    {DType::f16, "F16", "float16", 16, true},
    {DType::bf16, "BF16", "bfloat16", 16, true},
    {DType::f8_e4m3, "F8_E4M3", "float8_e4m3fn", 8, true},
    {DType::f8_e5m2, "F8_E5M2", "float8_e5m2", 8, true},
    {DType::i64, "I64", "int64", 64, false},
    {DType::i32, "I32", "int32", 32, false},
    {DType::i16, "I16", "int16", 16, false},
    {DType::i8, "I8", "int8", 8, false},
    {DType::u64, "U64", "uint64", 64, false},
    {DType::u32, "U32", "uint32", 32, false},
    {DType::u16, "U16", "uint16", 16, false},
    {DType::u8, "U8", "uint8", 8, false},
    {DType::boolean, "BOOL", "bool", 8, false},
    {DType::int4, "", "int4", 4, false},
}};

const DTypeRow& row(DType d)
{
    return rows[static_cast<std::size_t>(d)];
}

} // namespace

std::optional<DType> dtype_from_safetensors(std::string_view name)
{
    for (const auto& r : rows)
        if (!r.safetensors.empty() && r.safetensors == name)
            return r.dtype;
    return std::nullopt;
}

std::string_view safetensors_name(DType dtype)
{
    return row(dtype).safetensors;
}

std::optional<DType> dtype_from_torch_name(std::string_view name)
{
    if (name.substr(0, 6) == "torch.")
        name.remove_prefix(6);
    for (const auto& r : rows)
        if (r.torch == name)
            return r.dtype;
    if (name == "fp32" || name == "float")
        return DType::f32;
    if (name == "fp16" || name == "half")
        return DType::f16;
    if (name == "bf16")
        return DType::bf16;
    if (name == "double")
        return DType::f64;
    return std::nullopt;
}

std::string_view torch_name(DType dtype)
{
    return row(dtype).torch;
}

int dtype_bits(DType dtype)
{
    return row(dtype).bits;
}

bool is_floating(DType dtype)
{
    return row(dtype).floating;
}

} // namespace layerwise
