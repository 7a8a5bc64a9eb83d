#pragma once
// What a Batch holds (engine-internal): the session's lock, the sequences and their caches.
#include "api/batch.h"
#include "runtime/sequence_batch.h"

#include <functional>
#include <mutex>

namespace layerwise {

struct Batch::State {
    State(std::recursive_mutex& session_mutex, Runner& runner, std::size_t slots)
        : mutex(session_mutex), batch(runner, slots), context(runner.capacity())
    {
    }
    std::recursive_mutex& mutex; // the session's: batch calls take turns with its other calls
    SequenceBatch batch;
    std::int64_t context = 0;
    std::function<void()> unregister; // removes the batch from the session's footprint
};

} // namespace layerwise
