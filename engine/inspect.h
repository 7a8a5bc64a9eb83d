#pragma once
// Describing a model without loading it: a model folder, a single config.json, or a
// preset name -> config, module tree (and checkpoint headers when there are weights).
#include "checkpoint/checkpoint.h"
#include "core/log.h"
#include "model/config.h"
#include "model/module_tree.h"
#include "quant/gptq_config.h"

#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>

namespace layerwise {

enum class ModelSourceKind { folder, config_file, preset };

struct ModelDescription {
    std::string source;        // what the user named
    ModelSourceKind kind = ModelSourceKind::folder;
    std::filesystem::path config_path;
    ModelConfig config;
    ModuleTree tree;
    std::unique_ptr<Checkpoint> checkpoint; // null for a config file or a preset
    std::optional<GptqCheckpoint> gptq;     // a GPTQ checkpoint: its config and weights file
};

// `what`: a model folder, a weights file (its folder's config.json is used), a config.json,
// or a preset name. `dtype`: nullopt = transformers' "auto". Reads headers only. A folder with a
// GPTQ config (see find_gptq_checkpoint; `gptq` overrides where the config and weights are)
// reads the GPTQ weights file.
ModelDescription describe_model(const std::string& what, std::optional<DType> dtype = std::nullopt,
                                const Logger& log = {}, const GptqSource& gptq = {});

// The `inspect --json` object: architecture, num_layers, parameters, bytes per dtype,
// largest_layer_bytes, modules (the tree with per-module bytes), checkpoint files...
nlohmann::json description_to_json(const ModelDescription& d);
std::string description_to_text(const ModelDescription& d);

} // namespace layerwise
