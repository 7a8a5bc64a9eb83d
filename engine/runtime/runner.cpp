#include "runtime/runner.h"

#include "runtime/out_of_memory.h"

#include "checkpoint/tensor_view.h"
#include "core/error.h"
#include "quant/quant_linear.h"

#include "gguf_linear.h"

#include <ATen/ATen.h>
#include <cmath>
#include <limits>

namespace layerwise {

namespace {

// longrope's per-pair divisors, checked against the rotary dimension.
at::Tensor longrope_factors(const ModelConfig& c, bool long_context)
{
    const std::vector<double>& f = long_context ? c.rope.long_factor : c.rope.short_factor;
    if (static_cast<std::int64_t>(f.size()) != c.rotary_dim() / 2)
        throw FormatError("config.json: longrope's " + std::string(long_context ? "long_factor" : "short_factor") + " has " +
                          std::to_string(f.size()) + " values but the rotary dimension " + std::to_string(c.rotary_dim()) +
                          " needs " + std::to_string(c.rotary_dim() / 2) + " (one per dimension pair)");
    return at::tensor(f, at::kDouble).to(at::kFloat);
}

// A dense linear. Decode (at most four rows) with float16 / bfloat16 weights on the CPU goes
// through the block kernels' float formats, whose layout is the same row-major array: four
// weight rows streamed at once with prefetch, products in float32. LibTorch's one-row product
// on these types reached about 55 % of the memory-bandwidth bound on a Llama-3.2-1B shape
// (docs/benchmarks.md); everything else stays with at::linear.
at::Tensor dense_linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias)
{
    const bool half = w.scalar_type() == at::kBFloat16 || w.scalar_type() == at::kHalf;
    if (half && w.is_cpu() && x.is_cpu() && w.dim() == 2 && w.is_contiguous() && x.dim() >= 1 && x.size(-1) == w.size(1) &&
        x.numel() <= 4 * w.size(1) && x.numel() > 0 && (x.scalar_type() == at::kFloat || x.scalar_type() == w.scalar_type())) {
        const auto type = w.scalar_type() == at::kBFloat16 ? kernels::GgmlType::BF16 : kernels::GgmlType::F16;
        at::Tensor y = kernels::gguf_linear(x, w.view(at::kByte), type, w.size(1));
        return bias.defined() ? y + bias : y;
    }
    return at::linear(x, w, bias);
}

} // namespace

// inv_freq as transformers computes it for each rope type (float32). `seq_len`: the length
// the dynamic types adapt to (0: the one they start with).
at::Tensor rope_inv_freq(const ModelConfig& c, std::int64_t seq_len)
{
    const std::int64_t dim = c.rotary_dim();
    const at::Tensor exponents = at::arange(0, dim, 2, at::kLong).to(at::kFloat) / static_cast<double>(dim);
    if (c.rope.type == "dynamic" && c.rope.freq_factors.empty() && seq_len > 0) {
        // NTK-aware: a larger base once the sequence outgrows max_position_embeddings; float32
        // throughout, as transformers computes it from the position tensor.
        const double max_pos = static_cast<double>(c.max_position_embeddings);
        const at::Tensor seq = at::scalar_tensor(std::max<double>(static_cast<double>(seq_len), max_pos), at::kFloat);
        const at::Tensor base =
            c.rope.theta * at::pow(c.rope.factor * seq / max_pos - (c.rope.factor - 1), static_cast<double>(dim) / static_cast<double>(dim - 2));
        return 1.0 / at::pow(base, exponents);
    }
    if (c.rope.type == "longrope" && c.rope.freq_factors.empty()) {
        const bool long_context = seq_len > c.rope.original_max_position_embeddings;
        return 1.0 / (longrope_factors(c, long_context) * at::pow(c.rope.theta, exponents));
    }
    at::Tensor inv = 1.0 / at::pow(c.rope.theta, exponents);
    inv = inv.to(at::kFloat);
    if (!c.rope.freq_factors.empty())
        return inv / at::tensor(c.rope.freq_factors, at::kFloat);
    if (c.rope.type == "default" || c.rope.type == "dynamic") // dynamic starts from the default
        return inv;
    if (c.rope.type == "linear")
        return inv / c.rope.factor;
    if (c.rope.type == "llama3") {
        const double factor = c.rope.factor, low = c.rope.low_freq_factor, high = c.rope.high_freq_factor;
        const double old_ctx = static_cast<double>(c.rope.original_max_position_embeddings);
        const double low_wavelen = old_ctx / low, high_wavelen = old_ctx / high;
        const at::Tensor wavelen = 2 * M_PI / inv;
        at::Tensor scaled = at::where(wavelen > low_wavelen, inv / factor, inv);
        const at::Tensor smooth = (old_ctx / wavelen - low) / (high - low);
        const at::Tensor smoothed = (1 - smooth) * scaled / factor + smooth * scaled;
        const at::Tensor medium = at::logical_not(wavelen < high_wavelen).logical_and(at::logical_not(wavelen > low_wavelen));
        return at::where(medium, smoothed, scaled);
    }
    if (c.rope.type == "yarn") {
        // Interpolated (inv / factor) below the low-frequency boundary, extrapolated (inv) above the
        // high one, a linear ramp between; the boundaries are the dimensions whose wavelength turns
        // beta_fast / beta_slow times over the original context.
        const double base = c.rope.theta, old_ctx = static_cast<double>(c.rope.original_max_position_embeddings);
        const auto correction_dim = [&](double rotations) {
            return (static_cast<double>(dim) * std::log(old_ctx / (rotations * 2 * M_PI))) / (2 * std::log(base));
        };
        double low = correction_dim(c.rope.beta_fast), high = correction_dim(c.rope.beta_slow);
        if (c.rope.truncate) {
            low = std::floor(low);
            high = std::ceil(high);
        }
        low = std::max(low, 0.0);
        high = std::min(high, static_cast<double>(dim - 1));
        if (low == high)
            high += 0.001;
        const at::Tensor ramp = ((at::arange(dim / 2, at::kFloat) - low) / (high - low)).clamp(0, 1);
        const at::Tensor extrapolation = 1 - ramp;
        return (inv / c.rope.factor) * (1 - extrapolation) + inv * extrapolation;
    }
    throw UnsupportedError("rope type '" + c.rope.type +
                           "' is planned but not run yet (supported at run time: default, linear, dynamic, llama3, yarn, longrope)");
}

// The factor transformers applies to cos and sin (yarn's attention scaling; 1 otherwise).
double rope_attention_scaling(const ModelConfig& c)
{
    if (c.rope.type == "longrope") {
        if (c.rope.attention_factor)
            return *c.rope.attention_factor;
        const double original = static_cast<double>(c.rope.original_max_position_embeddings);
        const double factor = c.rope.factor_given ? c.rope.factor : static_cast<double>(c.max_position_embeddings) / original;
        return factor <= 1.0 ? 1.0 : std::sqrt(1.0 + std::log(factor) / std::log(original));
    }
    if (c.rope.type != "yarn")
        return 1.0;
    if (c.rope.attention_factor)
        return *c.rope.attention_factor;
    const auto mscale = [](double scale, double m) { return scale <= 1 ? 1.0 : 0.1 * m * std::log(scale) + 1.0; };
    if (c.rope.mscale != 0 && c.rope.mscale_all_dim != 0)
        return mscale(c.rope.factor, c.rope.mscale) / mscale(c.rope.factor, c.rope.mscale_all_dim);
    return mscale(c.rope.factor, 1.0);
}

Runner::Runner(LoadedModel& model, std::int64_t max_context, std::int64_t batch)
    : m_model(model), m_arch(&architecture_of(model.config)), m_exec(model.execution_device.is_gpu()
                                 ? at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(model.execution_device.index))
                                 : at::Device(at::kCPU))
{
    const ModelConfig& c = model.config;
    if (max_context <= 0)
        throw PlanError("the context must hold at least one token");
    m_cache = allocate_cache(batch, max_context);
    if (m_arch->quirks.rotary) {
        m_inv_freq = m_inv_freq_original = rope_inv_freq(c);
        m_rope_scaling = rope_attention_scaling(c);
        m_rope_cached_length = c.max_position_embeddings;
    }
    set_prefetch(true);
}

KvCache Runner::allocate_cache(std::int64_t batch, std::int64_t capacity, bool zeroed) const
{
    const ModelConfig& c = m_model.config;
    KvCache cache;
    cache.capacity = capacity;
    const auto dtype = at::TensorOptions().dtype(scalar_type(m_model.dtype)); // quantized weights compute in it too
    for (std::size_t l = 0; l < m_model.layers.size(); ++l) {
        if (std::any_of(m_model.remote.begin(), m_model.remote.end(), [&](const auto& r) { return r.begin <= l && l < r.end; })) {
            cache.k.emplace_back(); // a pipeline stage elsewhere keeps this layer's keys and values
            cache.v.emplace_back();
            continue;
        }
        const LayerWeights& lw = m_model.layers[l];
        const at::Device where = lw.home.is_gpu() ? at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(lw.home.index)) : m_exec;
        translating_out_of_memory("the KV cache of layer " + std::to_string(l) + " (" + std::to_string(capacity) + " tokens)",
                                  where.str(), [&] {
            const std::vector<std::int64_t> shape{batch, c.num_kv_heads, capacity, c.head_dim};
            cache.k.push_back(zeroed ? at::zeros(shape, dtype.device(where)) : at::empty(shape, dtype.device(where)));
            cache.v.push_back(zeroed ? at::zeros(shape, dtype.device(where)) : at::empty(shape, dtype.device(where)));
        });
    }
    return cache;
}

KvCache Runner::make_cache() const { return allocate_cache(1, m_cache.capacity); }

KvPool Runner::make_pool(std::size_t slots) const
{
    KvPool pool;
    // Zeroed: a pooled step reads every row up to the longest and masks the rest, and masked
    // positions must hold finite numbers (a NaN times a zero weight is still NaN).
    pool.storage = allocate_cache(static_cast<std::int64_t>(slots), m_cache.capacity, true);
    for (std::size_t i = 0; i < slots; ++i) {
        KvCache view;
        view.capacity = m_cache.capacity;
        for (std::size_t l = 0; l < pool.storage.k.size(); ++l) {
            if (!pool.storage.k[l].defined()) { // a layer another pipeline stage runs
                view.k.emplace_back();
                view.v.emplace_back();
                continue;
            }
            view.k.push_back(pool.storage.k[l].narrow(0, static_cast<std::int64_t>(i), 1));
            view.v.push_back(pool.storage.v[l].narrow(0, static_cast<std::int64_t>(i), 1));
        }
        pool.slots.push_back(std::move(view));
    }
    return pool;
}

void Runner::set_prefetch(bool on)
{
    const bool offloaded = std::any_of(m_model.layers.begin(), m_model.layers.end(), [](const LayerWeights& l) { return !l.home.is_gpu(); });
    if (m_exec.is_cuda() && offloaded)
        m_streamer = std::make_unique<LayerStreamer>(m_model, m_exec, on);
}

void Runner::update_rope(std::int64_t seq_len)
{
    // transformers' dynamic_rope_update, called with the longest position of each forward.
    const ModelConfig& c = m_model.config;
    if (!c.rope.freq_factors.empty())
        return;
    if (c.rope.type == "dynamic") {
        const std::int64_t cached = m_rope_cached_length;
        if (seq_len > cached) { // growth: frequencies for the longer sequence
            m_inv_freq = rope_inv_freq(c, seq_len);
            m_rope_cached_length = seq_len;
        }
        if (seq_len < c.max_position_embeddings && cached > c.max_position_embeddings) { // back within the original scale
            m_inv_freq = m_inv_freq_original;
            m_rope_cached_length = c.max_position_embeddings;
        }
    } else if (c.rope.type == "longrope") {
        if (seq_len > c.rope.original_max_position_embeddings) {
            if (!m_inv_freq_long.defined())
                m_inv_freq_long = rope_inv_freq(c, c.rope.original_max_position_embeddings + 1);
            m_inv_freq = m_inv_freq_long;
        } else {
            m_inv_freq = m_inv_freq_original;
        }
    }
}

at::Tensor Runner::inv_freq_for_length(std::int64_t seq_len)
{
    // What update_rope() gives a single sequence that has grown to seq_len.
    const ModelConfig& c = m_model.config;
    if (!c.rope.freq_factors.empty())
        return m_inv_freq_original;
    if (c.rope.type == "dynamic" && seq_len > c.max_position_embeddings)
        return rope_inv_freq(c, seq_len);
    if (c.rope.type == "longrope" && seq_len > c.rope.original_max_position_embeddings) {
        if (!m_inv_freq_long.defined())
            m_inv_freq_long = rope_inv_freq(c, c.rope.original_max_position_embeddings + 1);
        return m_inv_freq_long;
    }
    return m_inv_freq_original;
}

bool Runner::fused_decode_ready()
{
    if (!m_fused)
        return false;
    if (!m_fused_applies)
        m_fused_applies = m_arch->quirks.fused_decode && !m_streamer && llama_decode_fused_applies(m_model);
    return *m_fused_applies;
}

at::Tensor Runner::rotary(std::int64_t start, std::int64_t n, at::ScalarType dtype, bool sin) const
{
    return rotary_cos_sin(m_inv_freq, start, n, dtype, sin, m_rope_scaling);
}

std::pair<at::Tensor, at::Tensor> append_kv(KvCache& cache, std::size_t layer, const at::Tensor& k, const at::Tensor& v)
{
    const std::int64_t n = k.size(2);
    const std::int64_t start = cache.length;
    if (start + n > cache.capacity)
        throw PlanError("the context is full (" + std::to_string(cache.capacity) + " tokens); start a new conversation or plan a longer context");
    at::Tensor& ck = cache.k[layer];
    at::Tensor& cv = cache.v[layer];
    ck.narrow(2, start, n).copy_(k);
    cv.narrow(2, start, n).copy_(v);
    return {ck.narrow(2, 0, start + n), cv.narrow(2, 0, start + n)};
}

std::pair<at::Tensor, at::Tensor> Runner::append_kv(std::size_t layer, const at::Tensor& k, const at::Tensor& v)
{
    return layerwise::append_kv(m_cache, layer, k, v);
}

std::pair<at::Tensor, at::Tensor> ForwardStep::keys_values(std::size_t layer, const at::Tensor& k, const at::Tensor& v) const
{
    if (!cache)
        return {k, v};
    return append_kv(*cache, layer, k, v);
}

at::Tensor ForwardStep::attend(std::size_t layer, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale) const
{
    AttentionOptions o;
    o.scale = scale;
    return attend(layer, q, k, v, o);
}

at::Tensor ForwardStep::attend(std::size_t layer, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                               const AttentionOptions& options) const
{
    const bool plain = options.softcap == 0.0 && options.window == 0 && !options.sinks.defined();
    if (pool)
        return attend_pooled(layer, q, k, v, options);
    if (rows.empty()) {
        auto [keys, values] = keys_values(layer, k, v);
        if (plain)
            return attention(q, keys.to(q.device()), values.to(q.device()), options.scale);
        const std::int64_t total = keys.size(2);
        const at::Tensor at_pos = at::arange(total - tokens, total, at::TensorOptions().dtype(at::kLong).device(q.device())).unsqueeze(0);
        return attention_at(q, keys.to(q.device()), values.to(q.device()), options, at_pos);
    }
    // Each row attends over its own sequence: appended to its cache, then one attention each.
    std::vector<at::Tensor> out;
    out.reserve(rows.size());
    for (std::size_t b = 0; b < rows.size(); ++b) {
        const auto i = static_cast<std::int64_t>(b);
        KvCache& row = *rows[b];
        const std::int64_t start = row.length;
        row.k[layer].narrow(2, start, 1).copy_(k.narrow(0, i, 1));
        row.v[layer].narrow(2, start, 1).copy_(v.narrow(0, i, 1));
        const at::Tensor keys = row.k[layer].narrow(2, 0, start + 1).to(q.device());
        const at::Tensor values = row.v[layer].narrow(2, 0, start + 1).to(q.device());
        out.push_back(plain ? attention(q.narrow(0, i, 1), keys, values, options.scale)
                            : attention_at(q.narrow(0, i, 1), keys, values, options,
                                           at::full({1, 1}, start, at::TensorOptions().dtype(at::kLong).device(q.device()))));
    }
    return at::cat(out, 0);
}

at::Tensor ForwardStep::attend_pooled(std::size_t layer, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                      const AttentionOptions& options) const
{
    // Rows from one pool: every row's new key and value written in one indexed store, the rows'
    // caches gathered up to the longest, and one attention with each row masked to its length.
    using at::indexing::Slice;
    at::Tensor pk = pool->storage.k[layer];
    at::Tensor pv = pool->storage.v[layer];
    std::int64_t longest = 0;
    for (const KvCache* row : rows)
        longest = std::max(longest, row->length + 1);
    const at::Tensor slots = slot_ids.to(pk.device());
    const at::Tensor pos = row_positions.to(pk.device());
    pk.index_put_({slots, Slice(), pos}, k.squeeze(2).to(pk.device()));
    pv.index_put_({slots, Slice(), pos}, v.squeeze(2).to(pv.device()));
    const at::Tensor keys = pk.narrow(2, 0, longest).index_select(0, slots).to(q.device());
    const at::Tensor values = pv.narrow(2, 0, longest).index_select(0, slots).to(q.device());
    // Each row sees its own positions up to its length (beyond: another sequence's leftovers).
    return attention_at(q, keys, values, options, pos.unsqueeze(1).to(q.device()));
}

at::Tensor ForwardStep::positions() const
{
    if (rows.empty())
        return at::arange(start, start + tokens, at::kLong).unsqueeze(0);
    std::vector<std::int64_t> at_row;
    for (const KvCache* row : rows)
        at_row.push_back(row->length);
    return at::tensor(at_row, at::kLong).unsqueeze(1);
}

void ForwardStep::observe_input(const std::string& module, const at::Tensor& x) const
{
    if (observe && *observe)
        (*observe)(module, x);
}

at::Tensor ForwardStep::linear(const LayerWeights& w, const std::string& module, const at::Tensor& x) const
{
    observe_input(module, x);
    return layer_linear(w, module, x);
}

std::vector<at::Tensor> ForwardStep::linears(const LayerWeights& w, const std::vector<std::string>& modules, const at::Tensor& x) const
{
    for (const std::string& m : modules)
        observe_input(m, x);
    return layer_linears(w, modules, x);
}

const Architecture& architecture_of(const ModelConfig& config)
{
    const Architecture* a = find_architecture(config.model_type);
    if (!a || !a->embed || !a->layer || !a->head)
        throw UnsupportedError("architecture '" + config.model_type + "' cannot run (supported: " + supported_arch_list() + ")");
    return *a;
}

void Runner::prefetch(std::size_t layer) const
{
    for (const ByteRange& r : m_model.layers[layer].disk_ranges)
        r.file->prefetch(r.offset, r.size);
}

void Runner::release(std::size_t layer) const
{
    for (const ByteRange& r : m_model.layers[layer].disk_ranges)
        r.file->release(r.offset, r.size);
}

at::Tensor Runner::forward(const at::Tensor& ids, bool all_positions)
{
    TORCH_CHECK(ids.dim() == 2 && ids.scalar_type() == at::kLong, "ids must be int64 [batch, n]");
    if (m_cache.length + ids.size(1) > m_cache.capacity)
        throw PlanError("the prompt and the answer need " + std::to_string(m_cache.length + ids.size(1)) +
                        " tokens but the context holds " + std::to_string(m_cache.capacity));
    if (m_arch->quirks.rotary)
        update_rope(m_cache.length + ids.size(1));
    at::Tensor logits = translating_out_of_memory(
        "running " + std::to_string(ids.size(1)) + " tokens through the model", m_exec.str(), [&] {
            if (ids.size(0) == 1 && ids.size(1) == 1 && fused_decode_ready())
                return llama_decode_fused(*this, ids);
            return run_forward(ids, all_positions);
        });
    m_cache.length += ids.size(1);
    return logits.to(at::kFloat);
}

namespace {
constexpr std::int64_t kFusedRowsUpTo = 3;

// How pipeline stages elsewhere name a batch's cache: its address here (stable while it lives).
std::int64_t sequence_id(const KvCache* cache)
{
    return static_cast<std::int64_t>(reinterpret_cast<std::intptr_t>(cache));
}

// The runner's own cache exchanged with another one (and the sequence id it goes by) for a scope.
struct CacheSwap {
    KvCache& own;
    KvCache& other;
    std::int64_t& sequence;
    CacheSwap(KvCache& own, KvCache& other, std::int64_t& sequence, std::int64_t id) : own(own), other(other), sequence(sequence)
    {
        std::swap(own, other);
        sequence = id;
    }
    ~CacheSwap()
    {
        std::swap(own, other);
        sequence = 0;
    }
    CacheSwap(const CacheSwap&) = delete;
    CacheSwap& operator=(const CacheSwap&) = delete;
};
} // namespace

at::Tensor Runner::forward_rows(const std::vector<KvCache*>& caches, const at::Tensor& ids, KvPool* pool,
                                const std::vector<std::int64_t>& pool_slots)
{
    TORCH_CHECK(ids.dim() == 2 && ids.scalar_type() == at::kLong && ids.size(0) == static_cast<std::int64_t>(caches.size()),
                "forward_rows: ids must be int64 [rows, n], one row per cache");
    if (caches.size() == 1) {
        // One sequence: the runner's own path (fused decode included) over that cache.
        const CacheSwap swap(m_cache, *caches[0], m_sequence, sequence_id(caches[0]));
        return forward(ids);
    }
    TORCH_CHECK(ids.size(1) == 1, "forward_rows: batched rows take one token each");
    if (static_cast<std::int64_t>(caches.size()) < kFusedRowsUpTo + 1 && fused_decode_ready()) {
        // Up to three rows on the fused one-sequence step, one after the other: the block
        // kernels share weight reads between rows from four rows on (their 4 x 4 tiles); below,
        // the batched step costs more than the rows apart (bench batch: 2 rows 0.89x of one).
        std::vector<at::Tensor> rows;
        for (std::size_t b = 0; b < caches.size(); ++b)
            rows.push_back(forward_rows({caches[b]}, ids.narrow(0, static_cast<std::int64_t>(b), 1)));
        return at::cat(rows, 0);
    }
    TORCH_CHECK(!pool || pool_slots.size() == caches.size(), "forward_rows: one pool slot per row");
    return forward_batched_rows(caches, ids, pool, pool_slots);
}

at::Tensor Runner::forward_batched_rows(const std::vector<KvCache*>& caches, const at::Tensor& ids, KvPool* pool,
                                        const std::vector<std::int64_t>& pool_slots)
{
    for (const KvCache* cache : caches)
        if (cache->length + 1 > cache->capacity)
            throw PlanError("the context is full (" + std::to_string(cache->capacity) + " tokens) for one of the sequences");
    if (const auto first_remote = pipelined_from(); first_remote && caches.size() > 1) {
        at::Tensor logits = translating_out_of_memory("decoding " + std::to_string(ids.size(0)) + " sequences together", m_exec.str(),
                                                      [&] { return forward_rows_pipelined(caches, ids, pool, pool_slots, *first_remote); });
        for (KvCache* cache : caches)
            cache->length += 1;
        return logits.to(at::kFloat);
    }
    at::Tensor logits = translating_out_of_memory(
        "decoding " + std::to_string(ids.size(0)) + " sequences together", m_exec.str(), [&] {
            ForwardStep step{m_model, m_exec, ids.size(0), 1, 0, {}, {}, nullptr, nullptr, caches, pool, pool_slots};
            if (pool) {
                step.slot_ids = at::tensor(pool_slots, at::kLong);
                step.row_positions = step.positions().reshape({-1});
            }
            at::Tensor h = m_arch->embed(step, ids);
            set_row_rotary(step, caches, h.scalar_type());
            for (std::size_t l = 0; l < m_model.layers.size(); ++l) {
                if (const LoadedModel::RemoteLayers* r = remote_from(l)) { // a stage on another machine
                    std::vector<std::int64_t> sequences, starts;
                    for (const KvCache* cache : caches) {
                        sequences.push_back(sequence_id(cache));
                        starts.push_back(cache->length);
                    }
                    h = r->forward_rows(h, sequences, starts).to(h.device());
                    l = r->end - 1;
                    continue;
                }
                run_layer(l, [&](const LayerWeights& w) { h = m_arch->layer(step, l, w, h); });
            }
            return m_arch->head(step, h);
        });
    for (KvCache* cache : caches)
        cache->length += 1;
    return logits.to(at::kFloat);
}

std::optional<std::size_t> Runner::pipelined_from() const
{
    if (m_model.remote.empty() || !m_model.micro_batches)
        return std::nullopt;
    std::size_t first = m_model.layers.size(), covered = 0;
    for (const auto& r : m_model.remote) {
        if (!r.post_rows || !r.await_rows)
            return std::nullopt;
        first = std::min(first, r.begin);
        covered += r.end - r.begin;
    }
    // The remote stages run every layer from the first of them on (this machine's come first).
    if (covered != m_model.layers.size() - first)
        return std::nullopt;
    return first;
}

at::Tensor Runner::forward_rows_pipelined(const std::vector<KvCache*>& caches, const at::Tensor& ids, KvPool* pool,
                                          const std::vector<std::int64_t>& pool_slots, std::size_t first_remote)
{
    // The rows in micro-batches, as many as there are stages (this machine's and the remote ones):
    // while a worker runs one micro-batch, this machine and the other workers run the others.
    std::vector<const LoadedModel::RemoteLayers*> stages;
    for (std::size_t l = first_remote; l < m_model.layers.size(); l = stages.back()->end)
        stages.push_back(remote_from(l));
    const auto rows = static_cast<std::int64_t>(caches.size());
    const std::int64_t micro = std::min<std::int64_t>(rows, static_cast<std::int64_t>(stages.size()) + 1);
    struct Micro {
        std::int64_t begin = 0, count = 0;
        std::vector<KvCache*> caches;
        std::vector<std::int64_t> sequences, starts;
        std::optional<ForwardStep> step;
        at::Tensor h;
        std::int64_t ticket = 0;
    };
    std::vector<Micro> batches(static_cast<std::size_t>(micro));
    for (std::int64_t m = 0; m < micro; ++m) {
        Micro& b = batches[static_cast<std::size_t>(m)];
        b.begin = rows * m / micro;
        b.count = rows * (m + 1) / micro - b.begin;
        b.caches.assign(caches.begin() + b.begin, caches.begin() + b.begin + b.count);
        for (const KvCache* c : b.caches) {
            b.sequences.push_back(sequence_id(c));
            b.starts.push_back(c->length);
        }
        // This machine's layers, then the micro-batch goes to the first remote stage.
        const std::vector<std::int64_t> slots =
            pool ? std::vector<std::int64_t>(pool_slots.begin() + b.begin, pool_slots.begin() + b.begin + b.count) : std::vector<std::int64_t>{};
        b.step.emplace(ForwardStep{m_model, m_exec, b.count, 1, 0, {}, {}, nullptr, nullptr, b.caches, pool, slots});
        if (pool) {
            b.step->slot_ids = at::tensor(slots, at::kLong);
            b.step->row_positions = b.step->positions().reshape({-1});
        }
        b.h = m_arch->embed(*b.step, ids.narrow(0, b.begin, b.count));
        set_row_rotary(*b.step, b.caches, b.h.scalar_type());
        for (std::size_t l = 0; l < first_remote; ++l)
            run_layer(l, [&](const LayerWeights& w) { b.h = m_arch->layer(*b.step, l, w, b.h); });
        b.ticket = stages.front()->post_rows(b.h, b.sequences, b.starts);
    }
    // Each stage in turn takes every micro-batch's answer and hands it to the next stage at once.
    for (std::size_t s = 0; s < stages.size(); ++s)
        for (Micro& b : batches) {
            b.h = stages[s]->await_rows(b.ticket).to(m_exec);
            if (s + 1 < stages.size())
                b.ticket = stages[s + 1]->post_rows(b.h, b.sequences, b.starts);
        }
    std::vector<at::Tensor> logits;
    for (Micro& b : batches)
        logits.push_back(m_arch->head(*b.step, b.h));
    return at::cat(logits, 0);
}

void Runner::set_row_rotary(ForwardStep& step, const std::vector<KvCache*>& caches, at::ScalarType dtype)
{
    if (!m_arch->quirks.rotary)
        return;
    // Each row rotates as its sequence would alone: dynamic and longrope frequencies follow that
    // sequence's length, not the batch's longest.
    std::vector<at::Tensor> cos, sin;
    for (const KvCache* cache : caches) {
        const at::Tensor inv = inv_freq_for_length(cache->length + 1);
        const at::Tensor at_pos = at::tensor({cache->length}, at::kLong);
        cos.push_back(rotary_cos_sin_at(inv, at_pos, dtype, false, m_rope_scaling));
        sin.push_back(rotary_cos_sin_at(inv, at_pos, dtype, true, m_rope_scaling));
    }
    const auto rows = static_cast<std::int64_t>(caches.size());
    step.cos = at::cat(cos, 0).view({rows, 1, 1, -1}).to(m_exec);
    step.sin = at::cat(sin, 0).view({rows, 1, 1, -1}).to(m_exec);
}

ForwardStep Runner::begin_step(const at::Tensor& ids)
{
    return ForwardStep{m_model, m_exec, ids.size(0), ids.size(1), m_cache.length, {}, {}, &m_cache, nullptr};
}

void Runner::set_rotary(ForwardStep& step, at::ScalarType dtype) const
{
    if (!m_arch->quirks.rotary)
        return;
    step.cos = rotary(step.start, step.tokens, dtype, false).to(m_exec);
    step.sin = rotary(step.start, step.tokens, dtype, true).to(m_exec);
}

at::Tensor Runner::run_forward(const at::Tensor& ids, bool all_positions)
{
    ForwardStep step = begin_step(ids);
    at::Tensor h = m_arch->embed(step, ids);
    set_rotary(step, h.scalar_type());
    for (std::size_t l = 0; l < m_model.layers.size(); ++l) {
        if (const LoadedModel::RemoteLayers* r = remote_from(l)) { // a stage on another machine
            h = r->forward(h, step.start, m_sequence).to(h.device());
            l = r->end - 1;
            continue;
        }
        run_layer(l, [&](const LayerWeights& w) { h = m_arch->layer(step, l, w, h); });
    }
    if (!all_positions)
        h = h.narrow(1, step.tokens - 1, 1);
    return m_arch->head(step, h);
}

const LoadedModel::RemoteLayers* Runner::remote_from(std::size_t layer) const
{
    for (const auto& r : m_model.remote)
        if (r.begin == layer)
            return &r;
    return nullptr;
}

at::Tensor Runner::forward_layers(const at::Tensor& hidden, std::size_t begin, std::size_t end, std::int64_t start)
{
    TORCH_CHECK(hidden.dim() == 3 && begin < end && end <= m_model.layers.size(), "forward_layers: hidden [batch, n, size], layers in range");
    const std::int64_t n = hidden.size(1);
    if (start > m_cache.length)
        throw PlanError("a pipeline step starts at position " + std::to_string(start) + " but this stage holds " +
                        std::to_string(m_cache.length) + " positions; the stages lost step (start the generation again)");
    if (start + n > m_cache.capacity)
        throw PlanError("the prompt and the answer need " + std::to_string(start + n) + " tokens but this stage's context holds " +
                        std::to_string(m_cache.capacity));
    m_cache.length = start; // a rewound or restarted sequence: its later positions are forgotten
    if (m_arch->quirks.rotary)
        update_rope(start + n);
    m_run_end = end;
    struct ResetEnd {
        std::size_t& end;
        ~ResetEnd() { end = static_cast<std::size_t>(-1); }
    } reset_end{m_run_end};
    if (hidden.size(0) == 1 && n == 1 && fused_decode_ready()) { // a decode step: the fused one
        at::Tensor out = llama_decode_fused_layers(*this, hidden, begin, end, start);
        m_cache.length = start + 1;
        return out;
    }
    ForwardStep step{m_model, m_exec, hidden.size(0), n, start, {}, {}, &m_cache, nullptr};
    set_rotary(step, hidden.scalar_type());
    at::Tensor h = hidden.to(m_exec);
    for (std::size_t l = begin; l < end; ++l)
        run_layer(l, [&](const LayerWeights& w) { h = m_arch->layer(step, l, w, h); });
    m_cache.length = start + n;
    return h;
}

at::Tensor Runner::forward_layers(const at::Tensor& hidden, std::size_t begin, std::size_t end, std::int64_t start, KvCache& cache)
{
    const CacheSwap swap(m_cache, cache, m_sequence, 0);
    return forward_layers(hidden, begin, end, start);
}

at::Tensor Runner::forward_layers_rows(const at::Tensor& hidden, std::size_t begin, std::size_t end, const std::vector<KvCache*>& caches)
{
    TORCH_CHECK(hidden.dim() == 3 && hidden.size(1) == 1 && hidden.size(0) == static_cast<std::int64_t>(caches.size()) && begin < end &&
                    end <= m_model.layers.size(),
                "forward_layers_rows: hidden [rows, 1, size], a cache per row, layers in range");
    for (const KvCache* cache : caches)
        if (cache->length + 1 > cache->capacity)
            throw PlanError("the context is full (" + std::to_string(cache->capacity) + " tokens) for one of the sequences");
    ForwardStep step{m_model, m_exec, hidden.size(0), 1, 0, {}, {}, nullptr, nullptr, caches, nullptr, {}};
    set_row_rotary(step, caches, hidden.scalar_type());
    at::Tensor h = hidden.to(m_exec);
    m_run_end = end;
    struct ResetEnd {
        std::size_t& end;
        ~ResetEnd() { end = static_cast<std::size_t>(-1); }
    } reset_end{m_run_end};
    for (std::size_t l = begin; l < end; ++l)
        run_layer(l, [&](const LayerWeights& w) { h = m_arch->layer(step, l, w, h); });
    for (KvCache* cache : caches)
        cache->length += 1;
    return h;
}

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps)
{
    // transformers' RMSNorm: in float32, then back to the input dtype, then the weight.
    const at::Tensor h = x.to(at::kFloat);
    const at::Tensor variance = h.pow(2).mean(-1, /*keepdim=*/true);
    return weight * (h * at::rsqrt(variance + eps)).to(x.scalar_type());
}

at::Tensor rotary_cos_sin(const at::Tensor& inv_freq, std::int64_t start, std::int64_t n, at::ScalarType dtype, bool sin,
                          double scaling)
{
    return rotary_cos_sin_at(inv_freq, at::arange(start, start + n, at::kLong), dtype, sin, scaling);
}

at::Tensor rotary_cos_sin_at(const at::Tensor& inv_freq, const at::Tensor& at_positions, at::ScalarType dtype, bool sin,
                             double scaling)
{
    const at::Tensor positions = at_positions.to(at::kFloat);
    const at::Tensor freqs = at::outer(positions, inv_freq.to(positions.device()));
    const at::Tensor emb = at::cat({freqs, freqs}, -1);
    const at::Tensor wave = sin ? emb.sin() : emb.cos();
    return (scaling == 1.0 ? wave : wave * scaling).to(dtype);
}

at::Tensor apply_rotary(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin)
{
    // Partial rotary (cos/sin narrower than the head): the first rotary_dim dimensions rotate,
    // the rest pass through.
    const std::int64_t rot = cos.size(-1);
    if (rot < x.size(-1))
        return at::cat({apply_rotary(x.narrow(-1, 0, rot), cos, sin), x.narrow(-1, rot, x.size(-1) - rot)}, -1);
    // x [batch, heads, n, dim]; cos/sin [n, dim]. rotate_half: cat(-x2, x1).
    const std::int64_t half = x.size(-1) / 2;
    const at::Tensor rotated = at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
    return x * cos + rotated * sin;
}

at::Tensor apply_rotary_pairs(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin)
{
    // x [batch, heads, n, dim]; cos/sin [n, dim] with the frequency of pair i at i (and i + dim / 2).
    const std::int64_t half = x.size(-1) / 2;
    auto pairs = x.sizes().vec();
    pairs.back() = half;
    pairs.push_back(2);
    const at::Tensor p = x.reshape(pairs);
    const at::Tensor a = p.select(-1, 0), b = p.select(-1, 1);
    const at::Tensor c = cos.narrow(-1, 0, half), s = sin.narrow(-1, 0, half);
    return at::stack({a * c - b * s, b * c + a * s}, -1).reshape(x.sizes());
}

namespace {

// Grouped-query attention: each of x's KV heads [b, kv_h, total, d] repeated for the query heads
// that share it, giving [b, heads, total, d].
at::Tensor repeat_kv(const at::Tensor& x, std::int64_t heads)
{
    const std::int64_t groups = heads / x.size(1);
    if (groups <= 1)
        return x;
    return x.unsqueeze(2).expand({x.size(0), x.size(1), groups, x.size(2), x.size(3)}).reshape({x.size(0), heads, x.size(2), x.size(3)});
}

} // namespace

at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale)
{
    // q [b, h, n, d], k/v [b, kv_h, total, d]. Causal within the new tokens, full to the cache.
    const at::Tensor keys = repeat_kv(k, q.size(1)), values = repeat_kv(v, q.size(1));
    const std::int64_t n = q.size(2), total = k.size(2);
    if (n == 1)
        return at::scaled_dot_product_attention(q, keys, values, {}, 0.0, false, scale);
    if (n == total)
        return at::scaled_dot_product_attention(q, keys, values, {}, 0.0, true, scale);
    const at::Tensor mask = at::ones({n, total}, at::TensorOptions().dtype(at::kBool).device(q.device())).tril(total - n);
    return at::scaled_dot_product_attention(q, keys, values, mask, 0.0, false, scale);
}

at::Tensor attention_at(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const AttentionOptions& options,
                        const at::Tensor& query_positions)
{
    const std::int64_t total = k.size(2);
    const at::Tensor qp = query_positions.unsqueeze(-1);                         // [b, n, 1]
    const at::Tensor kp = at::arange(total, query_positions.options()).view({1, 1, total}); // [1, 1, total]
    at::Tensor allowed = kp <= qp;
    if (options.window > 0)
        allowed = allowed.logical_and(qp - kp < options.window);
    allowed = allowed.unsqueeze(1); // [b, 1, n, total]
    if (options.softcap == 0.0 && !options.sinks.defined())
        return attention_masked(q, k, v, allowed, options.scale);
    // transformers' eager attention: scores in the input dtype, capped, masked, softmax in float32.
    const at::Tensor keys = repeat_kv(k, q.size(1)), values = repeat_kv(v, q.size(1));
    at::Tensor scores = at::matmul(q, keys.transpose(2, 3)) * options.scale;
    if (options.softcap != 0.0)
        scores = at::tanh(scores / options.softcap) * options.softcap;
    scores = scores.masked_fill(allowed.logical_not(), -std::numeric_limits<double>::infinity());
    if (!options.sinks.defined())
        return at::matmul(at::softmax(scores, -1, at::kFloat).to(q.scalar_type()), values);
    // The sink is one more column of each head's scores; its probability is dropped.
    const at::Tensor sink = options.sinks.to(scores.device(), at::kFloat).view({1, -1, 1, 1}).expand({scores.size(0), -1, scores.size(2), 1});
    const at::Tensor probs = at::softmax(at::cat({scores.to(at::kFloat), sink}, -1), -1).narrow(-1, 0, total);
    return at::matmul(probs.to(q.scalar_type()), values);
}

at::Tensor attention_masked(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& mask, double scale)
{
    return at::scaled_dot_product_attention(q, repeat_kv(k, q.size(1)), repeat_kv(v, q.size(1)), mask, 0.0, false, scale);
}

at::Tensor layer_linear(const LayerWeights& w, const std::string& name, const at::Tensor& x)
{
    const at::Tensor* bias = w.find(name + ".bias");
    if (const QuantInfo* q = w.find_quant(name))
        return quant_linear(x, *q, quant_tensors(w.tensors, name, *q), bias ? *bias : at::Tensor());
    return dense_linear(x, w[name + ".weight"], bias ? *bias : at::Tensor());
}

std::vector<at::Tensor> layer_linears(const LayerWeights& w, const std::vector<std::string>& names, const at::Tensor& x)
{
    std::vector<kernels::GgufWeight> group;
    std::int64_t in = 0;
    for (const std::string& name : names) {
        const QuantInfo* q = w.find_quant(name);
        const at::Tensor* weight = w.find(name + ".weight");
        if (!q || q->method != QuantMethod::gguf || !weight || weight->device() != x.device() || w.find(name + ".bias") ||
            (in && in != q->shape[1]))
            break;
        in = q->shape[1];
        group.push_back({*weight, static_cast<kernels::GgmlType>(q->ggml_type)});
    }
    if (group.size() == names.size())
        return kernels::gguf_linear_group(x, group, in);
    std::vector<at::Tensor> out;
    for (const std::string& name : names)
        out.push_back(layer_linear(w, name, x));
    return out;
}

at::Tensor global_embedding(const LoadedModel& m, const std::string& module, const at::Tensor& ids)
{
    const at::Tensor& table = m.global(module + ".weight");
    if (const QuantInfo* q = m.find_global_quant(module))
        return kernels::gguf_embedding(table, static_cast<kernels::GgmlType>(q->ggml_type), q->shape[1],
                                       table.is_cuda() ? ids : ids.cpu())
            .to(scalar_type(q->compute_dtype));
    return at::embedding(table, ids.to(table.device()));
}

at::Tensor global_linear(const LoadedModel& m, const std::string& module, const at::Tensor& x)
{
    const at::Tensor& w = m.global(module + ".weight");
    if (const QuantInfo* q = m.find_global_quant(module))
        return gguf_linear(x.to(w.device()), *q, QuantTensors{w}, at::Tensor());
    return dense_linear(x.to(w.device()), w, at::Tensor());
}

at::Tensor layer_norm_head(const LoadedModel& m, const std::string& norm, double eps, const at::Tensor& hidden_states)
{
    const at::Tensor& weight = m.global(norm + ".weight");
    const at::Tensor h = at::layer_norm(hidden_states.to(weight.device()), {weight.size(0)}, weight, m.global(norm + ".bias"), eps);
    const at::Tensor& out = m.global("lm_head.weight");
    return at::linear(h.to(out.device()), out);
}

at::Tensor activation(const at::Tensor& x, const std::string& act)
{
    if (act == "silu" || act == "swish")
        return at::silu(x);
    if (act == "gelu")
        return at::gelu(x);
    if (act == "gelu_new") // transformers' NewGELUActivation, term by term
        return 0.5 * x * (1.0 + at::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * at::pow(x, 3.0))));
    if (act == "gelu_pytorch_tanh")
        return at::gelu(x, "tanh");
    if (act == "relu")
        return at::relu(x);
    throw UnsupportedError("activation '" + act + "' is not supported at run time");
}

} // namespace layerwise
