// One decode step of architectures with the llama layout (ArchQuirks::fused_decode: Llama,
// Mistral, Qwen2, Qwen3, and Qwen3-MoE whose MLP is its experts) on the CPU, float32, one sequence, every linear in a GGUF block format:
// the same computation as the llama family's decoder layer (archs/llama.cpp), written as plain loops over buffers kept from step to step instead of ~40 LibTorch ops a layer. For
// small models the framework's per-op cost is most of a step; here a layer is three calls into
// the block kernels (q/k/v together, o, gate/up together, down) and a few loops:
//   RMSNorm -> q, k, v (+ bias) -> q/k RMSNorm (Qwen3) -> RoPE in place -> k, v into the cache
//   -> attention over the cache (per head: scores, softmax, weighted sum) -> o -> residual
//   -> RMSNorm -> gate, up -> SiLU(gate) * up -> down -> residual.
// Numerically the same operations as the LibTorch path in another order of float32 sums.
#include "runtime/runner.h"

#include "core/error.h"
#include "gguf_linear.h"
#include "parallel.h"

#include <ATen/ATen.h>
#include <algorithm>
#include <cmath>
#include <string_view>
#include <vector>

namespace layerwise {

using kernels::GgufRows;

namespace {

const char* const kLinears[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                                "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};

bool float_cpu(const at::Tensor* t)
{
    return t && t->is_cpu() && t->scalar_type() == at::kFloat && t->is_contiguous();
}

// y = x * rsqrt(mean(x^2) + eps) * weight, as transformers' RMSNorm in float32.
void rms_norm_into(const float* x, const float* weight, std::int64_t n, double eps, float* y)
{
    float sum = 0.0f;
    for (std::int64_t i = 0; i < n; ++i)
        sum += x[i] * x[i];
    const float inv = 1.0f / std::sqrt(sum / static_cast<float>(n) + static_cast<float>(eps));
    for (std::int64_t i = 0; i < n; ++i)
        y[i] = weight[i] * (x[i] * inv);
}

// transformers' rotate_half rotation of one head in place: x * cos + rotate_half(x) * sin.
void rope_in_place(float* x, const float* cos, const float* sin, std::int64_t dim)
{
    const std::int64_t half = dim / 2;
    for (std::int64_t i = 0; i < half; ++i) {
        const float a = x[i], b = x[i + half];
        x[i] = a * cos[i] - b * sin[i];
        x[i + half] = b * cos[i + half] + a * sin[i + half];
    }
}

// The same with each rotated pair adjacent (llama.cpp's q/k row order; see rope_pairs).
void rope_pairs_in_place(float* x, const float* cos, const float* sin, std::int64_t dim)
{
    for (std::int64_t i = 0; i < dim / 2; ++i) {
        const float a = x[2 * i], b = x[2 * i + 1];
        x[2 * i] = a * cos[i] - b * sin[i];
        x[2 * i + 1] = b * cos[i] + a * sin[i];
    }
}

struct Buffers {
    std::vector<float> h, x, q, k, v, attn, gate, up, scores;
    std::vector<float> logits, expert_gate, expert_up, expert_out; // mixtures of experts
};

// Qwen3-MoE's names for the experts (the only mixture of experts with a GGUF form here).
constexpr const char* kRouter = "mlp.gate";
std::string expert_linear(std::int64_t e, const char* proj) { return "mlp.experts." + std::to_string(e) + "." + proj; }

GgufRows rows_of(const LayerWeights& w, const std::string& module, float* y)
{
    const QuantInfo& q = *w.find_quant(module);
    return {w[module + ".weight"].data_ptr<std::uint8_t>(), static_cast<kernels::GgmlType>(q.ggml_type), q.shape[0], y};
}

void add_bias(const LayerWeights& w, const std::string& module, float* y, std::int64_t n)
{
    if (const at::Tensor* b = w.find(module + ".bias")) {
        const float* p = b->data_ptr<float>();
        for (std::int64_t i = 0; i < n; ++i)
            y[i] += p[i];
    }
}

bool gguf_on_cpu(const LayerWeights& w, const std::string& module)
{
    const QuantInfo* q = w.find_quant(module);
    const at::Tensor* t = w.find(module + ".weight");
    return q && q->method == QuantMethod::gguf && t && t->is_cpu() && t->scalar_type() == at::kByte && !w.find(module + ".bias");
}

// The experts' MLP of one token, x -> x: the router's softmax, the top-k experts (renormalised
// with norm_topk_prob), each chosen expert's gate and up in one parallel pass, its down in
// another, and their weighted sum.
void experts_mlp(const LayerWeights& w, const ModelConfig& c, Buffers& b)
{
    const std::int64_t experts = c.num_experts, k = c.experts_per_token, hidden = c.hidden_size;
    const std::int64_t inter = c.expert_intermediate_size;
    b.logits.resize(experts), b.expert_gate.resize(k * inter), b.expert_up.resize(k * inter), b.expert_out.resize(k * hidden);
    if (w.find_quant(kRouter)) {
        const GgufRows router[] = {rows_of(w, kRouter, b.logits.data())};
        kernels::gguf_matmul_rows(b.x.data(), 1, hidden, router, 1);
    } else {
        const auto f32 = at::TensorOptions().dtype(at::kFloat);
        at::Tensor logits = at::from_blob(b.logits.data(), {experts}, f32);
        at::mv_out(logits, w[std::string(kRouter) + ".weight"], at::from_blob(b.x.data(), {hidden}, f32));
    }
    // softmax in float32, then the k most probable (torch.topk: the larger first).
    const float best = *std::max_element(b.logits.begin(), b.logits.end());
    float sum = 0.0f;
    for (float& v : b.logits)
        sum += (v = std::exp(v - best));
    std::vector<std::int64_t> order(static_cast<std::size_t>(experts));
    for (std::int64_t e = 0; e < experts; ++e)
        order[static_cast<std::size_t>(e)] = e;
    std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](std::int64_t a, std::int64_t z) {
        return b.logits[static_cast<std::size_t>(a)] > b.logits[static_cast<std::size_t>(z)] ||
               (b.logits[static_cast<std::size_t>(a)] == b.logits[static_cast<std::size_t>(z)] && a < z);
    });
    std::vector<float> weight(static_cast<std::size_t>(k));
    float chosen = 0.0f;
    for (std::int64_t j = 0; j < k; ++j)
        chosen += weight[static_cast<std::size_t>(j)] = b.logits[static_cast<std::size_t>(order[static_cast<std::size_t>(j)])] / sum;
    if (c.norm_topk_prob)
        for (float& v : weight)
            v /= chosen;
    std::vector<kernels::GgufEach> items;
    items.reserve(static_cast<std::size_t>(2 * k));
    auto each = [&](std::int64_t e, const char* proj, std::int64_t out, const float* x, float* y) {
        const std::string module = expert_linear(e, proj);
        const QuantInfo& q = *w.find_quant(module);
        return kernels::GgufEach{w[module + ".weight"].data_ptr<std::uint8_t>(), static_cast<kernels::GgmlType>(q.ggml_type), out,
                                 x, 1, y};
    };
    for (std::int64_t j = 0; j < k; ++j) {
        const std::int64_t e = order[static_cast<std::size_t>(j)];
        items.push_back(each(e, "gate_proj", inter, b.x.data(), b.expert_gate.data() + j * inter));
        items.push_back(each(e, "up_proj", inter, b.x.data(), b.expert_up.data() + j * inter));
    }
    kernels::gguf_matmul_each(items.data(), items.size(), hidden);
    for (std::int64_t i = 0; i < k * inter; ++i) {
        const float g = b.expert_gate[static_cast<std::size_t>(i)];
        b.expert_gate[static_cast<std::size_t>(i)] = g / (1.0f + std::exp(-g)) * b.expert_up[static_cast<std::size_t>(i)];
    }
    items.clear();
    for (std::int64_t j = 0; j < k; ++j)
        items.push_back(each(order[static_cast<std::size_t>(j)], "down_proj", hidden, b.expert_gate.data() + j * inter,
                             b.expert_out.data() + j * hidden));
    kernels::gguf_matmul_each(items.data(), items.size(), inter);
    for (std::int64_t i = 0; i < hidden; ++i) {
        float acc = 0.0f;
        for (std::int64_t j = 0; j < k; ++j)
            acc += weight[static_cast<std::size_t>(j)] * b.expert_out[static_cast<std::size_t>(j * hidden + i)];
        b.x[static_cast<std::size_t>(i)] = acc;
    }
}

// Whether a layer's experts can run in experts_mlp: a float32 or GGUF router and every expert's
// linears GGUF blocks on the CPU.
bool experts_fused_ready(const LayerWeights& w, const ModelConfig& c)
{
    const at::Tensor* router = w.find(std::string(kRouter) + ".weight");
    if (!router || !router->is_cpu() || !(gguf_on_cpu(w, kRouter) || float_cpu(router)))
        return false;
    for (std::int64_t e = 0; e < c.num_experts; ++e)
        for (const char* proj : {"gate_proj", "up_proj", "down_proj"})
            if (!gguf_on_cpu(w, expert_linear(e, proj)))
                return false;
    return true;
}

} // namespace

bool llama_decode_fused_applies(const LoadedModel& m)
{
    const ModelConfig& c = m.config;
    if (m.dtype != DType::f32 || m.execution_device.is_gpu() || (c.hidden_act != "silu" && c.hidden_act != "swish"))
        return false;
    const Architecture* arch = find_architecture(c.model_type);
    if (!arch || !arch->quirks.fused_decode)
        return false;
    if (c.num_kv_heads <= 0 || c.num_heads % c.num_kv_heads != 0 || c.head_dim % 2 != 0)
        return false;
    for (const LayerWeights& w : m.layers) {
        if (w.home.is_gpu())
            return false;
        if (c.is_moe() && !experts_fused_ready(w, c))
            return false;
        for (const char* name : kLinears) {
            if (c.is_moe() && std::string_view(name).starts_with("mlp."))
                continue;
            const QuantInfo* q = w.find_quant(name);
            const at::Tensor* t = w.find(std::string(name) + ".weight");
            if (!q || q->method != QuantMethod::gguf || !t || !t->is_cpu() || t->scalar_type() != at::kByte)
                return false;
            if (const at::Tensor* b = w.find(std::string(name) + ".bias"); b && !float_cpu(b))
                return false;
        }
        for (const char* norm : {"input_layernorm.weight", "post_attention_layernorm.weight"})
            if (!float_cpu(w.find(norm)))
                return false;
        if (arch->quirks.qk_norm && (!float_cpu(w.find("self_attn.q_norm.weight")) || !float_cpu(w.find("self_attn.k_norm.weight"))))
            return false;
    }
    return float_cpu(m.find_global("model.norm.weight"));
}

namespace {

// The step's buffers, kept from step to step on this thread (no allocation per token); sized for
// `total` cached positions.
Buffers& step_buffers(const ModelConfig& c, std::int64_t total)
{
    thread_local Buffers kept;
    Buffers& b = kept;
    b.h.resize(c.hidden_size), b.x.resize(c.hidden_size), b.q.resize(c.num_heads * c.head_dim), b.k.resize(c.num_kv_heads * c.head_dim);
    b.v.resize(c.num_kv_heads * c.head_dim), b.attn.resize(c.num_heads * c.head_dim), b.gate.resize(c.intermediate_size);
    b.up.resize(c.intermediate_size);
    b.scores.resize(c.num_heads * total);
    return b;
}

// Decoder layers [begin, end) of one decode step at position `start`, on the hidden state in b.h
// (the runner's cache; its rotary factors cp, sp). A reference to the buffers, so that the
// attention's worker threads use this thread's, not thread-locals of their own.
void fused_layers(Runner& runner, Buffers& b, std::size_t begin, std::size_t end, std::int64_t start, const float* cp, const float* sp)
{
    LoadedModel& m = runner.model();
    const ModelConfig& c = m.config;
    const std::int64_t hidden = c.hidden_size, heads = c.num_heads, kv_heads = c.num_kv_heads, dim = c.head_dim;
    const std::int64_t groups = heads / kv_heads, inter = c.intermediate_size;
    const std::int64_t total = start + 1;
    const float scale = 1.0f / std::sqrt(static_cast<float>(dim));
    const bool qk_norm = runner.architecture().quirks.qk_norm;
    for (std::size_t l = begin; l < end; ++l) {
        runner.run_layer(l, [&](const LayerWeights& w) {
            rms_norm_into(b.h.data(), w["input_layernorm.weight"].data_ptr<float>(), hidden, c.norm_eps, b.x.data());
            const GgufRows qkv[] = {rows_of(w, "self_attn.q_proj", b.q.data()), rows_of(w, "self_attn.k_proj", b.k.data()),
                                    rows_of(w, "self_attn.v_proj", b.v.data())};
            kernels::gguf_matmul_rows(b.x.data(), 1, hidden, qkv, 3);
            add_bias(w, "self_attn.q_proj", b.q.data(), heads * dim);
            add_bias(w, "self_attn.k_proj", b.k.data(), kv_heads * dim);
            add_bias(w, "self_attn.v_proj", b.v.data(), kv_heads * dim);
            const auto rope = w.rope_pairs() ? rope_pairs_in_place : rope_in_place;
            for (std::int64_t hd = 0; hd < heads; ++hd) {
                float* q = b.q.data() + hd * dim;
                if (qk_norm)
                    rms_norm_into(q, w["self_attn.q_norm.weight"].data_ptr<float>(), dim, c.norm_eps, q);
                rope(q, cp, sp, dim);
            }
            // k and v of this position into the cache [kv_heads, capacity, dim].
            KvCache& cache = runner.cache();
            float* kc = cache.k[l].data_ptr<float>();
            float* vc = cache.v[l].data_ptr<float>();
            for (std::int64_t g = 0; g < kv_heads; ++g) {
                float* k = b.k.data() + g * dim;
                if (qk_norm)
                    rms_norm_into(k, w["self_attn.k_norm.weight"].data_ptr<float>(), dim, c.norm_eps, k);
                rope(k, cp, sp, dim);
                std::copy(k, k + dim, kc + (g * cache.capacity + start) * dim);
                std::copy(b.v.data() + g * dim, b.v.data() + (g + 1) * dim, vc + (g * cache.capacity + start) * dim);
            }
            // Attention of the one query over every cached position, a head per piece of work.
            kernels::parallel_for(0, heads, 1, [&](std::int64_t h0, std::int64_t h1) {
                for (std::int64_t hd = h0; hd < h1; ++hd) {
                    const std::int64_t g = hd / groups;
                    const float* q = b.q.data() + hd * dim;
                    const float* keys = kc + g * cache.capacity * dim;
                    const float* values = vc + g * cache.capacity * dim;
                    float* s = b.scores.data() + hd * total;
                    float best = -INFINITY;
                    for (std::int64_t t = 0; t < total; ++t) {
                        float dot = 0.0f;
                        for (std::int64_t i = 0; i < dim; ++i)
                            dot += q[i] * keys[t * dim + i];
                        s[t] = dot * scale;
                        best = std::max(best, s[t]);
                    }
                    float sum = 0.0f;
                    for (std::int64_t t = 0; t < total; ++t) {
                        s[t] = std::exp(s[t] - best);
                        sum += s[t];
                    }
                    float* out = b.attn.data() + hd * dim;
                    std::fill(out, out + dim, 0.0f);
                    const float inv = 1.0f / sum;
                    for (std::int64_t t = 0; t < total; ++t) {
                        const float p = s[t] * inv;
                        for (std::int64_t i = 0; i < dim; ++i)
                            out[i] += p * values[t * dim + i];
                    }
                }
            });
            const GgufRows o[] = {rows_of(w, "self_attn.o_proj", b.x.data())};
            kernels::gguf_matmul_rows(b.attn.data(), 1, heads * dim, o, 1);
            add_bias(w, "self_attn.o_proj", b.x.data(), hidden);
            for (std::int64_t i = 0; i < hidden; ++i)
                b.h[i] += b.x[i];

            rms_norm_into(b.h.data(), w["post_attention_layernorm.weight"].data_ptr<float>(), hidden, c.norm_eps, b.x.data());
            if (c.is_moe()) {
                experts_mlp(w, c, b);
                for (std::int64_t i = 0; i < hidden; ++i)
                    b.h[i] += b.x[i];
                return;
            }
            const GgufRows gate_up[] = {rows_of(w, "mlp.gate_proj", b.gate.data()), rows_of(w, "mlp.up_proj", b.up.data())};
            kernels::gguf_matmul_rows(b.x.data(), 1, hidden, gate_up, 2);
            add_bias(w, "mlp.gate_proj", b.gate.data(), inter);
            add_bias(w, "mlp.up_proj", b.up.data(), inter);
            for (std::int64_t i = 0; i < inter; ++i) {
                const float g = b.gate[i];
                b.gate[i] = g / (1.0f + std::exp(-g)) * b.up[i];
            }
            const GgufRows down[] = {rows_of(w, "mlp.down_proj", b.x.data())};
            kernels::gguf_matmul_rows(b.gate.data(), 1, inter, down, 1);
            add_bias(w, "mlp.down_proj", b.x.data(), hidden);
            for (std::int64_t i = 0; i < hidden; ++i)
                b.h[i] += b.x[i];
        });
    }
}

} // namespace

at::Tensor llama_decode_fused(Runner& runner, const at::Tensor& ids)
{
    LoadedModel& m = runner.model();
    const ModelConfig& c = m.config;
    const std::int64_t hidden = c.hidden_size;
    const std::int64_t start = runner.position();
    if (start + 1 > runner.capacity())
        throw PlanError("the context is full (" + std::to_string(runner.capacity()) +
                        " tokens); start a new conversation or plan a longer context");
    Buffers& b = step_buffers(c, start + 1);
    const at::Tensor embedded = global_embedding(m, "model.embed_tokens", ids).to(at::kFloat).contiguous();
    std::copy(embedded.data_ptr<float>(), embedded.data_ptr<float>() + hidden, b.h.begin());
    const at::Tensor cos = runner.rotary(start, 1, at::kFloat, false).contiguous();
    const at::Tensor sin = runner.rotary(start, 1, at::kFloat, true).contiguous();
    for (std::size_t l = 0; l < m.layers.size();) {
        if (const LoadedModel::RemoteLayers* r = runner.remote_from(l)) { // a pipeline stage on another machine
            const at::Tensor h = at::from_blob(b.h.data(), {1, 1, hidden}, at::TensorOptions().dtype(at::kFloat));
            const at::Tensor out = r->forward(h, start, runner.m_sequence).to(at::kFloat).contiguous();
            std::copy(out.data_ptr<float>(), out.data_ptr<float>() + hidden, b.h.begin());
            l = r->end;
            continue;
        }
        std::size_t stop = l + 1;
        while (stop < m.layers.size() && !runner.remote_from(stop))
            ++stop;
        fused_layers(runner, b, l, stop, start, cos.data_ptr<float>(), sin.data_ptr<float>());
        l = stop;
    }
    rms_norm_into(b.h.data(), m.global("model.norm.weight").data_ptr<float>(), hidden, c.norm_eps, b.x.data());
    const at::Tensor x = at::from_blob(b.x.data(), {1, 1, hidden}, at::TensorOptions().dtype(at::kFloat));
    return global_linear(m, "lm_head", x);
}

at::Tensor llama_decode_fused_layers(Runner& runner, const at::Tensor& hidden, std::size_t begin, std::size_t end, std::int64_t start)
{
    const ModelConfig& c = runner.model().config;
    Buffers& b = step_buffers(c, start + 1);
    const at::Tensor in = hidden.to(at::kFloat).contiguous();
    std::copy(in.data_ptr<float>(), in.data_ptr<float>() + c.hidden_size, b.h.begin());
    const at::Tensor cos = runner.rotary(start, 1, at::kFloat, false).contiguous();
    const at::Tensor sin = runner.rotary(start, 1, at::kFloat, true).contiguous();
    fused_layers(runner, b, begin, end, start, cos.data_ptr<float>(), sin.data_ptr<float>());
    return at::from_blob(b.h.data(), {1, 1, c.hidden_size}, at::TensorOptions().dtype(at::kFloat)).clone();
}

} // namespace layerwise
