#pragma once
// Placement targets as hf_device_map spells them: GPU index (0, "cuda:0"), "cpu", "disk";
// and per-device memory limits (accelerate's max_memory).
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace layerwise {

struct Device {
    enum class Kind : std::uint8_t { gpu, cpu, disk };
    Kind kind = Kind::cpu;
    int index = 0; // GPU ordinal

    static Device gpu(int i) { return {Kind::gpu, i}; }
    static Device cpu() { return {Kind::cpu, 0}; }
    static Device disk() { return {Kind::disk, 0}; }
    bool is_gpu() const { return kind == Kind::gpu; }

    std::string name() const;     // "cuda:0", "cpu", "disk"
    std::string map_key() const;  // "0", "cpu", "disk" (hf_device_map value as text)

    friend bool operator==(const Device&, const Device&) = default;
    // accelerate's order: GPUs by index, then cpu, then disk.
    friend bool operator<(const Device& a, const Device& b)
    {
        return a.kind != b.kind ? a.kind < b.kind : a.index < b.index;
    }
};

// "0", "cuda:0", "cuda", "cpu", "disk"; PlanError naming the accepted forms otherwise.
Device parse_device(std::string_view text);

struct MemoryLimit {
    Device device;
    std::int64_t bytes = 0;
};
using MaxMemory = std::vector<MemoryLimit>;

// "0=20GiB,cpu=64GB,disk=1TB" (also ';' or spaces between entries); sizes as accelerate parses them.
// PlanError for an unknown device, a duplicate device or a bad size.
MaxMemory parse_max_memory(std::string_view text);

// accelerate's get_max_memory(max_memory): GPUs sorted by index, then cpu, then disk.
MaxMemory ordered(MaxMemory limits);

const MemoryLimit* find_limit(const MaxMemory& limits, const Device& device);

} // namespace layerwise
