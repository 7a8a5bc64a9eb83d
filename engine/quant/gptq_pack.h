#pragma once
// AutoGPTQ's packed layout of a GPTQ-quantized linear (the "gptq" checkpoint format its
// QuantLinear.pack writes and every AutoGPTQ kernel reads), and its inverse.
//
// Values are laid out as one little-endian bit stream per column of 32-bit words: value k of a
// column occupies bits [k*bits, (k+1)*bits) of the stream, so with 3 bits a value can straddle
// two words (values 10 and 21 of every 32), exactly as AutoGPTQ packs 3-bit weights.
//
// Zero points are stored minus one. AutoGPTQ's CUDA kernels read a stored field f back as
// f + 1 without wrapping, so a zero point of 0 (field 2^bits - 1) reads as 2^bits there; its
// torch path for 2/4/8 bits wraps it back to 0, as gptq_unpack_zeros does. A writer that
// wants every AutoGPTQ kernel to agree keeps zero points in 1 .. 2^bits - 1 (symmetric
// quantization always does: 2^(bits-1)).
#include <ATen/core/Tensor.h>

namespace layerwise {

struct GptqPacked {
    at::Tensor qweight; // int32 [in*bits/32, out], packed along the input dim
    at::Tensor qzeros;  // int32 [groups, out*bits/32], packed along the output dim, stored zero - 1
    at::Tensor scales;  // float16 [groups, out]
    at::Tensor g_idx;   // int32 [in]: the group of each input column
};

// codes int32 [out, in] in 0..2^bits-1; scales floating [groups, out]; zeros int32 [groups, out]
// real zero points in 0..2^bits-1; g_idx int32 [in] in 0..groups-1. bits 2, 3, 4 or 8; `in` and
// `out` multiples of 32 (AutoGPTQ's shapes). Bytes identical to AutoGPTQ's pack (zero points
// >= 1; see above for 0). Runs on the CPU; inputs on any device.
GptqPacked gptq_pack(const at::Tensor& codes, const at::Tensor& scales, const at::Tensor& zeros, const at::Tensor& g_idx,
                     int bits);

// qweight int32 [in*bits/32, out] -> codes int32 [out, in]. Any device.
at::Tensor gptq_unpack_codes(const at::Tensor& qweight, int bits);
// qzeros int32 [groups, out*bits/32] -> real zero points int32 [groups, out] ((field + 1) mod 2^bits).
at::Tensor gptq_unpack_zeros(const at::Tensor& qzeros, int bits);

// W [out, in] = scales[g_idx] * (q - zero[g_idx]), computed in float32 (exact: a float16 scale
// times a small integer) and rounded once to `dtype`. An undefined g_idx means in/group order
// (older checkpoints): column i in group i / (in / groups).
at::Tensor gptq_dequantize(const GptqPacked& packed, int bits, c10::ScalarType dtype);

// int32 [in]: i / group_size (group_size -1: all zeros), the g_idx without act-order.
at::Tensor gptq_default_g_idx(std::int64_t in, int group_size);

// Round-to-nearest codes of a float weight w [out, in] for given scales [groups, out] (float) and
// zero points [groups, out] (integer-valued), as AutoGPTQ's QuantLinear.pack computes them:
// q = round((w + zeros[g]*scales[g]) / scales16[g]) where scales16 are the scales as stored
// (float16), arithmetic in float32, ties to even; clamped to 0..2^bits-1. int32 [out, in].
at::Tensor gptq_rtn_codes(const at::Tensor& w, const at::Tensor& scales, const at::Tensor& zeros, const at::Tensor& g_idx,
                          int bits);

} // namespace layerwise
