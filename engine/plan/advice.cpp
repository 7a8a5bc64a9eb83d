#include "plan/advice.h"

#include "core/bytes.h"

namespace layerwise {

std::string advice_text(const Advice& a)
{
    switch (a.kind) {
    case Advice::Kind::offload_layers: {
        const std::size_t n = a.layers.size();
        std::string text = "offload " + std::to_string(n) + " more layer" + (n > 1 ? "s" : "") + " (";
        for (std::size_t i = 0; i < n; ++i)
            text += (i ? "," : "") + std::to_string(a.layers[i]);
        return text + ") to " + (a.to.is_gpu() ? a.to.name() : a.to.kind == Device::Kind::cpu ? "the CPU" : "disk");
    }
    case Advice::Kind::lower_context:
        return "lower the context to " + std::to_string(a.value) + " tokens";
    case Advice::Kind::raise_limit:
        return "raise the limit of " + a.device.name() + " to " + format_bytes(static_cast<std::uint64_t>(a.value)) + " (" +
               std::to_string(a.value) + " bytes)";
    }
    return {};
}

std::optional<std::int64_t> longest_fitting_context(std::int64_t context, const std::function<bool(std::int64_t)>& fits)
{
    if (context <= 1 || !fits(1))
        return std::nullopt;
    std::int64_t lo = 1, hi = context; // fits(lo), !fits(hi) assumed (the context asked for does not fit)
    while (hi - lo > 1) {
        const std::int64_t mid = lo + (hi - lo) / 2;
        (fits(mid) ? lo : hi) = mid;
    }
    if (lo >= 256 && lo % 256 != 0 && fits(lo / 256 * 256))
        return lo / 256 * 256; // a round number, when it fits too
    return lo;
}

std::optional<std::int64_t> smallest_fitting_limit(std::int64_t from, std::int64_t to,
                                                   const std::function<bool(std::int64_t)>& fits)
{
    if (to <= from || !fits(to))
        return std::nullopt;
    std::int64_t lo = from, hi = to; // !fits(lo) assumed, fits(hi)
    while (hi - lo > 1) {
        const std::int64_t mid = lo + (hi - lo) / 2;
        (fits(mid) ? hi : lo) = mid;
    }
    constexpr std::int64_t MiB = 1 << 20;
    const std::int64_t rounded = (hi + MiB - 1) / MiB * MiB;
    return rounded <= to && fits(rounded) ? rounded : hi;
}

} // namespace layerwise
