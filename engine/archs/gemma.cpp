// Gemma 2 (Gemma2ForCausalLM): the embedding scaled by sqrt(hidden_size), RMSNorms that scale by
// (1 + weight) in float32, sandwich norms around attention and MLP, attention scaled by
// query_pre_attn_scalar with its scores soft-capped, every other layer attending over a local
// window, and soft-capped output logits. transformers' modeling_gemma2.
// Gemma 3's text model (Gemma3ForCausalLM, model_type gemma3_text) adds RMSNorms over each head of
// q and k, and rotates its local layers with their own base (rope_local_base_freq, 10000) while
// the global ones use rope_theta and its scaling; five local layers to one global, no soft caps.
// transformers' modeling_gemma3. Both read from llama.cpp's GGUF too ("gemma2", "gemma3").
#include "archs/architectures.h"

#include "core/error.h"
#include "model/config_reader.h"
#ifndef LAYERWISE_ARCH_TABLES_ONLY
#include "runtime/runner.h"

#include <ATen/ATen.h>
#include <cmath>
#endif

#include <nlohmann/json.hpp>

namespace layerwise {
namespace {
namespace gemma_arch {

using Shape = std::vector<std::int64_t>;
using C = ModelConfig;

Shape embed_shape(const C& c) { return {c.vocab_size, c.hidden_size}; }
Shape scalar(const C&) { return {}; }
Shape hidden(const C& c) { return {c.hidden_size}; }
Shape q_w(const C& c) { return {c.num_heads * c.head_dim, c.hidden_size}; }
Shape kv_w(const C& c) { return {c.num_kv_heads * c.head_dim, c.hidden_size}; }
Shape o_w(const C& c) { return {c.hidden_size, c.num_heads * c.head_dim}; }
Shape up_w(const C& c) { return {c.intermediate_size, c.hidden_size}; }
Shape down_w(const C& c) { return {c.hidden_size, c.intermediate_size}; }

Shape head_norm(const C& c) { return {c.head_dim}; }
Shape inv_freq(const C& c) { return {c.rotary_dim() / 2}; }
bool always(const C&) { return true; }
bool never(const C&) { return false; }

ArchSpec spec(bool gemma3)
{
    ArchSpec a;
    a.model_type = gemma3 ? "gemma3_text" : "gemma2";
    a.class_prefix = gemma3 ? "Gemma3" : "Gemma2";
    a.causal_lm_class = a.class_prefix + "ForCausalLM";
    a.base_prefix = "model";
    a.layer_class = "{P}DecoderLayer";
    const TensorSpec rms{"weight", hidden};
    const auto linear = [](const std::string& path, ShapeFn w) { return ModuleSpec{path, "Linear", {{"weight", w}}}; };
    a.modules = {
        {"model", gemma3 ? "{P}TextModel" : "{P}Model", {}},
        {"model.embed_tokens", "{P}TextScaledWordEmbedding", {{"weight", embed_shape}, {"embed_scale", scalar, nullptr, true, false}}},
        {"model.layers", "ModuleList", {}},
        {"model.layers.{i}", "{P}DecoderLayer", {}},
        {"model.layers.{i}.self_attn", "{P}Attention", {}},
        linear("model.layers.{i}.self_attn.q_proj", q_w),
        linear("model.layers.{i}.self_attn.k_proj", kv_w),
        linear("model.layers.{i}.self_attn.v_proj", kv_w),
        linear("model.layers.{i}.self_attn.o_proj", o_w),
        {"model.layers.{i}.self_attn.q_norm", "{P}RMSNorm", {{"weight", head_norm}}, gemma3 ? always : never},
        {"model.layers.{i}.self_attn.k_norm", "{P}RMSNorm", {{"weight", head_norm}}, gemma3 ? always : never},
        {"model.layers.{i}.mlp", "{P}MLP", {}},
        linear("model.layers.{i}.mlp.gate_proj", up_w),
        linear("model.layers.{i}.mlp.up_proj", up_w),
        linear("model.layers.{i}.mlp.down_proj", down_w),
        {"model.layers.{i}.mlp.act_fn", "{act}", {}},
        {"model.layers.{i}.input_layernorm", "{P}RMSNorm", {rms}},
        {"model.layers.{i}.post_attention_layernorm", "{P}RMSNorm", {rms}},
        {"model.layers.{i}.pre_feedforward_layernorm", "{P}RMSNorm", {rms}},
        {"model.layers.{i}.post_feedforward_layernorm", "{P}RMSNorm", {rms}},
        {"model.norm", "{P}RMSNorm", {rms}},
        gemma3 ? ModuleSpec{"model.rotary_emb",
                            "{P}RotaryEmbedding",
                            {{"full_attention_inv_freq", inv_freq, nullptr, true, false, DType::f32},
                             {"full_attention_original_inv_freq", inv_freq, nullptr, true, false, DType::f32},
                             {"sliding_attention_inv_freq", inv_freq, nullptr, true, false, DType::f32},
                             {"sliding_attention_original_inv_freq", inv_freq, nullptr, true, false, DType::f32}}}
               : rotary_embedding_module("model.rotary_emb", "{P}RotaryEmbedding"),
        {"lm_head", "Linear", {{"weight", embed_shape}}},
    };
    a.tied = {{"lm_head.weight", "model.embed_tokens.weight"}};
    return a;
}

void read_config(const ConfigReader& r, ModelConfig& c)
{
    llama_read_config(r, c);
    c.tie_word_embeddings = r.flag_or("tie_word_embeddings", true);
    c.hidden_act = r.string_or("hidden_activation", r.string_or("hidden_act", "gelu_pytorch_tanh"));
    c.sliding_window.reset(); // local on some layers only: local_window below
    c.local_window = r.positive_or("sliding_window", 4096);
    c.attn_logit_softcapping = r.has("attn_logit_softcapping") && r.raw()["attn_logit_softcapping"].is_number()
                                   ? r.raw()["attn_logit_softcapping"].get<double>()
                                   : 0.0;
    c.final_logit_softcapping = r.has("final_logit_softcapping") && r.raw()["final_logit_softcapping"].is_number()
                                    ? r.raw()["final_logit_softcapping"].get<double>()
                                    : 0.0;
    c.query_pre_attn_scalar = r.number_or("query_pre_attn_scalar", 256.0);
    read_layer_types(r, c); // Gemma 2 without layer_types: even layers local
}

void read_config3(const ConfigReader& r, ModelConfig& c)
{
    read_config(r, c);
    // Five local layers to one global (transformers' default layer_types for Gemma 3).
    const nlohmann::json& raw = r.raw();
    if (!raw.contains("layer_types") || !raw["layer_types"].is_array())
        for (std::size_t i = 0; i < c.local_layers.size(); ++i)
            c.local_layers[i] = (i + 1) % static_cast<std::size_t>(r.positive_or("sliding_window_pattern", 6)) != 0;
    // The local layers' rotary base: rope_parameters' sliding_attention (transformers 5), else
    // rope_local_base_freq (4.x).
    c.local_rope_theta = r.number_or("rope_local_base_freq", 10000.0);
    if (raw.contains("rope_parameters") && raw["rope_parameters"].is_object() && raw["rope_parameters"].contains("sliding_attention")) {
        const ConfigReader local(raw["rope_parameters"]["sliding_attention"], c.described_by + " rope_parameters.sliding_attention");
        if (local.string_or("rope_type", "default") != "default")
            throw UnsupportedError(c.described_by + ": Gemma 3's local layers rotate with a '" + local.string_or("rope_type", "") +
                                   "' rope; only the default one is supported there");
        c.local_rope_theta = local.number_or("rope_theta", c.local_rope_theta);
    }
}

// llama.cpp's names: the sandwich norms are post_attention_norm, ffn_norm (before the MLP) and
// post_ffw_norm; the head is tied to the embedding. Its converter adds 1 to every norm weight,
// Gemma 3's q/k norms (attn_q_norm, attn_k_norm) included. llama.cpp's Gemma 2
// (src/models/gemma2.cpp): swa pattern 2, a 4096-position window unless the file gives one, the
// 27B (46 layers) scaling queries by hidden / heads. Its Gemma 3 (src/models/gemma3.cpp): swa
// pattern 6, no local layer at all unless the file gives a window, the local layers rotating
// with rope.freq_base_swa (else 10000) and no scaling while the global ones use rope.freq_base
// and rope.scaling, no attention soft cap, the 27B (62 layers) scaling by hidden / heads.
GgufNaming gguf_names(bool gemma3)
{
    GgufNaming g;
    g.arch = gemma3 ? "gemma3" : "gemma2";
    g.blocks = {
        {"attn_norm", "input_layernorm"},          {"attn_q", "self_attn.q_proj"},
        {"attn_k", "self_attn.k_proj"},            {"attn_v", "self_attn.v_proj"},
        {"attn_output", "self_attn.o_proj"},       {"post_attention_norm", "post_attention_layernorm"},
        {"ffn_norm", "pre_feedforward_layernorm"}, {"ffn_gate", "mlp.gate_proj"},
        {"ffn_up", "mlp.up_proj"},                 {"ffn_down", "mlp.down_proj"},
        {"post_ffw_norm", "post_feedforward_layernorm"},
    };
    if (gemma3)
        g.blocks.insert(g.blocks.end(), {{"attn_q_norm", "self_attn.q_norm"}, {"attn_k_norm", "self_attn.k_norm"}});
    g.globals = {{"token_embd", "model.embed_tokens"}, {"output_norm", "model.norm"}, {"output", "lm_head"}};
    g.hidden_act = "gelu_pytorch_tanh";
    g.local_every = gemma3 ? 6 : 2;
    g.default_window = gemma3 ? 0 : 4096;
    g.local_rope = gemma3;
    g.norms_hold_one = true;
    g.gemma_query_scale = true;
    g.gemma_hidden_scale_layers = gemma3 ? 62 : 46;
    return g;
}

#ifndef LAYERWISE_ARCH_TABLES_ONLY
// Gemma's RMSNorm: normalised and scaled by (1 + weight) in float32, then back to the input dtype
// (llama.cpp's GGUF stores 1 + weight: norms_hold_one).
at::Tensor norm(const ModelConfig& c, const at::Tensor& x, const at::Tensor& weight)
{
    const at::Tensor h = x.to(at::kFloat);
    const at::Tensor scale = c.norms_hold_one ? weight.to(at::kFloat) : 1.0 + weight.to(at::kFloat);
    return (h * at::rsqrt(h.pow(2).mean(-1, /*keepdim=*/true) + c.norm_eps) * scale).to(x.scalar_type());
}

at::Tensor embed(const ForwardStep& step, const at::Tensor& ids)
{
    const at::Tensor h = global_embedding(step.model, "model.embed_tokens", ids).to(step.exec);
    // sqrt(hidden_size) rounded to the hidden states' dtype, as the embed_scale buffer is.
    const at::Tensor scale = at::scalar_tensor(std::sqrt(static_cast<double>(step.config().hidden_size)), at::kFloat).to(h.scalar_type());
    return h * scale.to(h.device());
}

// Gemma 3's local layers: cos and sin of the default rope with the local base, at the step's
// positions, shaped as the step's own ([tokens, dim], or [rows, 1, 1, dim] with batched rows).
std::pair<at::Tensor, at::Tensor> local_rotary(const ForwardStep& step, at::ScalarType dtype, at::Device dev)
{
    ModelConfig local = step.config();
    local.rope = RopeConfig{};
    local.rope.theta = step.config().local_rope_theta;
    const at::Tensor inv = rope_inv_freq(local);
    const at::Tensor positions = step.positions().reshape({-1}).to(at::kCPU);
    at::Tensor cos = rotary_cos_sin_at(inv, positions, dtype, false), sin = rotary_cos_sin_at(inv, positions, dtype, true);
    if (!step.rows.empty()) {
        cos = cos.view({step.batch, 1, 1, -1});
        sin = sin.view({step.batch, 1, 1, -1});
    }
    return {cos.to(dev), sin.to(dev)};
}

template <bool gemma3>
at::Tensor layer(const ForwardStep& step, std::size_t index, const LayerWeights& w, const at::Tensor& input)
{
    const ModelConfig& c = step.config();
    const std::int64_t b = step.batch, n = step.tokens;
    const at::Device dev = w["input_layernorm.weight"].device();
    at::Tensor h = input.device() == dev ? input : input.to(dev);
    at::Tensor x = norm(c, h, w["input_layernorm.weight"]);
    const std::vector<at::Tensor> qkv = step.linears(w, {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"}, x);
    const bool local = index < c.local_layers.size() && c.local_layers[index];
    at::Tensor cos = step.cos.to(dev), sin = step.sin.to(dev);
    at::Tensor q = qkv[0].view({b, n, c.num_heads, c.head_dim});
    at::Tensor k = qkv[1].view({b, n, c.num_kv_heads, c.head_dim});
    if (gemma3) {
        q = norm(c, q, w["self_attn.q_norm.weight"]);
        k = norm(c, k, w["self_attn.k_norm.weight"]);
        if (local)
            std::tie(cos, sin) = local_rotary(step, cos.scalar_type(), dev);
    }
    q = apply_rotary(q.transpose(1, 2), cos, sin);
    k = apply_rotary(k.transpose(1, 2), cos, sin);
    const at::Tensor v = qkv[2].view({b, n, c.num_kv_heads, c.head_dim}).transpose(1, 2);
    AttentionOptions o;
    o.scale = 1.0 / std::sqrt(c.query_pre_attn_scalar);
    o.softcap = c.attn_logit_softcapping;
    o.window = local ? c.local_window : 0;
    const at::Tensor attn = step.attend(index, q, k, v, o).transpose(1, 2).reshape({b, n, c.num_heads * c.head_dim});
    h = h + norm(c, step.linear(w, "self_attn.o_proj", attn), w["post_attention_layernorm.weight"]);
    x = norm(c, h, w["pre_feedforward_layernorm.weight"]);
    const std::vector<at::Tensor> gate_up = step.linears(w, {"mlp.gate_proj", "mlp.up_proj"}, x);
    const at::Tensor mlp = step.linear(w, "mlp.down_proj", activation(gate_up[0], c.hidden_act) * gate_up[1]);
    return h + norm(c, mlp, w["post_feedforward_layernorm.weight"]);
}

at::Tensor head(const ForwardStep& step, const at::Tensor& hidden_states)
{
    const ModelConfig& c = step.config();
    const at::Tensor& weight = step.model.global("model.norm.weight");
    const at::Tensor logits = global_linear(step.model, "lm_head", norm(c, hidden_states.to(weight.device()), weight));
    if (c.final_logit_softcapping == 0.0)
        return logits;
    return at::tanh(logits / c.final_logit_softcapping) * c.final_logit_softcapping;
}
#endif

} // namespace gemma_arch

Architecture gemma_architecture(bool gemma3)
{
    using namespace gemma_arch;
    Architecture a;
    a.spec = spec(gemma3);
    a.read_config = gemma3 ? read_config3 : read_config;
    a.quirks.rotary = true;
    a.gguf = gguf_names(gemma3);
    a.layers_path = "model.layers";
    // AutoGPTQ's GemmaGPTQForCausalLM.inside_layer_modules (the llama order).
    a.gptq_sequential = {
        {"self_attn.k_proj", "self_attn.v_proj", "self_attn.q_proj"},
        {"self_attn.o_proj"},
        {"mlp.up_proj", "mlp.gate_proj"},
        {"mlp.down_proj"},
    };
#ifndef LAYERWISE_ARCH_TABLES_ONLY
    a.embed = embed;
    a.layer = gemma3 ? layer<true> : layer<false>;
    a.head = head;
#endif
    return a;
}

} // namespace

Architecture gemma2_architecture() { return gemma_architecture(false); }
Architecture gemma3_text_architecture() { return gemma_architecture(true); }

} // namespace layerwise
