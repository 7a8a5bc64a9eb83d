// GPT-NeoX (Pythia): fused query_key_value, partial rotary embeddings, parallel residual.
#include "model/arch.h"

namespace layerwise {
namespace {

using Shape = std::vector<std::int64_t>;
using C = ModelConfig;

Shape embed(const C& c) { return {c.vocab_size, c.hidden_size}; }
Shape hidden(const C& c) { return {c.hidden_size}; }
Shape qkv_w(const C& c) { return {3 * c.hidden_size, c.hidden_size}; }
Shape qkv_b(const C& c) { return {3 * c.hidden_size}; }
Shape dense_w(const C& c) { return {c.hidden_size, c.hidden_size}; }
Shape up_w(const C& c) { return {c.intermediate_size, c.hidden_size}; }
Shape up_b(const C& c) { return {c.intermediate_size}; }
Shape down_w(const C& c) { return {c.hidden_size, c.intermediate_size}; }
Shape inv_freq(const C& c) { return {c.rotary_dim() / 2}; }
bool attn_bias(const C& c) { return c.attention_bias; }

} // namespace

ArchSpec gpt_neox_arch()
{
    ArchSpec a;
    a.model_type = "gpt_neox";
    a.class_prefix = "GPTNeoX";
    a.causal_lm_class = "GPTNeoXForCausalLM";
    a.base_prefix = "gpt_neox";
    a.layer_class = "GPTNeoXLayer";
    const std::vector<TensorSpec> norm{{"weight", hidden}, {"bias", hidden}};
    a.modules = {
        {"gpt_neox", "GPTNeoXModel", {}},
        {"gpt_neox.embed_in", "Embedding", {{"weight", embed}}},
        {"gpt_neox.emb_dropout", "Dropout", {}},
        {"gpt_neox.layers", "ModuleList", {}},
        {"gpt_neox.layers.{i}", "GPTNeoXLayer", {}},
        {"gpt_neox.layers.{i}.input_layernorm", "LayerNorm", norm},
        {"gpt_neox.layers.{i}.post_attention_layernorm", "LayerNorm", norm},
        {"gpt_neox.layers.{i}.post_attention_dropout", "Dropout", {}},
        {"gpt_neox.layers.{i}.post_mlp_dropout", "Dropout", {}},
        {"gpt_neox.layers.{i}.attention", "GPTNeoXAttention", {}},
        {"gpt_neox.layers.{i}.attention.query_key_value", "Linear", {{"weight", qkv_w}, {"bias", qkv_b, attn_bias}}},
        {"gpt_neox.layers.{i}.attention.dense", "Linear", {{"weight", dense_w}, {"bias", hidden, attn_bias}}},
        {"gpt_neox.layers.{i}.mlp", "GPTNeoXMLP", {}},
        {"gpt_neox.layers.{i}.mlp.dense_h_to_4h", "Linear", {{"weight", up_w}, {"bias", up_b}}},
        {"gpt_neox.layers.{i}.mlp.dense_4h_to_h", "Linear", {{"weight", down_w}, {"bias", hidden}}},
        {"gpt_neox.layers.{i}.mlp.act", "{act}", {}},
        {"gpt_neox.final_layer_norm", "LayerNorm", norm},
        {"gpt_neox.rotary_emb",
         "GPTNeoXRotaryEmbedding",
         {{"inv_freq", inv_freq, nullptr, true, false, DType::f32},
          {"original_inv_freq", inv_freq, nullptr, true, false, DType::f32}}},
        {"lm_head", "Linear", {{"weight", embed}}},
    };
    a.tied = {{"lm_head.weight", "gpt_neox.embed_in.weight"}};
    a.renamed = {{"embed_out.", "lm_head."}};
    return a;
}

} // namespace layerwise
