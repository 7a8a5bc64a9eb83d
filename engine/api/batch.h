#pragma once
// Continuous batching on a loaded Session: up to `slots` sequences decoded together, one token
// each per step, so the weights are read once for all of them (the local server's requests).
// Each slot has its own KV cache of the session's context length; a sequence joins between
// steps (its prompt prefilled one chunk per step while the others keep decoding) and leaves
// when it ends; a free slot keeps what it holds, and a prompt that starts the same way reuses it.
// Call join() and step() from one thread. Each call takes its turn with the session's other
// calls (chat, generate), which keep their own cache. The batch must not outlive its session.
#include "runtime/run_types.h"

#include <cstddef>
#include <cstdint>
#include <memory>

namespace layerwise {

class Batch {
public:
    ~Batch();
    Batch(const Batch&) = delete;
    Batch& operator=(const Batch&) = delete;

    std::size_t slots() const;
    std::size_t free_slots() const;
    std::size_t active() const;      // sequences joined and not yet left
    std::int64_t context_length() const; // tokens each slot holds: prompt + answer

    // Joins a sequence (PlanError, and nothing joins, when no slot is free, the prompt is empty,
    // holds an id outside the vocabulary, or leaves no room for an answer in the context).
    void join(SequenceRequest request);
    // A prefill chunk of the oldest joining prompt, then one token for every decoding sequence;
    // those that end leave (their on_done). Returns active(). A failing step ends the sequences
    // it ran with stop_reason "error" and the message; the batch stays usable.
    std::size_t step();

    struct State;

private:
    friend class Session;
    explicit Batch(std::unique_ptr<State> state);
    std::unique_ptr<State> m_state;
};

} // namespace layerwise
