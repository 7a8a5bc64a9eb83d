// GPT-NeoX (Pythia): fused query_key_value laid out per head, partial rotary embeddings,
// parallel residual (attention and MLP both read the block input); transformers' modeling_gpt_neox.
#include "archs/architectures.h"

#include "model/config_reader.h"
#ifndef LAYERWISE_ARCH_TABLES_ONLY
#include "runtime/runner.h"

#include <ATen/ATen.h>
#include <cmath>
#endif

namespace layerwise {
namespace {
namespace gpt_neox_arch {

using Shape = std::vector<std::int64_t>;
using C = ModelConfig;

Shape embed_shape(const C& c) { return {c.vocab_size, c.hidden_size}; }
Shape hidden(const C& c) { return {c.hidden_size}; }
Shape qkv_w(const C& c) { return {3 * c.hidden_size, c.hidden_size}; }
Shape qkv_b(const C& c) { return {3 * c.hidden_size}; }
Shape dense_w(const C& c) { return {c.hidden_size, c.hidden_size}; }
Shape up_w(const C& c) { return {c.intermediate_size, c.hidden_size}; }
Shape up_b(const C& c) { return {c.intermediate_size}; }
Shape down_w(const C& c) { return {c.hidden_size, c.intermediate_size}; }
bool attn_bias(const C& c) { return c.attention_bias; }

ArchSpec spec()
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
        {"gpt_neox.embed_in", "Embedding", {{"weight", embed_shape}}},
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
        rotary_embedding_module("gpt_neox.rotary_emb", "GPTNeoXRotaryEmbedding"),
        {"lm_head", "Linear", {{"weight", embed_shape}}},
    };
    a.tied = {{"lm_head.weight", "gpt_neox.embed_in.weight"}};
    a.renamed = {{"embed_out.", "lm_head."}};
    return a;
}

void read_config(const ConfigReader& r, ModelConfig& c)
{
    c.hidden_size = r.positive("hidden_size");
    c.intermediate_size = r.positive("intermediate_size");
    c.num_layers = r.positive("num_hidden_layers");
    c.num_heads = r.positive("num_attention_heads");
    c.num_kv_heads = c.num_heads;
    c.vocab_size = r.positive("vocab_size");
    c.max_position_embeddings = r.positive_or("max_position_embeddings", 2048);
    c.norm_eps = r.number_or("layer_norm_eps", 1e-5);
    c.tie_word_embeddings = r.flag_or("tie_word_embeddings", false);
    c.attention_bias = r.flag_or("attention_bias", true);
    c.mlp_bias = true;
    c.use_parallel_residual = r.flag_or("use_parallel_residual", true);
    c.hidden_act = r.string_or("hidden_act", "gelu");
}

#ifndef LAYERWISE_ARCH_TABLES_ONLY
at::Tensor embed(const ForwardStep& step, const at::Tensor& ids)
{
    const at::Tensor& table = step.model.global("gpt_neox.embed_in.weight");
    return at::embedding(table, ids.to(table.device())).to(step.exec);
}

at::Tensor layer(const ForwardStep& step, std::size_t index, const LayerWeights& w, const at::Tensor& input)
{
    const ModelConfig& c = step.config();
    const std::int64_t b = step.batch, n = step.tokens;
    const at::Device dev = w["input_layernorm.weight"].device();
    const at::Tensor h = input.device() == dev ? input : input.to(dev);
    const auto norm = [&](const at::Tensor& x, const std::string& name) {
        return at::layer_norm(x, {c.hidden_size}, w[name + ".weight"], w[name + ".bias"], c.norm_eps);
    };
    const at::Tensor x = norm(h, "input_layernorm");
    const auto qkv =
        step.linear(w, "attention.query_key_value", x).view({b, n, c.num_heads, 3 * c.head_dim}).transpose(1, 2).chunk(3, -1);
    const at::Tensor cos = step.cos.to(dev), sin = step.sin.to(dev);
    const at::Tensor q = apply_rotary(qkv[0], cos, sin);
    const at::Tensor k = apply_rotary(qkv[1], cos, sin);
    const double scale = 1.0 / std::sqrt(static_cast<double>(c.head_dim));
    const at::Tensor attn = step.linear(
        w, "attention.dense", step.attend(index, q, k, qkv[2], scale).transpose(1, 2).reshape({b, n, c.hidden_size}));
    const auto mlp = [&](const at::Tensor& y) {
        return step.linear(w, "mlp.dense_4h_to_h", activation(step.linear(w, "mlp.dense_h_to_4h", y), c.hidden_act));
    };
    if (c.use_parallel_residual)
        return mlp(norm(h, "post_attention_layernorm")) + attn + h;
    const at::Tensor a = attn + h;
    return mlp(norm(a, "post_attention_layernorm")) + a;
}

at::Tensor head(const ForwardStep& step, const at::Tensor& hidden_states)
{
    return layer_norm_head(step.model, "gpt_neox.final_layer_norm", step.config().norm_eps, hidden_states);
}

#endif

} // namespace gpt_neox_arch
} // namespace

Architecture gpt_neox_architecture()
{
    using namespace gpt_neox_arch;
    Architecture a;
    a.spec = spec();
    a.read_config = read_config;
    a.quirks.rotary = true;
    a.layers_path = "gpt_neox.layers";
    // AutoGPTQ's GPTNeoXGPTQForCausalLM.inside_layer_modules.
    a.gptq_sequential = {{"attention.query_key_value"}, {"attention.dense"}, {"mlp.dense_h_to_4h"}, {"mlp.dense_4h_to_h"}};
#ifndef LAYERWISE_ARCH_TABLES_ONLY
    a.embed = embed;
    a.layer = layer;
    a.head = head;
#endif
    return a;
}

} // namespace layerwise
