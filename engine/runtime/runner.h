#pragma once
// Runs a loaded model: prefill and decode steps with a KV cache, layer by layer on their
// devices. Disk layers are prefetched one layer ahead (madvise WILLNEED) and released after
// use, so a model larger than the RAM it may use still runs.
#include "model/arch.h"
#include "runtime/loaded_model.h"
#include "runtime/offload.h"

#include <ATen/core/Tensor.h>
#include <algorithm>
#include <functional>
#include <optional>

namespace layerwise {

struct KvCache {
    std::vector<at::Tensor> k, v; // [batch, kv_heads, capacity, head_dim] per layer
    std::int64_t length = 0;
    std::int64_t capacity = 0;
};

// The caches of several sequences in one tensor per layer (batch = slots), so that a step over
// many of them writes and reads each layer's keys and values in one operation. Slot i's own
// KvCache (slot_view) is a view of row i.
struct KvPool {
    KvCache storage;                 // storage.length unused
    std::vector<KvCache> slots;      // the views, each with its own length
};

// Appends k, v [batch, kv_heads, n, head_dim] at the cache's current length to `layer`'s entry;
// returns the cached keys and values up to and including them. PlanError when the cache is full.
std::pair<at::Tensor, at::Tensor> append_kv(KvCache& cache, std::size_t layer, const at::Tensor& k, const at::Tensor& v);

// Sees the input of every linear a decoder layer runs (module name local to the layer,
// "self_attn.q_proj"), before the linear runs: GPTQ calibration collects its statistics here.
using LinearObserver = std::function<void(const std::string& module, const at::Tensor& input)>;

// How a layer attends, beyond the plain causal softmax(q k / sqrt(d)).
struct AttentionOptions {
    double scale = 1.0;
    double softcap = 0.0;    // scores become tanh(score / softcap) * softcap before the mask (Gemma 2); 0: none
    std::int64_t window = 0; // a query sees its last `window` positions only, itself included; 0: all
    // gpt-oss's attention sinks [heads]: one more logit per head in each softmax, whose share
    // of the probability goes to no value (transformers' eager_attention_forward). Undefined: none.
    at::Tensor sinks;
};

// One forward over `tokens` new positions from `start`: what an architecture's embed, decoder
// layer and head functions (Architecture, model/arch.h) read.
struct ForwardStep {
    const LoadedModel& model;          // config and the tensors outside decoder layers (globals)
    at::Device exec;                   // where hidden states start and offloaded layers run
    std::int64_t batch = 1;
    std::int64_t tokens = 0;
    std::int64_t start = 0;            // position of the first new token
    at::Tensor cos, sin;               // rotary factors [tokens, rotary_dim] on exec (rotary architectures)
    KvCache* cache = nullptr;          // nullptr: each layer attends over its own keys and values only
    const LinearObserver* observe = nullptr;
    // Several sequences decoded together (continuous batching): row b's own cache, at its own
    // position (rows[b]->length before the step). tokens is 1 and `cache` null then.
    std::vector<KvCache*> rows;
    // With rows from one pool: the pool and each row's slot in it (one gather per layer).
    KvPool* pool = nullptr;
    std::vector<std::int64_t> pool_slots;
    at::Tensor slot_ids, row_positions; // pool_slots and the rows' lengths as int64 [rows], made once a step

    const ModelConfig& config() const { return model.config; }
    // The keys and values layer `layer` attends over: the cache with k, v appended, or k, v themselves.
    std::pair<at::Tensor, at::Tensor> keys_values(std::size_t layer, const at::Tensor& k, const at::Tensor& v) const;
    // Appends k, v [batch, kv_heads, tokens, head_dim] and returns the attention of q [batch,
    // heads, tokens, head_dim] over what each row may see (its own cache with batched rows).
    at::Tensor attend(std::size_t layer, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale) const;
    // The same with a soft cap or a local window.
    at::Tensor attend(std::size_t layer, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                      const AttentionOptions& options) const;
    at::Tensor attend_pooled(std::size_t layer, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                             const AttentionOptions& options) const;
    // The position of each new token: int64 [1, tokens], or [batch, 1] with batched rows.
    at::Tensor positions() const;
    // Tells the observer (if any) that `module` runs on `x`.
    void observe_input(const std::string& module, const at::Tensor& x) const;
    // layer_linear / layer_linears, observed.
    at::Tensor linear(const LayerWeights& w, const std::string& module, const at::Tensor& x) const;
    std::vector<at::Tensor> linears(const LayerWeights& w, const std::vector<std::string>& modules, const at::Tensor& x) const;
};

class Runner {
public:
    Runner(LoadedModel& model, std::int64_t max_context, std::int64_t batch = 1);

    // ids: int64 [batch, n]. Returns float32 logits [batch, n, vocab] (all_positions) or [batch, 1, vocab].
    at::Tensor forward(const at::Tensor& ids, bool all_positions = false);
    // Batched rows (continuous batching): ids [batch, 1], row b continuing the sequence held in
    // caches[b] (each made by make_cache()); ids [1, n] with one cache prefills it. Returns
    // float32 logits [batch, 1, vocab]; each cache grows by its new tokens.
    // With `pool`, every cache is one of its slots (pool->slots[pool_slots[b]]).
    at::Tensor forward_rows(const std::vector<KvCache*>& caches, const at::Tensor& ids, KvPool* pool = nullptr,
                            const std::vector<std::int64_t>& pool_slots = {});
    // An empty cache of this runner's capacity for one sequence, on the layers' devices.
    KvCache make_cache() const;
    // A pipeline stage's share of a step (engine/remote/): hidden states [batch, n, hidden] of
    // positions start..start+n through decoder layers [begin, end), with this runner's cache (its
    // positions from `start` on are replaced). The hidden states after layer end - 1.
    at::Tensor forward_layers(const at::Tensor& hidden, std::size_t begin, std::size_t end, std::int64_t start);
    // The same over another cache than the runner's own (one of a batch's sequences).
    at::Tensor forward_layers(const at::Tensor& hidden, std::size_t begin, std::size_t end, std::int64_t start, KvCache& cache);
    // The same for batched rows: hidden [rows, 1, hidden], row b continuing caches[b] at its
    // length (each grows by one).
    at::Tensor forward_layers_rows(const at::Tensor& hidden, std::size_t begin, std::size_t end, const std::vector<KvCache*>& caches);
    // `slots` such caches in one pool.
    KvPool make_pool(std::size_t slots) const;
    void reset() { m_cache.length = 0; }
    // Forgets the cache past `length` tokens (a conversation that keeps its prefix).
    void rewind(std::int64_t length) { m_cache.length = std::clamp<std::int64_t>(length, 0, m_cache.length); }
    std::int64_t position() const { return m_cache.length; }
    std::int64_t capacity() const { return m_cache.capacity; }
    LoadedModel& model() { return m_model; }
    const Architecture& architecture() const { return *m_arch; }
    // GPU runs with CPU-offloaded layers: copy the next offloaded layer while one computes (the
    // default), or each one when it is needed (for comparison).
    void set_prefetch(bool on);
    bool prefetching() const { return m_streamer && m_streamer->prefetching(); }

    // Decode steps of llama-family GGUF models on the CPU run as one fused step
    // (decode_fused.cpp) when the model allows it; off: always the LibTorch path (for comparison).
    void set_fused_decode(bool on) { m_fused = on; }
    bool fused_decode_ready();

    // Internals the per-architecture forwards use.
    template <typename F>
    void run_layer(std::size_t index, F&& body);
    // cos (or sin) of the rotary embedding for positions start..start+n, in `dtype`.
    at::Tensor rotary(std::int64_t start, std::int64_t n, at::ScalarType dtype, bool sin) const;
    KvCache& cache() { return m_cache; }
    at::Device execution_device() const { return m_exec; }
    // Appends k, v [batch, kv_heads, n, head_dim] at the current position; returns the cached views.
    std::pair<at::Tensor, at::Tensor> append_kv(std::size_t layer, const at::Tensor& k, const at::Tensor& v);

    // The pieces of forward(): a step over `ids` at the current position (with this runner's
    // cache), its rotary factors in `dtype`, and embed -> every layer -> head without the cache
    // length advancing (forward() advances it).
    ForwardStep begin_step(const at::Tensor& ids);
    const LoadedModel::RemoteLayers* remote_from(std::size_t layer) const; // the remote stage starting at `layer`
    std::size_t m_run_end = static_cast<std::size_t>(-1); // forward_layers: the end of this stage's layers
    // Batched rows over remote stages that follow all of this machine's layers, in micro-batches
    // (forward_rows_pipelined): the first remote decoder layer, or nullopt for another layout.
    std::optional<std::size_t> pipelined_from() const;
    at::Tensor forward_rows_pipelined(const std::vector<KvCache*>& caches, const at::Tensor& ids, KvPool* pool,
                                      const std::vector<std::int64_t>& pool_slots, std::size_t first_remote);
    std::int64_t m_sequence = 0; // the cache a step continues, as pipeline stages elsewhere know it (0: m_cache)
    // Each row's rotary angles at its own length (batched rows).
    void set_row_rotary(ForwardStep& step, const std::vector<KvCache*>& caches, at::ScalarType dtype);
    void set_rotary(ForwardStep& step, at::ScalarType dtype) const;
    at::Tensor run_forward(const at::Tensor& ids, bool all_positions);

private:
    void update_rope(std::int64_t seq_len);
    at::Tensor inv_freq_for_length(std::int64_t seq_len);
    at::Tensor forward_batched_rows(const std::vector<KvCache*>& caches, const at::Tensor& ids, KvPool* pool,
                                    const std::vector<std::int64_t>& pool_slots);
    KvCache allocate_cache(std::int64_t batch, std::int64_t capacity, bool zeroed = false) const;
    void prefetch(std::size_t layer) const;
    void release(std::size_t layer) const;

    LoadedModel& m_model;
    const Architecture* m_arch;
    KvCache m_cache;
    at::Tensor m_inv_freq;          // what this forward rotates with
    at::Tensor m_inv_freq_original; // dynamic / longrope: the frequencies they start from
    at::Tensor m_inv_freq_long;     // longrope beyond the original context
    std::int64_t m_rope_cached_length = 0;
    double m_rope_scaling = 1.0;
    at::Device m_exec;
    std::unique_ptr<LayerStreamer> m_streamer; // GPU runs that have offloaded layers
    bool m_fused = true;
    std::optional<bool> m_fused_applies; // decided once per runner
};

// The architecture of a config: UnsupportedError naming the supported ones when unknown.
const Architecture& architecture_of(const ModelConfig& config);

// The fused CPU decode step of architectures with the llama layout (ArchQuirks::fused_decode;
// GGUF block linears, float32, one sequence, one token): whether a loaded model can take it,
// and the step itself ([1, 1, vocab] logits).
bool llama_decode_fused_applies(const LoadedModel& m);
at::Tensor llama_decode_fused(Runner& runner, const at::Tensor& ids);
// A pipeline stage's share of such a step: hidden [1, 1, hidden] through layers [begin, end) at
// position `start` (the runner's cache); the hidden state after them.
at::Tensor llama_decode_fused_layers(Runner& runner, const at::Tensor& hidden, std::size_t begin, std::size_t end, std::int64_t start);

// Shared pieces.
// inv_freq (float32 [rotary_dim / 2]) and the cos/sin factor of the config's rope type.
// `seq_len`: the length dynamic / longrope types adapt to (0: the one they start with).
at::Tensor rope_inv_freq(const ModelConfig& config, std::int64_t seq_len = 0);
double rope_attention_scaling(const ModelConfig& config);
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);
at::Tensor rotary_cos_sin(const at::Tensor& inv_freq, std::int64_t start, std::int64_t n, at::ScalarType dtype, bool sin,
                          double scaling = 1.0);
// The same factors at given positions (int64 [m]): [m, rotary_dim].
at::Tensor rotary_cos_sin_at(const at::Tensor& inv_freq, const at::Tensor& positions, at::ScalarType dtype, bool sin,
                             double scaling = 1.0);
// x [batch, heads, n, head_dim] rotated by cos/sin [n, rotary_dim] (rotate_half); a rotary_dim
// below head_dim rotates the first rotary_dim dimensions only (partial rotary).
at::Tensor apply_rotary(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);
// The same rotation with each rotated pair adjacent (2i, 2i + 1) instead of (i, i + dim / 2): the
// row order llama.cpp's converter gives llama's q/k projections.
at::Tensor apply_rotary_pairs(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);
at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale);
// Attention of queries at absolute positions `query_positions` (int64 [b or 1, n]) over keys at
// positions 0..total-1, causal, with the options' soft cap and window; softmax in float32.
at::Tensor attention_at(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const AttentionOptions& options,
                        const at::Tensor& query_positions);
// Attention with an explicit mask (bool, true: may attend), broadcast over [b, heads, n, total].
at::Tensor attention_masked(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& mask, double scale);
at::Tensor activation(const at::Tensor& x, const std::string& hidden_act);
// x @ W.T + b of the layer's `name`.weight / `name`.bias (bias optional).
at::Tensor layer_linear(const LayerWeights& w, const std::string& name, const at::Tensor& x);
// Several linears of one layer over the same input (q/k/v, gate/up): GGUF block weights on the
// CPU run as one group (the input quantized once, one parallel pass); anything else one by one.
std::vector<at::Tensor> layer_linears(const LayerWeights& w, const std::vector<std::string>& names, const at::Tensor& x);
// The model-level embedding lookup and output head (`module` is "model.embed_tokens",
// "lm_head"...): plain tensors, or GGUF blocks that decode only the rows looked up and run the
// head on the block kernels.
at::Tensor global_embedding(const LoadedModel& m, const std::string& module, const at::Tensor& ids);
at::Tensor global_linear(const LoadedModel& m, const std::string& module, const at::Tensor& x);
// The output of GPT-2-like models: the final LayerNorm `norm` (its weight and bias), then lm_head.
at::Tensor layer_norm_head(const LoadedModel& m, const std::string& norm, double eps, const at::Tensor& hidden_states);

template <typename F>
void Runner::run_layer(std::size_t index, F&& body)
{
    LayerWeights& layer = m_model.layers[index];
    // The next layer's bytes are asked for ahead, unless it runs elsewhere (a pipeline stage:
    // another machine's, or past this stage's end), whose weights here must stay unread.
    if (index + 1 < std::min(m_model.layers.size(), m_run_end) && !remote_from(index + 1)) {
        prefetch(index + 1);
        if (m_model.on_layer_state && m_model.layers[index + 1].home.kind == Device::Kind::disk)
            m_model.on_layer_state(static_cast<int>(index + 1), LayerState::streaming_in);
    }
    if (m_streamer && !layer.home.is_gpu()) {
        // Offloaded layer on a GPU run: its weights come over for this step only (already on
        // their way when the previous offloaded layer ran).
        if (m_model.on_layer_state)
            m_model.on_layer_state(static_cast<int>(index), LayerState::streaming_in);
        const LayerWeights& streamed = m_streamer->acquire(index);
        if (m_model.on_layer_state)
            m_model.on_layer_state(static_cast<int>(index), LayerState::computing);
        body(streamed);
        m_streamer->release(index);
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
