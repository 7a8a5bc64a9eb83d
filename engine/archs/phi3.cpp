// Phi-3 / Phi-4 (Phi3ForCausalLM): the llama layout with q, k and v in one qkv_proj, gate and up
// in one gate_up_proj, and partial rotary embeddings (Phi-4-mini rotates three quarters of each
// head); longrope for the long-context models. transformers' modeling_phi3.
#include "archs/architectures.h"

#include "model/config_reader.h"
#ifndef LAYERWISE_ARCH_TABLES_ONLY
#include "runtime/runner.h"

#include <ATen/ATen.h>
#include <cmath>
#endif

namespace layerwise {
namespace {
namespace phi3_arch {

using Shape = std::vector<std::int64_t>;
using C = ModelConfig;

Shape embed_shape(const C& c) { return {c.vocab_size, c.hidden_size}; }
Shape hidden(const C& c) { return {c.hidden_size}; }
Shape qkv_w(const C& c) { return {(c.num_heads + 2 * c.num_kv_heads) * c.head_dim, c.hidden_size}; }
Shape o_w(const C& c) { return {c.hidden_size, c.num_heads * c.head_dim}; }
Shape gate_up_w(const C& c) { return {2 * c.intermediate_size, c.hidden_size}; }
Shape down_w(const C& c) { return {c.hidden_size, c.intermediate_size}; }

ArchSpec spec()
{
    ArchSpec a;
    a.model_type = "phi3";
    a.class_prefix = "Phi3";
    a.causal_lm_class = "Phi3ForCausalLM";
    a.base_prefix = "model";
    a.layer_class = "{P}DecoderLayer";
    const TensorSpec rms{"weight", hidden};
    // transformers registers o_proj before qkv_proj.
    a.modules = {
        {"model", "{P}Model", {}},
        {"model.embed_tokens", "Embedding", {{"weight", embed_shape}}},
        {"model.layers", "ModuleList", {}},
        {"model.layers.{i}", "{P}DecoderLayer", {}},
        {"model.layers.{i}.self_attn", "{P}Attention", {}},
        {"model.layers.{i}.self_attn.o_proj", "Linear", {{"weight", o_w}}},
        {"model.layers.{i}.self_attn.qkv_proj", "Linear", {{"weight", qkv_w}}},
        {"model.layers.{i}.mlp", "{P}MLP", {}},
        {"model.layers.{i}.mlp.gate_up_proj", "Linear", {{"weight", gate_up_w}}},
        {"model.layers.{i}.mlp.down_proj", "Linear", {{"weight", down_w}}},
        {"model.layers.{i}.mlp.activation_fn", "{act}", {}},
        {"model.layers.{i}.input_layernorm", "{P}RMSNorm", {rms}},
        {"model.layers.{i}.post_attention_layernorm", "{P}RMSNorm", {rms}},
        {"model.layers.{i}.resid_attn_dropout", "Dropout", {}},
        {"model.layers.{i}.resid_mlp_dropout", "Dropout", {}},
        {"model.norm", "{P}RMSNorm", {rms}},
        rotary_embedding_module("model.rotary_emb", "{P}RotaryEmbedding"),
        {"lm_head", "Linear", {{"weight", embed_shape}}},
    };
    a.tied = {{"lm_head.weight", "model.embed_tokens.weight"}};
    return a;
}

void read_config(const ConfigReader& r, ModelConfig& c)
{
    llama_read_config(r, c);
    c.hidden_act = r.string_or("hidden_act", "silu");
    // Phi-3-mini attends over a sliding window in every layer (transformers' mask); Phi-4 has none.
    if (c.sliding_window && *c.sliding_window > 0) {
        c.local_window = *c.sliding_window;
        c.local_layers.assign(static_cast<std::size_t>(c.num_layers), true);
    }
}

// llama.cpp's names: q, k and v stay fused (attn_qkv), as do gate and up (ffn_up); rows in
// Hugging Face's order (Phi-3 rotates halves, as NeoX does).
GgufNaming gguf_names()
{
    GgufNaming g;
    g.arch = "phi3";
    g.windowed = true;
    g.blocks = {
        {"attn_norm", "input_layernorm"},     {"attn_qkv", "self_attn.qkv_proj"}, {"attn_output", "self_attn.o_proj"},
        {"ffn_norm", "post_attention_layernorm"}, {"ffn_up", "mlp.gate_up_proj"},  {"ffn_down", "mlp.down_proj"},
    };
    g.globals = {{"token_embd", "model.embed_tokens"}, {"output_norm", "model.norm"}, {"output", "lm_head"}};
    return g;
}

#ifndef LAYERWISE_ARCH_TABLES_ONLY
at::Tensor layer(const ForwardStep& step, std::size_t index, const LayerWeights& w, const at::Tensor& input)
{
    const ModelConfig& c = step.config();
    const std::int64_t b = step.batch, n = step.tokens, d = c.head_dim;
    const at::Device dev = w["input_layernorm.weight"].device();
    at::Tensor h = input.device() == dev ? input : input.to(dev);
    at::Tensor x = rms_norm(h, w["input_layernorm.weight"], c.norm_eps);
    const at::Tensor qkv = step.linear(w, "self_attn.qkv_proj", x);
    const auto part = [&](std::int64_t first_head, std::int64_t heads) {
        return qkv.narrow(-1, first_head * d, heads * d).reshape({b, n, heads, d}).transpose(1, 2);
    };
    const at::Tensor cos = step.cos.to(dev), sin = step.sin.to(dev);
    const at::Tensor q = apply_rotary(part(0, c.num_heads), cos, sin);
    const at::Tensor k = apply_rotary(part(c.num_heads, c.num_kv_heads), cos, sin);
    const at::Tensor v = part(c.num_heads + c.num_kv_heads, c.num_kv_heads);
    AttentionOptions o;
    o.scale = 1.0 / std::sqrt(static_cast<double>(d));
    o.window = index < c.local_layers.size() && c.local_layers[index] ? c.local_window : 0;
    const at::Tensor attn = step.attend(index, q, k, v, o).transpose(1, 2).reshape({b, n, c.num_heads * d});
    h = h + step.linear(w, "self_attn.o_proj", attn);
    x = rms_norm(h, w["post_attention_layernorm.weight"], c.norm_eps);
    const at::Tensor gate_up = step.linear(w, "mlp.gate_up_proj", x);
    const at::Tensor gate = gate_up.narrow(-1, 0, c.intermediate_size);
    const at::Tensor up = gate_up.narrow(-1, c.intermediate_size, c.intermediate_size);
    return h + step.linear(w, "mlp.down_proj", up * activation(gate, c.hidden_act));
}
#endif

} // namespace phi3_arch
} // namespace

Architecture phi3_architecture()
{
    using namespace phi3_arch;
    Architecture a;
    a.spec = spec();
    a.read_config = read_config;
    a.quirks.rotary = true;
    a.gguf = gguf_names();
    a.layers_path = "model.layers";
    // The order the layer runs its linears in (AutoGPTQ 0.7.1 has no Phi-3 class).
    a.gptq_sequential = {{"self_attn.qkv_proj"}, {"self_attn.o_proj"}, {"mlp.gate_up_proj"}, {"mlp.down_proj"}};
#ifndef LAYERWISE_ARCH_TABLES_ONLY
    a.embed = llama_embed;
    a.layer = layer;
    a.head = llama_head;
#endif
    return a;
}

} // namespace layerwise
