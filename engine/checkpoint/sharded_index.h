#pragma once
// model.safetensors.index.json / pytorch_model.bin.index.json:
// {"metadata": {"total_size": N}, "weight_map": {tensor: shard file}}.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace layerwise {

struct ShardedIndex {
    std::optional<std::uint64_t> total_size;
    std::vector<std::string> shards; // in order of first appearance
    std::vector<std::pair<std::string, std::string>> weight_map; // tensor -> shard, in file order
};

// Validates the JSON: a weight_map object of plain file names (no paths), a numeric total_size.
ShardedIndex parse_sharded_index(std::string_view json_text, const std::string& where);

} // namespace layerwise
