#pragma once
// Decoding ggml block-quantized and half-precision tensor data to float32, block by block as
// ggml lays it out (ggml-common.h). Torch-free: the loader calls it into a tensor's storage.
#include "checkpoint/gguf.h"

#include <cstdint>

namespace layerwise::gguf {

// Whether dequantize() can decode `type`: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, MXFP4,
// Q2_K..Q6_K (the decoders of kernels/cpu/gguf_blocks.h).
bool can_dequantize(TensorType type);

// Decodes `numel` elements (a whole number of blocks) of `type` from `src` into `dst`.
// UnsupportedError for a type can_dequantize() refuses.
void dequantize(TensorType type, const std::uint8_t* src, std::uint64_t numel, float* dst);

// IEEE half / bfloat16 bits to float.
float half_to_float(std::uint16_t bits);
float bfloat16_to_float(std::uint16_t bits);

} // namespace layerwise::gguf
