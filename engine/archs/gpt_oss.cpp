// gpt-oss (transformers' GptOssForCausalLM): the llama layout's attention with biases on q, k, v
// and o, a learned sink logit per head in every softmax, a local window on the layers
// layer_types marks "sliding_attention" (default: even layers), yarn rotary; a mixture of
// experts whose router has a bias and whose experts have biases and a clamped gated activation
// ((up + 1) * gate * sigmoid(1.702 gate), gate <= 7, |up| <= 7). The router takes the top k
// logits and softmaxes over them, which is the full softmax renormalised over the chosen.
//
// transformers keeps all experts of a layer in four parameters: gate_up_proj [experts, hidden,
// 2 * intermediate] (gate and up columns alternate), its bias, down_proj [experts, intermediate,
// hidden] and its bias; the published checkpoints store the two weights in MXFP4 instead
// (`*_blocks` [experts, rows, columns / 32, 16] and `*_scales` [experts, rows, columns / 32],
// rows being outputs). Layerwise gives each expert its own modules (mlp.experts.3.gate_proj,
// .up_proj, .down_proj: Linear with bias), the units expert placement moves, and reads them as
// views of the checkpoint: the dense form through strides, MXFP4 as ggml's MXFP4 blocks the
// block kernels run (joined from codes and scales when loaded; the bytes are the same 17 per 32
// weights, so what the planner counts is what is held).
#include "archs/architectures.h"

#include "checkpoint/checkpoint.h"
#include "core/error.h"
#include "model/config_reader.h"
#ifndef LAYERWISE_ARCH_TABLES_ONLY
#include "runtime/experts.h"

#include <ATen/ATen.h>
#endif

#include <map>
#include <regex>

namespace layerwise {
namespace {
namespace gpt_oss_arch {

using Shape = std::vector<std::int64_t>;
using C = ModelConfig;

Shape hidden(const C& c) { return {c.hidden_size}; }
Shape heads(const C& c) { return {c.num_heads}; }
Shape router_w(const C& c) { return {c.num_experts, c.hidden_size}; }
Shape router_b(const C& c) { return {c.num_experts}; }
Shape expert_up(const C& c) { return {c.expert_intermediate_size, c.hidden_size}; }
Shape expert_up_b(const C& c) { return {c.expert_intermediate_size}; }
Shape expert_down(const C& c) { return {c.hidden_size, c.expert_intermediate_size}; }
bool attn_bias(const C& c) { return c.attention_bias; }

ArchSpec spec()
{
    ArchSpec a;
    a.model_type = "gpt_oss";
    a.class_prefix = "GptOss";
    a.causal_lm_class = "GptOssForCausalLM";
    a.base_prefix = "model";
    a.layer_class = "{P}DecoderLayer";
    a.modules = {
        {"model", "{P}Model", {}},
        {"model.embed_tokens", "Embedding", {{"weight", [](const C& c) -> Shape { return {c.vocab_size, c.hidden_size}; }}}},
        {"model.layers", "ModuleList", {}},
        {"model.layers.{i}", "{P}DecoderLayer", {}},
    };
    for (ModuleSpec& m : llama_attention_specs(attn_bias, attn_bias, false)) {
        if (m.path == "model.layers.{i}.self_attn")
            m.tensors.push_back({"sinks", heads});
        a.modules.push_back(std::move(m));
    }
    const std::string mlp = "model.layers.{i}.mlp", expert = mlp + ".experts.{e}";
    const std::vector<ModuleSpec> rest = {
        {mlp, "{P}MLP", {}},
        {mlp + ".router", "{P}TopKRouter", {{"weight", router_w}, {"bias", router_b}}},
        {mlp + ".experts", "{P}Experts", {}},
        {expert, "{P}Expert", {}},
        {expert + ".gate_proj", "Linear", {{"weight", expert_up}, {"bias", expert_up_b}}},
        {expert + ".up_proj", "Linear", {{"weight", expert_up}, {"bias", expert_up_b}}},
        {expert + ".down_proj", "Linear", {{"weight", expert_down}, {"bias", hidden}}},
        {"model.layers.{i}.input_layernorm", "{P}RMSNorm", {{"weight", hidden}}},
        {"model.layers.{i}.post_attention_layernorm", "{P}RMSNorm", {{"weight", hidden}}},
    };
    a.modules.insert(a.modules.end(), rest.begin(), rest.end());
    for (ModuleSpec& m : llama_output_specs())
        a.modules.push_back(std::move(m));
    a.tied = {{"lm_head.weight", "model.embed_tokens.weight"}};
    return a;
}

void read_config(const ConfigReader& r, ModelConfig& c)
{
    llama_read_config(r, c);
    c.num_experts = r.positive("num_local_experts");
    c.experts_per_token = r.has("num_experts_per_tok") ? r.positive("num_experts_per_tok") : r.positive("experts_per_token");
    c.expert_intermediate_size = c.intermediate_size;
    c.norm_topk_prob = true; // softmax over the chosen experts' logits
    if (c.experts_per_token > c.num_experts)
        throw FormatError(c.described_by + ": num_experts_per_tok (" + std::to_string(c.experts_per_token) + ") is more than the " +
                          std::to_string(c.num_experts) + " experts");
    c.swiglu_limit = r.number_or("swiglu_limit", 7.0);
    c.swiglu_alpha = r.number_or("swiglu_alpha", 1.702);
    if (c.swiglu_limit <= 0)
        throw FormatError(c.described_by + ": swiglu_limit must be positive, not " + std::to_string(c.swiglu_limit));
    // Local layers: layer_types, else transformers' default (even layers local).
    c.sliding_window.reset();
    c.local_window = r.positive_or("sliding_window", 128);
    read_layer_types(r, c);
    const nlohmann::json& raw = r.raw();
    if (raw.contains("quantization_config") && raw["quantization_config"].is_object()) {
        const std::string method = raw["quantization_config"].value("quant_method", std::string());
        if (method != "mxfp4")
            throw UnsupportedError(c.described_by + ": gpt-oss quantized as '" + method +
                                   "' is not supported (its own MXFP4 experts are; so are the unquantized weights)");
        c.mxfp4_experts = true;
    }
}

#ifndef LAYERWISE_ARCH_TABLES_ONLY
// One expert's share of a stored tensor over all experts, as an entry of its own.
TensorEntry expert_share(const TensorEntry& all, const std::string& name, std::vector<std::int64_t> shape,
                         std::vector<std::int64_t> strides, std::uint64_t first_element, std::uint64_t span_elements)
{
    TensorEntry p = all;
    const std::uint64_t element = dtype_bytes(all.dtype, 1);
    p.name = name;
    p.shape = std::move(shape);
    p.strides = std::move(strides);
    p.offset = all.offset + first_element * element;
    p.size = span_elements * element;
    return p;
}

// transformers' fused expert parameters, and the published MXFP4 form of the weights, as one
// gate_proj, up_proj and down_proj (weight and bias) per expert.
void adopt_checkpoint(Checkpoint& ck, const ModelConfig& c)
{
    static const std::regex fused(R"((.*\.mlp\.experts\.)(gate_up_proj|down_proj)(_bias|_blocks|_scales)?)");
    const std::int64_t experts = c.num_experts, hidden = c.hidden_size, inter = c.expert_intermediate_size;
    const std::string where = ck.folder().string();
    // The MXFP4 scales are read into the codes' entries: taken out first, by "<prefix><proj>".
    std::map<std::string, TensorEntry> scales;
    ck.edit_entries([&](TensorEntry& t) {
        std::smatch m;
        if (!std::regex_match(t.name, m, fused) || m[3] != "_scales")
            return true;
        scales.emplace(m[1].str() + m[2].str(), t);
        return false;
    });
    const auto fail = [&](const TensorEntry& t, const std::string& expected) {
        return FormatError(where + ": tensor '" + t.name + "' has shape " + shape_string(t.shape) + " and dtype " +
                           std::string(safetensors_name(t.dtype)) + "; gpt-oss (" + std::to_string(experts) + " experts, hidden_size " +
                           std::to_string(hidden) + ", intermediate_size " + std::to_string(inter) + ") stores it as " + expected);
    };
    ck.split_entries([&](const TensorEntry& t) {
        std::vector<TensorEntry> parts;
        std::smatch m;
        if (!std::regex_match(t.name, m, fused))
            return parts;
        const std::string prefix = m[1].str(), proj = m[2].str(), kind = m[3].str();
        const bool gate_up = proj == "gate_up_proj";
        const std::int64_t in = gate_up ? hidden : inter, out = gate_up ? 2 * inter : hidden;
        const auto name = [&](std::int64_t e, const char* module, const char* tensor) {
            return prefix + std::to_string(e) + "." + module + "." + tensor;
        };
        // The projections one stored tensor holds and which of its rows (outputs) each takes:
        // gate_up_proj's gate is outputs 0, 2, 4..., up 1, 3, 5...
        struct Part {
            const char* module;
            std::int64_t first, step;
        };
        const std::vector<Part> projections =
            gate_up ? std::vector<Part>{{"gate_proj", 0, 2}, {"up_proj", 1, 2}} : std::vector<Part>{{"down_proj", 0, 1}};
        const std::int64_t rows = gate_up ? inter : hidden; // outputs of each projection
        if (kind.empty()) { // dense [experts, in, out]: weight e = t[e].T, every step-th column
            if (t.shape != Shape{experts, in, out} || !is_floating(t.dtype) || !t.strides.empty())
                throw fail(t, "[" + std::to_string(experts) + ", " + std::to_string(in) + ", " + std::to_string(out) + "] floating point");
            for (std::int64_t e = 0; e < experts; ++e)
                for (const Part& p : projections) {
                    const std::uint64_t first = static_cast<std::uint64_t>(e * in * out + p.first);
                    parts.push_back(expert_share(t, name(e, p.module, "weight"), {rows, in}, {p.step, out}, first,
                                                 static_cast<std::uint64_t>((in - 1) * out + (rows - 1) * p.step + 1)));
                }
            return parts;
        }
        if (kind == "_bias") { // [experts, out]
            if (t.shape != Shape{experts, out} || !is_floating(t.dtype) || !t.strides.empty())
                throw fail(t, "[" + std::to_string(experts) + ", " + std::to_string(out) + "] floating point");
            for (std::int64_t e = 0; e < experts; ++e)
                for (const Part& p : projections)
                    parts.push_back(expert_share(t, name(e, p.module, "bias"), {rows}, {p.step},
                                                 static_cast<std::uint64_t>(e * out + p.first),
                                                 static_cast<std::uint64_t>((rows - 1) * p.step + 1)));
            return parts;
        }
        // MXFP4 codes [experts, out, in / 32, 16] and their scales [experts, out, in / 32].
        const std::int64_t groups = in / 32;
        const auto s = scales.find(prefix + proj);
        if (in % 32 != 0 || t.shape != Shape{experts, out, groups, 16} || t.dtype != DType::u8)
            throw fail(t, "uint8 [" + std::to_string(experts) + ", " + std::to_string(out) + ", " + std::to_string(groups) + ", 16]");
        if (s == scales.end())
            throw FormatError(where + ": tensor '" + t.name + "' holds MXFP4 codes but its scales ('" + prefix + proj +
                              "_scales') are missing; the checkpoint is incomplete");
        if (s->second.shape != Shape{experts, out, groups} || s->second.dtype != DType::u8)
            throw fail(s->second, "uint8 [" + std::to_string(experts) + ", " + std::to_string(out) + ", " + std::to_string(groups) + "]");
        for (std::int64_t e = 0; e < experts; ++e)
            for (const Part& p : projections) {
                TensorEntry q = t;
                q.name = name(e, p.module, "weight");
                q.dtype = DType::f32; // decoded
                q.shape = {rows, in};
                const auto first_row = static_cast<std::uint64_t>(e * out + p.first);
                q.offset = t.offset + first_row * static_cast<std::uint64_t>(groups) * 16;
                q.size = static_cast<std::uint64_t>(rows * groups * 17);
                GgufEncoding enc;
                enc.ggml_type = 39; // MXFP4
                enc.block_quantized = true;
                enc.hf_mxfp4_scales = GgufEncoding::SplitScales{s->second.file, s->second.offset + first_row * static_cast<std::uint64_t>(groups),
                                                                p.step};
                q.gguf = enc;
                parts.push_back(std::move(q));
            }
        scales.erase(s);
        return parts;
    });
    if (!scales.empty())
        throw FormatError(where + ": tensor '" + scales.begin()->second.name + "' holds MXFP4 scales but the codes they scale ('" +
                          scales.begin()->first + "_blocks') are missing; the checkpoint is incomplete");
}

at::Tensor layer(const ForwardStep& step, std::size_t index, const LayerWeights& w, const at::Tensor& input)
{
    const at::Tensor h = llama_attention(step, index, w, input, false); // the sinks ride along (self_attn.sinks)
    const at::Tensor x = rms_norm(h, w["post_attention_layernorm.weight"], step.config().norm_eps);
    static const ExpertNames names{"mlp.router", "mlp.experts.", "gate_proj", "up_proj", "down_proj"};
    return h + run_experts(step, w, x, names);
}
#endif

// llama.cpp's names ("gpt-oss"): its converter splits gate_up into gate and up (the even and odd
// outputs) and keeps MXFP4 experts as ggml's MXFP4 blocks, one tensor per projection over all
// experts (split per expert on load), their biases beside them.
GgufNaming gguf_names()
{
    GgufNaming g;
    g.arch = "gpt-oss";
    g.experts = true;
    g.local_every = 2; // llama.cpp's swa pattern 2: even layers local
    g.swiglu_limit = 7.0;
    g.blocks = {
        {"attn_norm", "input_layernorm"},
        {"post_attention_norm", "post_attention_layernorm"},
        {"attn_q", "self_attn.q_proj"},
        {"attn_k", "self_attn.k_proj"},
        {"attn_v", "self_attn.v_proj"},
        {"attn_output", "self_attn.o_proj"},
        {"attn_sinks.weight", "self_attn.sinks"},
        {"ffn_gate_inp", "mlp.router"},
        {"ffn_gate_exps", "mlp.experts.{e}.gate_proj"},
        {"ffn_up_exps", "mlp.experts.{e}.up_proj"},
        {"ffn_down_exps", "mlp.experts.{e}.down_proj"},
    };
    g.globals = {{"token_embd", "model.embed_tokens"}, {"output_norm", "model.norm"}, {"output", "lm_head"}};
    return g;
}

} // namespace gpt_oss_arch
} // namespace

Architecture gpt_oss_architecture()
{
    using namespace gpt_oss_arch;
    Architecture a;
    a.spec = spec();
    a.read_config = read_config;
    a.layers_path = "model.layers";
    a.gguf = gguf_names();
#ifndef LAYERWISE_ARCH_TABLES_ONLY
    a.adopt_checkpoint = adopt_checkpoint;
    a.embed = llama_embed;
    a.layer = layer;
    a.head = llama_head;
#endif
    return a;
}

} // namespace layerwise
