#pragma once
// A model whose weights sit on their planned devices: GPU tensors, CPU tensors (zero-copy
// views of the checkpoint mapping when the dtype matches) and disk tensors (views of the
// mapped checkpoint, or of an offload file written once when a conversion was needed).
#include "runtime/run_types.h"
#include "checkpoint/checkpoint.h"
#include "core/log.h"
#include "core/progress.h"
#include "model/config.h"
#include "model/module_tree.h"
#include "plan/device_map.h"
#include "model/quant_config.h"

#include <ATen/core/Tensor.h>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace layerwise {

struct ModelDescription;

struct ByteRange {
    const MappedFile* file = nullptr;
    std::uint64_t offset = 0, size = 0;
};

struct LayerWeights {
    std::unordered_map<std::string, at::Tensor> tensors; // local name ("self_attn.q_proj.weight") -> tensor
    Device home;                                         // where the weights live
    std::vector<ByteRange> disk_ranges;                  // mapped bytes to prefetch / release (disk layers)
    std::unordered_map<std::string, QuantInfo> quant;    // quantized linears by local module name ("mlp.up_proj")
    // Tensors of the block's experts (a mixture of experts), by local name: they compute where
    // they live and are never streamed to the GPU with the rest of an offloaded block.
    std::unordered_set<std::string> expert_tensors;
    const at::Tensor& operator[](const std::string& name) const;
    const at::Tensor* find(const std::string& name) const;
    const QuantInfo* find_quant(const std::string& module) const;
    // Whether q and k keep llama.cpp's interleaved row order (GGUF blocks as stored): the rotary
    // embedding then rotates adjacent pairs instead of halves. q . k is the same either way.
    bool rope_pairs() const;
};

struct LoadedModel {
    ModelConfig config;
    ModuleTree tree;
    DeviceMap device_map;
    DType dtype = DType::f32;
    QuantOptions quant;                                 // the quantization applied (none for plain weights)
    std::unique_ptr<Checkpoint> checkpoint;             // keeps the mappings alive
    std::unique_ptr<Checkpoint> offload;                // converted disk weights, if any
    std::unordered_map<std::string, at::Tensor> globals; // tensors outside decoder blocks, by full name
    std::unordered_map<std::string, QuantInfo> global_quant; // GGUF blocks outside decoder blocks, by module ("lm_head")
    std::vector<LayerWeights> layers;
    // Decoder layers [begin, end) that another process runs (a pipeline stage on another machine,
    // engine/remote/): the hidden states of a step go there at `start` and come back. Their own
    // weights here stay unread (mapped on "disk"). `sequence` names the KV cache the step
    // continues (0: the runner's own; else the id of one of a batch's caches), which the other
    // process mirrors with one of its own; forward_rows is a batched step, a row per sequence.
    struct RemoteLayers {
        std::size_t begin = 0, end = 0;
        std::string where; // "host:port"
        std::function<at::Tensor(const at::Tensor& hidden, std::int64_t start, std::int64_t sequence)> forward;
        std::function<at::Tensor(const at::Tensor& hidden, const std::vector<std::int64_t>& sequences,
                                 const std::vector<std::int64_t>& starts)>
            forward_rows;
        // forward_rows in two halves, so that other work runs meanwhile (micro-batches): post_rows
        // sends the step and returns a ticket, await_rows takes its answer. Both or neither.
        std::function<std::int64_t(const at::Tensor& hidden, const std::vector<std::int64_t>& sequences,
                                   const std::vector<std::int64_t>& starts)>
            post_rows;
        std::function<at::Tensor(std::int64_t ticket)> await_rows;
    };
    // Batched rows over remote stages go in micro-batches, so that the machines work at once.
    bool micro_batches = true;
    std::vector<RemoteLayers> remote;
    Device execution_device;                            // where offloaded layers run
    std::function<void(int layer, LayerState state)> on_layer_state;

    const at::Tensor& global(const std::string& full_name) const; // FormatError if absent
    const at::Tensor* find_global(const std::string& full_name) const;
    const QuantInfo* find_global_quant(const std::string& module) const;
    nlohmann::json hf_device_map() const;
};

struct LoadOptions {
    std::optional<DType> dtype;                // nullopt: the model's resolved dtype
    DeviceMap device_map;                      // must validate against the model
    std::filesystem::path offload_folder = "."; // where converted disk weights are written once
    QuantOptions quant;                        // quantize decoder linears on the fly (bitsandbytes layout)
    // GGUF block formats are kept as the file holds them and run on the block kernels (activations
    // rounded to 8-bit blocks, as llama.cpp does). True: decode them to the dtype at load and run
    // float matmuls instead, as transformers' GGUF loader does (more memory; its reference path).
    bool gguf_decode = false;
    ProgressCallback progress;                 // bytes done / total; false cancels
    Logger log;
};

// Loads the checkpoint of a described model folder. Throws (and frees everything) on any error
// or cancellation: CancelledError when the progress callback returned false.
std::unique_ptr<LoadedModel> load_model(ModelDescription&& description, const LoadOptions& options);

// The intra-op thread count LibTorch should use: the CPUs this process may run on.
int usable_cpu_count();

} // namespace layerwise
