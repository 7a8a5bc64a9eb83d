#pragma once
// The llama family's variants (archs/llama.cpp), and the llama pieces other architectures built
// on its layout share. Each architecture file defines one function returning all that
// architecture is (model/arch.h); the table (table.cpp) declares and lists them.
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
    bool sliding_window = false;    // the config's sliding_window applies to every layer (Mistral)
};

Architecture llama_family_architecture(const LlamaVariant& variant); // archs/llama.cpp

// The llama layout's config keys (hidden_size, intermediate_size, heads, rms_norm_eps, biases,
// sliding_window...), its token embedding (model.embed_tokens) and its output (model.norm, then
// lm_head).
void llama_read_config(const ConfigReader& reader, ModelConfig& config);
// The rotary embedding module of transformers' models: its inv_freq and original_inv_freq
// buffers (float32, not saved), one value per rotated dimension pair.
ModuleSpec rotary_embedding_module(const std::string& path, const std::string& class_name);
// The llama layout's attention modules of a decoder layer (self_attn and its q/k/v/o, q/k norms
// when `qk_norm`), its output modules (model.norm, the rotary embedding, lm_head) and its GGUF names.
// Which layers attend over a local window: config.json's layer_types ("sliding_attention" /
// "full_attention", one per layer), else every even layer (Gemma 2's and gpt-oss's default).
void read_layer_types(const ConfigReader& reader, ModelConfig& config);
std::vector<ModuleSpec> llama_attention_specs(ConditionFn qkv_bias, ConditionFn o_bias, bool qk_norm);
std::vector<ModuleSpec> llama_output_specs();
GgufNaming llama_gguf_names(const LlamaVariant& variant);
at::Tensor llama_embed(const ForwardStep& step, const at::Tensor& ids);
// The input norm and attention of a llama-layout decoder layer: the residual stream after it.
at::Tensor llama_attention(const ForwardStep& step, std::size_t layer, const LayerWeights& weights, const at::Tensor& hidden,
                           bool qk_norm);
at::Tensor llama_head(const ForwardStep& step, const at::Tensor& hidden_states);

} // namespace layerwise
