#pragma once
// An architecture the engine's table does not list, registered by a test: all it takes to add
// one is its file (test_architecture.cpp) and a registration.
#include <string>

namespace layerwise::test {

// model_type "test_qknorm_llama": the Llama layout with one quirk, an RMSNorm over each head of q
// and k before the rotation (the computation of transformers' Qwen3, under another name and
// class prefix, with no GGUF form). Registers it once; returns its model_type.
std::string register_test_architecture();

} // namespace layerwise::test
