#pragma once
// What would make a plan that does not fit fit. Every piece of advice is checked before it is
// given: applying it (moving the layers, shortening the context, raising the limit) gives a plan
// the planner judges to fit. Pure functions over a `fits` predicate the planner supplies.
#include "plan/device_map.h" // Device

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace layerwise {

struct Advice {
    enum class Kind {
        offload_layers, // move `layers` (decoder blocks) from `device` to `to` in the plan's map
        lower_context,  // plan again with a context of `value` tokens
        raise_limit,    // plan again with `device` limited to `value` bytes
    };
    Kind kind = Kind::lower_context;
    Device device;
    Device to;
    std::vector<int> layers;
    std::int64_t value = 0;
};

std::string advice_text(const Advice& advice); // "offload 4 more layers (12-15) to the CPU", ...

// The largest context in [1, context) for which `fits` holds (rounded down to a multiple of 256
// when that fits too), searched as if a shorter context never needed more memory; whatever it
// returns was checked with `fits`. nullopt when none fits.
std::optional<std::int64_t> longest_fitting_context(std::int64_t context, const std::function<bool(std::int64_t)>& fits);

// The smallest limit in (from, to] for which `fits` holds, searched as if more room never hurt;
// rounded up to a whole MiB when that fits too; whatever it returns was checked with `fits`.
// nullopt when `to` does not fit.
std::optional<std::int64_t> smallest_fitting_limit(std::int64_t from, std::int64_t to,
                                                   const std::function<bool(std::int64_t)>& fits);

} // namespace layerwise
