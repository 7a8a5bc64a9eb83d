#pragma once
// Runs a loaded model: prefill and decode steps with a KV cache, layer by layer on their
// devices. Disk layers are prefetched one layer ahead (madvise WILLNEED) and released after
// use, so a model larger than the RAM it may use still runs.
#include "runtime/loaded_model.h"

#include <ATen/core/Tensor.h>
#include <algorithm>

namespace layerwise {

struct KvCache {
    std::vector<at::Tensor> k, v; // [batch, kv_heads, capacity, head_dim] per layer
    std::int64_t length = 0;
    std::int64_t capacity = 0;
};

class Runner {
public:
    Runner(LoadedModel& model, std::int64_t max_context, std::int64_t batch = 1);

    // ids: int64 [batch, n]. Returns float32 logits [batch, n, vocab] (all_positions) or [batch, 1, vocab].
    at::Tensor forward(const at::Tensor& ids, bool all_positions = false);
    void reset() { m_cache.length = 0; }
    // Forgets the cache past `length` tokens (a conversation that keeps its prefix).
    void rewind(std::int64_t length) { m_cache.length = std::clamp<std::int64_t>(length, 0, m_cache.length); }
    std::int64_t position() const { return m_cache.length; }
    std::int64_t capacity() const { return m_cache.capacity; }
    LoadedModel& model() { return m_model; }

    // Internals the per-architecture forwards use.
    template <typename F>
    void run_layer(std::size_t index, F&& body);
    // cos (or sin) of the rotary embedding for positions start..start+n, in `dtype`.
    at::Tensor rotary(std::int64_t start, std::int64_t n, at::ScalarType dtype, bool sin) const;
    KvCache& cache() { return m_cache; }
    at::Device execution_device() const { return m_exec; }
    // Appends k, v [batch, kv_heads, n, head_dim] at the current position; returns the cached views.
    std::pair<at::Tensor, at::Tensor> append_kv(std::size_t layer, const at::Tensor& k, const at::Tensor& v);

private:
    void prefetch(std::size_t layer) const;
    void release(std::size_t layer) const;

    LoadedModel& m_model;
    KvCache m_cache;
    at::Tensor m_inv_freq;
    double m_rope_scaling = 1.0;
    at::Device m_exec;
};

// Per-architecture forwards (engine/runtime/forward_<family>.cpp). Hidden states in, logits out.
at::Tensor llama_forward(Runner& runner, const at::Tensor& ids, bool all_positions);
at::Tensor gpt2_forward(Runner& runner, const at::Tensor& ids, bool all_positions);
at::Tensor gpt_neox_forward(Runner& runner, const at::Tensor& ids, bool all_positions);

// Shared pieces.
// inv_freq (float32 [rotary_dim / 2]) and the cos/sin factor of the config's rope type.
at::Tensor rope_inv_freq(const ModelConfig& config);
double rope_attention_scaling(const ModelConfig& config);
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);
at::Tensor rotary_cos_sin(const at::Tensor& inv_freq, std::int64_t start, std::int64_t n, at::ScalarType dtype, bool sin,
                          double scaling = 1.0);
at::Tensor apply_rotary(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);
at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale);
at::Tensor activation(const at::Tensor& x, const std::string& hidden_act);
// x @ W.T + b of the layer's `name`.weight / `name`.bias (bias optional).
at::Tensor layer_linear(const LayerWeights& w, const std::string& name, const at::Tensor& x);

template <typename F>
void Runner::run_layer(std::size_t index, F&& body)
{
    LayerWeights& layer = m_model.layers[index];
    if (index + 1 < m_model.layers.size()) {
        prefetch(index + 1);
        if (m_model.on_layer_state && m_model.layers[index + 1].home.kind == Device::Kind::disk)
            m_model.on_layer_state(static_cast<int>(index + 1), LayerState::streaming_in);
    }
    if (m_exec.is_cuda() && !layer.home.is_gpu()) {
        // Offloaded layer on a GPU run: its weights come over for this step only.
        if (m_model.on_layer_state)
            m_model.on_layer_state(static_cast<int>(index), LayerState::streaming_in);
        LayerWeights streamed;
        streamed.home = layer.home;
        streamed.quant = layer.quant;
        for (const auto& [name, t] : layer.tensors)
            streamed.tensors.emplace(name, t.to(m_exec, /*non_blocking=*/true));
        if (m_model.on_layer_state)
            m_model.on_layer_state(static_cast<int>(index), LayerState::computing);
        body(static_cast<const LayerWeights&>(streamed));
    } else {
        if (m_model.on_layer_state)
            m_model.on_layer_state(static_cast<int>(index), LayerState::computing);
        body(static_cast<const LayerWeights&>(layer));
    }
    if (layer.home.kind == Device::Kind::disk)
        release(index);
    if (m_model.on_layer_state)
        m_model.on_layer_state(static_cast<int>(index),
                               layer.home.kind == Device::Kind::disk ? LayerState::evicted : LayerState::resident);
}

} // namespace layerwise
