#include "runtime/experts.h"

#include "gguf_linear.h"

#include <ATen/ATen.h>
#include <map>

namespace layerwise {
namespace {

// Decode steps take the one-pass path up to this many tokens.
constexpr std::int64_t kFewTokens = 16;

struct Chosen {
    std::vector<std::int64_t> experts; // in expert order
    std::vector<std::int64_t> first;   // each expert's first position in `rows` / `picks`
    std::vector<std::int64_t> rows;    // token row of every pick, grouped by expert
    std::vector<std::int64_t> picks;   // flat index t * k + slot of every pick, grouped by expert
};

Chosen group_by_expert(const at::Tensor& chosen)
{
    const at::Tensor ids = chosen.to(at::kCPU).contiguous();
    const std::int64_t* p = ids.data_ptr<std::int64_t>();
    const std::int64_t k = ids.size(1), n = ids.numel();
    std::map<std::int64_t, std::vector<std::int64_t>> by_expert;
    for (std::int64_t i = 0; i < n; ++i)
        by_expert[p[i]].push_back(i);
    Chosen c;
    for (const auto& [expert, picks] : by_expert) {
        c.experts.push_back(expert);
        c.first.push_back(static_cast<std::int64_t>(c.rows.size()));
        for (std::int64_t pick : picks) {
            c.rows.push_back(pick / k);
            c.picks.push_back(pick);
        }
    }
    c.first.push_back(static_cast<std::int64_t>(c.rows.size()));
    return c;
}

// The blocks of one expert linear on the CPU, or null when it is not a GGUF weight there; its
// bias (null when none) into `bias`.
const at::Tensor* cpu_blocks(const LayerWeights& w, const std::string& module, kernels::GgmlType& type, const at::Tensor*& bias)
{
    const QuantInfo* q = w.find_quant(module);
    const at::Tensor* weight = w.find(module + ".weight");
    if (!q || q->method != QuantMethod::gguf || !weight || !weight->device().is_cpu())
        return nullptr;
    bias = w.find(module + ".bias");
    if (bias && !bias->device().is_cpu())
        return nullptr;
    type = static_cast<kernels::GgmlType>(q->ggml_type);
    return weight;
}

// Each expert's bias added to its rows of y (grouped by expert as in `c`).
void add_biases(at::Tensor& y, const Chosen& c, const std::vector<const at::Tensor*>& biases)
{
    for (std::size_t i = 0; i < biases.size(); ++i)
        if (biases[i])
            y.narrow(0, c.first[i], c.first[i + 1] - c.first[i]).add_(biases[i]->to(y.scalar_type()));
}

// Every chosen expert over its rows in two parallel passes (gate and up, then down): y [picks, hidden]
// in grouped order, unweighted. Empty when some chosen expert is not GGUF blocks on the CPU.
at::Tensor few_tokens_on_blocks(const ForwardStep& step, const LayerWeights& w, const at::Tensor& flat, const Chosen& c,
                                const ExpertNames& n)
{
    const ModelConfig& cfg = step.config();
    const std::int64_t hidden = cfg.hidden_size, inter = cfg.expert_intermediate_size;
    const std::size_t used = c.experts.size();
    const std::int64_t picks = static_cast<std::int64_t>(c.rows.size());
    // One token: every expert reads its one row; more: each expert its own gathered rows.
    const bool one_token = flat.size(0) == 1;
    const at::Tensor x = one_token ? flat.to(at::kFloat).contiguous()
                                   : flat.to(at::kFloat).index_select(0, at::tensor(c.rows, at::kLong)).contiguous();
    at::Tensor gate = at::empty({picks, inter}, x.options()), up = at::empty({picks, inter}, x.options());
    at::Tensor y = at::empty({picks, hidden}, x.options());
    struct Blocks {
        const at::Tensor *gate, *up, *down;
        kernels::GgmlType gate_type, up_type, down_type;
    };
    std::vector<Blocks> blocks(used);
    std::vector<const at::Tensor*> gate_bias(used), up_bias(used), down_bias(used);
    bool biased = false;
    for (std::size_t i = 0; i < used; ++i) {
        const std::string prefix = n.experts + std::to_string(c.experts[i]) + ".";
        Blocks& b = blocks[i];
        b.gate = cpu_blocks(w, prefix + n.gate, b.gate_type, gate_bias[i]);
        b.up = cpu_blocks(w, prefix + n.up, b.up_type, up_bias[i]);
        b.down = cpu_blocks(w, prefix + n.down, b.down_type, down_bias[i]);
        if (!b.gate || !b.up || !b.down)
            return {};
        biased = biased || gate_bias[i] || up_bias[i] || down_bias[i];
    }
    std::vector<kernels::GgufEach> items;
    items.reserve(2 * used);
    for (std::size_t i = 0; i < used; ++i) {
        const std::int64_t row = c.first[i], m = c.first[i + 1] - c.first[i];
        const float* xi = x.data_ptr<float>() + (one_token ? 0 : row * hidden);
        items.push_back({blocks[i].gate->data_ptr<std::uint8_t>(), blocks[i].gate_type, inter, xi, m, gate.data_ptr<float>() + row * inter});
        items.push_back({blocks[i].up->data_ptr<std::uint8_t>(), blocks[i].up_type, inter, xi, m, up.data_ptr<float>() + row * inter});
    }
    kernels::gguf_matmul_each(items.data(), items.size(), hidden);
    if (biased) {
        add_biases(gate, c, gate_bias);
        add_biases(up, c, up_bias);
    }
    const at::Tensor h = expert_activation(gate, up, cfg).contiguous();
    items.clear();
    for (std::size_t i = 0; i < used; ++i) {
        const std::int64_t row = c.first[i], m = c.first[i + 1] - c.first[i];
        items.push_back({blocks[i].down->data_ptr<std::uint8_t>(), blocks[i].down_type, hidden, h.data_ptr<float>() + row * inter, m,
                         y.data_ptr<float>() + row * hidden});
    }
    kernels::gguf_matmul_each(items.data(), items.size(), inter);
    if (biased)
        add_biases(y, c, down_bias);
    return y.to(flat.scalar_type());
}

} // namespace

at::Tensor expert_activation(const at::Tensor& gate, const at::Tensor& up, const ModelConfig& c)
{
    if (c.swiglu_limit <= 0.0)
        return activation(gate, c.hidden_act) * up;
    // gpt-oss (GptOssExperts._apply_gate): both halves clamped, then (up + 1) * gate * sigmoid(alpha gate).
    const at::Tensor g = gate.clamp_max(c.swiglu_limit);
    return (up.clamp(-c.swiglu_limit, c.swiglu_limit) + 1) * (g * at::sigmoid(g * c.swiglu_alpha));
}

at::Tensor run_experts(const ForwardStep& step, const LayerWeights& w, const at::Tensor& x, const ExpertNames& n)
{
    const ModelConfig& c = step.config();
    const at::Tensor flat = x.reshape({-1, c.hidden_size});
    const at::Tensor logits = step.linear(w, n.router, flat);
    const at::Tensor probs = at::softmax(logits.to(at::kFloat), -1);
    auto [weights, chosen] = probs.topk(c.experts_per_token, -1);
    if (c.norm_topk_prob)
        weights = weights / weights.sum(-1, true);
    weights = weights.to(x.scalar_type()).reshape({-1});
    const Chosen groups = group_by_expert(chosen);
    const at::Tensor rows = at::tensor(groups.rows, at::kLong).to(flat.device());
    const at::Tensor pick_weights = weights.index_select(0, at::tensor(groups.picks, at::kLong).to(flat.device())).unsqueeze(1);
    at::Tensor out = at::zeros_like(flat);
    if (flat.device().is_cpu() && flat.size(0) <= kFewTokens && !step.observe) {
        const at::Tensor y = few_tokens_on_blocks(step, w, flat, groups, n);
        if (y.defined())
            return out.index_add_(0, rows, y * pick_weights).view(x.sizes());
    }
    for (std::size_t i = 0; i < groups.experts.size(); ++i) {
        const std::string prefix = n.experts + std::to_string(groups.experts[i]) + ".";
        const at::Tensor mine = rows.slice(0, groups.first[i], groups.first[i + 1]);
        const at::Device where = w[prefix + n.gate + ".weight"].device();
        at::Tensor xe = flat.index_select(0, mine);
        if (xe.device() != where)
            xe = xe.to(where);
        const std::vector<at::Tensor> gate_up = step.linears(w, {prefix + n.gate, prefix + n.up}, xe);
        at::Tensor ye = step.linear(w, prefix + n.down, expert_activation(gate_up[0], gate_up[1], c));
        if (ye.device() != flat.device())
            ye = ye.to(flat.device());
        out.index_add_(0, mine, ye * pick_weights.slice(0, groups.first[i], groups.first[i + 1]));
    }
    return out.view(x.sizes());
}

} // namespace layerwise
