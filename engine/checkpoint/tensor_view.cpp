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

// A GGUF tensor that is block-quantized or whose q/k rows llama.cpp reordered: decoded into a
// new tensor (float32 for quantized data, else its own dtype) in Hugging Face's row order.
at::Tensor decoded_gguf_tensor(const Checkpoint& checkpoint, const TensorEntry& entry)
{
    const MappedFile& file = *checkpoint.files().at(entry.file);
    const auto* bytes = reinterpret_cast<const std::uint8_t*>(file.data(entry.offset, entry.size));
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

at::Tensor tensor_view(const Checkpoint& checkpoint, const std::string& name)
{
    const TensorEntry* e = checkpoint.find(name);
    if (!e)
        throw FormatError(checkpoint.folder().string() + ": the checkpoint has no tensor '" + name + "'");
    return tensor_view(checkpoint, *e);
}

} // namespace layerwise
