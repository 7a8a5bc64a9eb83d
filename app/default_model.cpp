#include "default_model.h"

#include "api/layerwise.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace layerwise::app {

namespace fs = std::filesystem;

static bool isFile(const std::string& path)
{
    std::error_code ec;
    return !path.empty() && fs::is_regular_file(path, ec);
}

std::string defaultChatModelPath()
{
    if (const char* env = std::getenv("LAYERWISE_DEFAULT_MODEL"))
        return isFile(env) ? std::string(env) : std::string();
#ifdef LAYERWISE_VENV_DIR
    std::ifstream recorded(fs::path(LAYERWISE_VENV_DIR) / "default_model.txt");
    std::string path;
    if (recorded && std::getline(recorded, path) && isFile(path))
        return path;
#endif
    return {};
}

std::string defaultChatModelLabel(const std::string& path)
{
    std::string stem = fs::path(path).stem().string(); // SmolLM2-135M-Instruct.Q4_1
    if (const auto dot = stem.rfind('.'); dot != std::string::npos && dot > 0)
        stem.erase(dot);
    return stem;
}

std::string modelOrDefault(const std::string& model)
{
    if (!model.empty())
        return model;
    std::string path = defaultChatModelPath();
    if (path.empty())
        throw IoError("no model given and no default chat model installed: name a model folder or .gguf file, "
                      "or run packaging/setup.sh, which installs SmolLM2-135M-Instruct");
    return path;
}

fs::path defaultCalibrationPath()
{
#ifdef LAYERWISE_VENV_DIR
    return default_calibration_file(LAYERWISE_VENV_DIR);
#else
    return default_calibration_file({});
#endif
}

} // namespace layerwise::app
