#pragma once
// Opening a model: a model folder, a .gguf file, a config.json or a preset name becomes a
// Model — its config, its module tree and (when it has weights) its checkpoint's headers.
// Nothing is loaded; a Model is what plan_model() plans and Session::load() loads.
#include "core/dtype.h"
#include "core/log.h"
#include "model/config.h"
#include "model/module_tree.h"
#include "quant/gptq_config.h"

#include <cstdint>
#include <filesystem>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

namespace layerwise {

struct ModelDescription;
namespace text {
class Tokenizer;
}

struct OpenOptions {
    std::optional<DType> dtype; // nullopt: transformers' "auto" (the config's, else the checkpoint's)
    GptqSource gptq;            // where a GPTQ model's config and weights are, when its folder does not say
    Logger log;
};

class Model {
public:
    // IoError / FormatError / UnsupportedError naming what is wrong with `what`.
    static Model open(const std::string& what, const OpenOptions& options = {});

    Model(Model&&) noexcept;
    Model& operator=(Model&&) noexcept;
    ~Model();

    const std::string& source() const;   // what was opened, as named
    const ModelConfig& config() const;
    const ModuleTree& tree() const;
    DType dtype() const;                 // the dtype the weights resolve to
    bool has_weights() const;            // false for a preset, a config.json or a config-only folder
    std::filesystem::path folder() const; // the checkpoint's folder (empty without weights)
    std::filesystem::path config_path() const; // the config it was described from
    const std::optional<GptqCheckpoint>& gptq() const; // a GPTQ checkpoint's config and weights file

    // The quantization a saved checkpoint carries: "int8", "nf4-dq" (bitsandbytes
    // quantization_config), "gptq-4bit-128g"; empty when none.
    std::string saved_quantization() const;
    // How a tensor is held in the file when that is not its dtype: a GGUF block format ("Q4_K");
    // empty otherwise.
    std::string stored_format(const ModuleTensor& tensor) const;

    // The model's tokenizer (tokenizer.json, SentencePiece or the GGUF vocabulary). IoError /
    // FormatError when there is none or it cannot be read.
    std::unique_ptr<text::Tokenizer> tokenizer() const;
    // The end-of-sequence ids the model declares (generation_config.json, then config.json).
    std::vector<std::int64_t> eos_ids() const;

    // The `inspect` report.
    nlohmann::json to_json() const;
    std::string to_text() const;

private:
    explicit Model(std::unique_ptr<ModelDescription> description);
    friend struct ModelAccess;
    std::unique_ptr<ModelDescription> m_description;
};

} // namespace layerwise
