// The table of built-in architectures: adding one is its file in engine/archs/ (the build finds
// it) and its declaration and line here. Ordered by model_type (the order error messages list
// them in).
#include "archs/architectures.h"

namespace layerwise {

Architecture gemma2_architecture();   // archs/gemma.cpp
Architecture gemma3_text_architecture(); // archs/gemma.cpp
Architecture gpt2_architecture();     // archs/gpt2.cpp
Architecture gpt_oss_architecture();  // archs/gpt_oss.cpp
Architecture gpt_neox_architecture(); // archs/gpt_neox.cpp
Architecture mixtral_architecture();  // archs/moe.cpp
Architecture phi3_architecture();     // archs/phi3.cpp
Architecture qwen2_moe_architecture(); // archs/moe.cpp
Architecture qwen3_moe_architecture(); // archs/moe.cpp

const std::vector<Architecture>& builtin_architectures()
{
    static const std::vector<Architecture> table = {
        gemma2_architecture(),
        gemma3_text_architecture(),
        gpt2_architecture(),
        gpt_neox_architecture(),
        gpt_oss_architecture(),
        llama_family_architecture({"llama", "Llama", "llama", /*rope_permuted=*/true}),
        llama_family_architecture({"mistral", "Mistral", nullptr, false, false, false, /*sliding_window=*/true}),
        mixtral_architecture(),
        phi3_architecture(),
        llama_family_architecture({"qwen2", "Qwen2", "qwen2", false, /*qkv_bias=*/true}),
        qwen2_moe_architecture(),
        llama_family_architecture({"qwen3", "Qwen3", "qwen3", false, false, /*qk_norm=*/true}),
        qwen3_moe_architecture(),
    };
    return table;
}

} // namespace layerwise
