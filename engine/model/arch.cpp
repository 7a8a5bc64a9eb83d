#include "model/arch.h"

#include <map>

namespace layerwise {
namespace {

const std::vector<ArchSpec>& registry()
{
    static const std::vector<ArchSpec> table = {
        gpt2_arch(),
        gpt_neox_arch(),
        llama_family_arch("llama", "Llama"),
        llama_family_arch("mistral", "Mistral"),
        llama_family_arch("qwen2", "Qwen2"),
        llama_family_arch("qwen3", "Qwen3"),
    };
    return table;
}

} // namespace

const ArchSpec* find_arch(const std::string& model_type)
{
    for (const auto& a : registry())
        if (a.model_type == model_type)
            return &a;
    return nullptr;
}

std::string supported_arch_list()
{
    std::string out;
    for (const auto& a : registry())
        out += (out.empty() ? "" : ", ") + a.model_type;
    return out;
}

std::string activation_class(const std::string& hidden_act)
{
    static const std::map<std::string, std::string> table{
        {"silu", "SiLUActivation"},          {"swish", "SiLUActivation"},
        {"gelu", "GELUActivation"},          {"gelu_new", "NewGELUActivation"},
        {"gelu_pytorch_tanh", "GELUTanh"},   {"gelu_fast", "FastGELUActivation"},
        {"quick_gelu", "QuickGELUActivation"}, {"relu", "ReLU"}, {"tanh", "Tanh"},
    };
    auto it = table.find(hidden_act);
    return it == table.end() ? hidden_act : it->second;
}

} // namespace layerwise
