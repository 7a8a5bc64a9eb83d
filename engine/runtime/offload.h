#pragma once
// CPU offload for a GPU run. Offloaded layers keep their weights in pinned (page-locked) host
// memory, so a copy to the GPU is a real asynchronous DMA; each one is brought to the execution
// GPU just before it runs, and while it computes the NEXT offloaded layer is already being
// copied on a side stream (wrapping round to the first one, which the next token needs first).
// Two layers' worth of GPU memory is all the streaming uses. Without CUDA in LibTorch (or
// without a GPU execution device) none of this is used and every call is a no-op.
#include "runtime/loaded_model.h"

#include <memory>

namespace layerwise {

// Replaces the weights of host-resident (CPU) layers of a model whose execution device is a GPU
// by pinned copies. Disk layers stay in their mapping (they stream from the page cache).
// Returns the bytes pinned.
std::uint64_t pin_offloaded_layers(LoadedModel& model);

// Whether LibTorch was built with CUDA and sees a device.
bool cuda_runtime_available();

class LayerStreamer {
public:
    // `prefetch` false: each offloaded layer is copied when it is needed, on the compute stream
    // (what accelerate's hooks do), for comparison.
    LayerStreamer(LoadedModel& model, at::Device exec, bool prefetch);
    ~LayerStreamer();
    LayerStreamer(const LayerStreamer&) = delete;
    LayerStreamer& operator=(const LayerStreamer&) = delete;

    // The weights of offloaded layer `index` on the execution device, ordered before whatever the
    // compute stream runs next. Starts copying the next offloaded layer.
    const LayerWeights& acquire(std::size_t index);
    // The compute stream has all of layer `index`'s work queued: its GPU copy may go once that
    // work is done.
    void release(std::size_t index);

    bool prefetching() const { return m_prefetch; }
    std::uint64_t bytes_streamed() const { return m_bytes; }

private:
    struct Impl;
    std::unique_ptr<Impl> m_impl;
    bool m_prefetch;
    std::uint64_t m_bytes = 0;
};

} // namespace layerwise
