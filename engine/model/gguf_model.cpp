#include "model/gguf_model.h"

#include "checkpoint/checkpoint.h"
#include "core/error.h"
#include "model/arch.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <variant>

namespace layerwise {
namespace {

class Keys {
public:
    Keys(const gguf::Metadata& m, std::string arch, const std::string& where)
        : m_m(m), m_arch(std::move(arch)), m_where(where)
    {
    }
    std::string key(const char* k) const { return m_arch + "." + k; }
    std::optional<std::int64_t> optional_positive(const char* k) const
    {
        const std::string name = key(k);
        auto v = m_m.get_int(name);
        if (v && *v <= 0)
            throw FormatError(m_where + ": metadata key '" + name + "' = " + std::to_string(*v) +
                              " must be a positive integer");
        return v;
    }
    std::int64_t positive(const char* k) const
    {
        auto v = optional_positive(k);
        if (!v)
            throw FormatError(m_where + ": metadata key '" + key(k) + "' is missing; the GGUF file cannot describe "
                              "the model without it (convert the model again with llama.cpp's convert_hf_to_gguf.py)");
        return *v;
    }
    std::optional<double> number(const char* k) const { return m_m.get_float(key(k)); }

private:
    const gguf::Metadata& m_m;
    std::string m_arch;
    const std::string& m_where;
};

} // namespace

std::optional<std::string> hf_tensor_name(const Architecture& arch, const std::string& name)
{
    const auto dot = name.rfind('.');
    if (dot == std::string::npos)
        return std::nullopt;
    const std::string base = name.substr(0, dot), param = name.substr(dot + 1);
    if (param != "weight" && param != "bias")
        return std::nullopt;
    for (const auto& [from, to] : arch.gguf.globals)
        if (base == from)
            return std::string(to) + "." + param;
    if (base.rfind("blk.", 0) != 0)
        return std::nullopt;
    const auto dot2 = base.find('.', 4);
    if (dot2 == std::string::npos || dot2 == 4)
        return std::nullopt;
    const std::string layer = base.substr(4, dot2 - 4);
    for (char c : layer)
        if (c < '0' || c > '9')
            return std::nullopt;
    const std::string rest = base.substr(dot2 + 1);
    for (const auto& [from, to] : arch.gguf.blocks) {
        if (rest == from)
            return arch.layers_path + "." + layer + "." + to + "." + param;
        if (rest + "." + param == from) // a tensor named in full ("attn_sinks.weight" -> "self_attn.sinks")
            return arch.layers_path + "." + layer + "." + to;
    }
    return std::nullopt;
}

namespace {

// The steps of config_from_gguf.

void read_rope(const Keys& k, const gguf::Metadata& m, const Checkpoint& checkpoint, const std::string& where, ModelConfig& c)
{
    if (auto rope_dims = k.optional_positive("rope.dimension_count")) {
        if (*rope_dims > c.head_dim || *rope_dims % 2 != 0)
            throw FormatError(where + ": '" + k.key("rope.dimension_count") + "' = " + std::to_string(*rope_dims) +
                              " must be even and at most the head size " + std::to_string(c.head_dim));
        c.rope.partial_rotary_factor = static_cast<double>(*rope_dims) / static_cast<double>(c.head_dim);
    }
    if (auto type = m.get_string(k.key("rope.scaling.type")); type && *type != "none") {
        if (*type != "linear" && *type != "yarn")
            throw UnsupportedError(where + ": rope scaling '" + *type + "' ('" + k.key("rope.scaling.type") +
                                   "') is not supported (supported: none, linear, yarn)");
        c.rope.type = *type;
        c.rope.factor = k.number("rope.scaling.factor").value_or(1.0);
        c.rope.original_max_position_embeddings =
            k.optional_positive("rope.scaling.original_context_length").value_or(0);
    }
    if (const TensorEntry* f = checkpoint.find("rope_freqs.weight")) {
        // Llama 3.x rope scaling as llama.cpp stores it: one divisor per rotary frequency. Read with
        // pread (a few bytes), so describing the model still maps no tensor data.
        const std::int64_t expected = c.rotary_dim() / 2;
        if (f->gguf->ggml_type != static_cast<std::uint32_t>(gguf::TensorType::F32) ||
            static_cast<std::int64_t>(f->numel()) != expected)
            throw FormatError(where + ": tensor 'rope_freqs.weight' must be " + std::to_string(expected) +
                              " float32 values (one per rotary frequency), not " + shape_string(f->shape) + " " +
                              std::string(gguf::tensor_type_name(static_cast<gguf::TensorType>(f->gguf->ggml_type))));
        const std::string bytes = checkpoint.files()[f->file]->read(f->offset, f->size);
        c.rope.freq_factors.resize(static_cast<std::size_t>(expected));
        std::memcpy(c.rope.freq_factors.data(), bytes.data(), bytes.size());
        for (float v : c.rope.freq_factors)
            if (!(v > 0) || !std::isfinite(v))
                throw FormatError(where + ": tensor 'rope_freqs.weight' holds " + std::to_string(v) +
                                  "; rope frequency factors must be positive");
    }
}

void read_experts(const Keys& k, const gguf::Metadata& m, const Architecture& arch_ref, const std::string& where, ModelConfig& c)
{
    if (auto experts = k.optional_positive("expert_count")) {
        c.num_experts = *experts;
        c.experts_per_token = k.positive("expert_used_count");
        // Mixtral's experts are the feed-forward length; Qwen3-MoE's have their own.
        c.expert_intermediate_size = k.optional_positive("expert_feed_forward_length").value_or(c.intermediate_size);
        // llama.cpp renormalises the chosen experts' weights for these architectures unless the
        // file says otherwise.
        c.norm_topk_prob = m.get_int(k.key("expert_weights_norm")).value_or(arch_ref.gguf.experts_renormalised ? 1 : 0) != 0;
        c.shared_expert_intermediate_size = k.optional_positive("expert_shared_feed_forward_length").value_or(0);
        if (c.experts_per_token > c.num_experts)
            throw FormatError(where + ": '" + k.key("expert_used_count") + "' (" + std::to_string(c.experts_per_token) +
                              ") is more than the " + std::to_string(c.num_experts) + " experts");
    }
}

// Which layers attend over a local window, and over which.
void read_local_layers(const Keys& k, const gguf::Metadata& m, const Architecture& arch_ref, const std::string& where, ModelConfig& c)
{
    if (arch_ref.gguf.local_every > 0) {
        // As llama.cpp: the window the file gives, else the architecture's default (none for
        // Gemma 3, whose layers are then all global); its swa pattern unless the file gives one
        // (<arch>.attention.sliding_window_pattern: a period, or a flag per layer).
        const std::int64_t window = arch_ref.gguf.default_window > 0
                                        ? k.optional_positive("attention.sliding_window").value_or(arch_ref.gguf.default_window)
                                        : std::max<std::int64_t>(m.get_int(k.key("attention.sliding_window")).value_or(0), 0);
        c.local_layers.assign(static_cast<std::size_t>(c.num_layers), false);
        if (window > 0) {
            c.local_window = window;
            const std::string pattern_key = k.key("attention.sliding_window_pattern");
            const gguf::Value* pattern = m.find(pattern_key);
            if (pattern && pattern->type == gguf::ValueType::array) {
                const auto& flags = std::get<gguf::Array>(pattern->data);
                if (static_cast<std::int64_t>(flags.size()) != c.num_layers)
                    throw FormatError(where + ": '" + pattern_key + "' flags " + std::to_string(flags.size()) +
                                      " layers but the model has " + std::to_string(c.num_layers));
                for (std::size_t i = 0; i < flags.size(); ++i) {
                    if (flags[i].type == gguf::ValueType::boolean)
                        c.local_layers[i] = std::get<bool>(flags[i].data);
                    else if (const auto* u = std::get_if<std::uint64_t>(&flags[i].data))
                        c.local_layers[i] = *u != 0;
                    else if (const auto* n = std::get_if<std::int64_t>(&flags[i].data))
                        c.local_layers[i] = *n != 0;
                    else
                        throw FormatError(where + ": '" + pattern_key + "' must hold a flag (bool or integer) per layer, not " +
                                          std::string(gguf::value_type_name(flags[i].type)) + " values");
                }
            } else {
                const std::int64_t every = m.get_int(pattern_key).value_or(arch_ref.gguf.local_every);
                if (every < 0)
                    throw FormatError(where + ": '" + pattern_key + "' = " + std::to_string(every) + " must not be negative");
                for (std::size_t i = 0; i < c.local_layers.size(); ++i) // 0: every layer local
                    c.local_layers[i] = every == 0 || static_cast<std::int64_t>(i) % every < every - 1;
            }
        }
        if (arch_ref.gguf.local_rope) // Gemma 3: llama.cpp's default base for the local layers
            c.local_rope_theta = k.number("rope.freq_base_swa").value_or(10000.0);
    }
}

} // namespace

ModelConfig config_from_gguf(const gguf::Metadata& m, const Checkpoint& checkpoint, const std::string& where,
                             const Logger& log)
{
    const auto arch_name = m.get_string("general.architecture");
    if (!arch_name)
        throw FormatError(where + ": metadata key 'general.architecture' is missing; every GGUF model names its "
                          "architecture (convert the model again with llama.cpp)");
    const Architecture* arch = find_gguf_architecture(*arch_name, m.get_int(*arch_name + ".expert_count").has_value());
    if (!arch)
        throw UnsupportedError(where + ": GGUF architecture '" + *arch_name + "' is not supported (supported: " +
                               supported_gguf_list() + "; llama's also holds Mistral and SmolLM)");
    const Keys k(m, *arch_name, where);
    ModelConfig c;
    c.described_by = "the GGUF metadata";
    c.model_type = arch->spec.model_type;
    c.architecture = arch->spec.causal_lm_class;
    c.num_layers = k.positive("block_count");
    c.hidden_size = k.positive("embedding_length");
    c.intermediate_size = k.positive("feed_forward_length");
    c.num_heads = k.positive("attention.head_count");
    c.num_kv_heads = k.optional_positive("attention.head_count_kv").value_or(c.num_heads);
    c.max_position_embeddings = k.optional_positive("context_length").value_or(2048);
    c.norm_eps = k.number("attention.layer_norm_rms_epsilon").value_or(1e-5);
    c.rope.theta = k.number("rope.freq_base").value_or(10000.0);
    c.hidden_act = "silu";
    if (c.num_heads % c.num_kv_heads != 0)
        throw FormatError(where + ": " + std::to_string(c.num_heads) + " attention heads ('" +
                          k.key("attention.head_count") + "') are not a multiple of " +
                          std::to_string(c.num_kv_heads) + " key/value heads ('" + k.key("attention.head_count_kv") + "')");
    if (auto key_length = k.optional_positive("attention.key_length")) {
        c.head_dim = *key_length;
    } else {
        if (c.hidden_size % c.num_heads != 0)
            throw FormatError(where + ": embedding length " + std::to_string(c.hidden_size) +
                              " is not divisible by the " + std::to_string(c.num_heads) +
                              " heads and no attention.key_length is given");
        c.head_dim = c.hidden_size / c.num_heads;
    }
    read_rope(k, m, checkpoint, where, c);
    (void)log;

    const TensorEntry* embed = checkpoint.find("token_embd.weight");
    if (auto v = k.optional_positive("vocab_size"))
        c.vocab_size = *v;
    else if (const gguf::Value* tokens = m.find("tokenizer.ggml.tokens"); tokens && tokens->type == gguf::ValueType::array)
        c.vocab_size = static_cast<std::int64_t>(std::get<gguf::Array>(tokens->data).size());
    else if (embed && embed->shape.size() == 2)
        c.vocab_size = embed->shape[0];
    else
        throw FormatError(where + ": the vocabulary size is unknown: no '" + k.key("vocab_size") +
                          "', no tokenizer.ggml.tokens and no token_embd.weight");
    read_experts(k, m, *arch, where, c);
    c.hidden_act = arch->gguf.hidden_act;
    if (arch->gguf.swiglu_limit > 0) { // gpt-oss: llama.cpp's fixed clamp and slope (GGUF stores neither)
        c.swiglu_limit = arch->gguf.swiglu_limit;
        c.swiglu_alpha = 1.702;
    }
    c.attn_logit_softcapping = k.number("attn_logit_softcapping").value_or(0.0);
    c.final_logit_softcapping = k.number("final_logit_softcapping").value_or(0.0);
    c.norms_hold_one = arch->gguf.norms_hold_one;
    read_local_layers(k, m, *arch, where, c);
    if (arch->gguf.gemma_query_scale) // as llama.cpp: the 27B (Gemma 2: 46 layers, Gemma 3: 62) scales by hidden / heads
        c.query_pre_attn_scalar = static_cast<double>(
            c.num_layers == arch->gguf.gemma_hidden_scale_layers ? c.hidden_size / c.num_heads : c.head_dim);
    // Every layer attends over a sliding window (Phi-3-mini; 0: none).
    if (auto window = m.get_int(k.key("attention.sliding_window")); arch->gguf.windowed && window && *window > 0) {
        c.sliding_window = *window;
        c.local_window = *window;
        c.local_layers.assign(static_cast<std::size_t>(c.num_layers), true);
    }
    c.tie_word_embeddings = checkpoint.find("output.weight") == nullptr;
    c.attention_bias = checkpoint.find("blk.0.attn_q.bias") != nullptr && !arch->quirks.qkv_bias;
    if (auto bos = m.get_int("tokenizer.ggml.bos_token_id"))
        c.bos_token_ids = {*bos};
    if (auto eos = m.get_int("tokenizer.ggml.eos_token_id"))
        c.eos_token_ids = {*eos};
    return c;
}

void adopt_gguf_tensors(Checkpoint& checkpoint, const ModelConfig& config)
{
    const Architecture* arch = find_architecture(config.model_type);
    if (!arch)
        throw UnsupportedError("unsupported architecture '" + config.model_type + "'; supported: " + supported_arch_list());
    const bool permuted = arch->gguf.rope_permuted;
    checkpoint.edit_entries([&](TensorEntry& t) {
        if (!t.gguf)
            return true;
        if (t.name == "rope_freqs.weight" && !config.rope.freq_factors.empty())
            return false; // read into the config (RopeConfig::freq_factors)
        auto hf = hf_tensor_name(*arch, t.name);
        if (!hf)
            return true; // kept under its GGUF name: reported as unused
        t.name = std::move(*hf);
        if (!permuted)
            return true;
        const auto ends_with = [&](std::string_view s) {
            return t.name.size() >= s.size() && t.name.compare(t.name.size() - s.size(), s.size(), s) == 0;
        };
        if (ends_with("self_attn.q_proj.weight") || ends_with("self_attn.q_proj.bias"))
            t.gguf->rope_permuted_heads = config.num_heads;
        else if (ends_with("self_attn.k_proj.weight") || ends_with("self_attn.k_proj.bias"))
            t.gguf->rope_permuted_heads = config.num_kv_heads;
        return true;
    });
    // One tensor over all experts ("mlp.experts.{e}.gate_proj.weight", [experts, rows, columns], or
    // a bias [experts, rows]): one entry per expert, each its contiguous share of the bytes (whole
    // rows of blocks).
    checkpoint.split_entries([&](const TensorEntry& t) {
        std::vector<TensorEntry> parts;
        const auto at = t.name.find("{e}");
        if (at == std::string::npos)
            return parts;
        if (t.shape.size() < 2 || t.shape.size() > 3 || t.shape[0] != config.num_experts ||
            t.size % static_cast<std::uint64_t>(t.shape[0]) != 0)
            throw FormatError(checkpoint.folder().string() + ": tensor '" + t.name + "' has shape " + shape_string(t.shape) +
                              "; a tensor of all experts must be [" + std::to_string(config.num_experts) +
                              " experts, rows, columns] (or [experts, rows] for their biases)");
        const std::uint64_t share = t.size / static_cast<std::uint64_t>(t.shape[0]);
        for (std::int64_t e = 0; e < t.shape[0]; ++e) {
            TensorEntry p = t;
            p.name = t.name.substr(0, at) + std::to_string(e) + t.name.substr(at + 3);
            p.shape = std::vector<std::int64_t>(t.shape.begin() + 1, t.shape.end());
            p.offset = t.offset + static_cast<std::uint64_t>(e) * share;
            p.size = share;
            parts.push_back(std::move(p));
        }
        return parts;
    });
}

} // namespace layerwise
