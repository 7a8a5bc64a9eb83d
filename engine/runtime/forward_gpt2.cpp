// GPT-2: learned positions, Conv1D projections (x @ W + b), tied head, gelu_new.
#include "runtime/runner.h"

#include "core/error.h"

#include <ATen/ATen.h>
#include <cmath>

namespace layerwise {

namespace {

at::Tensor conv1d(const LayerWeights& w, const std::string& name, const at::Tensor& x)
{
    // transformers' Conv1D: addmm(bias, x.view(-1, in), weight); quantized: stored transposed as a Linear
    if (w.find_quant(name))
        return layer_linear(w, name, x);
    const at::Tensor& weight = w[name + ".weight"];
    auto shape = x.sizes().vec();
    shape.back() = weight.size(1);
    return at::addmm(w[name + ".bias"], x.reshape({-1, x.size(-1)}), weight).view(shape);
}

} // namespace

at::Tensor gpt2_forward(Runner& runner, const at::Tensor& ids, bool all_positions)
{
    LoadedModel& m = runner.model();
    const ModelConfig& c = m.config;
    const at::Device exec = runner.execution_device();
    const std::int64_t b = ids.size(0), n = ids.size(1), start = runner.position();
    const at::Tensor& wte = m.global("transformer.wte.weight");
    const at::Tensor& wpe = m.global("transformer.wpe.weight");
    if (start + n > c.max_position_embeddings)
        throw PlanError("GPT-2 has learned positions for " + std::to_string(c.max_position_embeddings) +
                        " tokens; the context cannot grow beyond that");
    const at::Tensor positions = at::arange(start, start + n, at::kLong).unsqueeze(0);
    at::Tensor h = (at::embedding(wte, ids.to(wte.device())).to(exec) + at::embedding(wpe, positions.to(wpe.device())).to(exec));
    const double scale = 1.0 / std::sqrt(static_cast<double>(c.head_dim));
    for (std::size_t l = 0; l < m.layers.size(); ++l) {
        runner.run_layer(l, [&](const LayerWeights& w) {
            const at::Device dev = w["ln_1.weight"].device();
            if (h.device() != dev)
                h = h.to(dev);
            at::Tensor x = at::layer_norm(h, {c.hidden_size}, w["ln_1.weight"], w["ln_1.bias"], c.norm_eps);
            const auto qkv = conv1d(w, "attn.c_attn", x).split(c.hidden_size, 2);
            const at::Tensor q = qkv[0].view({b, n, c.num_heads, c.head_dim}).transpose(1, 2);
            const at::Tensor k = qkv[1].view({b, n, c.num_heads, c.head_dim}).transpose(1, 2);
            const at::Tensor v = qkv[2].view({b, n, c.num_heads, c.head_dim}).transpose(1, 2);
            auto [keys, values] = runner.append_kv(l, k, v);
            const at::Tensor attn = attention(q, keys.to(dev), values.to(dev), scale).transpose(1, 2).reshape({b, n, c.hidden_size});
            h = conv1d(w, "attn.c_proj", attn) + h;
            x = at::layer_norm(h, {c.hidden_size}, w["ln_2.weight"], w["ln_2.bias"], c.norm_eps);
            h = h + conv1d(w, "mlp.c_proj", activation(conv1d(w, "mlp.c_fc", x), c.hidden_act));
        });
    }
    const at::Tensor& lnw = m.global("transformer.ln_f.weight");
    if (!all_positions)
        h = h.narrow(1, n - 1, 1);
    h = at::layer_norm(h.to(lnw.device()), {c.hidden_size}, lnw, m.global("transformer.ln_f.bias"), c.norm_eps);
    const at::Tensor& head = m.global("lm_head.weight");
    return at::linear(h.to(head.device()), head);
}

} // namespace layerwise
