#include "inspect.h"

#include "core/bytes.h"
#include "core/error.h"
#include "model/arch.h"
#include "model/gguf_model.h"
#include "model/presets.h"

#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

namespace layerwise {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

ModelConfig read_config(const fs::path& path)
{
    try {
        return load_model_config(path);
    } catch (...) {
        rethrow_with_context("reading the model config");
    }
}

// A .gguf file, or a folder whose weights are one .gguf (no safetensors, no .bin).
bool is_gguf_source(const fs::path& path, bool is_directory)
{
    if (!is_directory)
        return path.extension() == ".gguf";
    std::error_code ec;
    bool gguf = false, other = false;
    for (const auto& e : fs::directory_iterator(path, ec)) {
        const auto ext = e.path().extension();
        gguf = gguf || ext == ".gguf";
        other = other || ext == ".safetensors" || ext == ".bin";
    }
    return gguf && !other;
}

// Any file a checkpoint could be made of (a folder without one holds a config to plan from).
bool holds_weight_files(const fs::path& folder)
{
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(folder, ec)) {
        const auto ext = e.path().extension();
        const std::string name = e.path().filename().string();
        if (ext == ".safetensors" || ext == ".bin" || ext == ".pt" || ext == ".pth" || ext == ".gguf" ||
            name.ends_with(".index.json"))
            return true;
    }
    return false;
}

bool looks_like_path(const std::string& s)
{
    return s.find('/') != std::string::npos || s == "." || s == ".." || s.ends_with(".json");
}

} // namespace

ModelDescription describe_model(const std::string& what, std::optional<DType> dtype, const Logger& log,
                                const GptqSource& gptq)
{
    if (what.empty())
        throw IoError("no model given: name a model folder, a config.json or a preset");
    ModelDescription d;
    d.source = what;
    std::error_code ec;
    const fs::path path(what);
    const auto status = fs::status(path, ec);
    if (!fs::exists(status)) {
        if (!looks_like_path(what)) {
            const fs::path preset = find_preset(what);
            if (!preset.empty()) {
                d.kind = ModelSourceKind::preset;
                d.config_path = preset;
                d.config = read_config(preset);
                d.tree = ModuleTree::from_config(d.config, dtype ? *dtype : resolve_auto_dtype(d.config, {}));
                return d;
            }
            std::string names;
            for (const auto& p : list_presets())
                names += (names.empty() ? "" : ", ") + p.name;
            throw IoError("'" + what + "' is neither a file, a folder nor a preset; presets: " + names);
        }
        throw IoError(what + " does not exist");
    }
    if (fs::is_regular_file(status) && path.extension() == ".json" && !what.ends_with(".index.json")) {
        d.kind = ModelSourceKind::config_file;
        d.config_path = path;
        d.config = read_config(path);
        d.tree = ModuleTree::from_config(d.config, dtype ? *dtype : resolve_auto_dtype(d.config, {}));
        return d;
    }
    const fs::path folder = fs::is_directory(status) ? path : path.parent_path();
    if (fs::is_directory(status)) {
        fs::directory_iterator it(folder, ec);
        if (ec)
            throw IoError("cannot read folder " + folder.string() + ": " + ec.message() +
                          (ec == std::errc::permission_denied ? " (check the folder's permissions)" : ""));
        if (it == fs::directory_iterator())
            throw FormatError(folder.string() + " is empty; a model folder holds config.json and the weights "
                              "(model.safetensors or pytorch_model.bin, possibly sharded)");
    }
    d.kind = ModelSourceKind::folder;
    if (is_gguf_source(path, fs::is_directory(status))) {
        // GGUF: the file's metadata is the config (a config.json beside it is not read). Quantized
        // tensors are dequantized at load, to float32 unless another dtype is asked for.
        try {
            d.checkpoint = Checkpoint::open(path);
            d.config_path = d.checkpoint->files().front()->path();
            d.config = config_from_gguf(*d.checkpoint->gguf_metadata(), *d.checkpoint, d.config_path.string(), log);
            adopt_gguf_tensors(*d.checkpoint, d.config);
            d.tree = ModuleTree::from_checkpoint(d.config, *d.checkpoint, dtype.value_or(DType::f32), log);
        } catch (...) {
            rethrow_with_context("reading the GGUF model");
        }
        return d;
    }
    d.config_path = folder / "config.json";
    if (!fs::exists(d.config_path, ec))
        throw FormatError(folder.string() + " has no config.json; a Hugging Face model folder needs one "
                          "(copy it from the model's repository)");
    d.config = read_config(d.config_path);
    const bool gptq_named = gptq.config_file || gptq.model_basename || fs::exists(folder / "quantize_config.json", ec) ||
                            fs::exists(folder / "quant_config.json", ec);
    if (fs::is_directory(status) && !holds_weight_files(folder) && !gptq_named) {
        // A model not downloaded yet: its config.json alone can be described and planned.
        d.kind = ModelSourceKind::config_file;
        d.tree = ModuleTree::from_config(d.config, dtype ? *dtype : resolve_auto_dtype(d.config, {}));
        log.warning(folder.string() + " holds config.json but no weights: described and planned from the config "
                                      "alone (download the weights to load it)");
        return d;
    }
    try {
        d.gptq = find_gptq_checkpoint(folder, gptq);
    } catch (...) {
        rethrow_with_context("reading the GPTQ quantize config");
    }
    try {
        // A GPTQ folder's weights are the file its config names (unless a file was given).
        d.checkpoint = Checkpoint::open(d.gptq && fs::is_directory(status) ? d.gptq->weights : path);
        if (const Architecture* arch = find_architecture(d.config.model_type); arch && arch->adopt_checkpoint)
            arch->adopt_checkpoint(*d.checkpoint, d.config);
        d.tree = ModuleTree::from_checkpoint(d.config, *d.checkpoint, dtype, log);
    } catch (...) {
        rethrow_with_context("reading the weights");
    }
    return d;
}

namespace {

json node_json(const ModelDescription& d, int index, const std::vector<std::uint64_t>& bytes)
{
    const ModuleNode& n = d.tree.nodes()[static_cast<std::size_t>(index)];
    json j;
    j["name"] = n.name;
    j["class"] = n.class_name;
    j["bytes"] = bytes[static_cast<std::size_t>(index)];
    if (n.no_split)
        j["no_split"] = true;
    if (!n.tensors.empty()) {
        json ts = json::array();
        for (const auto& t : n.tensors) {
            json tj{{"name", t.name}, {"shape", t.shape}, {"dtype", torch_name(t.dtype)},
                    {"bytes", d.tree.tensor_bytes(t, SizeRule::stored())}};
            if (t.buffer)
                tj["buffer"] = true;
            if (!t.persistent)
                tj["persistent"] = false;
            if (!t.tied_to.empty())
                tj["tied_to"] = t.tied_to;
            if (t.file_dtype && *t.file_dtype != t.dtype)
                tj["file_dtype"] = torch_name(*t.file_dtype);
            if (d.checkpoint && t.checkpoint_entry)
                if (const auto& g = d.checkpoint->tensors()[*t.checkpoint_entry].gguf)
                    tj["gguf_type"] = gguf::tensor_type_name(static_cast<gguf::TensorType>(g->ggml_type));
            ts.push_back(std::move(tj));
        }
        j["tensors"] = std::move(ts);
    }
    if (!n.children.empty()) {
        json cs = json::array();
        for (int c : n.children)
            cs.push_back(node_json(d, c, bytes));
        j["children"] = std::move(cs);
    }
    return j;
}

const char* kind_name(ModelSourceKind k)
{
    switch (k) {
    case ModelSourceKind::folder: return "folder";
    case ModelSourceKind::config_file: return "config";
    case ModelSourceKind::preset: return "preset";
    }
    return "?";
}

// How many tensors of each ggml type ("Q4_1": 210) a GGUF checkpoint holds.
std::map<std::string, std::size_t> gguf_type_counts(const Checkpoint& ck)
{
    std::map<std::string, std::size_t> counts;
    for (const auto& e : ck.tensors())
        if (e.gguf)
            ++counts[std::string(gguf::tensor_type_name(static_cast<gguf::TensorType>(e.gguf->ggml_type)))];
    return counts;
}

} // namespace

json description_to_json(const ModelDescription& d)
{
    const ModuleTree& t = d.tree;
    const ModelConfig& c = d.config;
    json j;
    j["source"] = d.source;
    j["kind"] = kind_name(d.kind);
    j["architecture"] = c.architecture;
    j["model_type"] = c.model_type;
    j["num_layers"] = c.num_layers;
    j["parameters"] = t.num_parameters();
    j["dtype"] = torch_name(t.dtype());
    json bytes;
    bytes["checkpoint"] = t.module_bytes(0, SizeRule::stored());
    for (DType dt : {DType::f32, DType::bf16, DType::f16, DType::i8, DType::int4})
        bytes[std::string(torch_name(dt))] = t.module_bytes(0, SizeRule::as_loaded(dt));
    j["bytes"] = bytes;
    j["largest_layer_bytes"] = t.largest_no_split_bytes(SizeRule::stored());
    j["no_split_module"] = t.no_split_class();
    json tied = json::array();
    for (const auto& [a, b] : t.tied())
        tied.push_back({a, b});
    j["tied_weights"] = tied;
    j["config"] = {
        {"hidden_size", c.hidden_size},
        {"intermediate_size", c.intermediate_size},
        {"num_attention_heads", c.num_heads},
        {"num_key_value_heads", c.num_kv_heads},
        {"head_dim", c.head_dim},
        {"vocab_size", c.vocab_size},
        {"max_position_embeddings", c.max_position_embeddings},
        {"tie_word_embeddings", c.tie_word_embeddings},
        {"rope", {{"type", c.rope.type}, {"theta", c.rope.theta}, {"factor", c.rope.factor},
                  {"partial_rotary_factor", c.rope.partial_rotary_factor}}},
        {"declared_dtype", c.dtype ? json(torch_name(*c.dtype)) : json(nullptr)},
    };
    if (d.checkpoint) {
        const Checkpoint& ck = *d.checkpoint;
        json files = json::array();
        std::vector<std::uint64_t> per_file(ck.files().size(), 0);
        std::vector<std::uint64_t> count(ck.files().size(), 0);
        for (const auto& e : ck.tensors()) {
            per_file[e.file] += e.size;
            ++count[e.file];
        }
        for (std::size_t i = 0; i < ck.files().size(); ++i)
            files.push_back({{"name", ck.files()[i]->path().filename().string()},
                             {"file_bytes", ck.files()[i]->size()},
                             {"tensor_bytes", per_file[i]},
                             {"tensors", count[i]}});
        j["checkpoint"] = {{"format", format_name(ck.format())},
                           {"files", files},
                           {"tensors", ck.tensors().size()},
                           {"tensor_bytes", ck.tensor_bytes()},
                           {"metadata", ck.metadata()}};
        if (ck.index_total_size())
            j["checkpoint"]["index_total_size"] = *ck.index_total_size();
        if (ck.format() == CheckpointFormat::gguf)
            j["checkpoint"]["gguf_types"] = gguf_type_counts(ck);
        j["unused_tensors"] = t.unused_tensors();
        if (d.gptq)
            j["gptq"] = {{"config", json::parse(gptq_config_json(d.gptq->config).dump())},
                         {"config_file", d.gptq->config_file.filename().string()},
                         {"weights", d.gptq->weights.filename().string()}};
    } else {
        j["checkpoint"] = nullptr;
    }
    j["modules"] = node_json(d, 0, t.all_module_bytes(SizeRule::stored()));
    return j;
}

std::string description_to_text(const ModelDescription& d)
{
    const ModuleTree& t = d.tree;
    const ModelConfig& c = d.config;
    std::ostringstream o;
    o << "model         " << d.source << " (" << kind_name(d.kind) << ")\n";
    o << "architecture  " << c.architecture << " (" << c.model_type << ")\n";
    o << "layers        " << c.num_layers << " x " << t.no_split_class() << ", hidden " << c.hidden_size
      << ", heads " << c.num_heads << " (kv " << c.num_kv_heads << ", head_dim " << c.head_dim << "), vocab "
      << c.vocab_size << ", context " << c.max_position_embeddings << "\n";
    if (c.rope.type != "default" || c.rope.partial_rotary_factor != 1.0)
        o << "rope          " << c.rope.type << ", theta " << c.rope.theta << ", factor " << c.rope.factor
          << ", rotary fraction " << c.rope.partial_rotary_factor << "\n";
    o << "parameters    " << format_count(t.num_parameters()) << "\n";
    const bool gguf = d.checkpoint && d.checkpoint->format() == CheckpointFormat::gguf;
    o << "dtype         " << torch_name(t.dtype())
      << (gguf ? " (GGUF tensors are dequantized to it at load)" : c.dtype ? " (config)" : " (from the weights)") << "\n";
    o << "size          " << format_bytes(t.module_bytes(0, SizeRule::stored())) << " as loaded";
    for (DType dt : {DType::f32, DType::bf16, DType::f16, DType::i8, DType::int4})
        o << " | " << torch_name(dt) << " " << format_bytes(t.module_bytes(0, SizeRule::as_loaded(dt)));
    o << "\n";
    o << "largest layer " << format_bytes(t.largest_no_split_bytes(SizeRule::stored())) << " (" << t.no_split_class()
      << ", never split across devices)\n";
    for (const auto& [a, b] : t.tied())
        o << "tied          " << a << " = " << b << "\n";
    if (d.checkpoint) {
        const Checkpoint& ck = *d.checkpoint;
        o << "checkpoint    " << format_name(ck.format()) << ", " << ck.tensors().size() << " tensors";
        if (gguf) {
            const auto types = gguf_type_counts(ck);
            o << " (";
            for (auto it = types.begin(); it != types.end(); ++it)
                o << (it == types.begin() ? "" : ", ") << it->second << " " << it->first;
            o << ")";
        }
        o << ", " << format_bytes(ck.tensor_bytes()) << "\n";
        for (const auto& f : ck.files())
            o << "  " << f->path().filename().string() << "  " << format_bytes(f->size()) << "\n";
        if (d.gptq) {
            const GptqConfig& g = d.gptq->config;
            o << "quantized     GPTQ " << g.bits << "-bit, "
              << (g.group_size < 0 ? std::string("one group per column") : "groups of " + std::to_string(g.group_size))
              << (g.desc_act ? ", act-order" : "") << (g.sym ? ", symmetric" : ", asymmetric") << " ("
              << d.gptq->config_file.filename().string() << ")\n";
        }
        if (!t.unused_tensors().empty())
            o << "unused        " << t.unused_tensors().size() << " tensor(s), e.g. " << t.unused_tensors().front()
              << "\n";
    } else {
        o << "checkpoint    none, no weights present (" << (d.kind == ModelSourceKind::preset ? "preset" : "config only") << ": "
          << d.config_path.string() << ")\n";
    }
    o << "modules\n";
    const auto bytes = t.all_module_bytes(SizeRule::stored());
    // Top-level modules and their direct children; decoder blocks as one summary line.
    std::vector<std::pair<int, int>> stack{{0, 0}};
    while (!stack.empty()) {
        auto [index, depth] = stack.back();
        stack.pop_back();
        const ModuleNode& n = t.nodes()[static_cast<std::size_t>(index)];
        if (depth > 0) {
            o << "  " << std::string(static_cast<std::size_t>(depth - 1) * 2, ' ') << n.name << "  " << n.class_name
              << "  " << format_bytes(bytes[static_cast<std::size_t>(index)]);
            if (!n.children.empty() && t.nodes()[static_cast<std::size_t>(n.children.front())].no_split)
                o << "  (" << n.children.size() << " x " << t.nodes()[static_cast<std::size_t>(n.children.front())].class_name
                  << ", " << format_bytes(bytes[static_cast<std::size_t>(n.children.front())]) << " each)";
            o << "\n";
        }
        if (depth >= 2 || (index != 0 && !n.children.empty() &&
                           t.nodes()[static_cast<std::size_t>(n.children.front())].no_split))
            continue;
        for (auto it = n.children.rbegin(); it != n.children.rend(); ++it)
            stack.push_back({*it, depth + 1});
    }
    return o.str();
}

} // namespace layerwise
