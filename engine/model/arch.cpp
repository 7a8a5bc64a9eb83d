#include "model/arch.h"

#include <deque>
#include <map>
#include <set>

namespace layerwise {
namespace {

// Architectures registered at run time; a deque keeps the addresses handed out stable.
std::deque<Architecture>& registered()
{
    static std::deque<Architecture> extra;
    return extra;
}

template <typename F>
const Architecture* find_first(F&& matches)
{
    for (const Architecture& a : registered())
        if (matches(a))
            return &a;
    for (const Architecture& a : builtin_architectures())
        if (matches(a))
            return &a;
    return nullptr;
}

} // namespace

void register_architecture(Architecture architecture)
{
    for (Architecture& a : registered())
        if (a.spec.model_type == architecture.spec.model_type) {
            a = std::move(architecture);
            return;
        }
    registered().push_back(std::move(architecture));
}

const Architecture* find_architecture(const std::string& model_type)
{
    return find_first([&](const Architecture& a) { return a.spec.model_type == model_type; });
}

const Architecture* find_gguf_architecture(const std::string& gguf_arch, bool experts)
{
    if (gguf_arch.empty())
        return nullptr;
    // An architecture whose GGUF form is always a mixture of experts (qwen3moe) matches either way.
    const Architecture* exact = find_first([&](const Architecture& a) { return a.gguf.arch == gguf_arch && a.gguf.experts == experts; });
    return exact ? exact : find_first([&](const Architecture& a) { return a.gguf.arch == gguf_arch; });
}

const ArchSpec* find_arch(const std::string& model_type)
{
    const Architecture* a = find_architecture(model_type);
    return a ? &a->spec : nullptr;
}

std::string supported_arch_list()
{
    std::string out;
    for (const auto& a : builtin_architectures())
        out += (out.empty() ? "" : ", ") + a.spec.model_type;
    for (const auto& a : registered())
        out += (out.empty() ? "" : ", ") + a.spec.model_type;
    return out;
}

std::string supported_gguf_list()
{
    // Each GGUF name once (llama's form with experts is Mixtral), in order.
    std::set<std::string> names;
    for (const auto& a : builtin_architectures())
        if (!a.gguf.arch.empty())
            names.insert(a.gguf.arch);
    std::string out;
    for (const std::string& n : names)
        out += (out.empty() ? "" : ", ") + n;
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
