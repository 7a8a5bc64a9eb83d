#include "model/presets.h"

#include "core/mapped_file.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <unistd.h>

namespace layerwise {

namespace fs = std::filesystem;

std::vector<fs::path> resource_search_path(const char* env, const std::string& name, const fs::path& source_dir)
{
    std::vector<fs::path> dirs;
    if (const char* value = std::getenv(env); value && *value)
        dirs.emplace_back(value);
    std::error_code ec;
    const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    if (!ec)
        dirs.push_back(exe.parent_path().parent_path() / "share" / "layerwise" / name);
    if (!source_dir.empty())
        dirs.push_back(source_dir);
    return dirs;
}

std::vector<fs::path> preset_search_path()
{
#ifdef LAYERWISE_SOURCE_PRESET_DIR
    return resource_search_path("LAYERWISE_PRESETS", "presets", LAYERWISE_SOURCE_PRESET_DIR);
#else
    return resource_search_path("LAYERWISE_PRESETS", "presets", {});
#endif
}

std::vector<PresetInfo> list_presets(const std::vector<fs::path>& dirs)
{
    std::vector<PresetInfo> out;
    for (const auto& dir : dirs) {
        std::error_code ec;
        if (!fs::is_directory(dir, ec))
            continue;
        for (const auto& e : fs::directory_iterator(dir, ec)) {
            if (e.path().extension() != ".json")
                continue;
            PresetInfo p;
            p.name = e.path().stem().string();
            p.display_name = p.name;
            p.file = e.path();
            try {
                MappedFile f(e.path());
                const auto j = nlohmann::json::parse(f.read(0, f.size()));
                if (j.contains("layerwise")) {
                    p.display_name = j["layerwise"].value("display_name", p.name);
                    p.source = j["layerwise"].value("source", "");
                }
            } catch (const std::exception&) {
                // listed anyway: opening it reports the problem with its location
            }
            if (std::none_of(out.begin(), out.end(), [&](const PresetInfo& q) { return q.name == p.name; }))
                out.push_back(std::move(p));
        }
    }
    std::sort(out.begin(), out.end(), [](const PresetInfo& a, const PresetInfo& b) { return a.name < b.name; });
    return out;
}

fs::path find_preset(const std::string& name, const std::vector<fs::path>& dirs)
{
    auto lower = [](std::string s) {
        for (char& c : s)
            c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        return s;
    };
    for (const auto& p : list_presets(dirs))
        if (lower(p.name) == lower(name))
            return p.file;
    return {};
}

} // namespace layerwise
