#include "model/config.h"

#include "core/error.h"
#include "core/json_read.h"
#include "core/mapped_file.h"
#include "model/arch.h"
#include "model/config_reader.h"

#include <nlohmann/json.hpp>

namespace layerwise {
namespace {

using nlohmann::json;

using Reader = ConfigReader;

void read_rope(const Reader& r, ModelConfig& c, const std::string& where)
{
    const json& j = r.raw();
    c.rope.theta = r.number_or("rope_theta", 10000.0);
    c.rope.partial_rotary_factor = r.number_or("partial_rotary_factor", r.number_or("rotary_pct", 1.0));
    // transformers 5 keeps all rope facts in rope_parameters; 4.x in rope_scaling (+ rope_theta).
    const char* key = r.has("rope_parameters") ? "rope_parameters" : r.has("rope_scaling") ? "rope_scaling" : nullptr;
    if (!key)
        return;
    const json& given = j[key];
    if (!given.is_object())
        throw FormatError(where + ": '" + key + "' must be an object, not " + given.dump());
    // Per layer type (Gemma 3): the global layers' rope here; the local ones' the architecture reads.
    const json& rp = given.contains("full_attention") && given["full_attention"].is_object() ? given["full_attention"] : given;
    Reader s(rp, where + " " + key);
    c.rope.type = s.string_or("rope_type", s.string_or("type", "default"));
    c.rope.theta = s.number_or("rope_theta", c.rope.theta);
    c.rope.factor = s.number_or("factor", 1.0);
    c.rope.low_freq_factor = s.number_or("low_freq_factor", 1.0);
    c.rope.high_freq_factor = s.number_or("high_freq_factor", 4.0);
    c.rope.original_max_position_embeddings = s.positive_or("original_max_position_embeddings", 0);
    c.rope.partial_rotary_factor = s.number_or("partial_rotary_factor", c.rope.partial_rotary_factor);
    c.rope.beta_fast = s.number_or("beta_fast", 32.0);
    c.rope.beta_slow = s.number_or("beta_slow", 1.0);
    if (s.has("attention_factor"))
        c.rope.attention_factor = s.number_or("attention_factor", 1.0);
    c.rope.mscale = s.number_or("mscale", 0.0);
    c.rope.mscale_all_dim = s.number_or("mscale_all_dim", 0.0);
    c.rope.truncate = !rp.contains("truncate") || !rp["truncate"].is_boolean() || rp["truncate"].get<bool>();
    c.rope.factor_given = s.has("factor");
    if (c.rope.type == "longrope") {
        const auto factors = [&](const char* name) {
            if (!rp.contains(name) || !rp[name].is_array())
                throw FormatError(where + " " + key + ": longrope needs '" + name + "', a list of numbers (one per rotated dimension pair)");
            std::vector<double> out;
            for (const json& v : rp[name]) {
                if (!v.is_number() || v.get<double>() <= 0)
                    throw FormatError(where + " " + key + ": '" + name + "' must hold positive numbers, not " + v.dump());
                out.push_back(v.get<double>());
            }
            return out;
        };
        c.rope.long_factor = factors("long_factor");
        c.rope.short_factor = factors("short_factor");
        // Phi-3 keeps the pretraining context beside max_position_embeddings, not in the rope dict.
        if (c.rope.original_max_position_embeddings == 0)
            c.rope.original_max_position_embeddings = r.positive_or("original_max_position_embeddings", 0);
        if (c.rope.original_max_position_embeddings == 0)
            throw FormatError(where + " " + key + ": longrope needs 'original_max_position_embeddings', the pretraining context");
    }
    static const char* known[] = {"default", "linear", "dynamic", "llama3", "yarn", "longrope", "ntk"};
    bool ok = false;
    for (const char* k : known)
        ok = ok || c.rope.type == k;
    if (!ok)
        throw UnsupportedError(where + ": rope type '" + c.rope.type +
                               "' is not supported (supported: default, linear, dynamic, llama3, yarn, longrope)");
    if (c.rope.partial_rotary_factor <= 0 || c.rope.partial_rotary_factor > 1)
        throw FormatError(where + ": partial rotary factor " + std::to_string(c.rope.partial_rotary_factor) +
                          " must be in (0, 1]");
}

} // namespace

ModelConfig parse_model_config(std::string_view json_text, const std::string& where)
{
    const json j = parse_json(json_text, where);
    try {
        if (!j.is_object())
            throw FormatError(where + ": a model config must be a JSON object");
        Reader r(j, where);
        ModelConfig c;
        if (!r.has("model_type"))
            throw FormatError(where + ": 'model_type' is missing; is this a Hugging Face config.json?");
        c.model_type = r.string_or("model_type", "");
        const Architecture* arch = find_architecture(c.model_type);
        if (!arch)
            throw UnsupportedError(where + ": unsupported architecture '" + c.model_type + "'; supported: " +
                                   supported_arch_list());
        c.architecture = arch->spec.causal_lm_class;
        if (r.has("architectures") && j["architectures"].is_array() && !j["architectures"].empty() &&
            j["architectures"][0].is_string())
            c.architecture = j["architectures"][0].get<std::string>();

        arch->read_config(r, c);
        if (arch->quirks.rotary)
            read_rope(r, c, where);

        if (r.has("head_dim")) {
            c.head_dim = r.positive("head_dim");
        } else {
            if (c.hidden_size % c.num_heads != 0)
                throw FormatError(where + ": hidden size " + std::to_string(c.hidden_size) +
                                  " is not divisible by the " + std::to_string(c.num_heads) +
                                  " attention heads and no head_dim is given");
            c.head_dim = c.hidden_size / c.num_heads;
        }
        if (c.num_heads % c.num_kv_heads != 0)
            throw FormatError(where + ": " + std::to_string(c.num_heads) + " attention heads are not a multiple of " +
                              std::to_string(c.num_kv_heads) + " key/value heads");

        const std::string dtype_key = r.has("dtype") ? "dtype" : "torch_dtype";
        if (r.has(dtype_key.c_str())) {
            const std::string name = r.string_or(dtype_key.c_str(), "");
            auto d = dtype_from_torch_name(name);
            if (!d || !is_floating(*d))
                throw FormatError(where + ": '" + dtype_key + "' = '" + name +
                                  "' is not a floating-point torch dtype (float32, float16, bfloat16...)");
            c.dtype = *d;
        }
        c.bos_token_ids = r.ids("bos_token_id");
        c.eos_token_ids = r.ids("eos_token_id");
        return c;
    } catch (const nlohmann::json::exception& e) {
        throw_json_value_error(e, where);
    }
}

ModelConfig load_model_config(const std::filesystem::path& config_json)
{
    MappedFile f(config_json);
    return parse_model_config(f.read(0, f.size()), config_json.string());
}

DType resolve_auto_dtype(const ModelConfig& config, std::optional<DType> first_floating)
{
    if (config.dtype)
        return *config.dtype;
    if (first_floating)
        return *first_floating;
    return DType::f32;
}

} // namespace layerwise
