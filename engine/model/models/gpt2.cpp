// GPT-2: Conv1D projections store weights as [in, out]; the LM head is tied to wte.
#include "model/arch.h"

namespace layerwise {
namespace {

using Shape = std::vector<std::int64_t>;
using C = ModelConfig;

Shape wte(const C& c) { return {c.vocab_size, c.hidden_size}; }
Shape wpe(const C& c) { return {c.max_position_embeddings, c.hidden_size}; }
Shape hidden(const C& c) { return {c.hidden_size}; }
Shape c_attn_w(const C& c) { return {c.hidden_size, 3 * c.hidden_size}; }
Shape c_attn_b(const C& c) { return {3 * c.hidden_size}; }
Shape c_proj_w(const C& c) { return {c.hidden_size, c.hidden_size}; }
Shape c_fc_w(const C& c) { return {c.hidden_size, c.intermediate_size}; }
Shape c_fc_b(const C& c) { return {c.intermediate_size}; }
Shape mlp_proj_w(const C& c) { return {c.intermediate_size, c.hidden_size}; }

} // namespace

ArchSpec gpt2_arch()
{
    ArchSpec a;
    a.model_type = "gpt2";
    a.class_prefix = "GPT2";
    a.causal_lm_class = "GPT2LMHeadModel";
    a.base_prefix = "transformer";
    a.layer_class = "GPT2Block";
    const std::vector<TensorSpec> norm{{"weight", hidden}, {"bias", hidden}};
    a.modules = {
        {"transformer", "GPT2Model", {}},
        {"transformer.wte", "Embedding", {{"weight", wte}}},
        {"transformer.wpe", "Embedding", {{"weight", wpe}}},
        {"transformer.drop", "Dropout", {}},
        {"transformer.h", "ModuleList", {}},
        {"transformer.h.{i}", "GPT2Block", {}},
        {"transformer.h.{i}.ln_1", "LayerNorm", norm},
        {"transformer.h.{i}.attn", "GPT2Attention", {}},
        {"transformer.h.{i}.attn.c_attn", "Conv1D", {{"weight", c_attn_w}, {"bias", c_attn_b}}},
        {"transformer.h.{i}.attn.c_proj", "Conv1D", {{"weight", c_proj_w}, {"bias", hidden}}},
        {"transformer.h.{i}.attn.attn_dropout", "Dropout", {}},
        {"transformer.h.{i}.attn.resid_dropout", "Dropout", {}},
        {"transformer.h.{i}.ln_2", "LayerNorm", norm},
        {"transformer.h.{i}.mlp", "GPT2MLP", {}},
        {"transformer.h.{i}.mlp.c_fc", "Conv1D", {{"weight", c_fc_w}, {"bias", c_fc_b}}},
        {"transformer.h.{i}.mlp.c_proj", "Conv1D", {{"weight", mlp_proj_w}, {"bias", hidden}}},
        {"transformer.h.{i}.mlp.act", "{act}", {}},
        {"transformer.h.{i}.mlp.dropout", "Dropout", {}},
        {"transformer.ln_f", "LayerNorm", norm},
        {"lm_head", "Linear", {{"weight", wte}}},
    };
    a.tied = {{"lm_head.weight", "transformer.wte.weight"}};
    return a;
}

} // namespace layerwise
