#pragma once
// The llama family's variants (archs/llama.cpp). Each architecture file defines one function
// returning all that architecture is (model/arch.h); the table (table.cpp) declares and lists them.
#include "model/arch.h"

namespace layerwise {

// A member of the llama family: the Llama layout with the variant's quirks.
struct LlamaVariant {
    const char* model_type;         // "qwen2"
    const char* class_prefix;       // "Qwen2"
    const char* gguf_arch = nullptr; // general.architecture of its GGUF files; nullptr: none of its own
    bool rope_permuted = false;     // llama.cpp's converter reordered q/k rows (llama only)
    bool qkv_bias = false;          // Qwen2
    bool qk_norm = false;           // Qwen3
};

Architecture llama_family_architecture(const LlamaVariant& variant); // archs/llama.cpp

} // namespace layerwise
