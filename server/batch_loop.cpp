#include "batch_loop.h"

namespace layerwise::server {

BatchLoop::BatchLoop(Session& session, std::size_t slots, Driver driver, std::function<void()> on_work)
    : m_batch(session.batch(slots)), m_slots(slots), m_on_work(std::move(on_work))
{
    if (driver == Driver::own_thread)
        m_thread = std::thread([this] { drive(); });
}

BatchLoop::~BatchLoop()
{
    quit();
    if (m_thread.joinable())
        m_thread.join();
    else
        while (pump()) {
        }
}

void BatchLoop::submit(SequenceRequest request)
{
    {
        std::lock_guard lock(m_mutex);
        m_waiting.push_back(std::move(request));
    }
    m_wake.notify_all();
    if (m_on_work)
        m_on_work();
}

std::size_t BatchLoop::waiting() const
{
    std::lock_guard lock(m_mutex);
    return m_waiting.size();
}

void BatchLoop::quit()
{
    {
        std::lock_guard lock(m_mutex);
        m_quit = true;
    }
    m_wake.notify_all();
}

void BatchLoop::join_waiting()
{
    while (m_batch->free_slots() > 0) {
        SequenceRequest next;
        {
            std::lock_guard lock(m_mutex);
            if (m_waiting.empty())
                return;
            next = std::move(m_waiting.front());
            m_waiting.pop_front();
        }
        auto on_done = next.on_done;
        try {
            m_batch->join(std::move(next));
        } catch (const std::exception& e) {
            GenerationResult failed;
            failed.stop_reason = "error";
            failed.error = e.what();
            if (on_done)
                on_done(failed);
        }
    }
}

bool BatchLoop::has_work() const { return !m_waiting.empty() || m_batch->active() > 0; }

bool BatchLoop::pump()
{
    join_waiting();
    if (m_batch->active() > 0)
        m_batch->step();
    std::lock_guard lock(m_mutex);
    return has_work();
}

void BatchLoop::drive()
{
    while (true) {
        {
            std::unique_lock lock(m_mutex);
            m_wake.wait(lock, [&] { return m_quit || has_work(); });
            if (m_quit && !has_work())
                return;
        }
        pump();
    }
}

} // namespace layerwise::server
