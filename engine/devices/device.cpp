#include "devices/device.h"

#include "core/bytes.h"
#include "core/error.h"

#include <algorithm>
#include <charconv>

namespace layerwise {

std::string Device::name() const
{
    switch (kind) {
    case Kind::gpu: return "cuda:" + std::to_string(index);
    case Kind::cpu: return "cpu";
    case Kind::disk: return "disk";
    }
    return "?";
}

std::string Device::map_key() const
{
    return kind == Kind::gpu ? std::to_string(index) : name();
}

Device parse_device(std::string_view text)
{
    auto trimmed = text;
    while (!trimmed.empty() && (trimmed.front() == ' ' || trimmed.front() == '"' || trimmed.front() == '\''))
        trimmed.remove_prefix(1);
    while (!trimmed.empty() && (trimmed.back() == ' ' || trimmed.back() == '"' || trimmed.back() == '\''))
        trimmed.remove_suffix(1);
    if (trimmed == "cpu")
        return Device::cpu();
    if (trimmed == "disk")
        return Device::disk();
    if (trimmed == "cuda")
        return Device::gpu(0);
    std::string_view digits = trimmed;
    if (digits.substr(0, 5) == "cuda:")
        digits.remove_prefix(5);
    int index = -1;
    auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), index);
    if (!digits.empty() && ec == std::errc() && ptr == digits.data() + digits.size() && index >= 0)
        return Device::gpu(index);
    throw PlanError("unknown device '" + std::string(text) +
                    "'; use a GPU index (0, 1, ... or cuda:0), \"cpu\" or \"disk\"");
}

MaxMemory parse_max_memory(std::string_view text)
{
    MaxMemory out;
    std::size_t pos = 0;
    while (pos < text.size()) {
        const std::size_t end = text.find_first_of(",; ", pos);
        const std::string_view item = text.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
        pos = end == std::string_view::npos ? text.size() : end + 1;
        if (item.empty())
            continue;
        const auto eq = item.find_first_of("=:", item.substr(0, 5) == "cuda:" ? 5 : 0);
        if (eq == std::string_view::npos)
            throw PlanError("max memory entry '" + std::string(item) + "' needs the form DEVICE=SIZE, e.g. 0=20GiB or cpu=64GB");
        MemoryLimit limit;
        limit.device = parse_device(item.substr(0, eq));
        try {
            limit.bytes = parse_size(item.substr(eq + 1));
        } catch (const FormatError& e) {
            throw PlanError("max memory for " + limit.device.name() + ": " + e.what());
        }
        if (find_limit(out, limit.device))
            throw PlanError("max memory names " + limit.device.name() + " twice");
        out.push_back(limit);
    }
    return out;
}

MaxMemory ordered(MaxMemory limits)
{
    std::stable_sort(limits.begin(), limits.end(),
                     [](const MemoryLimit& a, const MemoryLimit& b) { return a.device < b.device; });
    return limits;
}

const MemoryLimit* find_limit(const MaxMemory& limits, const Device& device)
{
    for (const auto& l : limits)
        if (l.device == device)
            return &l;
    return nullptr;
}

} // namespace layerwise
