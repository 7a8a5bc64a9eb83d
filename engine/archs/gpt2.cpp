// GPT-2: learned positions, Conv1D projections (weights stored [in, out], x @ W + b), tied head,
// gelu_new; transformers' modeling_gpt2.
#include "archs/architectures.h"

#include "core/error.h"
#include "model/config_reader.h"
#ifndef LAYERWISE_ARCH_TABLES_ONLY
#include "runtime/runner.h"

#include <ATen/ATen.h>
#include <cmath>
#endif

namespace layerwise {
namespace {
namespace gpt2_arch {

using Shape = std::vector<std::int64_t>;
using C = ModelConfig;

Shape wte(const C& c) { return {c.vocab_size, c.hidden_size}; }
Shape wpe(const C& c) { return {c.max_position_embeddings, c.hidden_size}; }
Shape hidden(const C& c) { return {c.hidden_size}; }
Shape c_attn_w(const C& c) { return {c.hidden_size, 3 * c.hidden_size}; }
Shape c_attn_b(const C& c) { return {3 * c.hidden_size}; }
Shape c_proj_w(const C& c) { return {c.hidden_size, c.hidden_size}; }
Shape c_fc_w(const C& c) { return {c.hidden_size, c.intermediate_size}; }
Shape c_fc_b(const C& c) { return {c.intermediate_size}; }
Shape mlp_proj_w(const C& c) { return {c.intermediate_size, c.hidden_size}; }

ArchSpec spec()
{
    ArchSpec a;
    a.model_type = "gpt2";
    a.class_prefix = "GPT2";
    a.causal_lm_class = "GPT2LMHeadModel";
    a.base_prefix = "transformer";
    a.layer_class = "GPT2Block";
    const std::vector<TensorSpec> norm{{"weight", hidden}, {"bias", hidden}};
    a.modules = {
        {"transformer", "GPT2Model", {}},
        {"transformer.wte", "Embedding", {{"weight", wte}}},
        {"transformer.wpe", "Embedding", {{"weight", wpe}}},
        {"transformer.drop", "Dropout", {}},
        {"transformer.h", "ModuleList", {}},
        {"transformer.h.{i}", "GPT2Block", {}},
        {"transformer.h.{i}.ln_1", "LayerNorm", norm},
        {"transformer.h.{i}.attn", "GPT2Attention", {}},
        {"transformer.h.{i}.attn.c_attn", "Conv1D", {{"weight", c_attn_w}, {"bias", c_attn_b}}},
        {"transformer.h.{i}.attn.c_proj", "Conv1D", {{"weight", c_proj_w}, {"bias", hidden}}},
        {"transformer.h.{i}.attn.attn_dropout", "Dropout", {}},
        {"transformer.h.{i}.attn.resid_dropout", "Dropout", {}},
        {"transformer.h.{i}.ln_2", "LayerNorm", norm},
        {"transformer.h.{i}.mlp", "GPT2MLP", {}},
        {"transformer.h.{i}.mlp.c_fc", "Conv1D", {{"weight", c_fc_w}, {"bias", c_fc_b}}},
        {"transformer.h.{i}.mlp.c_proj", "Conv1D", {{"weight", mlp_proj_w}, {"bias", hidden}}},
        {"transformer.h.{i}.mlp.act", "{act}", {}},
        {"transformer.h.{i}.mlp.dropout", "Dropout", {}},
        {"transformer.ln_f", "LayerNorm", norm},
        {"lm_head", "Linear", {{"weight", wte}}},
    };
    a.tied = {{"lm_head.weight", "transformer.wte.weight"}};
    return a;
}

void read_config(const ConfigReader& r, ModelConfig& c)
{
    c.hidden_size = r.positive("n_embd");
    c.num_layers = r.positive("n_layer");
    c.num_heads = r.positive("n_head");
    c.num_kv_heads = c.num_heads;
    c.intermediate_size = r.positive_or("n_inner", 4 * c.hidden_size);
    c.vocab_size = r.positive("vocab_size");
    c.max_position_embeddings = r.positive_or("n_positions", 1024);
    c.norm_eps = r.number_or("layer_norm_epsilon", 1e-5);
    c.tie_word_embeddings = r.flag_or("tie_word_embeddings", true);
    c.attention_bias = true;
    c.mlp_bias = true;
    c.hidden_act = r.string_or("activation_function", "gelu_new");
}

#ifndef LAYERWISE_ARCH_TABLES_ONLY
// transformers' Conv1D: addmm(bias, x.view(-1, in), weight); quantized: stored transposed as a Linear.
at::Tensor conv1d(const ForwardStep& step, const LayerWeights& w, const std::string& name, const at::Tensor& x)
{
    if (w.find_quant(name))
        return step.linear(w, name, x);
    step.observe_input(name, x);
    const at::Tensor& weight = w[name + ".weight"];
    auto shape = x.sizes().vec();
    shape.back() = weight.size(1);
    return at::addmm(w[name + ".bias"], x.reshape({-1, x.size(-1)}), weight).view(shape);
}

at::Tensor embed(const ForwardStep& step, const at::Tensor& ids)
{
    const ModelConfig& c = step.config();
    const at::Tensor& wte = step.model.global("transformer.wte.weight");
    const at::Tensor& wpe = step.model.global("transformer.wpe.weight");
    const at::Tensor positions = step.positions();
    if (positions.max().item<std::int64_t>() >= c.max_position_embeddings)
        throw PlanError("GPT-2 has learned positions for " + std::to_string(c.max_position_embeddings) +
                        " tokens; the context cannot grow beyond that");
    return at::embedding(wte, ids.to(wte.device())).to(step.exec) + at::embedding(wpe, positions.to(wpe.device())).to(step.exec);
}

at::Tensor layer(const ForwardStep& step, std::size_t index, const LayerWeights& w, const at::Tensor& input)
{
    const ModelConfig& c = step.config();
    const std::int64_t b = step.batch, n = step.tokens;
    const at::Device dev = w["ln_1.weight"].device();
    at::Tensor h = input.device() == dev ? input : input.to(dev);
    at::Tensor x = at::layer_norm(h, {c.hidden_size}, w["ln_1.weight"], w["ln_1.bias"], c.norm_eps);
    const auto qkv = conv1d(step, w, "attn.c_attn", x).split(c.hidden_size, 2);
    const at::Tensor q = qkv[0].view({b, n, c.num_heads, c.head_dim}).transpose(1, 2);
    const at::Tensor k = qkv[1].view({b, n, c.num_heads, c.head_dim}).transpose(1, 2);
    const at::Tensor v = qkv[2].view({b, n, c.num_heads, c.head_dim}).transpose(1, 2);
    const double scale = 1.0 / std::sqrt(static_cast<double>(c.head_dim));
    const at::Tensor attn = step.attend(index, q, k, v, scale).transpose(1, 2).reshape({b, n, c.hidden_size});
    h = conv1d(step, w, "attn.c_proj", attn) + h;
    x = at::layer_norm(h, {c.hidden_size}, w["ln_2.weight"], w["ln_2.bias"], c.norm_eps);
    return h + conv1d(step, w, "mlp.c_proj", activation(conv1d(step, w, "mlp.c_fc", x), c.hidden_act));
}

at::Tensor head(const ForwardStep& step, const at::Tensor& hidden_states)
{
    return layer_norm_head(step.model, "transformer.ln_f", step.config().norm_eps, hidden_states);
}

#endif

} // namespace gpt2_arch
} // namespace

Architecture gpt2_architecture()
{
    using namespace gpt2_arch;
    Architecture a;
    a.spec = spec();
    a.read_config = read_config;
    a.quirks.rotary = false;
    a.layers_path = "transformer.h";
    // AutoGPTQ's GPT2GPTQForCausalLM.inside_layer_modules; the Conv1D weights are quantized as
    // the [out, in] linears they compute (AutoGPTQ transposes them).
    a.gptq_sequential = {{"attn.c_attn"}, {"attn.c_proj"}, {"mlp.c_fc"}, {"mlp.c_proj"}};
#ifndef LAYERWISE_ARCH_TABLES_ONLY
    a.embed = embed;
    a.layer = layer;
    a.head = head;
#endif
    return a;
}

} // namespace layerwise
