#pragma once
// config.json -> a typed model configuration. Both transformers 4.x spellings
// (torch_dtype, rope_scaling, rotary_pct) and 5.x spellings (dtype, rope_parameters,
// partial_rotary_factor) are read.
#include "core/dtype.h"

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace layerwise {

struct RopeConfig {
    std::string type = "default"; // default, linear, dynamic, llama3, yarn...
    double theta = 10000.0;
    double factor = 1.0;
    double low_freq_factor = 1.0;
    double high_freq_factor = 4.0;
    std::int64_t original_max_position_embeddings = 0;
    double partial_rotary_factor = 1.0; // fraction of head_dim that is rotated (GPT-NeoX rotary_pct)
    // yarn
    double beta_fast = 32.0;
    double beta_slow = 1.0;
    std::optional<double> attention_factor; // cos/sin scaling; derived from factor/mscale when absent
    double mscale = 0.0;
    double mscale_all_dim = 0.0;
    bool truncate = true;
    bool factor_given = false;              // longrope derives `factor` from the context lengths when absent
    // longrope: per-frequency divisors of inv_freq, `short_factor` up to the original context,
    // `long_factor` beyond it (one per rotated pair).
    std::vector<double> long_factor, short_factor;
    // Per-frequency divisors of inv_freq given as numbers rather than a rule (a GGUF file's
    // rope_freqs.weight: llama.cpp's form of Llama 3.x scaling); empty = none.
    std::vector<float> freq_factors;
};

struct ModelConfig {
    std::string described_by = "config.json"; // what the facts come from, for messages ("the GGUF metadata")
    std::string model_type;        // "llama", "gpt2"...
    std::string architecture;      // "LlamaForCausalLM" (architectures[0] or the family's default)
    std::int64_t hidden_size = 0;
    std::int64_t intermediate_size = 0;
    std::int64_t num_layers = 0;
    std::int64_t num_heads = 0;
    std::int64_t num_kv_heads = 0;
    std::int64_t head_dim = 0;
    std::int64_t vocab_size = 0;
    std::int64_t max_position_embeddings = 0;
    double norm_eps = 1e-5;
    RopeConfig rope;
    bool tie_word_embeddings = false;
    bool attention_bias = false;   // bias on q/k/v/o (llama family) or on all attention linears (neox)
    bool mlp_bias = false;
    bool use_parallel_residual = true; // gpt_neox
    std::string hidden_act = "silu";
    std::optional<std::int64_t> sliding_window;
    // Layers that attend over a local window only while the others see everything (Gemma 2's
    // alternating layers): the window, and which layers ("sliding_attention" / "full_attention").
    // The KV cache still holds the whole context for every layer.
    std::int64_t local_window = 0;
    std::vector<bool> local_layers;
    double attn_logit_softcapping = 0;  // tanh(score / cap) * cap before the softmax (Gemma 2); 0: none
    double final_logit_softcapping = 0; // the same on the output logits
    double query_pre_attn_scalar = 0;   // attention scale 1 / sqrt(this) instead of 1 / sqrt(head_dim); 0: head_dim
    bool norms_hold_one = false;        // Gemma's (1 + w) norm weights stored with the 1 added (llama.cpp's GGUF)
    double local_rope_theta = 0;        // Gemma 3: the local layers rotate with the default rope of this base
    // A mixture of experts (num_experts 0: dense): each token's MLP is the weighted sum of
    // experts_per_token experts of num_experts, chosen by a router; each expert is an MLP of
    // expert_intermediate_size. Qwen2-MoE adds one shared expert every token passes through.
    std::int64_t num_experts = 0;
    std::int64_t experts_per_token = 0;
    std::int64_t expert_intermediate_size = 0;
    std::int64_t shared_expert_intermediate_size = 0;
    bool norm_topk_prob = true; // the chosen experts' weights renormalised to sum to 1
    // gpt-oss's experts: gate clamped above at swiglu_limit, up to [-limit, limit], and
    // (up + 1) * gate * sigmoid(swiglu_alpha * gate); 0: the plain gated activation.
    double swiglu_limit = 0;
    double swiglu_alpha = 0;
    // The experts' weights are stored as MXFP4, 17 bytes per 32 weights (gpt-oss's
    // quantization_config quant_method "mxfp4"): what they hold, also when planned from a config.
    bool mxfp4_experts = false;
    std::optional<DType> dtype;    // declared torch_dtype / dtype
    std::vector<std::int64_t> bos_token_ids;
    std::vector<std::int64_t> eos_token_ids;

    bool is_moe() const { return num_experts > 0; }
    std::int64_t rotary_dim() const
    {
        return static_cast<std::int64_t>(static_cast<double>(head_dim) * rope.partial_rotary_factor);
    }
};

// `where` names the source in errors. Throws FormatError for missing or invalid fields and
// UnsupportedError naming the supported architectures for an unknown model_type.
ModelConfig parse_model_config(std::string_view json_text, const std::string& where);
ModelConfig load_model_config(const std::filesystem::path& config_json);

// The dtype transformers uses for dtype="auto": the config's dtype, else the first
// floating-point tensor of the checkpoint (`first_floating`), else float32.
DType resolve_auto_dtype(const ModelConfig& config, std::optional<DType> first_floating);

} // namespace layerwise
