#include "checkpoint/tensor_view.h"

#include "checkpoint/checkpoint.h"
#include "core/error.h"

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

at::Tensor tensor_view(const Checkpoint& checkpoint, const TensorEntry& entry)
{
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
