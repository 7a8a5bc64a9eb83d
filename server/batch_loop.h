#pragma once
// The server's generation loop. Every request becomes a sequence of one continuous batch
// (api/batch.h): sequences join between decode steps while a slot is free, wait in order while
// none is, decode together, and leave when they end. HTTP threads submit and wait on callbacks;
// only the generation thread runs the batch.
//
// Which thread generates matters for speed: LibTorch's OpenMP runtime (libgomp) stops spinning
// and puts its workers to sleep at every parallel region once two threads that have run parallel
// regions are alive, more threads than CPUs (measured: half the decode speed). So the thread
// that loaded the model (and runs the desktop app's chat) should be the one that generates:
//   - Driver::caller: the owner drives the loop, either blocking in drive() (the command line's
//     main thread) or one step at a time with pump() when on_work says there is work (the
//     desktop app's engine thread, between its other jobs);
//   - Driver::own_thread: a thread of its own (tests, and callers with no such thread).
#include "api/layerwise.h"

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

namespace layerwise::server {

class BatchLoop {
public:
    enum class Driver { own_thread, caller };

    // `slots` sequences at most decode together (Session::batch: a KV cache each). `on_work`
    // (Driver::caller) is called from any thread when a submitted request needs pump().
    BatchLoop(Session& session, std::size_t slots, Driver driver = Driver::own_thread,
              std::function<void()> on_work = {});
    // Lets the sequences still queued or running end (their on_done is called), then stops.
    // Driver::caller: call it on the thread that drives the loop.
    ~BatchLoop();
    BatchLoop(const BatchLoop&) = delete;
    BatchLoop& operator=(const BatchLoop&) = delete;

    // Queues a sequence; its on_done is always called once, from the generation thread (with
    // stop_reason "error" and the reason when it cannot join: a prompt the context cannot hold).
    void submit(SequenceRequest request);
    std::size_t slots() const { return m_slots; }
    std::size_t waiting() const; // queued for a free slot

    // Driver::caller: joins what waits for a free slot and runs one step; true while work remains.
    bool pump();
    // Driver::caller: pumps, sleeping while there is nothing to do, until quit() (then returns
    // once the sequences left have ended).
    void drive();
    // Makes drive() return (the sequences still running end at their next step).
    void quit();

private:
    void join_waiting();
    bool has_work() const; // under m_mutex

    std::unique_ptr<Batch> m_batch;
    std::size_t m_slots;
    std::function<void()> m_on_work;
    mutable std::mutex m_mutex;
    std::condition_variable m_wake;
    std::deque<SequenceRequest> m_waiting;
    bool m_quit = false;
    std::thread m_thread; // Driver::own_thread; last: it starts once the rest is ready
};

} // namespace layerwise::server
