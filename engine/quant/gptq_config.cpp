#include "quant/gptq_config.h"

#include "core/error.h"
#include "core/json_read.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace layerwise {

namespace fs = std::filesystem;

namespace {

template <typename T>
T field(const nlohmann::json& j, const char* key, T fallback, const std::string& where)
{
    auto it = j.find(key);
    if (it == j.end() || it->is_null())
        return fallback;
    try {
        if constexpr (std::is_same_v<T, bool>) {
            if (!it->is_boolean())
                throw FormatError("");
        } else if constexpr (std::is_integral_v<T>) {
            if (!it->is_number_integer())
                throw FormatError("");
        } else if constexpr (std::is_floating_point_v<T>) {
            if (!it->is_number())
                throw FormatError("");
        } else {
            if (!it->is_string())
                throw FormatError("");
        }
        return it->get<T>();
    } catch (const std::exception&) {
        throw FormatError(where + ": the GPTQ config field '" + key + "' has the wrong type (" + it->dump() +
                          "); AutoGPTQ writes " +
                          (std::is_same_v<T, bool> ? "true or false"
                           : std::is_integral_v<T> ? "an integer"
                           : std::is_floating_point_v<T> ? "a number"
                                                         : "a string"));
    }
}

nlohmann::json read_json_file(const fs::path& path)
{
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw IoError("cannot read " + path.string());
    std::stringstream text;
    text << in.rdbuf();
    return parse_json(text.str(), path.string());
}

bool is_gptq_object(const nlohmann::json& j)
{
    return j.is_object() && j.contains("quant_method") && j["quant_method"] == "gptq";
}

// A file that is either a quantize config or a config.json holding one.
GptqConfig config_from_file(const fs::path& path, bool require)
{
    const nlohmann::json j = read_json_file(path);
    if (!j.is_object())
        throw FormatError(path.string() + " is not a JSON object");
    if (auto q = j.find("quantization_config"); q != j.end())
        return parse_gptq_config(*q, path.string() + ": quantization_config");
    if (require && !j.contains("bits") && !j.contains("w_bit"))
        throw FormatError(path.string() + " is neither a GPTQ quantize config (no 'bits') nor a config.json with a "
                          "quantization_config");
    return parse_gptq_config(j, path.string());
}

} // namespace

GptqConfig parse_gptq_config(const nlohmann::json& j, const std::string& where)
{
    if (!j.is_object())
        throw FormatError(where + ": the GPTQ config is not a JSON object");
    const std::string method = field<std::string>(j, "quant_method", "gptq", where);
    if (method != "gptq")
        throw UnsupportedError(where + ": quant_method '" + method + "' is not GPTQ; Layerwise reads GPTQ checkpoints " +
                               "(quant_method \"gptq\") and bitsandbytes ones");
    if (j.contains("version") && j["version"] == "GEMM")
        throw UnsupportedError(where + ": an AWQ (GEMM) checkpoint; Layerwise reads AutoGPTQ's GPTQ format only");
    GptqConfig c;
    c.bits = field<int>(j, "bits", field<int>(j, "w_bit", 4, where), where);
    c.group_size = field<int>(j, "group_size", field<int>(j, "q_group_size", -1, where), where);
    c.desc_act = field<bool>(j, "desc_act", true, where); // AutoGPTQ's default when absent
    c.sym = field<bool>(j, "sym", true, where);
    c.static_groups = field<bool>(j, "static_groups", false, where);
    c.damp_percent = field<double>(j, "damp_percent", 0.01, where);
    c.true_sequential = field<bool>(j, "true_sequential", true, where);
    c.is_marlin_format = field<bool>(j, "is_marlin_format", false, where);
    if (j.contains("model_name_or_path") && !j["model_name_or_path"].is_null())
        c.model_name_or_path = field<std::string>(j, "model_name_or_path", "", where);
    if (j.contains("model_file_base_name") && !j["model_file_base_name"].is_null())
        c.model_file_base_name = field<std::string>(j, "model_file_base_name", "", where);
    c.checkpoint_format = field<std::string>(j, "checkpoint_format", "gptq", where);
    if (c.bits != 2 && c.bits != 3 && c.bits != 4 && c.bits != 8)
        throw FormatError(where + ": GPTQ 'bits' is " + std::to_string(c.bits) + "; AutoGPTQ packs 2, 3, 4 or 8 bits");
    if (c.group_size != -1 && c.group_size <= 0)
        throw FormatError(where + ": GPTQ 'group_size' is " + std::to_string(c.group_size) +
                          "; it must be positive, or -1 for one group per column");
    if (!(c.damp_percent > 0 && c.damp_percent < 1))
        throw FormatError(where + ": GPTQ 'damp_percent' is " + std::to_string(c.damp_percent) + "; it must lie between 0 and 1");
    if (c.is_marlin_format)
        throw UnsupportedError(where + ": a Marlin-format GPTQ checkpoint (is_marlin_format); Layerwise reads the "
                               "original GPTQ packing: convert it back, or quantize the original model");
    if (c.checkpoint_format != "gptq")
        throw UnsupportedError(where + ": GPTQ checkpoint_format '" + c.checkpoint_format +
                               "'; Layerwise reads \"gptq\" (zero points stored minus one, as AutoGPTQ writes them)");
    if (c.model_file_base_name && (c.model_file_base_name->empty() || c.model_file_base_name->find('/') != std::string::npos))
        throw FormatError(where + ": GPTQ 'model_file_base_name' '" + *c.model_file_base_name +
                          "' must be a file name in the model folder, without extension");
    return c;
}

nlohmann::ordered_json gptq_config_json(const GptqConfig& c)
{
    nlohmann::ordered_json j;
    j["bits"] = c.bits;
    j["group_size"] = c.group_size;
    j["damp_percent"] = c.damp_percent;
    j["desc_act"] = c.desc_act;
    j["static_groups"] = c.static_groups;
    j["sym"] = c.sym;
    j["true_sequential"] = c.true_sequential;
    j["model_name_or_path"] = c.model_name_or_path ? nlohmann::ordered_json(*c.model_name_or_path) : nlohmann::ordered_json(nullptr);
    j["model_file_base_name"] =
        c.model_file_base_name ? nlohmann::ordered_json(*c.model_file_base_name) : nlohmann::ordered_json(nullptr);
    j["is_marlin_format"] = c.is_marlin_format;
    j["quant_method"] = "gptq";
    return j;
}

std::string gptq_quantize_config_text(const GptqConfig& c)
{
    return gptq_config_json(c).dump(2);
}

std::string gptq_default_basename(const GptqConfig& c)
{
    return "gptq_model-" + std::to_string(c.bits) + "bit-" + std::to_string(c.group_size) + "g";
}

std::optional<GptqConfig> find_gptq_config(const fs::path& folder, const GptqSource& source, fs::path* config_file)
{
    std::error_code ec;
    if (source.config_file) {
        if (!fs::is_regular_file(*source.config_file, ec))
            throw IoError("the GPTQ config " + source.config_file->string() + " does not exist");
        if (config_file)
            *config_file = *source.config_file;
        return config_from_file(*source.config_file, true);
    }
    for (const char* name : {"quantize_config.json", "quant_config.json"}) {
        const fs::path path = folder / name;
        if (!fs::is_regular_file(path, ec))
            continue;
        if (config_file)
            *config_file = path;
        return parse_gptq_config(read_json_file(path), path.string());
    }
    const fs::path config = folder / "config.json";
    if (fs::is_regular_file(config, ec)) {
        const nlohmann::json j = read_json_file(config);
        if (j.is_object() && j.contains("quantization_config") && is_gptq_object(j["quantization_config"])) {
            if (config_file)
                *config_file = config;
            return parse_gptq_config(j["quantization_config"], config.string() + ": quantization_config");
        }
    }
    if (source.model_basename)
        throw FormatError(folder.string() + ": a GPTQ model basename ('" + *source.model_basename +
                          "') was given but the folder has no GPTQ config (quantize_config.json, quant_config.json or a "
                          "config.json quantization_config with quant_method \"gptq\"); name one");
    return std::nullopt;
}

std::optional<GptqCheckpoint> find_gptq_checkpoint(const fs::path& folder, const GptqSource& source)
{
    GptqCheckpoint ck;
    auto config = find_gptq_config(folder, source, &ck.config_file);
    if (!config)
        return std::nullopt;
    ck.config = *config;
    std::vector<std::string> bases;
    if (source.model_basename)
        bases = {*source.model_basename};
    else if (config->model_file_base_name)
        bases = {*config->model_file_base_name};
    else
        bases = {gptq_default_basename(*config), "model"};
    std::error_code ec;
    std::string tried;
    for (const char* ext : {".safetensors", ".bin", ".pt"}) {
        for (const auto& base : bases) {
            for (const std::string& name : {base + ext + ".index.json", base + ext}) {
                const fs::path file = folder / name;
                if (fs::is_regular_file(file, ec)) {
                    ck.weights = file;
                    return ck;
                }
                tried += (tried.empty() ? "" : ", ") + name;
            }
        }
    }
    throw FormatError(folder.string() + ": the GPTQ config " + ck.config_file.filename().string() +
                      " describes a quantized model but none of its weights files exists (tried " + tried +
                      "); name the file with model_file_base_name");
}

} // namespace layerwise
