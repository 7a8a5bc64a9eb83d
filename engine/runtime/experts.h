#pragma once
// A mixture of experts' MLP at run time: route each token to its top-k experts, then run only
// the experts some token chose, each once over its tokens, where its weights live (experts in CPU
// RAM beside a block on a GPU compute on the CPU; the hidden rows cross over). A few tokens over
// GGUF blocks on the CPU (decode steps) run every chosen expert's gate and up in one parallel
// pass and every down in another; more tokens (prefill) go expert by expert through the block
// kernels' many-row path.
#include "runtime/runner.h"

#include <string>

namespace layerwise {

// How an architecture names its MoE modules inside a decoder layer.
struct ExpertNames {
    std::string router;  // "mlp.gate"
    std::string experts; // "mlp.experts." (expert e is experts + e)
    std::string gate, up, down; // inside an expert: "gate_proj", "up_proj", "down_proj"
};

// An expert's hidden activation from its gate and up projections: act(gate) * up, or gpt-oss's
// clamped form when config.swiglu_limit is set.
at::Tensor expert_activation(const at::Tensor& gate, const at::Tensor& up, const ModelConfig& config);

// x [batch, n, hidden] on the layer's device -> the experts' weighted sum, same shape. The router
// softmax runs in float32; the chosen weights are renormalised when config.norm_topk_prob (which
// makes it gpt-oss's softmax over the chosen experts' logits). Linears with biases add them.
at::Tensor run_experts(const ForwardStep& step, const LayerWeights& weights, const at::Tensor& x, const ExpertNames& names);

} // namespace layerwise
