#include "checkpoint/tensor_view.h"

#include "checkpoint/checkpoint.h"
#include "checkpoint/gguf_dequantize.h"
#include "core/error.h"

#include "parallel.h"
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>

namespace layerwise {

c10::ScalarType scalar_type(DType dtype)
{
    switch (dtype) {
    case DType::f64: return c10::ScalarType::Double;
    case DType::f32: return c10::ScalarType::Float;
    case DType::f16: return c10::ScalarType::Half;
    case DType::bf16: return c10::ScalarType::BFloat16;
    case DType::f8_e4m3: return c10::ScalarType::Float8_e4m3fn;
    case DType::f8_e5m2: return c10::ScalarType::Float8_e5m2;
    case DType::i64: return c10::ScalarType::Long;
    case DType::i32: return c10::ScalarType::Int;
    case DType::i16: return c10::ScalarType::Short;
    case DType::i8: return c10::ScalarType::Char;
    case DType::u64: return c10::ScalarType::UInt64;
    case DType::u32: return c10::ScalarType::UInt32;
    case DType::u16: return c10::ScalarType::UInt16;
    case DType::u8: return c10::ScalarType::Byte;
    case DType::boolean: return c10::ScalarType::Bool;
    case DType::int4: break;
    }
    throw UnsupportedError("int4 has no LibTorch element type; unpack it first");
}

namespace {

// Hugging Face's MXFP4 codes and scales of `rows` rows joined into ggml's blocks: the scale byte
// first, then element j of the block in the low nibble of byte j and element j + 16 in its high
// nibble. Both use the same E8M0 exponent and FP4 (E2M1) code values, so only nibbles move.
at::Tensor join_mxfp4(const Checkpoint& checkpoint, const TensorEntry& entry)
{
    const GgufEncoding::SplitScales& at_scales = *entry.gguf->hf_mxfp4_scales;
    const std::int64_t rows = entry.shape.at(0), blocks = entry.shape.at(1) / 32;
    const std::uint64_t scale_bytes = static_cast<std::uint64_t>(rows * blocks), code_bytes = scale_bytes * 16;
    if (entry.size != code_bytes + scale_bytes || entry.shape.at(1) % 32 != 0)
        throw FormatError(checkpoint.folder().string() + ": MXFP4 tensor '" + entry.name + "' of shape " +
                          shape_string(entry.shape) + " holds " + std::to_string(entry.size) + " bytes of codes and scales, not " +
                          std::to_string(code_bytes + scale_bytes) + "; the checkpoint is corrupt");
    // Row r of this tensor is stored row r * step: its codes and scales lie that far in.
    const std::int64_t step = at_scales.row_step;
    const auto span = static_cast<std::uint64_t>(((rows - 1) * step + 1) * blocks);
    const auto* codes = reinterpret_cast<const std::uint8_t*>(checkpoint.files().at(entry.file)->data(entry.offset, span * 16));
    const auto* scales = reinterpret_cast<const std::uint8_t*>(checkpoint.files().at(at_scales.file)->data(at_scales.offset, span));
    at::Tensor out = at::empty({rows, blocks * 17}, at::TensorOptions().dtype(at::kByte));
    std::uint8_t* o = out.data_ptr<std::uint8_t>();
    kernels::parallel_for(0, rows * blocks, 4096, [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t b = begin; b < end; ++b) {
            const std::int64_t stored = (b / blocks) * step * blocks + b % blocks; // the block's index in the stored tensor
            const std::uint8_t* c = codes + stored * 16;
            std::uint8_t* block = o + b * 17;
            block[0] = scales[stored];
            for (int j = 0; j < 16; ++j) {
                // Element j sits in byte j / 2 (low nibble when j is even); element j + 16 in byte 8 + j / 2.
                const int lo = (c[j / 2] >> (4 * (j % 2))) & 0x0f;
                const int hi = (c[8 + j / 2] >> (4 * (j % 2))) & 0x0f;
                block[1 + j] = static_cast<std::uint8_t>(lo | (hi << 4));
            }
        }
    });
    return out;
}

// A GGUF tensor that is block-quantized or whose q/k rows llama.cpp reordered: decoded into a
// new tensor (float32 for quantized data, else its own dtype) in Hugging Face's row order.
at::Tensor decoded_gguf_tensor(const Checkpoint& checkpoint, const TensorEntry& entry)
{
    const MappedFile& file = *checkpoint.files().at(entry.file);
    at::Tensor joined;
    if (entry.gguf->hf_mxfp4_scales)
        joined = join_mxfp4(checkpoint, entry);
    const auto* bytes = joined.defined() ? joined.data_ptr<std::uint8_t>()
                                         : reinterpret_cast<const std::uint8_t*>(file.data(entry.offset, entry.size));
    at::Tensor t;
    if (entry.gguf->block_quantized) {
        t = at::empty(entry.shape, at::TensorOptions().dtype(at::kFloat));
        const auto type = static_cast<gguf::TensorType>(entry.gguf->ggml_type);
        const gguf::BlockLayout layout = *gguf::block_layout(entry.gguf->ggml_type);
        float* out = t.data_ptr<float>();
        // Blocks are independent: decode ranges of them on all intra-op threads.
        const auto blocks = static_cast<std::int64_t>(entry.numel() / layout.block_elements);
        kernels::parallel_for(0, blocks, 2048, [&](std::int64_t begin, std::int64_t end) {
            gguf::dequantize(type, bytes + static_cast<std::uint64_t>(begin) * layout.block_bytes,
                             static_cast<std::uint64_t>(end - begin) * layout.block_elements,
                             out + static_cast<std::uint64_t>(begin) * layout.block_elements);
        });
    } else {
        t = at::from_blob(const_cast<std::uint8_t*>(bytes), entry.shape,
                          at::TensorOptions().dtype(scalar_type(entry.dtype)));
    }
    if (const std::int64_t heads = entry.gguf->rope_permuted_heads) {
        // llama.cpp stored rows as view(heads, 2, rows/heads/2, ...).swapaxes(1, 2); undo it.
        const std::int64_t rows = entry.shape.at(0);
        if (heads <= 0 || rows % (2 * heads) != 0)
            throw FormatError(file.path().string() + ": tensor '" + entry.name + "' has " + std::to_string(rows) +
                              " rows, not divisible into " + std::to_string(heads) +
                              " rotary heads; the GGUF head counts contradict the weights");
        std::vector<std::int64_t> split{heads, rows / heads / 2, 2};
        split.insert(split.end(), entry.shape.begin() + 1, entry.shape.end());
        t = t.reshape(split).transpose(1, 2).reshape(entry.shape).contiguous();
    }
    return t;
}

} // namespace

at::Tensor tensor_view(const Checkpoint& checkpoint, const TensorEntry& entry)
{
    if (!entry.is_view())
        return decoded_gguf_tensor(checkpoint, entry);
    const MappedFile& file = *checkpoint.files().at(entry.file);
    void* data = const_cast<std::byte*>(file.data(entry.offset, entry.size));
    const auto options = at::TensorOptions().dtype(scalar_type(entry.dtype)).device(at::kCPU);
    if (entry.strides.empty())
        return at::from_blob(data, entry.shape, options);
    return at::from_blob(data, entry.shape, entry.strides, options);
}

at::Tensor stored_blocks(const Checkpoint& checkpoint, const TensorEntry& entry, bool* joined)
{
    if (joined)
        *joined = entry.gguf && entry.gguf->hf_mxfp4_scales.has_value();
    if (entry.gguf && entry.gguf->hf_mxfp4_scales)
        return join_mxfp4(checkpoint, entry);
    const gguf::BlockLayout layout = *gguf::block_layout(entry.gguf->ggml_type);
    const std::int64_t rows = entry.shape.at(0);
    const auto row_bytes = static_cast<std::int64_t>(entry.shape.at(1) / layout.block_elements * layout.block_bytes);
    const MappedFile& file = *checkpoint.files().at(entry.file);
    return at::from_blob(const_cast<std::byte*>(file.data(entry.offset, entry.size)), {rows, row_bytes},
                         at::TensorOptions().dtype(at::kByte));
}

at::Tensor tensor_view(const Checkpoint& checkpoint, const std::string& name)
{
    const TensorEntry* e = checkpoint.find(name);
    if (!e)
        throw FormatError(checkpoint.folder().string() + ": the checkpoint has no tensor '" + name + "'");
    return tensor_view(checkpoint, *e);
}

} // namespace layerwise
