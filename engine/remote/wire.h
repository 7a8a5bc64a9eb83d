#pragma once
// Tensors on the pipeline link: a message's header says shape and dtype, its payload holds the
// contiguous bytes (float32, bfloat16 or float16 hidden states).
#include "remote/stage_link.h"

#include <ATen/core/Tensor.h>

namespace layerwise::remote {

Message tensor_to_wire(const at::Tensor& t);
at::Tensor tensor_from_wire(const Message& m); // FormatError when header and payload disagree

} // namespace layerwise::remote
