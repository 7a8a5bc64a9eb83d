#include "model/module_tree.h"
#include "model/quant_config.h"

#include "checkpoint/checkpoint.h"
#include "core/error.h"
#include "model/arch.h"

#include <algorithm>
#include <cassert>
#include <set>
#include <unordered_map>

namespace layerwise {

std::uint64_t ModuleTensor::numel() const
{
    std::uint64_t n = 1;
    for (auto d : shape)
        n *= static_cast<std::uint64_t>(d);
    return n;
}

namespace {

std::string replace_all(std::string s, const std::string& from, const std::string& to)
{
    for (std::size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size()))
        s.replace(p, from.size(), to);
    return s;
}

bool starts_with(const std::string& s, const std::string& prefix)
{
    return s.compare(0, prefix.size(), prefix) == 0;
}

} // namespace

int ModuleTree::add_node(const std::string& name, const std::string& class_name)
{
    ModuleNode n;
    n.name = name;
    n.class_name = class_name;
    if (!name.empty()) {
        const auto dot = name.rfind('.');
        const std::string parent = dot == std::string::npos ? std::string() : name.substr(0, dot);
        n.parent = find(parent);
        assert(n.parent >= 0 && "modules must be listed parent first");
    }
    m_nodes.push_back(std::move(n));
    const int index = static_cast<int>(m_nodes.size()) - 1;
    m_index.emplace(m_nodes.back().name, index);
    if (m_nodes[index].parent >= 0)
        m_nodes[static_cast<std::size_t>(m_nodes[index].parent)].children.push_back(index);
    return index;
}

ModuleTree ModuleTree::build(const ModelConfig& config, const ArchSpec& arch, DType dtype)
{
    ModuleTree tree;
    tree.m_dtype = dtype;
    tree.m_no_split_class = replace_all(arch.layer_class, "{P}", arch.class_prefix);
    tree.add_node("", config.architecture);
    auto emit = [&](const ModuleSpec& spec, int layer, int expert) {
        if (spec.present && !spec.present(config))
            return;
        std::string name = layer >= 0 ? replace_all(spec.path, "{i}", std::to_string(layer)) : spec.path;
        if (expert >= 0)
            name = replace_all(name, "{e}", std::to_string(expert));
        std::string cls = replace_all(spec.class_name, "{P}", arch.class_prefix);
        cls = replace_all(cls, "{act}", activation_class(config.hidden_act));
        const int index = tree.add_node(name, cls);
        ModuleNode& node = tree.m_nodes[static_cast<std::size_t>(index)];
        if (cls == tree.m_no_split_class) {
            node.no_split = true;
            node.layer = layer;
        }
        if (expert >= 0 && spec.path.ends_with(".{e}")) {
            node.expert = expert;
            tree.m_nodes[static_cast<std::size_t>(node.parent)].expert_list = true;
        }
        // transformers lists a module's parameters before its buffers.
        for (int pass = 0; pass < 2; ++pass) {
            for (const TensorSpec& t : spec.tensors) {
                if (t.buffer != (pass == 1) || (t.present && !t.present(config)))
                    continue;
                ModuleTensor mt;
                mt.name = t.name;
                mt.full_name = name + "." + t.name;
                mt.shape = t.shape(config);
                mt.buffer = t.buffer;
                mt.persistent = t.persistent;
                mt.dtype = t.fixed_dtype ? *t.fixed_dtype : dtype;
                // gpt-oss's MXFP4 experts: 16 bytes of codes and one of scale per 32 weights.
                if (config.mxfp4_experts && expert >= 0 && mt.name == "weight" && mt.shape.size() == 2 && mt.shape[1] % 32 == 0)
                    mt.quantized_bytes = static_cast<std::uint64_t>(mt.shape[0] * mt.shape[1] / 32 * 17);
                for (auto d : mt.shape)
                    if (d <= 0)
                        throw FormatError(config.described_by + " gives " + mt.full_name + " the shape " +
                                          shape_string(mt.shape) + "; every dimension must be positive");
                node.tensors.push_back(std::move(mt));
            }
        }
    };
    const auto& mods = arch.modules;
    auto has = [&](std::size_t k, const char* placeholder) {
        return k < mods.size() && mods[k].path.find(placeholder) != std::string::npos;
    };
    for (std::size_t i = 0; i < mods.size();) {
        if (!has(i, "{i}")) {
            emit(mods[i], -1, -1);
            ++i;
            continue;
        }
        std::size_t end = i;
        while (has(end, "{i}"))
            ++end;
        for (std::int64_t layer = 0; layer < config.num_layers; ++layer)
            for (std::size_t k = i; k < end;) {
                if (!has(k, "{e}")) {
                    emit(mods[k], static_cast<int>(layer), -1);
                    ++k;
                    continue;
                }
                // A run of per-expert modules: all of expert 0's, then expert 1's...
                std::size_t run_end = k;
                while (run_end < end && has(run_end, "{e}"))
                    ++run_end;
                for (std::int64_t e = 0; e < config.num_experts; ++e)
                    for (std::size_t r = k; r < run_end; ++r)
                        emit(mods[r], static_cast<int>(layer), static_cast<int>(e));
                k = run_end;
            }
        i = end;
    }
    if (config.tie_word_embeddings) {
        tree.m_tied = arch.tied;
        for (const auto& [tied, source] : arch.tied) {
            auto* t = const_cast<ModuleTensor*>(tree.find_tensor(tied));
            if (t)
                t->tied_to = source;
        }
    }
    return tree;
}

ModuleTree ModuleTree::from_config(const ModelConfig& config, DType dtype)
{
    const ArchSpec* arch = find_arch(config.model_type);
    if (!arch)
        throw UnsupportedError("unsupported architecture '" + config.model_type + "'; supported: " +
                               supported_arch_list());
    return build(config, *arch, dtype);
}

ModuleTree ModuleTree::from_checkpoint(const ModelConfig& config, const Checkpoint& checkpoint,
                                       std::optional<DType> dtype, const Logger& log)
{
    const ArchSpec* arch = find_arch(config.model_type);
    if (!arch)
        throw UnsupportedError("unsupported architecture '" + config.model_type + "'; supported: " +
                               supported_arch_list());
    std::optional<DType> first_floating;
    for (const auto& t : checkpoint.tensors())
        if (is_floating(t.dtype)) {
            first_floating = t.dtype;
            break;
        }
    const DType load_dtype = dtype ? *dtype : resolve_auto_dtype(config, first_floating);
    ModuleTree tree = build(config, *arch, load_dtype);

    // Checkpoint names -> entry, after mapping old names and adding a missing base prefix.
    std::unordered_map<std::string, std::size_t> by_name;
    const auto& entries = checkpoint.tensors();
    std::set<std::string> model_names;
    for (const auto& n : tree.m_nodes)
        for (const auto& t : n.tensors)
            model_names.insert(t.full_name);
    for (std::size_t i = 0; i < entries.size(); ++i) {
        std::string name = entries[i].name;
        for (const auto& [old_prefix, new_prefix] : arch->renamed)
            if (starts_with(name, old_prefix))
                name = new_prefix + name.substr(old_prefix.size());
        if (!model_names.count(name) && model_names.count(arch->base_prefix + "." + name))
            name = arch->base_prefix + "." + name;
        by_name.emplace(name, i);
    }

    const std::string where = checkpoint.folder().string();
    std::set<std::size_t> used;
    for (auto& node : tree.m_nodes) {
        for (auto& t : node.tensors) {
            auto it = by_name.find(t.full_name);
            const std::string module = t.name == "weight" ? t.full_name.substr(0, t.full_name.size() - 7) : std::string();
            auto entry_size = [&](const std::string& name) -> std::uint64_t {
                auto found = by_name.find(name);
                if (found == by_name.end())
                    return 0;
                used.insert(found->second);
                return entries[found->second].size;
            };
            if (it == by_name.end() && !module.empty() && by_name.count(module + ".qweight")) {
                // A GPTQ linear: packed qweight, qzeros, scales and g_idx instead of the weight
                // (their shapes are checked against the GPTQ config when loaded).
                const std::size_t q = by_name.at(module + ".qweight");
                std::uint64_t bytes = 0;
                for (const char* suffix : {".qweight", ".qzeros", ".scales", ".g_idx"})
                    bytes += entry_size(module + suffix);
                t.checkpoint_entry = q;
                t.file_dtype = entries[q].dtype;
                t.quantized_bytes = bytes;
                continue;
            }
            if (it == by_name.end()) {
                if (!t.persistent || !t.tied_to.empty())
                    continue; // computed at load time, or shares the tied tensor's storage
                throw FormatError(where + ": tensor '" + t.full_name + "' (shape " + shape_string(t.shape) +
                                  ") that " + config.described_by + " describes is missing from the checkpoint; the config and the "
                                  "weights do not belong together");
            }
            const TensorEntry& e = entries[it->second];
            used.insert(it->second);
            if (!t.tied_to.empty())
                continue; // a saved copy of a tied weight is ignored, as transformers does
            // A bitsandbytes 4-bit weight is stored packed (uint8 [(n+1)/2, 1]); its quant_state
            // records the real shape, checked when it is loaded.
            const bool packed_4bit = by_name.count(t.full_name + ".quant_state.bitsandbytes__nf4") ||
                                     by_name.count(t.full_name + ".quant_state.bitsandbytes__fp4");
            if (e.shape != t.shape && !packed_4bit && by_name.count(t.full_name + ".absmax"))
                throw FormatError(where + ": '" + t.full_name + "' is a packed 4-bit weight (it has an absmax) but its "
                                  "quant_state.bitsandbytes__nf4|fp4 is missing; the checkpoint is incomplete: save the "
                                  "quantized model again");
            if (e.shape != t.shape && !packed_4bit)
                throw FormatError(where + ": " + config.described_by + " contradicts the weights: tensor '" + e.name + "' in " +
                                  checkpoint.files()[e.file]->path().filename().string() + " has shape " +
                                  shape_string(e.shape) + " but the config (" + config.model_type +
                                  ", hidden_size " + std::to_string(config.hidden_size) + ", " +
                                  std::to_string(config.num_layers) + " layers) implies " + shape_string(t.shape));
            if (packed_4bit || by_name.count(t.full_name + ".absmax") || by_name.count(module + ".SCB")) {
                // bitsandbytes: the packed weight and the companions the loader keeps (not the
                // quant_state JSON nor weight_format: they are read, not held).
                std::uint64_t bytes = e.size;
                for (const char* suffix : {".weight.absmax", ".weight.quant_map", ".weight.nested_absmax",
                                           ".weight.nested_quant_map", ".SCB"})
                    bytes += entry_size(module + suffix);
                t.quantized_bytes = bytes;
            }
            if (e.gguf && e.gguf->block_quantized && t.shape.size() == 2)
                t.quantized_bytes = e.size; // GGUF blocks stay as the file holds them (runtime/loader.cpp)
            t.checkpoint_entry = it->second;
            t.file_dtype = e.dtype;
            if (t.buffer || !is_floating(e.dtype))
                t.dtype = e.dtype;
        }
    }
    for (std::size_t i = 0; i < entries.size(); ++i)
        if (!used.count(i) && !is_quant_companion(entries[i].name))
            tree.m_unused.push_back(entries[i].name);
    if (!tree.m_unused.empty())
        log.warning(std::to_string(tree.m_unused.size()) + " checkpoint tensor(s) are not used by " +
                    config.architecture + " (first: '" + tree.m_unused.front() + "'); they will not be loaded");
    return tree;
}

int ModuleTree::find(const std::string& module_name) const
{
    auto it = m_index.find(module_name);
    return it == m_index.end() ? -1 : it->second;
}

const ModuleTensor* ModuleTree::find_tensor(const std::string& full_name) const
{
    const auto dot = full_name.rfind('.');
    if (dot == std::string::npos)
        return nullptr;
    const int node = find(full_name.substr(0, dot));
    if (node < 0)
        return nullptr;
    for (const auto& t : m_nodes[static_cast<std::size_t>(node)].tensors)
        if (t.full_name == full_name)
            return &t;
    return nullptr;
}

std::uint64_t ModuleTree::num_parameters() const
{
    std::uint64_t n = 0;
    for (const auto& node : m_nodes)
        for (const auto& t : node.tensors)
            if (t.is_parameter() && t.tied_to.empty())
                n += t.numel();
    return n;
}

std::uint64_t ModuleTree::tensor_bytes(const ModuleTensor& t, SizeRule rule) const
{
    if (!t.tied_to.empty())
        return 0;
    if (t.quantized_bytes)
        return *t.quantized_bytes; // kept as stored under every rule
    const std::uint64_t own = dtype_bytes(t.dtype, t.numel());
    if (rule.kind == SizeRule::Kind::stored || !is_floating(t.dtype))
        return own;
    if (rule.kind == SizeRule::Kind::as_loaded)
        return t.buffer ? own : dtype_bytes(rule.target, t.numel());
    return dtype_bits(rule.target) < dtype_bits(t.dtype) ? dtype_bytes(rule.target, t.numel()) : own;
}

std::vector<std::uint64_t> ModuleTree::all_module_bytes(SizeRule rule) const
{
    std::vector<std::uint64_t> bytes(m_nodes.size(), 0);
    // Nodes are in preorder: children come after parents, so a reverse pass accumulates.
    for (std::size_t i = m_nodes.size(); i-- > 0;) {
        for (const auto& t : m_nodes[i].tensors)
            bytes[i] += tensor_bytes(t, rule);
        if (m_nodes[i].parent >= 0)
            bytes[static_cast<std::size_t>(m_nodes[i].parent)] += bytes[i];
    }
    return bytes;
}

std::uint64_t ModuleTree::module_bytes(int node, SizeRule rule) const
{
    std::uint64_t total = 0;
    std::vector<int> stack{node};
    while (!stack.empty()) {
        const auto& n = m_nodes[static_cast<std::size_t>(stack.back())];
        stack.pop_back();
        for (const auto& t : n.tensors)
            total += tensor_bytes(t, rule);
        stack.insert(stack.end(), n.children.begin(), n.children.end());
    }
    return total;
}

std::vector<int> ModuleTree::no_split_blocks() const
{
    std::vector<int> out;
    for (std::size_t i = 0; i < m_nodes.size(); ++i)
        if (m_nodes[i].no_split)
            out.push_back(static_cast<int>(i));
    return out;
}

bool ModuleTree::in_experts(int node) const
{
    for (int n = node; n >= 0; n = m_nodes[static_cast<std::size_t>(n)].parent)
        if (m_nodes[static_cast<std::size_t>(n)].expert >= 0 || m_nodes[static_cast<std::size_t>(n)].expert_list)
            return true;
    return false;
}

std::vector<int> ModuleTree::experts_under(int node) const
{
    std::vector<int> out;
    std::vector<int> stack{node};
    while (!stack.empty()) {
        const ModuleNode& n = m_nodes[static_cast<std::size_t>(stack.back())];
        const int index = stack.back();
        stack.pop_back();
        if (n.expert >= 0) {
            out.push_back(index);
            continue;
        }
        stack.insert(stack.end(), n.children.rbegin(), n.children.rend());
    }
    return out;
}

std::uint64_t ModuleTree::largest_no_split_bytes(SizeRule rule) const
{
    std::uint64_t largest = 0;
    for (int b : no_split_blocks())
        largest = std::max(largest, module_bytes(b, rule));
    return largest;
}

int ModuleTree::layer_of(int node) const
{
    for (int n = node; n >= 0; n = m_nodes[static_cast<std::size_t>(n)].parent)
        if (m_nodes[static_cast<std::size_t>(n)].no_split)
            return m_nodes[static_cast<std::size_t>(n)].layer;
    return -1;
}

ModuleTree ModuleTree::only_layers(std::int64_t first, std::int64_t end, bool with_rest) const
{
    ModuleTree out = *this;
    for (std::size_t i = 0; i < out.m_nodes.size(); ++i) {
        const int layer = layer_of(static_cast<int>(i));
        if (layer < 0 ? !with_rest : layer < first || layer >= end)
            out.m_nodes[i].tensors.clear();
    }
    std::erase_if(out.m_tied, [&](const std::pair<std::string, std::string>& t) {
        return !out.find_tensor(t.first) || !out.find_tensor(t.second);
    });
    return out;
}

} // namespace layerwise
