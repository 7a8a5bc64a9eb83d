#include "checkpoint/sharded_index.h"

#include "core/error.h"
#include "core/json_read.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

namespace layerwise {

ShardedIndex parse_sharded_index(std::string_view json_text, const std::string& where)
{
    const nlohmann::ordered_json j = parse_ordered_json(json_text, where);
    try {
        if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
            throw FormatError(where + ": missing the 'weight_map' object (tensor name -> shard file)");
        ShardedIndex index;
        if (j.contains("metadata") && j["metadata"].is_object() && j["metadata"].contains("total_size")) {
            const auto& ts = j["metadata"]["total_size"];
            if (ts.is_number_unsigned())
                index.total_size = ts.get<std::uint64_t>();
            else if (ts.is_number_float() && ts.get<double>() >= 0 && ts.get<double>() < 1.8e19)
                index.total_size = static_cast<std::uint64_t>(ts.get<double>());
            else
                throw FormatError(where + ": metadata.total_size must be a non-negative integer, not " + ts.dump());
        }
        std::set<std::string> seen;
        for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
            if (!it.value().is_string())
                throw FormatError(where + ": weight_map['" + it.key() + "'] is not a file name");
            const std::string shard = it.value().get<std::string>();
            if (shard.empty() || shard.find('/') != std::string::npos || shard.find('\\') != std::string::npos ||
                shard == "." || shard == "..")
                throw FormatError(where + ": weight_map['" + it.key() + "'] = '" + shard +
                                  "' is not a file name in the checkpoint folder");
            if (seen.insert(shard).second)
                index.shards.push_back(shard);
            index.weight_map.emplace_back(it.key(), shard);
        }
        if (index.shards.empty())
            throw FormatError(where + ": weight_map is empty");
        return index;
    } catch (const nlohmann::json::exception& e) {
        throw_json_value_error(e, where);
    }
}

} // namespace layerwise
