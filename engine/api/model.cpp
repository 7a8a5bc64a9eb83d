#include "api/model.h"

#include "api/model_access.h"
#include "checkpoint/gguf.h"
#include "core/error.h"
#include "inspect.h"
#include "model/quant_config.h"
#include "runtime/session.h"
#include "text/tokenizer.h"

#include <fstream>
#include <nlohmann/json.hpp>

namespace layerwise {

Model::Model(std::unique_ptr<ModelDescription> description) : m_description(std::move(description)) {}
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;
Model::~Model() = default;

Model Model::open(const std::string& what, const OpenOptions& options)
{
    return Model(std::make_unique<ModelDescription>(describe_model(what, options.dtype, options.log, options.gptq)));
}

const std::string& Model::source() const { return m_description->source; }
const ModelConfig& Model::config() const { return m_description->config; }
const ModuleTree& Model::tree() const { return m_description->tree; }
DType Model::dtype() const { return m_description->tree.dtype(); }
bool Model::has_weights() const { return m_description->checkpoint != nullptr; }
std::filesystem::path Model::config_path() const { return m_description->config_path; }
const std::optional<GptqCheckpoint>& Model::gptq() const { return m_description->gptq; }

std::filesystem::path Model::folder() const
{
    return m_description->checkpoint ? m_description->checkpoint->folder() : std::filesystem::path();
}

namespace {

// config.json's bitsandbytes quantization_config, as the planner names it; "" when none or unreadable.
std::string bnb_quantization(const std::filesystem::path& config_path)
{
    if (config_path.empty() || config_path.extension() != ".json")
        return {};
    std::ifstream in(config_path);
    const nlohmann::json config = nlohmann::json::parse(in, nullptr, false);
    if (!config.is_object() || !config.contains("quantization_config"))
        return {};
    try {
        const QuantOptions q = parse_bnb_quantization_config(config["quantization_config"], config_path.string());
        if (q.enabled())
            return std::string(quant_method_name(q.method)) + (q.double_quant ? "-dq" : "");
    } catch (const Error&) {
    }
    return {};
}

} // namespace

std::string Model::saved_quantization() const
{
    if (std::string bnb = bnb_quantization(m_description->config_path); !bnb.empty())
        return bnb;
    // A GPTQ checkpoint (quantize_config.json, or config.json's quantization_config).
    try {
        if (m_description->checkpoint)
            if (const auto g = find_gptq_config(m_description->checkpoint->folder()))
                return "gptq-" + std::to_string(g->bits) + "bit-" + std::to_string(g->group_size) + "g";
    } catch (const Error&) {
    }
    return {};
}

std::string Model::stored_format(const ModuleTensor& tensor) const
{
    if (!tensor.checkpoint_entry || !m_description->checkpoint)
        return {};
    const auto& g = m_description->checkpoint->tensors()[*tensor.checkpoint_entry].gguf;
    if (!g || !g->block_quantized)
        return {};
    return std::string(gguf::tensor_type_name(static_cast<gguf::TensorType>(g->ggml_type)));
}

std::unique_ptr<text::Tokenizer> Model::tokenizer() const
{
    const auto& d = *m_description;
    return text::load_tokenizer(d.checkpoint ? d.checkpoint->text_source() : std::filesystem::path(d.source));
}

std::vector<std::int64_t> Model::eos_ids() const
{
    return eos_token_ids(folder(), m_description->config);
}

nlohmann::json Model::to_json() const { return description_to_json(*m_description); }
std::string Model::to_text() const { return description_to_text(*m_description); }

} // namespace layerwise
