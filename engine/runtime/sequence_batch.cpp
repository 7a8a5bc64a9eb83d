#include "runtime/sequence_batch.h"

#include "core/error.h"

#include <ATen/ATen.h>
#include <algorithm>

namespace layerwise {

namespace {

double batch_seconds(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b)
{
    return std::chrono::duration<double>(b - a).count();
}

std::size_t shared_prefix_length(const std::vector<std::int64_t>& a, const std::vector<std::int64_t>& b)
{
    const auto [ia, ib] = std::mismatch(a.begin(), a.end(), b.begin(), b.end());
    return static_cast<std::size_t>(ia - a.begin());
}

} // namespace

SequenceBatch::SequenceBatch(Runner& runner, std::size_t slots) : m_runner(runner)
{
    if (slots == 0)
        throw PlanError("a batch needs at least one sequence slot");
    m_pool = runner.make_pool(slots);
    for (KvCache& c : m_pool.slots)
        m_slots.push_back(Slot{&c, {}, false});
}

std::size_t SequenceBatch::free_slots() const
{
    return static_cast<std::size_t>(std::count_if(m_slots.begin(), m_slots.end(), [](const Slot& s) { return !s.busy; }));
}

std::vector<const KvCache*> SequenceBatch::own_caches() const
{
    return {&m_pool.storage};
}

std::size_t SequenceBatch::pick_slot(const std::vector<std::int64_t>& prompt) const
{
    std::size_t best = m_slots.size(), best_shared = 0;
    for (std::size_t i = 0; i < m_slots.size(); ++i) {
        if (m_slots[i].busy)
            continue;
        const std::size_t shared = shared_prefix_length(m_slots[i].ids, prompt);
        if (best == m_slots.size() || shared > best_shared) {
            best = i;
            best_shared = shared;
        }
    }
    return best;
}

void SequenceBatch::join(SequenceRequest request)
{
    const std::vector<std::int64_t>& prompt = request.prompt;
    if (prompt.empty())
        throw PlanError("the prompt is empty: give at least one token (e.g. the BOS id)");
    const std::int64_t vocab = m_runner.model().config.vocab_size;
    for (auto id : prompt)
        if (id < 0 || id >= vocab)
            throw PlanError("token id " + std::to_string(id) + " is outside the vocabulary (0.." + std::to_string(vocab - 1) + ")");
    const std::int64_t capacity = m_runner.capacity();
    if (static_cast<std::int64_t>(prompt.size()) >= capacity)
        throw PlanError("the prompt has " + std::to_string(prompt.size()) + " tokens but the context holds " +
                        std::to_string(capacity) + " (and the answer needs at least one more)");
    const std::size_t slot = pick_slot(prompt);
    if (slot == m_slots.size())
        throw PlanError("all " + std::to_string(m_slots.size()) + " sequence slots are busy");
    Slot& s = m_slots[slot];
    // Keep the shared prefix; at least the prompt's last token is fed again for its logits.
    const std::size_t reused = std::min(shared_prefix_length(s.ids, prompt), prompt.size() - 1);
    s.cache->length = static_cast<std::int64_t>(reused);
    s.busy = true;
    s.ids.clear();
    Sampler sampler(request.options.sampling);
    Sequence seq{std::move(request), slot, std::move(sampler), {}, reused, -1, {}, Clock::now(), {}, false};
    seq.history = seq.request.prompt;
    m_sequences.push_back(std::move(seq));
}

bool SequenceBatch::accept(Sequence& s, std::int64_t token)
{
    GenerationResult& r = s.result;
    r.tokens.push_back(token);
    s.history.push_back(token);
    if (r.tokens.size() == 1) {
        s.first = Clock::now();
        r.ttft_s = batch_seconds(s.joined, s.first);
        r.prefill_tokens_per_s = static_cast<double>(s.request.prompt.size()) / std::max(1e-9, r.ttft_s);
    }
    const GenerationOptions& o = s.request.options;
    if (s.request.on_token && !s.request.on_token(token))
        r.stop_reason = "stopped";
    else if (std::find(o.eos_ids.begin(), o.eos_ids.end(), token) != o.eos_ids.end())
        r.stop_reason = "eos";
    else if (s.request.stop && s.request.stop->load())
        r.stop_reason = "stopped";
    else if (static_cast<std::int64_t>(r.tokens.size()) >= o.max_new_tokens)
        r.stop_reason = "max_new_tokens";
    else if (m_slots[s.slot].cache->length >= m_slots[s.slot].cache->capacity)
        r.stop_reason = "context_full";
    else {
        s.next = token;
        return true;
    }
    return false;
}

void SequenceBatch::finish(Sequence& s)
{
    GenerationResult& r = s.result;
    if (r.tokens.size() > 1)
        r.decode_tokens_per_s = static_cast<double>(r.tokens.size() - 1) / std::max(1e-9, batch_seconds(s.first, Clock::now()));
    Slot& slot = m_slots[s.slot];
    const auto held = static_cast<std::size_t>(std::clamp<std::int64_t>(slot.cache->length, 0, static_cast<std::int64_t>(s.history.size())));
    slot.ids.assign(s.history.begin(), s.history.begin() + static_cast<std::ptrdiff_t>(held));
    slot.busy = false;
    s.done = true;
    if (s.request.on_done) {
        try {
            s.request.on_done(r);
        } catch (...) { // a caller's callback does not take the other sequences down
        }
    }
}

void SequenceBatch::fail(Sequence& s, const std::string& error)
{
    s.result.stop_reason = "error";
    s.result.error = error;
    m_slots[s.slot].cache->length = 0;
    s.history.clear();
    finish(s);
}

void SequenceBatch::prefill_chunk(Sequence& s)
{
    const std::vector<std::int64_t>& prompt = s.request.prompt;
    const std::size_t chunk = static_cast<std::size_t>(std::max<std::int64_t>(s.request.options.prefill_chunk, 1));
    const std::size_t n = std::min(chunk, prompt.size() - s.prefilled);
    const at::Tensor ids = at::tensor(std::vector<std::int64_t>(prompt.begin() + static_cast<std::ptrdiff_t>(s.prefilled),
                                                                prompt.begin() + static_cast<std::ptrdiff_t>(s.prefilled + n)),
                                      at::kLong)
                               .unsqueeze(0);
    const at::Tensor logits = m_runner.forward_rows({m_slots[s.slot].cache}, ids);
    s.prefilled += n;
    if (s.prefilled == prompt.size() && !accept(s, s.sampler.next(logits[0][0], s.history)))
        finish(s);
}

void SequenceBatch::decode_step()
{
    std::vector<Sequence*> rows;
    std::vector<KvCache*> caches;
    std::vector<std::int64_t> ids, slots;
    for (Sequence& s : m_sequences)
        if (!s.done && s.next >= 0) {
            rows.push_back(&s);
            caches.push_back(m_slots[s.slot].cache);
            slots.push_back(static_cast<std::int64_t>(s.slot));
            ids.push_back(s.next);
        }
    if (rows.empty())
        return;
    at::Tensor logits;
    try {
        logits = m_runner.forward_rows(caches, at::tensor(ids, at::kLong).unsqueeze(1), &m_pool, slots);
    } catch (const std::exception& e) {
        for (Sequence* s : rows)
            fail(*s, e.what());
        return;
    }
    for (std::size_t b = 0; b < rows.size(); ++b) {
        Sequence& s = *rows[b];
        s.next = -1;
        if (!accept(s, s.sampler.next(logits[static_cast<std::int64_t>(b)][0], s.history)))
            finish(s);
    }
}

void SequenceBatch::leave_finished()
{
    m_sequences.remove_if([](const Sequence& s) { return s.done; });
}

std::size_t SequenceBatch::step()
{
    for (Sequence& s : m_sequences)
        if (!s.done && s.request.stop && s.request.stop->load()) {
            s.result.stop_reason = "stopped";
            finish(s);
        }
    leave_finished();
    const auto prefilling = std::find_if(m_sequences.begin(), m_sequences.end(),
                                         [](const Sequence& s) { return s.prefilled < s.request.prompt.size(); });
    if (prefilling != m_sequences.end()) {
        try {
            prefill_chunk(*prefilling);
        } catch (const std::exception& e) {
            fail(*prefilling, e.what());
        }
    }
    decode_step();
    leave_finished();
    return m_sequences.size();
}

} // namespace layerwise
