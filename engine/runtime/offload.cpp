#include "runtime/offload.h"

#include "core/error.h"

#include <ATen/ATen.h>

#if LAYERWISE_HAVE_CUDA
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include <optional>

namespace layerwise {

bool cuda_runtime_available()
{
#if LAYERWISE_HAVE_CUDA
    try {
        return c10::cuda::device_count() > 0;
    } catch (const std::exception&) {
        return false; // no driver: no GPU
    }
#else
    return false;
#endif
}

std::uint64_t pin_offloaded_layers(LoadedModel& model)
{
    if (!model.execution_device.is_gpu() || !cuda_runtime_available())
        return 0;
    std::uint64_t bytes = 0;
    for (LayerWeights& layer : model.layers) {
        if (layer.home.kind != Device::Kind::cpu)
            continue;
        for (auto& [name, t] : layer.tensors) {
            if (t.is_pinned())
                continue;
            t = t.pin_memory(); // a page-locked copy; a mapping view's pages go back to the page cache
            bytes += static_cast<std::uint64_t>(t.numel()) * t.element_size();
        }
    }
    return bytes;
}

#if LAYERWISE_HAVE_CUDA

struct LayerStreamer::Impl {
    struct Slot {
        std::optional<std::size_t> layer;
        LayerWeights weights;
        at::cuda::CUDAEvent copied;
    };
    LoadedModel& model;
    at::Device exec;
    c10::cuda::CUDAStream copy_stream;
    Slot slots[2];
    std::vector<std::size_t> offloaded; // indices of layers that live off the GPU, in order

    Impl(LoadedModel& m, at::Device e)
        : model(m), exec(e), copy_stream(c10::cuda::getStreamFromPool(/*isHighPriority=*/true, e.index()))
    {
        for (std::size_t i = 0; i < m.layers.size(); ++i)
            if (!m.layers[i].home.is_gpu())
                offloaded.push_back(i);
    }

    Slot* holding(std::size_t layer)
    {
        for (Slot& s : slots)
            if (s.layer == layer)
                return &s;
        return nullptr;
    }

    // Frees a slot's GPU copy once the work the compute stream has queued so far is done.
    void drop(Slot& slot)
    {
        const c10::cuda::CUDAStream compute = c10::cuda::getCurrentCUDAStream(exec.index());
        for (auto& [name, t] : slot.weights.tensors)
            t.record_stream(compute);
        slot.weights.tensors.clear();
        slot.layer.reset();
    }

    // Queues the copy of `layer` on `stream` into a slot: a free one, else one not holding `busy`.
    std::uint64_t start_copy(std::size_t layer, c10::cuda::CUDAStream stream, std::optional<std::size_t> busy)
    {
        Slot* slot = nullptr;
        for (Slot& s : slots)
            if (!s.layer) {
                slot = &s;
                break;
            }
        if (!slot) {
            slot = slots[0].layer != busy ? &slots[0] : &slots[1];
            drop(*slot);
        }
        const LayerWeights& host = model.layers[layer];
        slot->layer = layer;
        slot->weights.home = host.home;
        slot->weights.quant = host.quant;
        std::uint64_t bytes = 0;
        const c10::cuda::CUDAStreamGuard guard(stream);
        for (const auto& [name, t] : host.tensors) {
            if (host.expert_tensors.count(name)) { // experts compute where they are
                slot->weights.tensors.emplace(name, t);
                continue;
            }
            // Allocated on the copy stream; release() tells the allocator the compute stream used it.
            slot->weights.tensors.emplace(name, t.to(exec, /*non_blocking=*/true));
            bytes += static_cast<std::uint64_t>(t.numel()) * t.element_size();
        }
        slot->weights.expert_tensors = host.expert_tensors;
        slot->copied.record(stream);
        return bytes;
    }

    std::optional<std::size_t> next_after(std::size_t layer) const
    {
        for (std::size_t i = 0; i < offloaded.size(); ++i)
            if (offloaded[i] == layer)
                return offloaded[(i + 1) % offloaded.size()];
        return std::nullopt;
    }
};

LayerStreamer::LayerStreamer(LoadedModel& model, at::Device exec, bool prefetch)
    : m_impl(std::make_unique<Impl>(model, exec)), m_prefetch(prefetch)
{
}

LayerStreamer::~LayerStreamer() = default;

const LayerWeights& LayerStreamer::acquire(std::size_t index)
{
    Impl& s = *m_impl;
    const c10::cuda::CUDAStream compute = c10::cuda::getCurrentCUDAStream(s.exec.index());
    Impl::Slot* slot = s.holding(index);
    if (!slot) {
        // Not prefetched (the first layer of a run, or prefetch off): copy now.
        m_bytes += s.start_copy(index, m_prefetch ? s.copy_stream : compute, std::nullopt);
        slot = s.holding(index);
    }
    slot->copied.block(compute); // the compute stream waits for the copy, the host does not
    if (m_prefetch)
        if (const auto next = s.next_after(index); next && *next != index && !s.holding(*next))
            m_bytes += s.start_copy(*next, s.copy_stream, index);
    return slot->weights;
}

void LayerStreamer::release(std::size_t index)
{
    Impl& s = *m_impl;
    if (Impl::Slot* slot = s.holding(index))
        s.drop(*slot);
}

#else // LibTorch without CUDA: no GPU execution device can exist.

struct LayerStreamer::Impl {};

LayerStreamer::LayerStreamer(LoadedModel&, at::Device, bool prefetch) : m_impl(std::make_unique<Impl>()), m_prefetch(prefetch)
{
}

LayerStreamer::~LayerStreamer() = default;

const LayerWeights& LayerStreamer::acquire(std::size_t)
{
    throw UnsupportedError("this build's LibTorch has no CUDA: offloaded layers cannot stream to a GPU");
}

void LayerStreamer::release(std::size_t) {}

#endif

} // namespace layerwise
