#include "model/config.h"

#include "core/error.h"
#include "core/json_read.h"
#include "core/mapped_file.h"
#include "model/arch.h"

#include <nlohmann/json.hpp>

namespace layerwise {
namespace {

using nlohmann::json;

class Reader {
public:
    Reader(const json& j, const std::string& where) : m_j(j), m_where(where) {}

    bool has(const char* key) const { return m_j.contains(key) && !m_j[key].is_null(); }

    std::int64_t positive(const char* key) const
    {
        if (!has(key))
            throw FormatError(m_where + ": '" + key + "' is missing; the config cannot describe the model without it");
        return positive_value(key, m_j[key]);
    }
    std::int64_t positive_or(const char* key, std::int64_t fallback) const
    {
        return has(key) ? positive_value(key, m_j[key]) : fallback;
    }
    double number_or(const char* key, double fallback) const
    {
        if (!has(key))
            return fallback;
        if (!m_j[key].is_number())
            throw FormatError(m_where + ": '" + key + "' must be a number, not " + m_j[key].dump());
        return m_j[key].get<double>();
    }
    bool flag_or(const char* key, bool fallback) const
    {
        if (!has(key))
            return fallback;
        if (!m_j[key].is_boolean())
            throw FormatError(m_where + ": '" + key + "' must be true or false, not " + m_j[key].dump());
        return m_j[key].get<bool>();
    }
    std::string string_or(const char* key, const std::string& fallback) const
    {
        if (!has(key))
            return fallback;
        if (!m_j[key].is_string())
            throw FormatError(m_where + ": '" + key + "' must be a string, not " + m_j[key].dump());
        return m_j[key].get<std::string>();
    }
    std::vector<std::int64_t> ids(const char* key) const
    {
        std::vector<std::int64_t> out;
        if (!has(key))
            return out;
        const json& v = m_j[key];
        if (v.is_number_integer())
            out.push_back(v.get<std::int64_t>());
        else if (v.is_array())
            for (const auto& x : v)
                if (x.is_number_integer())
                    out.push_back(x.get<std::int64_t>());
        return out;
    }
    const json& raw() const { return m_j; }

private:
    std::int64_t positive_value(const char* key, const json& v) const
    {
        if (!v.is_number_integer() || v.get<std::int64_t>() <= 0)
            throw FormatError(m_where + ": '" + key + "' must be a positive integer, not " + v.dump());
        return v.get<std::int64_t>();
    }
    const json& m_j;
    std::string m_where; // a copy: callers pass temporaries such as where + " rope_parameters"
};

void read_rope(const Reader& r, ModelConfig& c, const std::string& where)
{
    const json& j = r.raw();
    c.rope.theta = r.number_or("rope_theta", 10000.0);
    c.rope.partial_rotary_factor = r.number_or("partial_rotary_factor", r.number_or("rotary_pct", 1.0));
    // transformers 5 keeps all rope facts in rope_parameters; 4.x in rope_scaling (+ rope_theta).
    const char* key = r.has("rope_parameters") ? "rope_parameters" : r.has("rope_scaling") ? "rope_scaling" : nullptr;
    if (!key)
        return;
    const json& rp = j[key];
    if (!rp.is_object())
        throw FormatError(where + ": '" + key + "' must be an object, not " + rp.dump());
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

void read_llama_family(const Reader& r, ModelConfig& c)
{
    c.hidden_size = r.positive("hidden_size");
    c.intermediate_size = r.positive("intermediate_size");
    c.num_layers = r.positive("num_hidden_layers");
    c.num_heads = r.positive("num_attention_heads");
    c.num_kv_heads = r.positive_or("num_key_value_heads", c.num_heads);
    c.vocab_size = r.positive("vocab_size");
    c.max_position_embeddings = r.positive_or("max_position_embeddings", 2048);
    c.norm_eps = r.number_or("rms_norm_eps", 1e-6);
    c.tie_word_embeddings = r.flag_or("tie_word_embeddings", false);
    c.attention_bias = r.flag_or("attention_bias", false);
    c.mlp_bias = r.flag_or("mlp_bias", false);
    c.hidden_act = r.string_or("hidden_act", "silu");
    if (r.has("sliding_window") && r.raw()["sliding_window"].is_number_integer())
        c.sliding_window = r.raw()["sliding_window"].get<std::int64_t>();
}

void read_gpt2(const Reader& r, ModelConfig& c)
{
    c.hidden_size = r.positive("n_embd");
    c.num_layers = r.positive("n_layer");
    c.num_heads = r.positive("n_head");
    c.num_kv_heads = c.num_heads;
    c.intermediate_size = r.positive_or("n_inner", 4 * c.hidden_size);
    c.vocab_size = r.positive("vocab_size");
    c.max_position_embeddings = r.positive_or("n_positions", 1024);
    c.norm_eps = r.number_or("layer_norm_epsilon", 1e-5);
    c.tie_word_embeddings = r.flag_or("tie_word_embeddings", true);
    c.attention_bias = true;
    c.mlp_bias = true;
    c.hidden_act = r.string_or("activation_function", "gelu_new");
}

void read_gpt_neox(const Reader& r, ModelConfig& c)
{
    c.hidden_size = r.positive("hidden_size");
    c.intermediate_size = r.positive("intermediate_size");
    c.num_layers = r.positive("num_hidden_layers");
    c.num_heads = r.positive("num_attention_heads");
    c.num_kv_heads = c.num_heads;
    c.vocab_size = r.positive("vocab_size");
    c.max_position_embeddings = r.positive_or("max_position_embeddings", 2048);
    c.norm_eps = r.number_or("layer_norm_eps", 1e-5);
    c.tie_word_embeddings = r.flag_or("tie_word_embeddings", false);
    c.attention_bias = r.flag_or("attention_bias", true);
    c.mlp_bias = true;
    c.use_parallel_residual = r.flag_or("use_parallel_residual", true);
    c.hidden_act = r.string_or("hidden_act", "gelu");
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
        const ArchSpec* arch = find_arch(c.model_type);
        if (!arch)
            throw UnsupportedError(where + ": unsupported architecture '" + c.model_type + "'; supported: " +
                                   supported_arch_list());
        c.architecture = arch->causal_lm_class;
        if (r.has("architectures") && j["architectures"].is_array() && !j["architectures"].empty() &&
            j["architectures"][0].is_string())
            c.architecture = j["architectures"][0].get<std::string>();

        if (c.model_type == "gpt2")
            read_gpt2(r, c);
        else if (c.model_type == "gpt_neox")
            read_gpt_neox(r, c);
        else
            read_llama_family(r, c);

        if (c.model_type != "gpt2")
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
