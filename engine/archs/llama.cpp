// The llama family: Llama 2/3/3.1, Mistral, Qwen2 (q/k/v bias, no o bias), Qwen3 (q/k RMSNorm).
// Module order follows transformers' LlamaModel / Qwen3Model registration; the forward computes
// what modeling_llama / modeling_qwen3 compute.
#include "archs/architectures.h"

#include "model/config_reader.h"
#ifndef LAYERWISE_ARCH_TABLES_ONLY
#include "runtime/runner.h"

#include <ATen/ATen.h>
#include <cmath>
#endif

namespace layerwise {
namespace {
namespace llama_arch {

using Shape = std::vector<std::int64_t>;
using C = ModelConfig;

Shape embed_shape(const C& c) { return {c.vocab_size, c.hidden_size}; }
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

bool always(const C&) { return true; }
bool never(const C&) { return false; }
bool attn_bias(const C& c) { return c.attention_bias; }
bool mlp_bias(const C& c) { return c.mlp_bias; }

ModuleSpec linear(const std::string& path, ShapeFn w, ShapeFn b, ConditionFn has_bias)
{
    return {path, "Linear", {{"weight", w}, {"bias", b, has_bias}}};
}

std::vector<ModuleSpec> attention_specs(ConditionFn qkv_bias, ConditionFn o_bias, bool qk_norm)
{
    return {
        {"model.layers.{i}.self_attn", "{P}Attention", {}},
        linear("model.layers.{i}.self_attn.q_proj", q_w, q_b, qkv_bias),
        linear("model.layers.{i}.self_attn.k_proj", kv_w, kv_b, qkv_bias),
        linear("model.layers.{i}.self_attn.v_proj", kv_w, kv_b, qkv_bias),
        linear("model.layers.{i}.self_attn.o_proj", o_w, hidden, o_bias),
        {"model.layers.{i}.self_attn.q_norm", "{P}RMSNorm", {{"weight", head_norm}}, qk_norm ? always : never},
        {"model.layers.{i}.self_attn.k_norm", "{P}RMSNorm", {{"weight", head_norm}}, qk_norm ? always : never},
    };
}

std::vector<ModuleSpec> output_specs()
{
    return {
        {"model.norm", "{P}RMSNorm", {{"weight", hidden}}},
        rotary_embedding_module("model.rotary_emb", "{P}RotaryEmbedding"),
        {"lm_head", "Linear", {{"weight", embed_shape}}},
    };
}

ArchSpec spec(const LlamaVariant& v)
{
    ArchSpec a;
    a.model_type = v.model_type;
    a.class_prefix = v.class_prefix;
    a.causal_lm_class = std::string(v.class_prefix) + "ForCausalLM";
    a.base_prefix = "model";
    a.layer_class = "{P}DecoderLayer";
    const ConditionFn qkv_bias = v.qkv_bias ? always : attn_bias;
    const ConditionFn o_bias = v.qkv_bias ? never : attn_bias;
    const TensorSpec rms{"weight", hidden};
    a.modules = {
        {"model", "{P}Model", {}},
        {"model.embed_tokens", "Embedding", {{"weight", embed_shape}}},
        {"model.layers", "ModuleList", {}},
        {"model.layers.{i}", "{P}DecoderLayer", {}},
    };
    for (ModuleSpec& m : attention_specs(qkv_bias, o_bias, v.qk_norm))
        a.modules.push_back(std::move(m));
    const std::vector<ModuleSpec> rest = {
        {"model.layers.{i}.mlp", "{P}MLP", {}},
        linear("model.layers.{i}.mlp.gate_proj", up_w, up_b, mlp_bias),
        linear("model.layers.{i}.mlp.up_proj", up_w, up_b, mlp_bias),
        linear("model.layers.{i}.mlp.down_proj", down_w, hidden, mlp_bias),
        {"model.layers.{i}.mlp.act_fn", "{act}", {}},
        {"model.layers.{i}.input_layernorm", "{P}RMSNorm", {rms}},
        {"model.layers.{i}.post_attention_layernorm", "{P}RMSNorm", {rms}},
    };
    a.modules.insert(a.modules.end(), rest.begin(), rest.end());
    for (ModuleSpec& m : output_specs())
        a.modules.push_back(std::move(m));
    a.tied = {{"lm_head.weight", "model.embed_tokens.weight"}};
    return a;
}

void read_config(const ConfigReader& r, ModelConfig& c)
{
    c.hidden_size = r.positive("hidden_size");
    c.intermediate_size = r.positive("intermediate_size");
    c.num_layers = r.positive("num_hidden_layers");
    c.num_heads = r.positive("num_attention_heads");
    c.num_kv_heads = r.positive_or("num_key_value_heads", c.num_heads);
    c.vocab_size = r.positive("vocab_size");
    c.max_position_embeddings = r.positive_or("max_position_embeddings", 2048);
    c.norm_eps = r.number_or("rms_norm_eps", 1e-6);
    c.tie_word_embeddings = r.flag_or("tie_word_embeddings", false);
    c.attention_bias = r.flag_or("attention_bias", false);
    c.mlp_bias = r.flag_or("mlp_bias", false);
    c.hidden_act = r.string_or("hidden_act", "silu");
    if (r.has("sliding_window") && r.raw()["sliding_window"].is_number_integer())
        c.sliding_window = r.raw()["sliding_window"].get<std::int64_t>();
}

// Mistral: every layer attends over the last sliding_window positions (transformers' mask).
void read_config_windowed(const ConfigReader& r, ModelConfig& c)
{
    read_config(r, c);
    if (c.sliding_window) {
        c.local_window = *c.sliding_window;
        c.local_layers.assign(static_cast<std::size_t>(c.num_layers), true);
    }
}

#ifndef LAYERWISE_ARCH_TABLES_ONLY
at::Tensor embed(const ForwardStep& step, const at::Tensor& ids)
{
    return global_embedding(step.model, "model.embed_tokens", ids).to(step.exec);
}

// The attention half of a decoder layer: the residual stream after it, on the layer's device.
at::Tensor attention_half(const ForwardStep& step, std::size_t index, const LayerWeights& w, const at::Tensor& input,
                          bool qk_norm)
{
    const ModelConfig& c = step.config();
    const std::int64_t b = step.batch, n = step.tokens;
    const at::Device dev = w["input_layernorm.weight"].device();
    at::Tensor h = input.device() == dev ? input : input.to(dev);
    at::Tensor x = rms_norm(h, w["input_layernorm.weight"], c.norm_eps);
    std::vector<at::Tensor> qkv = step.linears(w, {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"}, x);
    at::Tensor q = qkv[0].view({b, n, c.num_heads, c.head_dim});
    at::Tensor k = qkv[1].view({b, n, c.num_kv_heads, c.head_dim});
    at::Tensor v = qkv[2].view({b, n, c.num_kv_heads, c.head_dim}).transpose(1, 2);
    if (qk_norm) {
        q = rms_norm(q, w["self_attn.q_norm.weight"], c.norm_eps);
        k = rms_norm(k, w["self_attn.k_norm.weight"], c.norm_eps);
    }
    const auto rotate = w.rope_pairs() ? apply_rotary_pairs : apply_rotary;
    q = rotate(q.transpose(1, 2), step.cos.to(dev), step.sin.to(dev));
    k = rotate(k.transpose(1, 2), step.cos.to(dev), step.sin.to(dev));
    AttentionOptions o;
    o.scale = 1.0 / std::sqrt(static_cast<double>(c.head_dim));
    o.window = index < c.local_layers.size() && c.local_layers[index] ? c.local_window : 0;
    if (const at::Tensor* sinks = w.find("self_attn.sinks")) // gpt-oss
        o.sinks = *sinks;
    const at::Tensor attn = step.attend(index, q, k, v, o).transpose(1, 2).reshape({b, n, c.num_heads * c.head_dim});
    return h + step.linear(w, "self_attn.o_proj", attn);
}

// One decoder layer; `qk_norm` (Qwen3) is the only difference inside the family.
template <bool qk_norm>
at::Tensor layer(const ForwardStep& step, std::size_t index, const LayerWeights& w, const at::Tensor& input)
{
    const at::Tensor h = attention_half(step, index, w, input, qk_norm);
    const at::Tensor x = rms_norm(h, w["post_attention_layernorm.weight"], step.config().norm_eps);
    const ModelConfig& c = step.config();
    const std::vector<at::Tensor> gate_up = step.linears(w, {"mlp.gate_proj", "mlp.up_proj"}, x);
    return h + step.linear(w, "mlp.down_proj", activation(gate_up[0], c.hidden_act) * gate_up[1]);
}

at::Tensor head(const ForwardStep& step, const at::Tensor& hidden_states)
{
    const at::Tensor& norm = step.model.global("model.norm.weight");
    const at::Tensor h = rms_norm(hidden_states.to(norm.device()), norm, step.config().norm_eps);
    return global_linear(step.model, "lm_head", h);
}
#endif

GgufNaming gguf_names(const LlamaVariant& v)
{
    GgufNaming g;
    if (!v.gguf_arch)
        return g;
    g.arch = v.gguf_arch;
    g.rope_permuted = v.rope_permuted;
    g.blocks = {
        {"attn_norm", "input_layernorm"},       {"ffn_norm", "post_attention_layernorm"},
        {"attn_q", "self_attn.q_proj"},         {"attn_k", "self_attn.k_proj"},
        {"attn_v", "self_attn.v_proj"},         {"attn_output", "self_attn.o_proj"},
        {"attn_q_norm", "self_attn.q_norm"},    {"attn_k_norm", "self_attn.k_norm"},
        {"ffn_gate", "mlp.gate_proj"},          {"ffn_up", "mlp.up_proj"},
        {"ffn_down", "mlp.down_proj"},
    };
    g.globals = {{"token_embd", "model.embed_tokens"}, {"output_norm", "model.norm"}, {"output", "lm_head"}};
    return g;
}

} // namespace llama_arch
} // namespace

void llama_read_config(const ConfigReader& reader, ModelConfig& config) { llama_arch::read_config(reader, config); }

void read_layer_types(const ConfigReader& r, ModelConfig& c)
{
    c.local_layers.assign(static_cast<std::size_t>(c.num_layers), false);
    const nlohmann::json& raw = r.raw();
    if (!raw.contains("layer_types") || !raw["layer_types"].is_array()) {
        for (std::size_t i = 0; i < c.local_layers.size(); i += 2)
            c.local_layers[i] = true;
        return;
    }
    if (raw["layer_types"].size() != c.local_layers.size())
        throw FormatError(c.described_by + ": layer_types lists " + std::to_string(raw["layer_types"].size()) +
                          " layers but num_hidden_layers is " + std::to_string(c.num_layers));
    for (std::size_t i = 0; i < c.local_layers.size(); ++i)
        c.local_layers[i] = raw["layer_types"][i] == "sliding_attention";
}
std::vector<ModuleSpec> llama_attention_specs(ConditionFn qkv_bias, ConditionFn o_bias, bool qk_norm)
{
    return llama_arch::attention_specs(qkv_bias, o_bias, qk_norm);
}
std::vector<ModuleSpec> llama_output_specs() { return llama_arch::output_specs(); }
GgufNaming llama_gguf_names(const LlamaVariant& variant) { return llama_arch::gguf_names(variant); }

ModuleSpec rotary_embedding_module(const std::string& path, const std::string& class_name)
{
    return {path,
            class_name,
            {{"inv_freq", llama_arch::inv_freq, nullptr, true, false, DType::f32},
             {"original_inv_freq", llama_arch::inv_freq, nullptr, true, false, DType::f32}}};
}
#ifndef LAYERWISE_ARCH_TABLES_ONLY
at::Tensor llama_embed(const ForwardStep& step, const at::Tensor& ids) { return llama_arch::embed(step, ids); }
at::Tensor llama_head(const ForwardStep& step, const at::Tensor& hidden_states) { return llama_arch::head(step, hidden_states); }
at::Tensor llama_attention(const ForwardStep& step, std::size_t layer, const LayerWeights& weights, const at::Tensor& hidden,
                           bool qk_norm)
{
    return llama_arch::attention_half(step, layer, weights, hidden, qk_norm);
}
#endif

Architecture llama_family_architecture(const LlamaVariant& variant)
{
    using namespace llama_arch;
    Architecture a;
    a.spec = spec(variant);
    a.read_config = variant.sliding_window ? read_config_windowed : read_config;
    a.quirks.rotary = true;
    a.quirks.qkv_bias = variant.qkv_bias;
    a.quirks.qk_norm = variant.qk_norm;
    a.quirks.fused_decode = true;
    a.gguf = gguf_names(variant);
    a.layers_path = "model.layers";
    // AutoGPTQ's LlamaGPTQForCausalLM.inside_layer_modules (Mistral and Qwen2 list the same).
    a.gptq_sequential = {
        {"self_attn.k_proj", "self_attn.v_proj", "self_attn.q_proj"},
        {"self_attn.o_proj"},
        {"mlp.up_proj", "mlp.gate_proj"},
        {"mlp.down_proj"},
    };
#ifndef LAYERWISE_ARCH_TABLES_ONLY
    a.embed = embed;
    a.layer = variant.qk_norm ? layer<true> : layer<false>;
    a.head = head;
#endif
    return a;
}

} // namespace layerwise
