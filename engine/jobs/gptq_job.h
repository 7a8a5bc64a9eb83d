#pragma once
// The GPTQ quantize job: a model folder in, a new AutoGPTQ-format folder out.
//
// Calibration sequences run through the embeddings once; then the decoder layers, one at a time,
// are read from the memory-mapped checkpoint (never the whole model in memory): the inputs of
// each linear are captured on the calibration activations — true-sequential within a block as
// AutoGPTQ does (llama: q/k/v, then o_proj, then gate/up, then down_proj, each group seeing the
// already-quantized ones before it) —, the linears are quantized, and the quantized layer runs
// to produce the next layer's inputs. After each layer the packed tensors, the next layer's
// inputs and a state file are saved in `<out>.partial/`, so an interrupted or cancelled run
// resumes where it stopped. The result appears whole or not at all (a temporary folder,
// renamed): packed qweight/qzeros/scales(float16)/g_idx per linear, other tensors as stored,
// config.json with quantization_config, quantize_config.json, the tokenizer and generation files,
// weights in gptq_model-<bits>bit-<group>g.safetensors (sharded with an index when large).
//
// Calibration runs through the architecture's own forward pass (engine/archs/), one decoder layer
// at a time with an observer on its linears. Architectures: every one of the table that lists the
// linears GPTQ quantizes (the llama family, GPT-2 — Conv1D weights quantized as their [out, in]
// transpose, as AutoGPTQ does —, GPT-NeoX). Linears whose input or output size is not a multiple
// of 32 cannot be packed in AutoGPTQ's layout and are kept as stored.
#include "core/log.h"
#include "quant/gptq_params.h"

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace layerwise {

enum class GptqJobMethod { gptq, rtn }; // rtn: round-to-nearest with the same groups (no calibration)

struct GptqJobOptions {
    GptqJobMethod method = GptqJobMethod::gptq;
    GptqParams params;
    bool true_sequential = true;
    std::filesystem::path calibration;   // a UTF-8 text file (required for gptq)
    std::int64_t samples = 128;          // calibration sequences
    std::int64_t seq_len = 512;          // tokens per sequence (at most max_position_embeddings)
    std::string device = "auto";         // "auto" (the first GPU, else the CPU), "cpu", "cuda", "cuda:N"
    std::uint64_t max_shard_bytes = 4ull << 30; // larger outputs are split into shards with an index
};

struct GptqLayerProgress {
    int layer = 0;             // 0-based decoder layer
    int layers = 0;
    std::string module;        // "model.layers.3.mlp.down_proj", or "" when the layer is done
    double avg_loss = 0.0;     // AutoGPTQ's "avg loss" of that module (RTN: mean squared error)
    double elapsed_seconds = 0.0;
    double eta_seconds = 0.0;  // from the time per layer so far; 0 before the first layer ends
    bool resumed = false;      // the layer was done by an earlier run
};
// false cancels: CancelledError; the layers already done stay in `<out>.partial/` for a rerun.
using GptqProgressCallback = std::function<bool(const GptqLayerProgress&)>;

struct GptqModuleReport {
    std::string name;          // "model.layers.0.self_attn.q_proj"
    double avg_loss = 0.0;
    double output_error = 0.0; // Σ (w - q) H (w - q)ᵀ on the calibration activations (gptq only)
    bool quantized = true;     // false: kept as stored (shape not packable)
};

struct GptqJobResult {
    std::filesystem::path folder;
    std::string weights_file;   // gptq_model-4bit-128g.safetensors (or the index)
    int quantized_linears = 0;
    int kept_linears = 0;
    int resumed_layers = 0;
    std::uint64_t weight_bytes = 0;
    std::vector<GptqModuleReport> modules;
};

// PlanError for bad parameters (bits, group size, samples, seq_len, a missing calibration text),
// an unsupported architecture (UnsupportedError), an already quantized model; IoError when `out`
// exists or a partial run with other options is in the way; CancelledError when the callback
// returns false.
GptqJobResult run_gptq_job(const std::filesystem::path& model, const std::filesystem::path& out, const GptqJobOptions& options,
                           const GptqProgressCallback& progress = {}, const Logger& log = {});

// The folder a run keeps its progress in: `<out>.partial` beside `out`.
std::filesystem::path gptq_partial_folder(const std::filesystem::path& out);

} // namespace layerwise
