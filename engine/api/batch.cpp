#include "api/batch.h"

#include "api/batch_state.h"

namespace layerwise {

Batch::Batch(std::unique_ptr<State> state) : m_state(std::move(state)) {}

Batch::~Batch()
{
    std::lock_guard lock(m_state->mutex);
    m_state->unregister();
}

std::size_t Batch::slots() const { return m_state->batch.slots(); }

std::size_t Batch::free_slots() const
{
    std::lock_guard lock(m_state->mutex);
    return m_state->batch.free_slots();
}

std::size_t Batch::active() const
{
    std::lock_guard lock(m_state->mutex);
    return m_state->batch.active();
}

std::int64_t Batch::context_length() const { return m_state->context; }

void Batch::join(SequenceRequest request)
{
    std::lock_guard lock(m_state->mutex);
    m_state->batch.join(std::move(request));
}

std::size_t Batch::step()
{
    std::lock_guard lock(m_state->mutex);
    return m_state->batch.step();
}

} // namespace layerwise
