#pragma once
// Continuous batching: several sequences, each with its own KV cache (a slot), decoded together
// one token per step, so the weights are read once for all of them. A sequence joins between
// steps (its prompt prefilled one chunk per step, so the others keep decoding) and leaves when
// it ends. A free slot remembers the ids it holds; a new prompt takes the free slot sharing the
// longest prefix with it and feeds only the rest (the prompt cache).
#include "runtime/run_types.h"
#include "runtime/runner.h"
#include "runtime/sampling.h"

#include <chrono>
#include <cstdint>
#include <list>
#include <vector>

namespace layerwise {

class SequenceBatch {
public:
    // `slots` sequences at most; their caches are made here, in one pool.
    SequenceBatch(Runner& runner, std::size_t slots);

    std::size_t slots() const { return m_slots.size(); }
    std::size_t free_slots() const;
    std::size_t active() const { return m_sequences.size(); }
    // The caches made here (for the footprint): the pool's storage.
    std::vector<const KvCache*> own_caches() const;

    // Takes a free slot. PlanError (nothing joins) when none is free, the prompt is empty, has an
    // id outside the vocabulary or does not leave room for one new token in the context.
    void join(SequenceRequest request);
    // One step: a chunk of the oldest prompt still prefilling, then one token for every sequence
    // that is decoding. Sequences that end leave (on_done). Returns active(). An error of the
    // model ends the sequences it ran with stop_reason "error" and leaves the others.
    std::size_t step();

private:
    using Clock = std::chrono::steady_clock;
    struct Slot {
        KvCache* cache = nullptr;
        std::vector<std::int64_t> ids; // what the cache holds, for the next prompt
        bool busy = false;
    };
    struct Sequence {
        SequenceRequest request;
        std::size_t slot = 0;
        Sampler sampler;
        std::vector<std::int64_t> history; // prompt + generated
        std::size_t prefilled = 0;         // prompt tokens in the cache
        std::int64_t next = -1;            // the token the next decode step feeds
        GenerationResult result;
        Clock::time_point joined, first;
        bool done = false;
    };

    std::size_t pick_slot(const std::vector<std::int64_t>& prompt) const;
    void prefill_chunk(Sequence& s);
    void decode_step();
    // Takes a sampled token; false when the sequence ends with it (result.stop_reason set).
    bool accept(Sequence& s, std::int64_t token);
    void finish(Sequence& s);
    void fail(Sequence& s, const std::string& error);
    void leave_finished();

    Runner& m_runner;
    KvPool m_pool;
    std::vector<Slot> m_slots;
    std::list<Sequence> m_sequences; // in the order they joined
};

} // namespace layerwise
