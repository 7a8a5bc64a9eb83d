// Llama family: Llama 2/3/3.1, Mistral, Qwen2 (q/k/v bias), Qwen3 (q/k RMSNorm).
// Module order follows transformers' LlamaModel / Qwen3Model registration.
#include "model/arch.h"

namespace layerwise {
namespace {

using Shape = std::vector<std::int64_t>;
using C = ModelConfig;

Shape embed(const C& c) { return {c.vocab_size, c.hidden_size}; }
Shape hidden(const C& c) { return {c.hidden_size}; }
Shape q_w(const C& c) { return {c.num_heads * c.head_dim, c.hidden_size}; }
Shape q_b(const C& c) { return {c.num_heads * c.head_dim}; }
Shape kv_w(const C& c) { return {c.num_kv_heads * c.head_dim, c.hidden_size}; }
Shape kv_b(const C& c) { return {c.num_kv_heads * c.head_dim}; }
Shape o_w(const C& c) { return {c.hidden_size, c.num_heads * c.head_dim}; }
Shape up_w(const C& c) { return {c.intermediate_size, c.hidden_size}; }
Shape up_b(const C& c) { return {c.intermediate_size}; }
Shape down_w(const C& c) { return {c.hidden_size, c.intermediate_size}; }
Shape head_norm(const C& c) { return {c.head_dim}; }
Shape inv_freq(const C& c) { return {c.rotary_dim() / 2}; }

bool attn_bias(const C& c) { return c.attention_bias; }
bool qkv_bias(const C& c) { return c.attention_bias || c.model_type == "qwen2"; }
bool o_bias(const C& c) { return c.attention_bias && c.model_type != "qwen2"; }
bool mlp_bias(const C& c) { return c.mlp_bias; }
bool qk_norm(const C& c) { return c.model_type == "qwen3"; }

ModuleSpec linear(const std::string& path, ShapeFn w, ShapeFn b, ConditionFn has_bias)
{
    return {path, "Linear", {{"weight", w}, {"bias", b, has_bias}}};
}

} // namespace

ArchSpec llama_family_arch(const std::string& model_type, const std::string& class_prefix)
{
    (void)attn_bias;
    ArchSpec a;
    a.model_type = model_type;
    a.class_prefix = class_prefix;
    a.causal_lm_class = class_prefix + "ForCausalLM";
    a.base_prefix = "model";
    a.layer_class = "{P}DecoderLayer";
    const TensorSpec rms{"weight", hidden};
    a.modules = {
        {"model", "{P}Model", {}},
        {"model.embed_tokens", "Embedding", {{"weight", embed}}},
        {"model.layers", "ModuleList", {}},
        {"model.layers.{i}", "{P}DecoderLayer", {}},
        {"model.layers.{i}.self_attn", "{P}Attention", {}},
        linear("model.layers.{i}.self_attn.q_proj", q_w, q_b, qkv_bias),
        linear("model.layers.{i}.self_attn.k_proj", kv_w, kv_b, qkv_bias),
        linear("model.layers.{i}.self_attn.v_proj", kv_w, kv_b, qkv_bias),
        linear("model.layers.{i}.self_attn.o_proj", o_w, hidden, o_bias),
        {"model.layers.{i}.self_attn.q_norm", "{P}RMSNorm", {{"weight", head_norm}}, qk_norm},
        {"model.layers.{i}.self_attn.k_norm", "{P}RMSNorm", {{"weight", head_norm}}, qk_norm},
        {"model.layers.{i}.mlp", "{P}MLP", {}},
        linear("model.layers.{i}.mlp.gate_proj", up_w, up_b, mlp_bias),
        linear("model.layers.{i}.mlp.up_proj", up_w, up_b, mlp_bias),
        linear("model.layers.{i}.mlp.down_proj", down_w, hidden, mlp_bias),
        {"model.layers.{i}.mlp.act_fn", "{act}", {}},
        {"model.layers.{i}.input_layernorm", "{P}RMSNorm", {rms}},
        {"model.layers.{i}.post_attention_layernorm", "{P}RMSNorm", {rms}},
        {"model.norm", "{P}RMSNorm", {rms}},
        {"model.rotary_emb",
         "{P}RotaryEmbedding",
         {{"inv_freq", inv_freq, nullptr, true, false, DType::f32},
          {"original_inv_freq", inv_freq, nullptr, true, false, DType::f32}}},
        {"lm_head", "Linear", {{"weight", embed}}},
    };
    a.tied = {{"lm_head.weight", "model.embed_tokens.weight"}};
    return a;
}

} // namespace layerwise
