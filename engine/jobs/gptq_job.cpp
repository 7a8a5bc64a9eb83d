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
#include "model/arch.h"
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

// A linear of a decoder layer as GPTQ sees it: its weight as [out, in] (transformers' Conv1D
// stores [in, out]; AutoGPTQ quantizes and packs its transpose).
bool is_conv1d(const ModuleTree& tree, const std::string& module)
{
    const int node = tree.find(module);
    return node >= 0 && tree.nodes()[static_cast<std::size_t>(node)].class_name == "Conv1D";
}

std::vector<std::int64_t> out_in_shape(std::vector<std::int64_t> shape, bool conv1d)
{
    if (conv1d)
        std::swap(shape[0], shape[1]);
    return shape;
}

bool packable(const std::vector<std::int64_t>& shape) { return shape[0] % 32 == 0 && shape[1] % 32 == 0; }

// Everything a run needs, checked before any work.
struct GptqPlan {
    ModelDescription d;
    const Architecture* arch = nullptr;
    json config;                                  // config.json as read
    std::vector<std::vector<std::string>> groups; // the layer's linears, in quantization order
    at::Device device = at::kCPU;
    at::ScalarType compute = at::kFloat;
    at::Tensor ids;                               // calibration sequences [samples, seq_len] (gptq)
    std::string calibration_text;
    GptqConfig qc;
    fs::path partial;
};

void check_options(const fs::path& out, const GptqJobOptions& options)
{
    std::error_code ec;
    if (fs::exists(out, ec))
        throw IoError("'" + out.string() + "' already exists; choose another --out or remove it");
    const GptqParams& params = options.params;
    validate_gptq_params(params, params.group_size > 0 ? params.group_size : 1, "gptq"); // bits, damping; groups per linear below
    if (options.method == GptqJobMethod::gptq && (options.samples < 1 || options.seq_len < 2))
        throw PlanError("gptq: calibration needs at least 1 sample of at least 2 tokens (got " + std::to_string(options.samples) +
                        " samples of " + std::to_string(options.seq_len) + ")");
}

// The model, its architecture and its config: UnsupportedError for what cannot be quantized.
void describe_source(GptqPlan& plan, const fs::path& model, const GptqJobOptions& options)
{
    plan.d = describe_model(model.string());
    if (!plan.d.checkpoint)
        throw UnsupportedError("'" + plan.d.source + "' has no weights (a preset or a config.json): there is nothing to quantize");
    const ModelConfig& c = plan.d.config;
    plan.arch = find_architecture(c.model_type);
    if (!plan.arch || !plan.arch->layer || plan.arch->gptq_sequential.empty())
        throw UnsupportedError("GPTQ quantization runs architectures that name the linears to quantize (" + supported_arch_list() +
                               " where they do); '" + c.model_type + "' names none");
    const Checkpoint& ck = *plan.d.checkpoint;
    plan.config = gptq_read_json(ck.folder() / "config.json");
    if (plan.config.contains("quantization_config"))
        throw UnsupportedError("'" + ck.folder().string() + "' is already quantized (config.json has quantization_config); quantize the original model");
    if (options.method == GptqJobMethod::gptq && c.max_position_embeddings > 0 && options.seq_len > c.max_position_embeddings)
        throw PlanError("gptq: the sequence length " + std::to_string(options.seq_len) + " exceeds the model's context (" +
                        std::to_string(c.max_position_embeddings) + " tokens)");
}

// The linears of every layer, checked before any work.
void check_linears(GptqPlan& plan, const GptqJobOptions& options)
{
    plan.groups = plan.arch->gptq_sequential;
    if (!options.true_sequential) {
        std::vector<std::string> all;
        for (const auto& g : plan.groups)
            all.insert(all.end(), g.begin(), g.end());
        plan.groups = {all};
    }
    const ModuleTree& tree = plan.d.tree;
    for (std::int64_t l = 0; l < plan.d.config.num_layers; ++l)
        for (const auto& g : plan.groups)
            for (const auto& m : g) {
                const std::string name = plan.arch->layer_prefix(l) + m;
                const ModuleTensor* t = tree.find_tensor(name + ".weight");
                if (!t)
                    throw FormatError("'" + plan.d.checkpoint->folder().string() + "' lacks " + name + ".weight");
                const auto shape = out_in_shape(t->shape, is_conv1d(tree, name));
                if (packable(shape))
                    validate_gptq_params(options.params, shape[1], name);
            }
}

void read_calibration(GptqPlan& plan, const GptqJobOptions& options)
{
    if (options.calibration.empty())
        throw PlanError("gptq needs a calibration text: pass --calibration FILE, or run packaging/setup.sh, which installs the default (the King James Bible)");
    plan.calibration_text = read_calibration_text(options.calibration);
    const auto tokenizer = text::load_tokenizer(plan.d.checkpoint->folder());
    const auto seqs = calibration_sequences(plan.calibration_text, *tokenizer, options.samples, options.seq_len,
                                            "the calibration text '" + options.calibration.string() + "'");
    plan.ids = at::empty({options.samples, options.seq_len}, at::kLong);
    for (std::int64_t s = 0; s < options.samples; ++s)
        std::memcpy(plan.ids[s].data_ptr(), seqs[static_cast<std::size_t>(s)].data(),
                    sizeof(std::int64_t) * static_cast<std::size_t>(options.seq_len));
}

GptqConfig quantize_config(const GptqJobOptions& options)
{
    const GptqParams& params = options.params;
    GptqConfig qc;
    qc.bits = params.bits;
    qc.group_size = params.group_size;
    qc.desc_act = params.desc_act;
    qc.sym = params.sym;
    qc.static_groups = params.static_groups;
    qc.damp_percent = params.damp_percent;
    qc.true_sequential = options.true_sequential;
    return qc;
}

GptqPlan plan_run(const fs::path& model, const fs::path& out, const GptqJobOptions& options)
{
    check_options(out, options);
    GptqPlan plan;
    describe_source(plan, model, options);
    check_linears(plan, options);
    plan.device = resolve_device(options.device);
    plan.compute = plan.device.is_cuda() ? scalar_type(plan.d.tree.dtype()) : at::kFloat;
    if (options.method == GptqJobMethod::gptq)
        read_calibration(plan, options);
    plan.qc = quantize_config(options);
    plan.partial = gptq_partial_folder(out);
    return plan;
}

// What identifies a run, so a partial one is resumed only with the same inputs.
json run_identity(const GptqPlan& plan, const GptqJobOptions& options)
{
    const bool gptq = options.method == GptqJobMethod::gptq;
    json identity = {
        {"model", fs::absolute(plan.d.checkpoint->folder()).lexically_normal().string()},
        {"method", gptq ? "gptq" : "rtn"},
        {"quantize_config", json::parse(gptq_config_json(plan.qc).dump())},
        {"device", plan.device.str()},
        {"dtype", std::string(c10::toString(plan.compute))},
    };
    if (gptq) {
        identity["samples"] = options.samples;
        identity["seq_len"] = options.seq_len;
        identity["calibration_bytes"] = plan.calibration_text.size();
        identity["calibration_fnv1a"] = std::to_string(fnv1a(plan.calibration_text));
    }
    return identity;
}

// The layers an earlier run finished (and their reports), or a fresh `<out>.partial/`.
int open_partial(const GptqPlan& plan, const json& identity, json& reports, const Logger& log)
{
    std::error_code ec;
    const fs::path state_path = plan.partial / "state.json";
    if (fs::exists(state_path, ec)) {
        const json state = gptq_read_json(state_path);
        if (state.value("identity", json()) != identity)
            throw IoError("'" + plan.partial.string() + "' holds an interrupted run with other inputs or options (" +
                          state.value("identity", json()).dump() + "); rerun with those, or remove the folder to start afresh");
        const int layers_done = state.at("layers_done").get<int>();
        reports = state.at("modules");
        log.info("resuming from " + plan.partial.string() + ": " + std::to_string(layers_done) + " of " +
                 std::to_string(plan.d.config.num_layers) + " layers done");
        return layers_done;
    }
    fs::remove_all(plan.partial, ec); // a folder without a state holds nothing finished
    fs::create_directories(plan.partial, ec);
    if (ec)
        throw IoError("cannot create '" + plan.partial.string() + "': " + ec.message());
    return 0;
}

// The model as the architecture's embedding reads it: its config and the tensors of the modules
// registered before the decoder layers (the embeddings), in the compute dtype as a loaded model
// holds them — GPT-2 adds two embeddings, which must not be rounded to a float16 file's dtype
// first. Tensors already in the compute dtype stay views of the mapping.
std::unique_ptr<LoadedModel> model_before_layers(const GptqPlan& plan)
{
    auto m = std::make_unique<LoadedModel>();
    m->config = plan.d.config;
    const Checkpoint& ck = *plan.d.checkpoint;
    for (const auto& node : plan.d.tree.nodes()) {
        if (node.name == plan.arch->layers_path)
            break;
        for (const auto& t : node.tensors)
            if (t.checkpoint_entry)
                m->globals[t.full_name] = tensor_view(ck, ck.tensors()[*t.checkpoint_entry]).to(plan.compute);
    }
    return m;
}

// One decoder layer's tensors, read from the mapping and copied to the compute device.
LayerWeights read_layer(const GptqPlan& plan, int layer)
{
    const std::string prefix = plan.arch->layer_prefix(layer);
    const Checkpoint& ck = *plan.d.checkpoint;
    LayerWeights w;
    for (const auto& node : plan.d.tree.nodes())
        for (const auto& t : node.tensors)
            if (t.checkpoint_entry && t.full_name.starts_with(prefix))
                w.tensors[t.full_name.substr(prefix.size())] =
                    tensor_view(ck, ck.tensors()[*t.checkpoint_entry]).to(plan.device).to(plan.compute).clone();
    return w;
}

// The calibration run through the architecture's own forward pass: embed once, then one decoder
// layer at a time on each sequence (positions 0..seq_len-1, causal, no cache).
class Calibration {
public:
    Calibration(const GptqPlan& plan, const GptqJobOptions& options)
        : m_plan(plan), m_outside(model_before_layers(plan)),
          m_step{*m_outside, plan.device, 1, options.seq_len, 0, {}, {}, nullptr, nullptr}
    {
        const ModelConfig& c = plan.d.config;
        if (plan.arch->quirks.rotary) {
            const at::Tensor inv_freq = rope_inv_freq(c);
            const double scaling = rope_attention_scaling(c);
            m_step.cos = rotary_cos_sin(inv_freq, 0, options.seq_len, plan.compute, false, scaling).to(plan.device);
            m_step.sin = rotary_cos_sin(inv_freq, 0, options.seq_len, plan.compute, true, scaling).to(plan.device);
        }
    }

    // The inputs of the first decoder layer: the embedded calibration sequences.
    at::Tensor embed(const at::Tensor& ids) const
    {
        ForwardStep step = m_step;
        step.batch = ids.size(0);
        return m_plan.arch->embed(step, ids).to(m_plan.device).to(m_plan.compute);
    }

    // Runs layer `l` on every sequence of `hidden`; `observe` sees each linear's input.
    void observe(int l, const LayerWeights& w, const at::Tensor& hidden, const LinearObserver& observe) const
    {
        ForwardStep step = m_step;
        step.observe = &observe;
        for (std::int64_t s = 0; s < hidden.size(0); ++s)
            m_plan.arch->layer(step, static_cast<std::size_t>(l), w, hidden.narrow(0, s, 1));
    }

    // The layer's outputs on every sequence: the next layer's inputs.
    at::Tensor outputs(int l, const LayerWeights& w, const at::Tensor& hidden) const
    {
        at::Tensor next = at::empty_like(hidden);
        for (std::int64_t s = 0; s < hidden.size(0); ++s)
            next.narrow(0, s, 1).copy_(m_plan.arch->layer(m_step, static_cast<std::size_t>(l), w, hidden.narrow(0, s, 1)));
        return next;
    }

private:
    const GptqPlan& m_plan;
    std::unique_ptr<LoadedModel> m_outside;
    ForwardStep m_step;
};

// One run: the layers not yet done, each quantized and saved in `<out>.partial/`.
class LayerQuantizer {
public:
    LayerQuantizer(const GptqPlan& plan, const GptqJobOptions& options, const GptqProgressCallback& progress, const Logger& log,
                   json identity, json& reports, int layers_done)
        : m_plan(plan), m_options(options), m_progress(progress), m_log(log), m_identity(std::move(identity)), m_reports(reports),
          m_layers_done(layers_done), m_layers(static_cast<int>(plan.d.config.num_layers)),
          m_gptq(options.method == GptqJobMethod::gptq), m_t0(std::chrono::steady_clock::now())
    {
    }

    void run(const Calibration* calibration)
    {
        at::Tensor hidden = first_inputs(calibration);
        for (int l = m_layers_done; l < m_layers; ++l) {
            LayerWeights w = read_layer(m_plan, l);
            std::vector<TensorToWrite> writes;
            for (const auto& g : m_plan.groups)
                quantize_group(l, g, w, hidden, calibration, writes);
            if (m_gptq)
                hidden = calibration->outputs(l, w, hidden); // the quantized layer's outputs
            save_layer(l, writes, hidden);
            ++m_layers_this_run;
            if (m_progress && !m_progress({l, m_layers, "", 0.0, elapsed(), eta(), false}))
                throw CancelledError("GPTQ quantization cancelled after layer " + std::to_string(l) + "; " + std::to_string(l + 1) +
                                     " finished layer(s) are kept in '" + m_plan.partial.string() + "' for a rerun");
        }
    }

private:
    at::Tensor first_inputs(const Calibration* calibration) const
    {
        if (!m_gptq || m_layers_done >= m_layers)
            return {};
        if (m_layers_done == 0)
            return calibration->embed(m_plan.ids);
        const auto saved = Checkpoint::open(m_plan.partial / hidden_file(m_layers_done));
        return tensor_view(*saved, "hidden").to(m_plan.device).to(m_plan.compute).clone();
    }

    double elapsed() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - m_t0).count(); }
    // From the time per layer so far in this run (calibration and embeddings included).
    double eta() const
    {
        const int remaining = m_layers - m_layers_done - m_layers_this_run;
        return m_layers_this_run == 0 ? 0.0 : elapsed() / m_layers_this_run * static_cast<double>(remaining);
    }

    // The group's packable linears; the others are reported as kept.
    std::vector<std::string> packable_linears(int l, const std::vector<std::string>& group, const LayerWeights& w)
    {
        std::vector<std::string> todo;
        const std::string prefix = m_plan.arch->layer_prefix(l);
        for (const auto& m : group) {
            const auto shape = out_in_shape(w[m + ".weight"].sizes().vec(), is_conv1d(m_plan.d.tree, prefix + m));
            if (packable(shape)) {
                todo.push_back(m);
                continue;
            }
            m_reports.push_back({{"name", prefix + m}, {"quantized", false}, {"layer", l}});
            if (l == m_layers_done)
                m_log.warning(prefix + m + " is " + std::to_string(shape[0]) + " x " + std::to_string(shape[1]) +
                              ": AutoGPTQ's packing needs sizes that are multiples of 32; kept as stored (in every layer)");
        }
        return todo;
    }

    // Hessians of the group's linears from their inputs on the calibration activations, the
    // layer's earlier groups already quantized.
    std::map<std::string, GptqHessian> hessians(int l, const std::vector<std::string>& todo, const LayerWeights& w,
                                                const at::Tensor& hidden, const Calibration& calibration) const
    {
        std::map<std::string, GptqHessian> out;
        for (const auto& m : todo)
            out.emplace(m, GptqHessian(w[m + ".weight"].size(is_conv1d(m_plan.d.tree, m_plan.arch->layer_prefix(l) + m) ? 0 : 1),
                                       m_plan.device));
        const LinearObserver observe = [&](const std::string& m, const at::Tensor& x) {
            if (auto it = out.find(m); it != out.end())
                it->second.add_batch(x);
        };
        calibration.observe(l, w, hidden, observe);
        return out;
    }

    void quantize_group(int l, const std::vector<std::string>& group, LayerWeights& w, const at::Tensor& hidden,
                        const Calibration* calibration, std::vector<TensorToWrite>& writes)
    {
        const std::vector<std::string> todo = packable_linears(l, group, w);
        std::map<std::string, GptqHessian> h;
        if (m_gptq)
            h = hessians(l, todo, w, hidden, *calibration);
        for (const auto& m : todo)
            quantize_linear(l, m, w, m_gptq ? &h.at(m) : nullptr, writes);
    }

    void quantize_linear(int l, const std::string& m, LayerWeights& w, const GptqHessian* h, std::vector<TensorToWrite>& writes)
    {
        const std::string name = m_plan.arch->layer_prefix(l) + m;
        const bool conv1d = is_conv1d(m_plan.d.tree, name);
        at::Tensor& stored = w.tensors.at(m + ".weight");
        const at::Tensor weight = conv1d ? stored.t().contiguous() : stored;
        const GptqParams& params = m_options.params;
        GptqLayerResult r;
        json report = {{"name", name}, {"quantized", true}, {"layer", l}};
        if (h) {
            try {
                r = gptq_quantize_weight(weight, h->matrix(), params);
            } catch (const PlanError& e) {
                throw PlanError(name + ": " + e.what());
            }
            report["avg_loss"] = r.loss / static_cast<double>(h->samples());
            report["output_error"] = gptq_output_error(weight, r.weight, h->matrix());
            m_log.info(name + ": avg loss " + python_float(report["avg_loss"].get<double>()));
        } else {
            r = rtn_quantize_weight(weight, params);
            report["avg_loss"] = r.loss / static_cast<double>(weight.numel());
        }
        stored = (conv1d ? r.weight.t().contiguous() : r.weight).to(m_plan.compute);
        const GptqPacked packed = gptq_pack(r.codes, r.scales, r.zeros, r.g_idx, params.bits);
        writes.push_back(gptq_tensor_write(name + ".qweight", packed.qweight));
        writes.push_back(gptq_tensor_write(name + ".qzeros", packed.qzeros));
        writes.push_back(gptq_tensor_write(name + ".scales", packed.scales));
        writes.push_back(gptq_tensor_write(name + ".g_idx", packed.g_idx));
        m_reports.push_back(report);
        if (m_progress && !m_progress({l, m_layers, name, report["avg_loss"].get<double>(), elapsed(), eta(), false}))
            throw CancelledError("GPTQ quantization cancelled at " + name + "; " + std::to_string(l) +
                                 " finished layer(s) are kept in '" + m_plan.partial.string() + "' for a rerun");
    }

    // Saved in an order that keeps the folder consistent at every step: the layer's tensors,
    // the next inputs, then the state that names them; the previous inputs go last.
    void save_layer(int l, std::vector<TensorToWrite>& writes, const at::Tensor& hidden) const
    {
        std::error_code ec;
        std::sort(writes.begin(), writes.end(), [](const TensorToWrite& a, const TensorToWrite& b) { return a.name < b.name; });
        write_safetensors(m_plan.partial / layer_file(l), writes, {{"format", "pt"}});
        if (m_gptq && l + 1 < m_layers)
            write_safetensors(m_plan.partial / hidden_file(l + 1), {gptq_tensor_write("hidden", hidden)}, {{"format", "pt"}});
        write_text_file_atomically(m_plan.partial / "state.json",
                                   json{{"identity", m_identity}, {"layers_done", l + 1}, {"modules", m_reports}}.dump(1) + "\n");
        if (m_gptq)
            fs::remove(m_plan.partial / hidden_file(l), ec);
    }

    const GptqPlan& m_plan;
    const GptqJobOptions& m_options;
    const GptqProgressCallback& m_progress;
    const Logger& m_log;
    json m_identity;
    json& m_reports;
    int m_layers_done;
    int m_layers;
    bool m_gptq;
    std::chrono::steady_clock::time_point m_t0;
    int m_layers_this_run = 0;
};

// The per-module reports of the state file as the result lists them; the quantized modules.
std::set<std::string> collect_reports(const json& reports, GptqJobResult& result)
{
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
    return quantized;
}

// Every tensor of the source except the quantized linears' weights (their biases in float16, as
// AutoGPTQ's QuantLinear keeps them).
void add_source_tensors(const GptqPlan& plan, const std::set<std::string>& quantized, std::vector<TensorToWrite>& writes)
{
    const Checkpoint& ck = *plan.d.checkpoint;
    for (const auto& node : plan.d.tree.nodes()) {
        for (const auto& t : node.tensors) {
            if (!t.checkpoint_entry || !t.tied_to.empty() || !t.persistent)
                continue;
            const std::string module = t.full_name.substr(0, t.full_name.rfind('.'));
            const TensorEntry& entry = ck.tensors()[*t.checkpoint_entry];
            if (quantized.contains(module)) {
                if (t.name == "weight")
                    continue;
                if (t.name == "bias") {
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
}

// The packed tensors saved per layer; the opened files stay in `saved` while the writes run.
void add_packed_tensors(const GptqPlan& plan, std::vector<std::unique_ptr<Checkpoint>>& saved, std::vector<TensorToWrite>& writes)
{
    for (std::int64_t l = 0; l < plan.d.config.num_layers; ++l) {
        saved.push_back(Checkpoint::open(plan.partial / layer_file(static_cast<int>(l))));
        const Checkpoint& s = *saved.back();
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
}

// The weights as one file, or numbered shards with an index above max_shard_bytes.
std::string write_weights(const fs::path& tmp, const std::string& basename, std::vector<TensorToWrite>& writes, std::uint64_t total,
                          std::uint64_t max_shard_bytes, const std::map<std::string, std::string>& metadata)
{
    if (total <= max_shard_bytes || writes.size() < 2) {
        write_safetensors(tmp / (basename + ".safetensors"), writes, metadata);
        return basename + ".safetensors";
    }
    std::vector<std::vector<TensorToWrite>> shards(1);
    std::uint64_t in_shard = 0;
    for (auto& wr : writes) {
        const std::uint64_t b = gptq_write_bytes(wr);
        if (in_shard > 0 && in_shard + b > max_shard_bytes) {
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
    const std::string index = basename + ".safetensors.index.json";
    write_text_file_atomically(tmp / index, json{{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}}.dump(2) + "\n");
    return index;
}

// The output folder, whole or not at all.
void write_output(const GptqPlan& plan, const fs::path& out, const GptqJobOptions& options, const json& reports, GptqJobResult& result)
{
    const std::set<std::string> quantized = collect_reports(reports, result);
    std::vector<TensorToWrite> writes;
    add_source_tensors(plan, quantized, writes);
    std::vector<std::unique_ptr<Checkpoint>> saved_layers;
    add_packed_tensors(plan, saved_layers, writes);
    std::sort(writes.begin(), writes.end(), [](const TensorToWrite& a, const TensorToWrite& b) { return a.name < b.name; });
    std::uint64_t total = 0;
    for (const auto& wr : writes)
        total += gptq_write_bytes(wr);
    result.weight_bytes = total;

    const GptqParams& params = options.params;
    const std::map<std::string, std::string> metadata = {
        {"format", "pt"},
        {"gptq_bits", std::to_string(params.bits)},
        {"gptq_group_size", std::to_string(params.group_size)},
        {"gptq_desc_act", params.desc_act ? "True" : "False"},
        {"gptq_damp_percent", python_float(params.damp_percent)},
        {"gptq_is_marlin_format", "False"},
    };
    json config = plan.config;
    write_model_folder_atomically(out, plan.d.checkpoint->folder(), [&](const fs::path& tmp) {
        result.weights_file = write_weights(tmp, gptq_default_basename(plan.qc), writes, total, options.max_shard_bytes, metadata);
        config["quantization_config"] = json::parse(gptq_config_json(plan.qc).dump());
        write_text_file_atomically(tmp / "config.json", config.dump(2) + "\n");
        write_text_file_atomically(tmp / "quantize_config.json", gptq_quantize_config_text(plan.qc));
    });
    saved_layers.clear();
}

} // namespace

GptqJobResult run_gptq_job(const fs::path& model, const fs::path& out, const GptqJobOptions& options, const GptqProgressCallback& progress,
                           const Logger& log)
{
    const GptqPlan plan = plan_run(model, out, options);
    const json identity = run_identity(plan, options);
    json reports = json::array();
    const int layers_done = open_partial(plan, identity, reports, log);

    GptqJobResult result;
    result.resumed_layers = layers_done;
    {
        std::unique_ptr<Calibration> calibration;
        if (options.method == GptqJobMethod::gptq && layers_done < plan.d.config.num_layers)
            calibration = std::make_unique<Calibration>(plan, options);
        LayerQuantizer(plan, options, progress, log, identity, reports, layers_done).run(calibration.get());
    }
    write_output(plan, out, options, reports, result);
    std::error_code ec;
    fs::remove_all(plan.partial, ec);
    result.folder = out;
    log.debug("wrote " + out.string() + ": " + std::to_string(result.quantized_linears) + " linear layers quantized (" +
              std::string(options.method == GptqJobMethod::gptq ? "GPTQ" : "RTN") + " " + std::to_string(options.params.bits) +
              "-bit, group " + std::to_string(options.params.group_size) + ")");
    return result;
}

} // namespace layerwise
