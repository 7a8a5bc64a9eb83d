#pragma once
// Zero-copy tensors over a checkpoint's read-only mapping. The only checkpoint file
// that includes LibTorch. The tensor must not be written to (the pages are read-only)
// and must not outlive the Checkpoint. A GGUF tensor that is block-quantized or whose rows
// llama.cpp reordered (TensorEntry::is_view() false) comes back decoded into a new tensor.
#include <ATen/core/Tensor.h>

namespace layerwise {

class Checkpoint;
struct TensorEntry;
enum class DType : std::uint8_t;

c10::ScalarType scalar_type(DType dtype); // UnsupportedError for int4
at::Tensor tensor_view(const Checkpoint& checkpoint, const TensorEntry& entry);
at::Tensor tensor_view(const Checkpoint& checkpoint, const std::string& name); // FormatError if absent
// A block-quantized GGUF-encoded 2-D tensor's blocks as uint8 [rows, row bytes]: a zero-copy view
// of the mapping, or, for Hugging Face's MXFP4 (codes and scales apart), ggml's MXFP4 blocks
// joined into a new tensor. `joined` says which.
at::Tensor stored_blocks(const Checkpoint& checkpoint, const TensorEntry& entry, bool* joined = nullptr);

} // namespace layerwise
