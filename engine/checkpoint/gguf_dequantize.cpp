#include "checkpoint/gguf_dequantize.h"

#include "core/error.h"
#include "cpu/gguf_blocks.h"
#include "cpu/simd.h"

#include <cstring>

namespace layerwise::gguf {

float half_to_float(std::uint16_t h)
{
    return kernels::cpu::half_to_float(h);
}

float bfloat16_to_float(std::uint16_t b)
{
    const std::uint32_t bits = static_cast<std::uint32_t>(b) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

bool can_dequantize(TensorType type)
{
    int elements = 0, bytes = 0;
    const auto t = static_cast<kernels::cpu::GgmlType>(type);
    return kernels::cpu::block_geometry(t, elements, bytes) && kernels::cpu::vec_dot_kernel(t, kernels::CpuLevel::scalar);
}

void dequantize(TensorType type, const std::uint8_t* src, std::uint64_t numel, float* dst)
{
    if (!can_dequantize(type) ||
        !kernels::cpu::dequantize_row(static_cast<kernels::cpu::GgmlType>(type), src, dst, static_cast<std::int64_t>(numel)))
        throw UnsupportedError("GGUF tensor type " + std::string(tensor_type_name(type)) +
                               " cannot be decoded (supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, MXFP4, Q2_K, "
                               "Q3_K, Q4_K, Q5_K, Q6_K); re-quantize the model to one of those");
}

} // namespace layerwise::gguf
