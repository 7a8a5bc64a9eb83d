#include "jobs/gptq_job.h"

#include "checkpoint/checkpoint.h"
#include "checkpoint/folder_writer.h"
#include "checkpoint/safetensors_writer.h"
#include "checkpoint/tensor_view.h"
#include "core/error.h"
#include "core/json_read.h"
#include "cuda_devices.h"
#include "inspect.h"
#include "quant/gptq.h"
#include "quant/gptq_calibration.h"
#include "quant/gptq_config.h"
#include "quant/gptq_pack.h"
#include "runtime/runner.h"
#include "text/tokenizer.h"

#include <ATen/ATen.h>
#include <charconv>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <unordered_map>

namespace layerwise {

namespace fs = std::filesystem;
using nlohmann::json;

fs::path gptq_partial_folder(const fs::path& out)
{
    fs::path o = out;
    if (!o.has_filename())
        o = o.parent_path();
    return o.parent_path() / (o.filename().string() + ".partial");
}

namespace {

using Weights = std::unordered_map<std::string, at::Tensor>; // local name -> tensor on the compute device
using Capture = std::function<void(const std::string& module, const at::Tensor& input)>;

// AutoGPTQ's inside_layer_modules for the llama family: quantized in this order, each group
// seeing the groups before it already quantized (true_sequential).
const std::vector<std::vector<std::string>>& llama_sequential()
{
    static const std::vector<std::vector<std::string>> groups = {
        {"self_attn.k_proj", "self_attn.v_proj", "self_attn.q_proj"},
        {"self_attn.o_proj"},
        {"mlp.up_proj", "mlp.gate_proj"},
        {"mlp.down_proj"},
    };
    return groups;
}

bool supported_arch(const std::string& model_type)
{
    return model_type == "llama" || model_type == "mistral" || model_type == "qwen2" || model_type == "qwen3";
}

// One decoder block of the llama family on one sequence h [1, n, hidden] (as transformers'
// LlamaDecoderLayer computes it, causal, positions 0..n-1). `capture` sees every linear's input.
at::Tensor llama_block(const Weights& w, const ModelConfig& c, const at::Tensor& h, const at::Tensor& cos, const at::Tensor& sin,
                       const Capture& capture)
{
    const auto linear = [&](const std::string& m, const at::Tensor& x) {
        if (capture)
            capture(m, x);
        const auto bias = w.find(m + ".bias");
        return at::linear(x, w.at(m + ".weight"), bias == w.end() ? at::Tensor() : bias->second);
    };
    const std::int64_t b = h.size(0), n = h.size(1);
    at::Tensor x = rms_norm(h, w.at("input_layernorm.weight"), c.norm_eps);
    at::Tensor q = linear("self_attn.q_proj", x).view({b, n, c.num_heads, c.head_dim});
    at::Tensor k = linear("self_attn.k_proj", x).view({b, n, c.num_kv_heads, c.head_dim});
    at::Tensor v = linear("self_attn.v_proj", x).view({b, n, c.num_kv_heads, c.head_dim}).transpose(1, 2);
    if (c.model_type == "qwen3") {
        q = rms_norm(q, w.at("self_attn.q_norm.weight"), c.norm_eps);
        k = rms_norm(k, w.at("self_attn.k_norm.weight"), c.norm_eps);
    }
    q = apply_rotary(q.transpose(1, 2), cos, sin);
    k = apply_rotary(k.transpose(1, 2), cos, sin);
    const at::Tensor attn = attention(q, k, v, 1.0 / std::sqrt(static_cast<double>(c.head_dim)))
                                .transpose(1, 2)
                                .reshape({b, n, c.num_heads * c.head_dim});
    at::Tensor out = h + linear("self_attn.o_proj", attn);
    x = rms_norm(out, w.at("post_attention_layernorm.weight"), c.norm_eps);
    return out + linear("mlp.down_proj", activation(linear("mlp.gate_proj", x), c.hidden_act) * linear("mlp.up_proj", x));
}

DType gptq_file_dtype(c10::ScalarType t)
{
    switch (t) {
    case at::kFloat: return DType::f32;
    case at::kHalf: return DType::f16;
    case at::kBFloat16: return DType::bf16;
    case at::kInt: return DType::i32;
    case at::kLong: return DType::i64;
    case at::kByte: return DType::u8;
    case at::kChar: return DType::i8;
    default: TORCH_CHECK(false, "unexpected dtype");
    }
}

TensorToWrite gptq_tensor_write(const std::string& name, const at::Tensor& t)
{
    TensorToWrite w;
    w.name = name;
    w.dtype = gptq_file_dtype(t.scalar_type());
    w.shape = t.sizes().vec();
    const at::Tensor c = t.cpu().contiguous();
    w.fill = [c](std::byte* out) { std::memcpy(out, c.data_ptr(), static_cast<std::size_t>(c.numel()) * c.element_size()); };
    return w;
}

std::uint64_t gptq_write_bytes(const TensorToWrite& w)
{
    std::uint64_t n = 1;
    for (auto s : w.shape)
        n *= static_cast<std::uint64_t>(s);
    return dtype_bytes(w.dtype, n);
}

json gptq_read_json(const fs::path& path)
{
    std::ifstream in(path);
    if (!in)
        throw IoError("cannot read '" + path.string() + "'");
    std::stringstream text;
    text << in.rdbuf();
    return parse_json(text.str(), path.string());
}

// Python's str() of a float for the safetensors metadata (shortest round-trip form).
std::string python_float(double v)
{
    char buf[64];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
    std::string s(buf, end);
    if (s.find_first_of(".e") == std::string::npos)
        s += ".0";
    return s;
}

std::uint64_t fnv1a(const std::string& s)
{
    std::uint64_t h = 1469598103934665603ull;
    for (unsigned char c : s) {
        h ^= c;
        h *= 1099511628211ull;
    }
    return h;
}

at::Device resolve_device(const std::string& spec)
{
    const auto gpus = kernels::cuda_devices();
    if (spec == "auto")
        return gpus.empty() ? at::Device(at::kCPU) : at::Device(at::kCUDA, 0);
    if (spec == "cpu")
        return at::kCPU;
    if (spec == "cuda" || spec.starts_with("cuda:")) {
        int index = 0;
        if (spec.size() > 5) {
            const auto [p, ec] = std::from_chars(spec.data() + 5, spec.data() + spec.size(), index);
            if (ec != std::errc() || p != spec.data() + spec.size())
                throw PlanError("device '" + spec + "' is not cpu, cuda or cuda:N");
        }
        if (index < 0 || index >= static_cast<int>(gpus.size()))
            throw PlanError("device '" + spec + "': this machine has " + std::to_string(gpus.size()) + " CUDA device(s)");
        return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(index));
    }
    throw PlanError("device '" + spec + "' is not auto, cpu, cuda or cuda:N");
}

std::string layer_file(int layer)
{
    char buf[32];
    std::snprintf(buf, sizeof buf, "layer-%05d.safetensors", layer);
    return buf;
}

std::string hidden_file(int layer)
{
    char buf[32];
    std::snprintf(buf, sizeof buf, "hidden-%05d.safetensors", layer);
    return buf;
}

bool packable(const at::IntArrayRef& shape) { return shape[0] % 32 == 0 && shape[1] % 32 == 0; }

} // namespace

GptqJobResult run_gptq_job(const fs::path& model, const fs::path& out, const GptqJobOptions& options, const GptqProgressCallback& progress,
                           const Logger& log)
{
    const auto t0 = std::chrono::steady_clock::now();
    std::error_code ec;
    if (fs::exists(out, ec))
        throw IoError("'" + out.string() + "' already exists; choose another --out or remove it");
    const GptqParams& params = options.params;
    validate_gptq_params(params, params.group_size > 0 ? params.group_size : 1, "gptq"); // bits, damping; groups per linear below
    const bool gptq = options.method == GptqJobMethod::gptq;
    if (gptq && (options.samples < 1 || options.seq_len < 2))
        throw PlanError("gptq: calibration needs at least 1 sample of at least 2 tokens (got " + std::to_string(options.samples) +
                        " samples of " + std::to_string(options.seq_len) + ")");

    ModelDescription d = describe_model(model.string());
    if (!d.checkpoint)
        throw UnsupportedError("'" + d.source + "' has no weights (a preset or a config.json): there is nothing to quantize");
    const ModelConfig& c = d.config;
    if (!supported_arch(c.model_type))
        throw UnsupportedError("GPTQ quantization runs the llama family (llama, mistral, qwen2, qwen3); '" + c.model_type + "' is not supported yet");
    const Checkpoint& ck = *d.checkpoint;
    const fs::path config_path = ck.folder() / "config.json";
    json config = gptq_read_json(config_path);
    if (config.contains("quantization_config"))
        throw UnsupportedError("'" + ck.folder().string() + "' is already quantized (config.json has quantization_config); quantize the original model");
    if (gptq && c.max_position_embeddings > 0 && options.seq_len > c.max_position_embeddings)
        throw PlanError("gptq: the sequence length " + std::to_string(options.seq_len) + " exceeds the model's context (" +
                        std::to_string(c.max_position_embeddings) + " tokens)");

    // The linears of every layer, checked before any work.
    const int layers = static_cast<int>(c.num_layers);
    std::vector<std::vector<std::string>> groups = llama_sequential();
    if (!options.true_sequential) {
        std::vector<std::string> all;
        for (const auto& g : groups)
            all.insert(all.end(), g.begin(), g.end());
        groups = {all};
    }
    for (int l = 0; l < layers; ++l)
        for (const auto& g : groups)
            for (const auto& m : g) {
                const std::string name = "model.layers." + std::to_string(l) + "." + m;
                const ModuleTensor* t = d.tree.find_tensor(name + ".weight");
                if (!t)
                    throw FormatError("'" + ck.folder().string() + "' lacks " + name + ".weight");
                if (packable(t->shape))
                    validate_gptq_params(params, t->shape[1], name);
            }

    const at::Device device = resolve_device(options.device);
    const DType model_dtype = d.tree.dtype();
    const at::ScalarType compute = device.is_cuda() ? scalar_type(model_dtype) : at::kFloat;

    // Calibration sequences (GPTQ only).
    at::Tensor ids;
    std::string calibration_text;
    if (gptq) {
        if (options.calibration.empty())
            throw PlanError("gptq needs a calibration text: pass --calibration FILE, or run packaging/setup.sh, which installs the default (the King James Bible)");
        calibration_text = read_calibration_text(options.calibration);
        const auto tokenizer = text::load_tokenizer(ck.folder());
        const auto seqs = calibration_sequences(calibration_text, *tokenizer, options.samples, options.seq_len,
                                                "the calibration text '" + options.calibration.string() + "'");
        ids = at::empty({options.samples, options.seq_len}, at::kLong);
        for (std::int64_t s = 0; s < options.samples; ++s)
            std::memcpy(ids[s].data_ptr(), seqs[static_cast<std::size_t>(s)].data(), sizeof(std::int64_t) * static_cast<std::size_t>(options.seq_len));
    }

    GptqConfig qc;
    qc.bits = params.bits;
    qc.group_size = params.group_size;
    qc.desc_act = params.desc_act;
    qc.sym = params.sym;
    qc.static_groups = params.static_groups;
    qc.damp_percent = params.damp_percent;
    qc.true_sequential = options.true_sequential;
    const std::string basename = gptq_default_basename(qc);

    // What identifies a run, so a partial one is resumed only with the same inputs.
    json identity = {
        {"model", fs::absolute(ck.folder()).lexically_normal().string()},
        {"method", gptq ? "gptq" : "rtn"},
        {"quantize_config", json::parse(gptq_config_json(qc).dump())},
        {"device", device.str()},
        {"dtype", std::string(c10::toString(compute))},
    };
    if (gptq) {
        identity["samples"] = options.samples;
        identity["seq_len"] = options.seq_len;
        identity["calibration_bytes"] = calibration_text.size();
        identity["calibration_fnv1a"] = std::to_string(fnv1a(calibration_text));
    }

    const fs::path partial = gptq_partial_folder(out);
    const fs::path state_path = partial / "state.json";
    int layers_done = 0;
    json reports = json::array();
    if (fs::exists(state_path, ec)) {
        const json state = gptq_read_json(state_path);
        if (state.value("identity", json()) != identity)
            throw IoError("'" + partial.string() + "' holds an interrupted run with other inputs or options (" +
                          state.value("identity", json()).dump() + "); rerun with those, or remove the folder to start afresh");
        layers_done = state.at("layers_done").get<int>();
        reports = state.at("modules");
        log.info("resuming from " + partial.string() + ": " + std::to_string(layers_done) + " of " + std::to_string(layers) + " layers done");
    } else {
        fs::remove_all(partial, ec); // a folder without a state holds nothing finished
        fs::create_directories(partial, ec);
        if (ec)
            throw IoError("cannot create '" + partial.string() + "': " + ec.message());
    }

    // The inputs of the next layer.
    at::Tensor hidden;
    at::Tensor cos, sin;
    if (gptq && layers_done < layers) {
        if (layers_done == 0) {
            const ModuleTensor* embed = d.tree.find_tensor("model.embed_tokens.weight");
            if (!embed || !embed->checkpoint_entry)
                throw FormatError("'" + ck.folder().string() + "' lacks model.embed_tokens.weight");
            const at::Tensor table = tensor_view(ck, ck.tensors()[*embed->checkpoint_entry]);
            hidden = at::embedding(table, ids).to(device).to(compute);
        } else {
            const auto saved = Checkpoint::open(partial / hidden_file(layers_done));
            hidden = tensor_view(*saved, "hidden").to(device).to(compute).clone();
        }
        const at::Tensor inv_freq = rope_inv_freq(c);
        const double scaling = rope_attention_scaling(c);
        cos = rotary_cos_sin(inv_freq, 0, options.seq_len, compute, false, scaling).to(device);
        sin = rotary_cos_sin(inv_freq, 0, options.seq_len, compute, true, scaling).to(device);
    }

    GptqJobResult result;
    result.resumed_layers = layers_done;
    int layers_this_run = 0;
    for (int l = layers_done; l < layers; ++l) {
        const std::string prefix = "model.layers." + std::to_string(l) + ".";
        const auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
        // From the time per layer so far in this run (calibration and embeddings included).
        const auto eta = [&] {
            const int finished = layers_this_run; // counts this layer once it is done
            const int remaining = layers - layers_done - finished;
            return finished == 0 ? 0.0 : elapsed() / finished * static_cast<double>(remaining);
        };
        // This layer's tensors, read from the mapping and copied to the compute device.
        Weights w;
        for (const auto& node : d.tree.nodes()) {
            for (const auto& t : node.tensors) {
                if (!t.checkpoint_entry || !t.full_name.starts_with(prefix))
                    continue;
                w[t.full_name.substr(prefix.size())] =
                    tensor_view(ck, ck.tensors()[*t.checkpoint_entry]).to(device).to(compute).clone();
            }
        }
        std::vector<TensorToWrite> writes;
        std::vector<at::Tensor> keep_alive;
        for (const auto& g : groups) {
            std::vector<std::string> todo;
            for (const auto& m : g) {
                if (packable(w.at(m + ".weight").sizes())) {
                    todo.push_back(m);
                    continue;
                }
                reports.push_back({{"name", prefix + m}, {"quantized", false}, {"layer", l}});
                if (l == layers_done)
                    log.warning(prefix + m + " is " + std::to_string(w.at(m + ".weight").size(0)) + " x " +
                                std::to_string(w.at(m + ".weight").size(1)) +
                                ": AutoGPTQ's packing needs sizes that are multiples of 32; kept as stored (in every layer)");
            }
            std::map<std::string, GptqHessian> hessians;
            if (gptq) {
                for (const auto& m : todo)
                    hessians.emplace(m, GptqHessian(w.at(m + ".weight").size(1), device));
                const Capture capture = [&](const std::string& m, const at::Tensor& x) {
                    if (auto it = hessians.find(m); it != hessians.end())
                        it->second.add_batch(x);
                };
                for (std::int64_t s = 0; s < options.samples; ++s)
                    llama_block(w, c, hidden.narrow(0, s, 1), cos, sin, capture);
            }
            for (const auto& m : todo) {
                const std::string name = prefix + m;
                at::Tensor& weight = w.at(m + ".weight");
                GptqLayerResult r;
                json report = {{"name", name}, {"quantized", true}, {"layer", l}};
                if (gptq) {
                    const GptqHessian& h = hessians.at(m);
                    try {
                        r = gptq_quantize_weight(weight, h.matrix(), params);
                    } catch (const PlanError& e) {
                        throw PlanError(name + ": " + e.what());
                    }
                    report["avg_loss"] = r.loss / static_cast<double>(h.samples());
                    report["output_error"] = gptq_output_error(weight, r.weight, h.matrix());
                    log.info(name + ": avg loss " + python_float(report["avg_loss"].get<double>()));
                } else {
                    r = rtn_quantize_weight(weight, params);
                    report["avg_loss"] = r.loss / static_cast<double>(weight.numel());
                }
                weight = r.weight.to(compute);
                const GptqPacked packed = gptq_pack(r.codes, r.scales, r.zeros, r.g_idx, params.bits);
                writes.push_back(gptq_tensor_write(name + ".qweight", packed.qweight));
                writes.push_back(gptq_tensor_write(name + ".qzeros", packed.qzeros));
                writes.push_back(gptq_tensor_write(name + ".scales", packed.scales));
                writes.push_back(gptq_tensor_write(name + ".g_idx", packed.g_idx));
                reports.push_back(report);
                if (progress && !progress({l, layers, name, report["avg_loss"].get<double>(), elapsed(), eta(), false}))
                    throw CancelledError("GPTQ quantization cancelled at " + name + "; " + std::to_string(l) +
                                         " finished layer(s) are kept in '" + partial.string() + "' for a rerun");
            }
        }
        // The quantized layer's outputs: the next layer's inputs.
        if (gptq) {
            at::Tensor next = at::empty_like(hidden);
            for (std::int64_t s = 0; s < options.samples; ++s)
                next.narrow(0, s, 1).copy_(llama_block(w, c, hidden.narrow(0, s, 1), cos, sin, {}));
            hidden = next;
        }
        // Saved in an order that keeps the folder consistent at every step: the layer's tensors,
        // the next inputs, then the state that names them; the previous inputs go last.
        std::sort(writes.begin(), writes.end(), [](const TensorToWrite& a, const TensorToWrite& b) { return a.name < b.name; });
        write_safetensors(partial / layer_file(l), writes, {{"format", "pt"}});
        if (gptq && l + 1 < layers)
            write_safetensors(partial / hidden_file(l + 1), {gptq_tensor_write("hidden", hidden)}, {{"format", "pt"}});
        write_text_file_atomically(state_path, json{{"identity", identity}, {"layers_done", l + 1}, {"modules", reports}}.dump(1) + "\n");
        if (gptq)
            fs::remove(partial / hidden_file(l), ec);
        ++layers_this_run;
        if (progress && !progress({l, layers, "", 0.0, elapsed(), eta(), false}))
            throw CancelledError("GPTQ quantization cancelled after layer " + std::to_string(l) + "; " + std::to_string(l + 1) +
                                 " finished layer(s) are kept in '" + partial.string() + "' for a rerun");
    }
    hidden = at::Tensor();

    // The output folder: every tensor of the source except the quantized linears' weights, which
    // the packed tensors saved per layer replace.
    std::set<std::string> quantized;
    for (const auto& r : reports) {
        GptqModuleReport m;
        m.name = r.at("name").get<std::string>();
        m.quantized = r.at("quantized").get<bool>();
        m.avg_loss = r.value("avg_loss", 0.0);
        m.output_error = r.value("output_error", 0.0);
        if (m.quantized)
            quantized.insert(m.name);
        (m.quantized ? result.quantized_linears : result.kept_linears)++;
        result.modules.push_back(m);
    }
    std::vector<TensorToWrite> writes;
    for (const auto& node : d.tree.nodes()) {
        for (const auto& t : node.tensors) {
            if (!t.checkpoint_entry || !t.tied_to.empty() || !t.persistent)
                continue;
            const std::string module = t.full_name.substr(0, t.full_name.rfind('.'));
            const TensorEntry& entry = ck.tensors()[*t.checkpoint_entry];
            if (quantized.contains(module)) {
                if (t.name == "weight")
                    continue;
                if (t.name == "bias") { // AutoGPTQ's QuantLinear keeps its bias in float16
                    writes.push_back(gptq_tensor_write(t.full_name, tensor_view(ck, entry).to(at::kHalf)));
                    continue;
                }
            }
            TensorToWrite wr{t.full_name, entry.dtype, entry.shape, {}};
            const TensorEntry* e = &entry;
            wr.fill = [&ck, e](std::byte* out) {
                const at::Tensor v = tensor_view(ck, *e).contiguous();
                std::memcpy(out, v.data_ptr(), static_cast<std::size_t>(v.numel()) * v.element_size());
            };
            writes.push_back(std::move(wr));
        }
    }
    std::vector<std::unique_ptr<Checkpoint>> saved_layers;
    for (int l = 0; l < layers; ++l) {
        saved_layers.push_back(Checkpoint::open(partial / layer_file(l)));
        const Checkpoint& s = *saved_layers.back();
        for (const auto& e : s.tensors()) {
            TensorToWrite wr{e.name, e.dtype, e.shape, {}};
            const TensorEntry* entry = &e;
            wr.fill = [&s, entry](std::byte* out) {
                const at::Tensor v = tensor_view(s, *entry).contiguous();
                std::memcpy(out, v.data_ptr(), static_cast<std::size_t>(v.numel()) * v.element_size());
            };
            writes.push_back(std::move(wr));
        }
    }
    std::sort(writes.begin(), writes.end(), [](const TensorToWrite& a, const TensorToWrite& b) { return a.name < b.name; });
    std::uint64_t total = 0;
    for (const auto& wr : writes)
        total += gptq_write_bytes(wr);
    result.weight_bytes = total;

    const std::map<std::string, std::string> metadata = {
        {"format", "pt"},
        {"gptq_bits", std::to_string(params.bits)},
        {"gptq_group_size", std::to_string(params.group_size)},
        {"gptq_desc_act", params.desc_act ? "True" : "False"},
        {"gptq_damp_percent", python_float(params.damp_percent)},
        {"gptq_is_marlin_format", "False"},
    };
    write_model_folder_atomically(out, ck.folder(), [&](const fs::path& tmp) {
        if (total <= options.max_shard_bytes || writes.size() < 2) {
            result.weights_file = basename + ".safetensors";
            write_safetensors(tmp / result.weights_file, writes, metadata);
        } else {
            std::vector<std::vector<TensorToWrite>> shards(1);
            std::uint64_t in_shard = 0;
            for (auto& wr : writes) {
                const std::uint64_t b = gptq_write_bytes(wr);
                if (in_shard > 0 && in_shard + b > options.max_shard_bytes) {
                    shards.emplace_back();
                    in_shard = 0;
                }
                in_shard += b;
                shards.back().push_back(std::move(wr));
            }
            json weight_map = json::object();
            for (std::size_t i = 0; i < shards.size(); ++i) {
                char name[64];
                std::snprintf(name, sizeof name, "-%05zu-of-%05zu.safetensors", i + 1, shards.size());
                const std::string file = basename + name;
                write_safetensors(tmp / file, shards[i], metadata);
                for (const auto& wr : shards[i])
                    weight_map[wr.name] = file;
            }
            result.weights_file = basename + ".safetensors.index.json";
            write_text_file_atomically(tmp / result.weights_file,
                                       json{{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}}.dump(2) + "\n");
        }
        config["quantization_config"] = json::parse(gptq_config_json(qc).dump());
        write_text_file_atomically(tmp / "config.json", config.dump(2) + "\n");
        write_text_file_atomically(tmp / "quantize_config.json", gptq_quantize_config_text(qc));
    });
    saved_layers.clear();
    fs::remove_all(partial, ec);
    result.folder = out;
    log.debug("wrote " + out.string() + ": " + std::to_string(result.quantized_linears) + " linear layers quantized (" +
             std::string(gptq ? "GPTQ" : "RTN") + " " + std::to_string(params.bits) + "-bit, group " + std::to_string(params.group_size) + ")");
    return result;
}

} // namespace layerwise
