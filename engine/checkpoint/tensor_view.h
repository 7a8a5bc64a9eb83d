#pragma once
// Zero-copy tensors over a checkpoint's read-only mapping. The only checkpoint file
// that includes LibTorch. The tensor must not be written to (the pages are read-only)
// and must not outlive the Checkpoint.
#include <ATen/core/Tensor.h>

namespace layerwise {

class Checkpoint;
struct TensorEntry;
enum class DType : std::uint8_t;

c10::ScalarType scalar_type(DType dtype); // UnsupportedError for int4
at::Tensor tensor_view(const Checkpoint& checkpoint, const TensorEntry& entry);
at::Tensor tensor_view(const Checkpoint& checkpoint, const std::string& name); // FormatError if absent

} // namespace layerwise
