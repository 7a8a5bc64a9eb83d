// Mixtures of experts with the llama layout's attention: Mixtral, Qwen2-MoE and Qwen3-MoE. A decoder
// layer's MLP is a router (a linear to one logit per expert) and num_experts MLPs; each token
// runs the experts_per_token best-scored ones and sums their outputs weighted by the softmax of
// the router's logits (renormalised over the chosen ones: always for Mixtral, with
// norm_topk_prob for the Qwen ones). Qwen2-MoE adds a shared expert every token passes through,
// scaled by the sigmoid of its own one-output gate, and biases on q, k and v. Modules are those of the checkpoints (one module per expert, as
// transformers 4.x builds them and every published checkpoint stores them); the forward computes
// what modeling_mixtral / modeling_qwen3_moe compute.
//
// Only the chosen experts run (runtime/experts.h): a decode step reads experts_per_token experts
// per layer, through the block kernels for GGUF weights, each where its weights are.
#include "archs/architectures.h"

#include "model/config_reader.h"
#ifndef LAYERWISE_ARCH_TABLES_ONLY
#include "runtime/experts.h"

#include <ATen/ATen.h>
#endif

namespace layerwise {
namespace {
namespace moe_arch {

using Shape = std::vector<std::int64_t>;
using C = ModelConfig;

Shape hidden(const C& c) { return {c.hidden_size}; }
Shape router_w(const C& c) { return {c.num_experts, c.hidden_size}; }
Shape expert_up(const C& c) { return {c.expert_intermediate_size, c.hidden_size}; }
Shape expert_down(const C& c) { return {c.hidden_size, c.expert_intermediate_size}; }
Shape shared_up(const C& c) { return {c.shared_expert_intermediate_size, c.hidden_size}; }
Shape shared_down(const C& c) { return {c.hidden_size, c.shared_expert_intermediate_size}; }
Shape shared_gate(const C& c) { return {1, c.hidden_size}; }
bool attn_bias(const C& c) { return c.attention_bias; }
bool always(const C&) { return true; }
bool never(const C&) { return false; }

// How one family names its MoE modules inside a decoder layer.
struct MoeNaming {
    const char* block;      // "mlp", "block_sparse_moe"
    const char* block_class; // "{P}SparseMoeBlock"
    const char* expert_class; // "{P}MLP", "{P}BlockSparseTop2MLP"
    const char* gate;       // the expert's gate projection: "gate_proj", "w1"
    const char* up;         // "up_proj", "w3"
    const char* down;       // "down_proj", "w2"
    bool down_before_up;    // the order the expert registers them in (w1, w2, w3)
};

constexpr MoeNaming qwen_naming{"mlp", "{P}SparseMoeBlock", "{P}MLP", "gate_proj", "up_proj", "down_proj", false};
constexpr MoeNaming mixtral_naming{"block_sparse_moe", "{P}SparseMoeBlock", "{P}BlockSparseTop2MLP", "w1", "w3", "w2", true};

ArchSpec spec(const char* model_type, const char* prefix, const MoeNaming& n, bool qk_norm, bool shared = false)
{
    ArchSpec a;
    a.model_type = model_type;
    a.class_prefix = prefix;
    a.causal_lm_class = std::string(prefix) + "ForCausalLM";
    a.base_prefix = "model";
    a.layer_class = "{P}DecoderLayer";
    const std::string layer = "model.layers.{i}.";
    const std::string block = layer + n.block;
    const std::string expert = block + ".experts.{e}";
    a.modules = {
        {"model", "{P}Model", {}},
        {"model.embed_tokens", "Embedding", {{"weight", [](const C& c) -> Shape { return {c.vocab_size, c.hidden_size}; }}}},
        {"model.layers", "ModuleList", {}},
        {"model.layers.{i}", "{P}DecoderLayer", {}},
    };
    // Qwen2-MoE: q, k and v always carry a bias, o never.
    for (ModuleSpec& m : llama_attention_specs(shared ? always : attn_bias, shared ? never : attn_bias, qk_norm))
        a.modules.push_back(std::move(m));
    const std::vector<ModuleSpec> moe = {
        {block, n.block_class, {}},
        {block + ".gate", "Linear", {{"weight", router_w}}},
        {block + ".experts", "ModuleList", {}},
        {expert, n.expert_class, {}},
        {expert + "." + n.gate, "Linear", {{"weight", expert_up}}},
        {expert + "." + (n.down_before_up ? n.down : n.up), "Linear", {{"weight", n.down_before_up ? expert_down : expert_up}}},
        {expert + "." + (n.down_before_up ? n.up : n.down), "Linear", {{"weight", n.down_before_up ? expert_up : expert_down}}},
        {expert + ".act_fn", "{act}", {}},
    };
    a.modules.insert(a.modules.end(), moe.begin(), moe.end());
    if (shared) {
        const std::vector<ModuleSpec> one = {
            {block + ".shared_expert", "{P}MLP", {}},
            {block + ".shared_expert.gate_proj", "Linear", {{"weight", shared_up}}},
            {block + ".shared_expert.up_proj", "Linear", {{"weight", shared_up}}},
            {block + ".shared_expert.down_proj", "Linear", {{"weight", shared_down}}},
            {block + ".shared_expert.act_fn", "{act}", {}},
            {block + ".shared_expert_gate", "Linear", {{"weight", shared_gate}}},
        };
        a.modules.insert(a.modules.end(), one.begin(), one.end());
    }
    const std::vector<ModuleSpec> norms = {
        {layer + "input_layernorm", "{P}RMSNorm", {{"weight", hidden}}},
        {layer + "post_attention_layernorm", "{P}RMSNorm", {{"weight", hidden}}},
    };
    a.modules.insert(a.modules.end(), norms.begin(), norms.end());
    for (ModuleSpec& m : llama_output_specs())
        a.modules.push_back(std::move(m));
    a.tied = {{"lm_head.weight", "model.embed_tokens.weight"}};
    return a;
}

void read_experts(const ConfigReader& r, ModelConfig& c, const char* count_key, const char* size_key)
{
    llama_read_config(r, c);
    // transformers 5 writes num_local_experts for every family; the published configs use the
    // family's own key.
    c.num_experts = r.has(count_key) ? r.positive(count_key) : r.positive("num_local_experts");
    c.experts_per_token = r.positive("num_experts_per_tok");
    c.expert_intermediate_size = r.positive(size_key);
    if (c.experts_per_token > c.num_experts)
        throw FormatError(r.raw().value("model_type", std::string("config")) + ": num_experts_per_tok (" +
                          std::to_string(c.experts_per_token) + ") is more than the " + std::to_string(c.num_experts) +
                          " experts");
}

void read_mixtral(const ConfigReader& r, ModelConfig& c)
{
    read_experts(r, c, "num_local_experts", "intermediate_size");
    c.norm_topk_prob = true;
    if (c.sliding_window) {
        c.local_window = *c.sliding_window;
        c.local_layers.assign(static_cast<std::size_t>(c.num_layers), true);
    }
}

void read_qwen_moe(const ConfigReader& r, ModelConfig& c)
{
    read_experts(r, c, "num_experts", "moe_intermediate_size");
    c.norm_topk_prob = r.flag_or("norm_topk_prob", false);
    // Layers with a dense MLP instead of experts (mlp_only_layers, decoder_sparse_step > 1):
    // none of the published Qwen3-MoE models has any.
    const bool dense_layers = (r.has("mlp_only_layers") && r.raw()["mlp_only_layers"].is_array() &&
                               !r.raw()["mlp_only_layers"].empty()) ||
                              r.positive_or("decoder_sparse_step", 1) != 1;
    if (dense_layers)
        throw UnsupportedError(c.model_type + " with dense layers among the expert layers (mlp_only_layers, "
                               "decoder_sparse_step > 1) is not supported; every layer must hold experts");
    if (r.flag_or("use_sliding_window", false))
        throw UnsupportedError(c.model_type + " with use_sliding_window is not supported");
}

void read_qwen2_moe(const ConfigReader& r, ModelConfig& c)
{
    read_qwen_moe(r, c);
    c.shared_expert_intermediate_size = r.positive("shared_expert_intermediate_size");
}

#ifndef LAYERWISE_ARCH_TABLES_ONLY
template <const MoeNaming& naming, bool qk_norm, bool shared = false>
at::Tensor layer(const ForwardStep& step, std::size_t index, const LayerWeights& w, const at::Tensor& input)
{
    const at::Tensor h = llama_attention(step, index, w, input, qk_norm);
    const at::Tensor x = rms_norm(h, w["post_attention_layernorm.weight"], step.config().norm_eps);
    static const ExpertNames names{std::string(naming.block) + ".gate", std::string(naming.block) + ".experts.", naming.gate,
                                   naming.up, naming.down};
    at::Tensor out = run_experts(step, w, x, names);
    if (shared) { // Qwen2-MoE's shared expert, scaled by sigmoid(shared_expert_gate(x))
        const std::vector<at::Tensor> gate_up = step.linears(w, {"mlp.shared_expert.gate_proj", "mlp.shared_expert.up_proj"}, x);
        const at::Tensor y = step.linear(w, "mlp.shared_expert.down_proj", activation(gate_up[0], step.config().hidden_act) * gate_up[1]);
        out = out + at::sigmoid(step.linear(w, "mlp.shared_expert_gate", x)) * y;
    }
    return h + out;
}
#endif

// llama.cpp's names: the router is ffn_gate_inp, and each of the three expert projections is
// one tensor over all experts (ffn_gate_exps [experts, rows, columns]), split per expert on load.
GgufNaming gguf_names(const char* arch, bool qk_norm, const MoeNaming& n, bool rope_permuted)
{
    GgufNaming g = llama_gguf_names({"", "", arch, rope_permuted});
    std::erase_if(g.blocks, [&](const auto& b) {
        return b.first == "ffn_gate" || b.first == "ffn_up" || b.first == "ffn_down" ||
               (!qk_norm && (b.first == "attn_q_norm" || b.first == "attn_k_norm"));
    });
    const std::string block = n.block;
    g.blocks.push_back({"ffn_gate_inp", block + ".gate"});
    g.blocks.push_back({"ffn_gate_exps", block + ".experts.{e}." + n.gate});
    g.blocks.push_back({"ffn_up_exps", block + ".experts.{e}." + n.up});
    g.blocks.push_back({"ffn_down_exps", block + ".experts.{e}." + n.down});
    g.blocks.push_back({"ffn_gate_inp_shexp", block + ".shared_expert_gate"});
    g.blocks.push_back({"ffn_gate_shexp", block + ".shared_expert.gate_proj"});
    g.blocks.push_back({"ffn_up_shexp", block + ".shared_expert.up_proj"});
    g.blocks.push_back({"ffn_down_shexp", block + ".shared_expert.down_proj"});
    return g;
}

} // namespace moe_arch
} // namespace

namespace {

// What the three families share: the llama layout's embedding and head, their experts' GGUF
// tensors, and the layer of `naming` with or without q/k norms and a shared expert.
Architecture moe_architecture(ArchSpec spec, void (*read)(const ConfigReader&, ModelConfig&), GgufNaming gguf,
                              DecoderLayerFn layer)
{
    Architecture a;
    a.spec = std::move(spec);
    a.read_config = read;
    a.gguf = std::move(gguf);
    a.gguf.experts = true;
    a.layers_path = "model.layers";
#ifndef LAYERWISE_ARCH_TABLES_ONLY
    a.embed = llama_embed;
    a.layer = layer;
    a.head = llama_head;
#else
    (void)layer;
#endif
    return a;
}

#ifndef LAYERWISE_ARCH_TABLES_ONLY
template <const moe_arch::MoeNaming& naming, bool qk_norm, bool shared = false>
constexpr DecoderLayerFn layer_of = moe_arch::layer<naming, qk_norm, shared>;
#else
template <const moe_arch::MoeNaming&, bool, bool = false>
constexpr DecoderLayerFn layer_of = nullptr;
#endif

} // namespace

Architecture mixtral_architecture()
{
    using namespace moe_arch;
    // llama.cpp writes Mixtral as a llama with experts, q/k rows permuted as for llama.
    return moe_architecture(spec("mixtral", "Mixtral", mixtral_naming, false), read_mixtral,
                            gguf_names("llama", false, mixtral_naming, true), layer_of<mixtral_naming, false>);
}

Architecture qwen2_moe_architecture()
{
    using namespace moe_arch;
    Architecture a = moe_architecture(spec("qwen2_moe", "Qwen2Moe", qwen_naming, false, /*shared=*/true), read_qwen2_moe,
                                      gguf_names("qwen2moe", false, qwen_naming, false), layer_of<qwen_naming, false, true>);
    a.quirks.qkv_bias = true;
    a.gguf.experts_renormalised = false; // llama.cpp's qwen2moe sums the chosen softmax weights as they are
    return a;
}

Architecture qwen3_moe_architecture()
{
    using namespace moe_arch;
    Architecture a = moe_architecture(spec("qwen3_moe", "Qwen3Moe", qwen_naming, true), read_qwen_moe,
                                      gguf_names("qwen3moe", true, qwen_naming, false), layer_of<qwen_naming, true>);
    a.quirks.qk_norm = true;
    a.quirks.fused_decode = true; // runtime/decode_fused.cpp runs its experts too
    return a;
}

} // namespace layerwise
