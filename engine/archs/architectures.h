#pragma once
// The architecture files of engine/archs/: one function per file (a family may have variants),
// each returning all that architecture is (model/arch.h). The table (table.cpp) lists them.
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
Architecture gpt2_architecture();                                    // archs/gpt2.cpp
Architecture gpt_neox_architecture();                                // archs/gpt_neox.cpp

} // namespace layerwise
