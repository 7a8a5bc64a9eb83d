#pragma once
// The empty skeleton of a model: every module (in transformers' registration order)
// with its parameters' and buffers' shapes, dtypes and bytes, the no-split blocks and
// tied weights. Built from config.json alone, or from config + checkpoint headers
// (validating one against the other). Never holds tensor data.
#include "core/dtype.h"
#include "core/log.h"
#include "model/config.h"

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace layerwise {

class Checkpoint;
struct ArchSpec;

struct ModuleTensor {
    std::string name;      // "weight"
    std::string full_name; // "model.layers.0.self_attn.q_proj.weight"
    std::vector<std::int64_t> shape;
    DType dtype = DType::f32; // dtype once loaded
    bool buffer = false;
    bool persistent = true;
    std::string tied_to;   // shares storage with this tensor (counted once, there)
    std::optional<std::size_t> checkpoint_entry; // index into Checkpoint::tensors()
    std::optional<DType> file_dtype;
    // A weight the checkpoint holds already quantized (bitsandbytes, GPTQ): the bytes of its
    // stored tensors together (packed weight, scales, zero points...), which it keeps once loaded.
    std::optional<std::uint64_t> quantized_bytes;

    std::uint64_t numel() const;
    bool is_parameter() const { return !buffer; }
};

struct ModuleNode {
    std::string name;       // "" for the root, "model.layers.0"...
    std::string class_name; // "LlamaDecoderLayer"
    int parent = -1;
    std::vector<int> children;
    std::vector<ModuleTensor> tensors; // direct tensors: parameters first, then buffers
    bool no_split = false;
    int layer = -1;                    // decoder block index for no-split blocks
    // Mixture of experts: the expert index of an expert's module ("model.layers.3.mlp.experts.5"),
    // and the list holding a layer's experts. A no-split block may still place its experts on
    // other devices than the rest of it (the router's output crosses over, not the weights).
    int expert = -1;
    bool expert_list = false;
};

// How many bytes a tensor takes:
//  stored      - in its own dtype;
//  as_loaded   - floating-point parameters converted to `target`, buffers and integer tensors as they are
//                (what transformers' get_memory_footprint reports after loading with dtype=target);
//  accelerate  - accelerate's compute_module_sizes(dtype=target): every floating tensor at
//                min(size of target, its own size), integer tensors as they are.
struct SizeRule {
    enum class Kind { stored, as_loaded, accelerate };
    Kind kind = Kind::stored;
    DType target = DType::f32;
    static SizeRule stored() { return {}; }
    static SizeRule as_loaded(DType t) { return {Kind::as_loaded, t}; }
    static SizeRule accelerate(DType t) { return {Kind::accelerate, t}; }
};

class ModuleTree {
public:
    // All floating parameters in `dtype`; buffers in their fixed dtype.
    static ModuleTree from_config(const ModelConfig& config, DType dtype);

    // Shapes checked against the checkpoint (FormatError when the config contradicts the weights,
    // or a tensor is missing); `dtype` nullopt = transformers' "auto". Checkpoint tensors the
    // model does not use are reported to `log` and listed in unused_tensors().
    static ModuleTree from_checkpoint(const ModelConfig& config, const Checkpoint& checkpoint,
                                      std::optional<DType> dtype, const Logger& log = {});

    const std::vector<ModuleNode>& nodes() const { return m_nodes; }
    const ModuleNode& root() const { return m_nodes.front(); }
    int find(const std::string& module_name) const; // -1 if absent
    const ModuleTensor* find_tensor(const std::string& full_name) const;

    DType dtype() const { return m_dtype; }
    const std::string& no_split_class() const { return m_no_split_class; }
    const std::vector<std::pair<std::string, std::string>>& tied() const { return m_tied; }
    const std::vector<std::string>& unused_tensors() const { return m_unused; }

    // Parameters counted once (tied weights once), as transformers' num_parameters().
    std::uint64_t num_parameters() const;
    std::uint64_t tensor_bytes(const ModuleTensor& t, SizeRule rule) const;
    std::uint64_t module_bytes(int node, SizeRule rule) const;
    // Bytes of every node, indexed like nodes().
    std::vector<std::uint64_t> all_module_bytes(SizeRule rule) const;
    std::vector<int> no_split_blocks() const;
    // Whether `node` is an expert list or lies inside one (an expert or one of its linears).
    bool in_experts(int node) const;
    // The expert modules under `node` (all of a layer's, say), in order.
    std::vector<int> experts_under(int node) const;
    std::uint64_t largest_no_split_bytes(SizeRule rule) const;
    // The decoder block index `node` lies in (it or an ancestor is a no-split block), -1 outside any.
    int layer_of(int node) const;
    // The same skeleton holding only the tensors of decoder blocks [first, end), and with
    // `with_rest` those outside any block too (embeddings, final norm, head): one pipeline
    // stage's share of the model, to plan it on one machine's devices.
    ModuleTree only_layers(std::int64_t first, std::int64_t end, bool with_rest) const;

private:
    static ModuleTree build(const ModelConfig& config, const ArchSpec& arch, DType dtype);
    int add_node(const std::string& name, const std::string& class_name);

    std::vector<ModuleNode> m_nodes;
    std::unordered_map<std::string, int> m_index; // module name -> node
    DType m_dtype = DType::f32;
    std::string m_no_split_class;
    std::vector<std::pair<std::string, std::string>> m_tied;
    std::vector<std::string> m_unused;
};

} // namespace layerwise
