#pragma once
// Blockwise 4-bit (NF4 / FP4) and 8-bit dynamic quantization in bitsandbytes' layout:
// values flattened in row-major order, blocks of `blocksize`, a float32 absmax per block (the
// last block may be partial), codes chosen by the midpoints of the sorted code table, two
// 4-bit codes per byte with the first value in the high nibble. Plain LibTorch: the
// reference that faster kernels are tested against.
#include "model/quant_config.h"

#include <ATen/core/Tensor.h>
#include <utility>

namespace layerwise {

// bitsandbytes' 16-value code tables, normalised to [-1, 1] (FP4 in bit-pattern order).
at::Tensor code_4bit(QuantMethod type);
// bitsandbytes' create_dynamic_map(signed=True): the 256-value 8-bit dynamic code (sorted).
at::Tensor dynamic_code_8bit();

// w: any floating tensor. Returns packed uint8 [(n+1)/2, 1] and absmax float32 [ceil(n/blocksize)].
std::pair<at::Tensor, at::Tensor> quantize_4bit_blocks(const at::Tensor& w, QuantMethod type, std::int64_t blocksize);
// packed uint8 (any shape, n values), absmax float32 per block -> `dtype` tensor of `shape`.
at::Tensor dequantize_4bit_blocks(const at::Tensor& packed, const at::Tensor& absmax, const at::Tensor& code,
                                  std::int64_t blocksize, at::IntArrayRef shape, c10::ScalarType dtype);

// 8-bit blockwise quantization against a sorted code: uint8 codes (a's shape) and float32 absmax.
std::pair<at::Tensor, at::Tensor> quantize_blockwise_8bit(const at::Tensor& a, const at::Tensor& code, std::int64_t blocksize);
at::Tensor dequantize_blockwise_8bit(const at::Tensor& q, const at::Tensor& absmax, const at::Tensor& code,
                                     std::int64_t blocksize); // float32

// Double quantization of a 4-bit absmax: offset = mean, then 8-bit dynamic blocks of 256.
struct NestedAbsmax {
    at::Tensor absmax_u8, nested_absmax, nested_code;
    float offset = 0.0f;
};
NestedAbsmax nest_absmax(const at::Tensor& absmax, std::int64_t nested_blocksize = 256);
at::Tensor unnest_absmax(const at::Tensor& absmax_u8, const at::Tensor& nested_absmax, const at::Tensor& nested_code,
                         float offset, std::int64_t nested_blocksize = 256); // float32

} // namespace layerwise
