// Llama family: Llama 2/3/3.1, Mistral, Qwen2 (q/k/v bias), Qwen3 (q/k RMSNorm), as
// transformers' modeling_llama / modeling_qwen3 compute them.
#include "runtime/runner.h"

#include <ATen/ATen.h>
#include <cmath>

namespace layerwise {

at::Tensor llama_forward(Runner& runner, const at::Tensor& ids, bool all_positions)
{
    if (ids.size(0) == 1 && ids.size(1) == 1 && runner.fused_decode_ready())
        return llama_decode_fused(runner, ids);
    LoadedModel& m = runner.model();
    const ModelConfig& c = m.config;
    const at::Device exec = runner.execution_device();
    at::Tensor h = global_embedding(m, "model.embed_tokens", ids).to(exec);
    const std::int64_t b = ids.size(0), n = ids.size(1), start = runner.position();
    const auto dtype = h.scalar_type();
    const at::Tensor cos = runner.rotary(start, n, dtype, false).to(exec);
    const at::Tensor sin = runner.rotary(start, n, dtype, true).to(exec);
    const double scale = 1.0 / std::sqrt(static_cast<double>(c.head_dim));
    const bool qk_norm = c.model_type == "qwen3";

    for (std::size_t l = 0; l < m.layers.size(); ++l) {
        runner.run_layer(l, [&](const LayerWeights& w) {
            const at::Device dev = w["input_layernorm.weight"].device();
            if (h.device() != dev)
                h = h.to(dev);
            at::Tensor x = rms_norm(h, w["input_layernorm.weight"], c.norm_eps);
            std::vector<at::Tensor> qkv = layer_linears(w, {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"}, x);
            at::Tensor q = qkv[0].view({b, n, c.num_heads, c.head_dim});
            at::Tensor k = qkv[1].view({b, n, c.num_kv_heads, c.head_dim});
            at::Tensor v = qkv[2].view({b, n, c.num_kv_heads, c.head_dim}).transpose(1, 2);
            if (qk_norm) {
                q = rms_norm(q, w["self_attn.q_norm.weight"], c.norm_eps);
                k = rms_norm(k, w["self_attn.k_norm.weight"], c.norm_eps);
            }
            const auto rotate = w.rope_pairs() ? apply_rotary_pairs : apply_rotary;
            q = rotate(q.transpose(1, 2), cos.to(dev), sin.to(dev));
            k = rotate(k.transpose(1, 2), cos.to(dev), sin.to(dev));
            auto [keys, values] = runner.append_kv(l, k, v);
            const at::Tensor attn = attention(q, keys.to(dev), values.to(dev), scale).transpose(1, 2).reshape({b, n, c.num_heads * c.head_dim});
            h = h + layer_linear(w, "self_attn.o_proj", attn);
            x = rms_norm(h, w["post_attention_layernorm.weight"], c.norm_eps);
            const std::vector<at::Tensor> gate_up = layer_linears(w, {"mlp.gate_proj", "mlp.up_proj"}, x);
            const at::Tensor mlp = layer_linear(w, "mlp.down_proj", activation(gate_up[0], c.hidden_act) * gate_up[1]);
            h = h + mlp;
        });
    }
    const at::Tensor& norm = m.global("model.norm.weight");
    if (!all_positions)
        h = h.narrow(1, n - 1, 1);
    h = rms_norm(h.to(norm.device()), norm, c.norm_eps);
    return global_linear(m, "lm_head", h);
}

} // namespace layerwise
