#pragma once
// Long operations report progress through this callback; returning false cancels
// the operation, which then throws CancelledError after cleaning up.
#include <cstdint>
#include <functional>
#include <string>

namespace layerwise {

struct Progress {
    std::uint64_t done = 0;
    std::uint64_t total = 0;
    std::string item; // what is being worked on now (a tensor name, a file)
};

using ProgressCallback = std::function<bool(const Progress&)>;

} // namespace layerwise
