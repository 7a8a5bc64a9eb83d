#pragma once
// Presets: the config.json facts of well-known models (resources/presets/<name>.json),
// so models that are not on disk can be inspected and planned. A preset file is a
// config.json plus an optional "layerwise" object (display name, source, notes).
#include <filesystem>
#include <string>
#include <vector>

namespace layerwise {

struct PresetInfo {
    std::string name;         // file stem, e.g. "Llama-3.1-8B"
    std::string display_name; // "Llama 3.1 8B"
    std::string source;       // Hugging Face id the facts come from
    std::filesystem::path file;
};

// Where a kind of resource lives: $ENV, <exe>/../share/layerwise/<name>, then the source tree.
std::vector<std::filesystem::path> resource_search_path(const char* env, const std::string& name,
                                                        const std::filesystem::path& source_dir);

// Where presets live: $LAYERWISE_PRESETS, <exe>/../share/layerwise/presets, the source tree.
std::vector<std::filesystem::path> preset_search_path();
std::vector<PresetInfo> list_presets(const std::vector<std::filesystem::path>& dirs = preset_search_path());
// nullptr-like: empty path if not found. Case-insensitive name match.
std::filesystem::path find_preset(const std::string& name,
                                  const std::vector<std::filesystem::path>& dirs = preset_search_path());

} // namespace layerwise
