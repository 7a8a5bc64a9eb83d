#pragma once
// The server's generation thread. Every request becomes a sequence of one continuous batch
// (api/batch.h): sequences join between decode steps while a slot is free, wait in order while
// none is, decode together, and leave when they end. Only this thread runs the batch (LibTorch
// and its thread pool stay on one thread); HTTP threads submit and wait on callbacks.
#include "api/layerwise.h"

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>

namespace layerwise::server {

class BatchLoop {
public:
    // `slots` sequences at most decode together (Session::batch: a KV cache each).
    BatchLoop(Session& session, std::size_t slots);
    // Lets the sequences still queued or running end (their on_done is called), then stops.
    ~BatchLoop();
    BatchLoop(const BatchLoop&) = delete;
    BatchLoop& operator=(const BatchLoop&) = delete;

    // Queues a sequence; its on_done is always called once, from the generation thread (with
    // stop_reason "error" and the reason when it cannot join: a prompt the context cannot hold).
    void submit(SequenceRequest request);
    std::size_t slots() const { return m_slots; }
    std::size_t waiting() const; // queued for a free slot

private:
    void loop();
    void join_waiting();

    std::unique_ptr<Batch> m_batch;
    std::size_t m_slots;
    mutable std::mutex m_mutex;
    std::condition_variable m_wake;
    std::deque<SequenceRequest> m_waiting;
    bool m_quit = false;
    std::thread m_thread; // last: it starts once the rest is ready
};

} // namespace layerwise::server
