#pragma once
// One tensor of a checkpoint, described by its header: where its bytes are, never the bytes.
#include "core/dtype.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace layerwise {

// How a GGUF tensor's bytes hold its elements: the ggml type (F32, F16, BF16 or a
// block-quantized type such as Q4_1, which decodes to float32) and, for the q/k projections of
// llama models, the number of heads whose rotary row order llama.cpp's converter interleaved
// (0 = the rows are in Hugging Face's order). See checkpoint/gguf.h.
struct GgufEncoding {
    std::uint32_t ggml_type = 0;
    bool block_quantized = false;          // blocks of several elements (Q8_0, Q4_K...)
    std::int64_t rope_permuted_heads = 0;
    // Hugging Face's MXFP4 (gpt-oss's `*_blocks` and `*_scales`), described as ggml's MXFP4
    // (type 39) whose two parts lie apart: the entry's offset holds 16 bytes of codes per 32
    // elements (element 2j in the low nibble of byte j, 2j + 1 in the high one) and these the
    // E8M0 scales, one byte per 32 elements. `size` counts both. They are joined into ggml's
    // 17-byte blocks when read (checkpoint/tensor_view.h stored_blocks).
    // `row_step`: the stored rows between two of this tensor's (2: every other row, as gpt-oss's
    // gate and up rows alternate in one stored tensor).
    struct SplitScales {
        std::size_t file = 0;
        std::uint64_t offset = 0;
        std::int64_t row_step = 1;
    };
    std::optional<SplitScales> hf_mxfp4_scales;
};

struct TensorEntry {
    std::string name;
    DType dtype = DType::f32;
    std::vector<std::int64_t> shape;
    std::size_t file = 0;         // index into the checkpoint's file list
    std::uint64_t offset = 0;     // absolute byte offset of the first element in that file
    std::uint64_t size = 0;       // bytes
    std::vector<std::int64_t> strides; // element strides; empty = contiguous row-major
    // Set for GGUF tensors. `dtype` is then the element type once decoded (float32 for a
    // block-quantized type) and `size` the bytes in the file.
    std::optional<GgufEncoding> gguf;

    // Whether the bytes are plain `dtype` elements in HF order, so a zero-copy view can show
    // them; otherwise the tensor is decoded (dequantized, rows reordered) when materialised.
    bool is_view() const { return !gguf || (!gguf->block_quantized && gguf->rope_permuted_heads == 0); }

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
