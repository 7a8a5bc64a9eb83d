// GPT-NeoX (Pythia): fused query_key_value laid out per head, partial rotary embeddings,
// parallel residual (attention and MLP both read the block input).
#include "runtime/runner.h"

#include <ATen/ATen.h>
#include <cmath>

namespace layerwise {

namespace {


at::Tensor partial_rotary(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin)
{
    const std::int64_t rot = cos.size(-1);
    const at::Tensor embedded = apply_rotary(x.narrow(-1, 0, rot), cos, sin);
    return at::cat({embedded, x.narrow(-1, rot, x.size(-1) - rot)}, -1);
}

} // namespace

at::Tensor gpt_neox_forward(Runner& runner, const at::Tensor& ids, bool all_positions)
{
    LoadedModel& m = runner.model();
    const ModelConfig& c = m.config;
    const at::Device exec = runner.execution_device();
    const std::int64_t b = ids.size(0), n = ids.size(1), start = runner.position();
    const at::Tensor& embed = m.global("gpt_neox.embed_in.weight");
    at::Tensor h = at::embedding(embed, ids.to(embed.device())).to(exec);
    const auto dtype = h.scalar_type();
    const at::Tensor cos = runner.rotary(start, n, dtype, false).to(exec);
    const at::Tensor sin = runner.rotary(start, n, dtype, true).to(exec);
    const double scale = 1.0 / std::sqrt(static_cast<double>(c.head_dim));
    for (std::size_t l = 0; l < m.layers.size(); ++l) {
        runner.run_layer(l, [&](const LayerWeights& w) {
            const at::Device dev = w["input_layernorm.weight"].device();
            if (h.device() != dev)
                h = h.to(dev);
            const at::Tensor x = at::layer_norm(h, {c.hidden_size}, w["input_layernorm.weight"], w["input_layernorm.bias"], c.norm_eps);
            const auto qkv = layer_linear(w, "attention.query_key_value", x).view({b, n, c.num_heads, 3 * c.head_dim}).transpose(1, 2).chunk(3, -1);
            const at::Tensor q = partial_rotary(qkv[0], cos.to(dev), sin.to(dev));
            const at::Tensor k = partial_rotary(qkv[1], cos.to(dev), sin.to(dev));
            auto [keys, values] = runner.append_kv(l, k, qkv[2]);
            const at::Tensor attn = layer_linear(w, "attention.dense",
                                           attention(q, keys.to(dev), values.to(dev), scale).transpose(1, 2).reshape({b, n, c.hidden_size}));
            if (c.use_parallel_residual) {
                const at::Tensor y = at::layer_norm(h, {c.hidden_size}, w["post_attention_layernorm.weight"], w["post_attention_layernorm.bias"], c.norm_eps);
                const at::Tensor mlp = layer_linear(w, "mlp.dense_4h_to_h", activation(layer_linear(w, "mlp.dense_h_to_4h", y), c.hidden_act));
                h = mlp + attn + h;
            } else {
                const at::Tensor a = attn + h;
                const at::Tensor y = at::layer_norm(a, {c.hidden_size}, w["post_attention_layernorm.weight"], w["post_attention_layernorm.bias"], c.norm_eps);
                h = layer_linear(w, "mlp.dense_4h_to_h", activation(layer_linear(w, "mlp.dense_h_to_4h", y), c.hidden_act)) + a;
            }
        });
    }
    const at::Tensor& lnw = m.global("gpt_neox.final_layer_norm.weight");
    if (!all_positions)
        h = h.narrow(1, n - 1, 1);
    h = at::layer_norm(h.to(lnw.device()), {c.hidden_size}, lnw, m.global("gpt_neox.final_layer_norm.bias"), c.norm_eps);
    const at::Tensor& head = m.global("lm_head.weight");
    return at::linear(h.to(head.device()), head);
}

} // namespace layerwise
