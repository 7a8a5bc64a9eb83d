#pragma once
// LibTorch's out-of-memory failures as the engine's OutOfMemoryError: CUDA's caching allocator
// throws c10::OutOfMemoryError; the CPU allocator a plain c10::Error ("not enough memory"). Either
// becomes one message that says what was being allocated, on which device, and what to do.
#include "core/error.h"

#include <c10/util/Exception.h>
#include <string>

namespace layerwise {

// True for LibTorch's CPU allocator failing ("DefaultCPUAllocator: can't allocate memory: ..." or,
// in older versions, "... not enough memory: ...").
bool is_cpu_out_of_memory(const c10::Error& e);

// The OutOfMemoryError for `what` (e.g. "the KV cache of layer 3 (4096 tokens)") on `device`
// ("cpu", "cuda:0"), quoting the first line of LibTorch's message (the bytes asked) and the
// bytes free there now.
[[noreturn]] void throw_out_of_memory(const std::string& what, const std::string& device, const char* torch_message);

// Runs f(); translates LibTorch's out-of-memory errors as above and lets everything else through.
template <typename F>
decltype(auto) translating_out_of_memory(const std::string& what, const std::string& device, F&& f)
{
    try {
        return f();
    } catch (const c10::OutOfMemoryError& e) {
        throw_out_of_memory(what, device, e.what());
    } catch (const c10::Error& e) {
        if (is_cpu_out_of_memory(e))
            throw_out_of_memory(what, device, e.what());
        throw;
    }
}

} // namespace layerwise
