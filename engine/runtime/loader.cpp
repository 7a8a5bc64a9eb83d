#include "runtime/loaded_model.h"
#include "runtime/offload.h"
#include "runtime/out_of_memory.h"

#include "checkpoint/safetensors_writer.h"
#include "checkpoint/tensor_view.h"
#include "core/error.h"
#include "inspect.h"
#include "plan/weight_format.h"
#include "quant/quant_load.h"

#include "gguf_cuda.h"
#include "gguf_linear.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>
#include <sched.h>
#include <thread>

namespace layerwise {

const QuantInfo* LayerWeights::find_quant(const std::string& module) const
{
    auto it = quant.find(module);
    return it == quant.end() ? nullptr : &it->second;
}

bool LayerWeights::rope_pairs() const
{
    const QuantInfo* q = find_quant("self_attn.q_proj");
    return q && q->rope_interleaved_heads > 0;
}

const at::Tensor* LayerWeights::find(const std::string& name) const
{
    auto it = tensors.find(name);
    return it == tensors.end() ? nullptr : &it->second;
}

const at::Tensor& LayerWeights::operator[](const std::string& name) const
{
    if (const at::Tensor* t = find(name))
        return *t;
    throw FormatError("the loaded layer has no tensor '" + name + "'");
}

const at::Tensor* LoadedModel::find_global(const std::string& full_name) const
{
    auto it = globals.find(full_name);
    return it == globals.end() ? nullptr : &it->second;
}

const QuantInfo* LoadedModel::find_global_quant(const std::string& module) const
{
    auto it = global_quant.find(module);
    return it == global_quant.end() ? nullptr : &it->second;
}

const at::Tensor& LoadedModel::global(const std::string& full_name) const
{
    if (const at::Tensor* t = find_global(full_name))
        return *t;
    throw FormatError("the loaded model has no tensor '" + full_name + "'");
}

nlohmann::json LoadedModel::hf_device_map() const
{
    return device_map_to_json(device_map);
}

int usable_cpu_count()
{
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        return std::max(1, CPU_COUNT(&set));
    return std::max(1u, std::thread::hardware_concurrency());
}

namespace {

at::Device torch_device(const Device& d)
{
    return d.is_gpu() ? at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(d.index)) : at::Device(at::kCPU);
}

std::string module_of(const std::string& weight_name)
{
    const std::string suffix = ".weight";
    return weight_name.size() > suffix.size() && weight_name.compare(weight_name.size() - suffix.size(), suffix.size(), suffix) == 0
               ? weight_name.substr(0, weight_name.size() - suffix.size())
               : weight_name;
}

struct GgufBlocks {
    at::Tensor weight; // uint8 [out, row bytes]
    QuantInfo info;
    std::string format;
    bool mapped = false; // a view of the file
};

// A 2-D GGUF weight in a block format the kernels run, kept as its blocks wherever it is placed:
// on the CPU or the disk a zero-copy view of the mapping, on a GPU the file's bytes copied there
// (the CUDA block kernels; the plan counts exactly those bytes). llama's q/k rows stay in the
// order llama.cpp's converter interleaved them (the layer rotates adjacent pairs; see rope_pairs).
std::optional<GgufBlocks> gguf_blocks(const Checkpoint& ck, const TensorEntry& entry, const ModuleTensor& t,
                                      const Device& d, DType compute)
{
    if (!entry.gguf || !entry.gguf->block_quantized)
        return std::nullopt;
    const auto type = static_cast<kernels::GgmlType>(entry.gguf->ggml_type);
    const std::string where = ck.files()[entry.file]->path().string() + ": tensor '" + entry.name + "'";
    if (!kernels::gguf_has_kernel(type))
        throw UnsupportedError(where + " is stored as GGUF " + kernels::gguf_type_name(type) +
                               ", which Layerwise has no kernel for (supported: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, MXFP4, Q2_K, Q3_K, "
                               "Q4_K, Q5_K, Q6_K, F16, BF16, F32); re-quantize the model to one of those");
    const std::int64_t rows = t.shape[0], in = t.shape[1];
    const std::int64_t row_bytes = kernels::gguf_row_bytes(type, in);
    if (static_cast<std::uint64_t>(rows * row_bytes) != entry.size)
        throw FormatError(where + " holds " + std::to_string(entry.size) + " bytes, not " + std::to_string(rows) +
                          " rows of " + std::to_string(row_bytes) + "; the file is corrupt");
    if (d.is_gpu() && !kernels::gguf_cuda_built())
        throw UnsupportedError(where + " is stored as GGUF " + kernels::gguf_type_name(type) + " and placed on " +
                               d.name() + ", but this build of Layerwise has no CUDA kernels for GGUF blocks (built "
                               "without CUDA); place it on the CPU, or build with LAYERWISE_CUDA=ON");
    GgufBlocks b;
    b.format = kernels::gguf_type_name(type);
    const MappedFile& file = *ck.files()[entry.file];
    bool joined = false; // Hugging Face's MXFP4: codes and scales joined into ggml's blocks, held in RAM
    b.weight = stored_blocks(ck, entry, &joined);
    b.mapped = !joined;
    if (const std::int64_t heads = entry.gguf->rope_permuted_heads) {
        if (heads <= 0 || rows % (2 * heads) != 0)
            throw FormatError(where + " has " + std::to_string(rows) + " rows, not divisible into " + std::to_string(heads) +
                              " rotary heads; the GGUF head counts contradict the weights");
        b.info.rope_interleaved_heads = heads; // kept as stored; see LayerWeights::rope_pairs
    }
    if (d.is_gpu()) { // the same bytes on the GPU; the source pages are dropped again
        b.weight = b.weight.to(torch_device(d));
        if (b.mapped)
            file.release(entry.offset, entry.size);
        b.mapped = false;
    }
    b.info.method = QuantMethod::gguf;
    b.info.shape = t.shape;
    b.info.ggml_type = entry.gguf->ggml_type;
    b.info.dtype = compute;
    b.info.compute_dtype = compute;
    return b;
}

} // namespace

namespace {

// The model as described, ready to receive its weights: config, module tree and checkpoint moved
// in, the dtype, device map and quantization chosen, the device map checked against the tree.
std::unique_ptr<LoadedModel> adopt_description(ModelDescription& description, const LoadOptions& options)
{
    if (!description.checkpoint)
        throw UnsupportedError("'" + description.source + "' has no weights (a preset or a config.json): it can be planned, not loaded");
    auto model = std::make_unique<LoadedModel>();
    model->config = std::move(description.config);
    model->tree = std::move(description.tree);
    model->checkpoint = std::move(description.checkpoint);
    model->dtype = options.dtype.value_or(model->tree.dtype());
    model->device_map = options.device_map;
    model->quant = options.quant;
    return model;
}

// The checkpoint bytes loading reads: every tensor the tree takes from the file, tied copies once.
std::uint64_t checkpoint_bytes(const ModuleTree& tree, const Checkpoint& ck)
{
    std::uint64_t total = 0;
    for (const auto& n : tree.nodes())
        for (const auto& t : n.tensors)
            if (t.checkpoint_entry && t.tied_to.empty())
                total += ck.tensors()[*t.checkpoint_entry].size;
    return total;
}

// Offloaded layers run on the first GPU of the map, else on the CPU.
Device execution_device_of(const DeviceMap& device_map)
{
    Device exec = Device::cpu();
    for (const auto& [k, d] : device_map)
        if (d.is_gpu() && (!exec.is_gpu() || d < exec))
            exec = d;
    return exec;
}

// Each entry of `from` whose name starts with `prefix`, handed to `take` and then erased.
template <typename Value, typename Take>
void take_prefixed(std::unordered_map<std::string, Value>& from, const std::string& prefix, Take take)
{
    for (auto it = from.begin(); it != from.end();) {
        if (it->first.compare(0, prefix.size(), prefix) == 0) {
            take(it->first, it->second);
            it = from.erase(it);
        } else {
            ++it;
        }
    }
}

// q and k must agree on their row order: where only one of them kept llama.cpp's interleaved
// rows (the other is not in a block format), that one is put back in Hugging Face's order.
void align_rope_rows(LayerWeights& lw)
{
    QuantInfo* q = lw.quant.count("self_attn.q_proj") ? &lw.quant["self_attn.q_proj"] : nullptr;
    QuantInfo* k = lw.quant.count("self_attn.k_proj") ? &lw.quant["self_attn.k_proj"] : nullptr;
    const bool qi = q && q->rope_interleaved_heads, ki = k && k->rope_interleaved_heads;
    if (qi == ki)
        return;
    QuantInfo& info = qi ? *q : *k;
    at::Tensor& w = lw.tensors.at(qi ? "self_attn.q_proj.weight" : "self_attn.k_proj.weight");
    const std::int64_t heads = info.rope_interleaved_heads, rows = w.size(0), row_bytes = w.size(1);
    w = w.reshape({heads, rows / heads / 2, 2, row_bytes}).transpose(1, 2).reshape({rows, row_bytes}).contiguous();
    info.rope_interleaved_heads = 0;
}

// load_model's work, step by step. The tensors are gathered by full name with the device each
// lives on and, for disk tensors, the mapped bytes they read; then tied weights are shared, the
// tensors grouped into decoder blocks and the rest kept as the model's globals.
class ModelLoader {
public:
    // `step` says what loading is doing (for an out-of-memory message).
    ModelLoader(std::unique_ptr<LoadedModel> model, std::optional<GptqConfig> gptq, const LoadOptions& options,
                std::pair<std::string, std::string>& step)
        : m_model(std::move(model)), m_ck(*m_model->checkpoint), m_gptq(std::move(gptq)), m_options(options), m_step(step),
          m_compute(options.quant.compute_dtype.value_or(m_model->dtype)), m_quant_writer(options.quant, m_compute)
    {
    }

    std::unique_ptr<LoadedModel> run()
    {
        m_total = checkpoint_bytes(m_model->tree, m_ck);
        m_model->execution_device = execution_device_of(m_model->device_map);
        load_tensors();
        if (!m_to_offload.empty() || !m_quant_writes.empty())
            write_offload_file();
        tie_weights();
        group_into_layers();
        for (LayerWeights& lw : m_model->layers)
            align_rope_rows(lw);
        keep_globals();
        if (const std::uint64_t pinned = pin_offloaded_layers(*m_model))
            m_options.log.info("CPU-offloaded layers: " + std::to_string(pinned) + " bytes in pinned memory");
        m_done = m_total;
        report("");
        return std::move(m_model);
    }

private:
    // A disk tensor whose dtype changes on loading: converted into the offload file.
    struct Pending {
        const ModuleTensor* tensor;
        const TensorEntry* entry;
        DType target;
    };

    void report(const std::string& item)
    {
        if (m_options.progress && !m_options.progress({m_done, m_total, item}))
            throw CancelledError("loading cancelled");
    }

    void note_mapped(const std::string& name, const Checkpoint& ck, const TensorEntry& e)
    {
        m_mapped[name] = {ck.files()[e.file].get(), e.offset, e.size};
    }

    // Every tensor the checkpoint holds, to the device the map gives it (the CPU where it names none).
    void load_tensors()
    {
        for (const auto& node : m_model->tree.nodes()) {
            for (const auto& t : node.tensors) {
                if (!t.checkpoint_entry || !t.tied_to.empty())
                    continue;
                const TensorEntry& entry = m_ck.tensors()[*t.checkpoint_entry];
                const Device* where = device_of(m_model->device_map, t.full_name);
                const Device d = where ? *where : Device::cpu();
                m_home[t.full_name] = d;
                const DType target = is_floating(entry.dtype) ? m_model->dtype : entry.dtype;
                report(t.full_name);
                m_step = {"loading '" + t.full_name + "' (" + std::to_string(entry.size) + " bytes in the file)", d.name()};
                if (!load_quantized(t, entry, d))
                    load_plain(t, entry, d, target);
                m_done += entry.size;
            }
        }
    }

    // A plain tensor: copied to a GPU, viewed in place, converted in RAM, or left for the offload file.
    void load_plain(const ModuleTensor& t, const TensorEntry& entry, const Device& d, DType target)
    {
        at::Tensor view = tensor_view(m_ck, entry);
        // After a copy the source pages are dropped again, so loading never holds the
        // checkpoint and the converted weights at once (peak = resident weights + one tensor).
        const MappedFile& source = *m_ck.files()[entry.file];
        if (d.is_gpu()) {
            m_loaded[t.full_name] = view.to(torch_device(d), scalar_type(target));
            source.release(entry.offset, entry.size);
        } else if (entry.dtype == target && entry.is_view()) {
            m_loaded[t.full_name] = view; // zero-copy: the mapping is the storage
            if (d.kind == Device::Kind::disk)
                note_mapped(t.full_name, m_ck, entry);
            else // in RAM now: the page reads belong to loading, not to the first prompt
                source.populate(entry.offset, entry.size);
        } else if (d.kind == Device::Kind::cpu) {
            m_loaded[t.full_name] = view.to(scalar_type(target));
            source.release(entry.offset, entry.size);
        } else {
            m_to_offload.push_back({&t, &entry, target});
        }
    }

    // Quantized linears: GGUF blocks, saved by bitsandbytes or GPTQ (used as they are) or quantized
    // here, always on the CPU so every device map holds bit-identical weights. False: a plain tensor.
    bool load_quantized(const ModuleTensor& t, const TensorEntry& entry, const Device& d)
    {
        if (t.name != "weight" || t.shape.size() != 2 || !t.tied_to.empty())
            return false;
        const std::string module = t.full_name.substr(0, t.full_name.size() - 7);
        if (std::optional<GgufBlocks> blocks = m_options.gguf_decode ? std::nullopt : gguf_blocks(m_ck, entry, t, d, m_compute)) {
            load_gguf_blocks(t, entry, d, module, *blocks);
            return true;
        }
        if (auto saved = saved_quant_info(m_ck, module, m_gptq ? &*m_gptq : nullptr)) {
            load_saved_quant(t, d, module, *saved);
            return true;
        }
        if (!m_options.quant.enabled() || !is_quantizable(m_model->tree, t) || m_options.quant.skips(module))
            return false;
        quantize_on_load(t, entry, d, module);
        return true;
    }

    // A GGUF weight kept in its block format: the file's bytes are the weight.
    void load_gguf_blocks(const ModuleTensor& t, const TensorEntry& entry, const Device& d, const std::string& module,
                          const GgufBlocks& blocks)
    {
        if (m_options.quant.enabled())
            throw UnsupportedError(m_ck.folder().string() + ": '" + t.full_name + "' is stored as GGUF " + blocks.format +
                                   "; it cannot be re-quantized as " +
                                   std::string(quant_method_name(m_options.quant.method)) + " (load it without --quantize)");
        m_quant_infos[module] = blocks.info;
        m_loaded[t.full_name] = blocks.weight;
        if (blocks.mapped && d.kind == Device::Kind::disk) // read ahead and released per step
            note_mapped(t.full_name, m_ck, entry);
        else if (blocks.mapped && d.kind == Device::Kind::cpu) // in RAM now, not at the first prompt
            m_ck.files()[entry.file]->populate(entry.offset, entry.size);
    }

    // A linear saved quantized (bitsandbytes, GPTQ): its tensors as they are in the file.
    void load_saved_quant(const ModuleTensor& t, const Device& d, const std::string& module, QuantInfo& saved)
    {
        // A quantized Conv1D ([in, out] as stored plain) is saved as the Linear [out, in] it computes.
        std::vector<std::int64_t> expected = t.shape;
        if (m_model->tree.nodes()[static_cast<std::size_t>(m_model->tree.find(module))].class_name == "Conv1D")
            std::swap(expected[0], expected[1]);
        if (saved.shape != expected)
            throw FormatError(m_ck.folder().string() + ": the quantized '" + t.full_name + "' has shape [" +
                              std::to_string(saved.shape[0]) + ", " + std::to_string(saved.shape[1]) + "] but " +
                              m_model->config.described_by + " implies [" + std::to_string(expected[0]) + ", " +
                              std::to_string(expected[1]) + "]; the config and the weights do not belong together");
        if (m_options.quant.enabled() && m_options.quant.method != saved.method)
            throw UnsupportedError(m_ck.folder().string() + ": '" + t.full_name + "' is saved quantized as " +
                                   std::string(quant_method_name(saved.method)) + "; it cannot be re-quantized as " +
                                   std::string(quant_method_name(m_options.quant.method)) + " (load it without --quantize)");
        m_model->quant.method = saved.method;
        m_model->quant.double_quant = saved.nested;
        saved.compute_dtype = m_compute;
        saved.threshold = m_options.quant.int8_threshold;
        std::vector<std::pair<std::string, at::Tensor>> parts = saved_quant_tensors(m_ck, module, saved);
        m_quant_infos[module] = saved;
        for (auto& [suffix, view] : parts) {
            const std::string name = module + "." + suffix;
            const TensorEntry* e = m_ck.find(name);
            if (d.is_gpu()) {
                m_loaded[name] = view.to(torch_device(d));
            } else {
                m_loaded[name] = view;
                if (d.kind == Device::Kind::disk)
                    note_mapped(name, m_ck, *e);
            }
            m_home[name] = d;
        }
    }

    // A float linear quantized while loading: on disk it is quantized as the offload file is written.
    void quantize_on_load(const ModuleTensor& t, const TensorEntry& entry, const Device& d, const std::string& module)
    {
        const bool conv1d = m_model->tree.nodes()[static_cast<std::size_t>(m_model->tree.find(module))].class_name == "Conv1D";
        auto source = [ck = &m_ck, entry = &entry, conv1d, dtype = m_model->dtype]() {
            at::Tensor w = tensor_view(*ck, *entry).to(scalar_type(dtype));
            return conv1d ? w.t().contiguous() : w; // Conv1D [in, out] runs as a Linear [out, in]
        };
        if (d.kind == Device::Kind::disk) {
            std::vector<std::int64_t> shape = t.shape;
            if (conv1d)
                std::swap(shape[0], shape[1]);
            const std::size_t first = m_quant_writes.size();
            m_quant_writer.add(module, shape, source, m_quant_writes);
            for (std::size_t i = first; i < m_quant_writes.size(); ++i)
                m_home[m_quant_writes[i].name] = d;
            return;
        }
        QuantizedWeight q = quantize_weight(source(), m_options.quant, m_compute);
        m_quant_infos[module] = q.info;
        for (auto& [suffix, tensor] : q.tensors) {
            const std::string name = module + "." + suffix;
            m_loaded[name] = d.is_gpu() ? tensor.to(torch_device(d)) : tensor;
            m_home[name] = d;
        }
        m_ck.files()[entry.file]->release(entry.offset, entry.size);
    }

    // The disk tensors in another dtype, each converted as the offload file is written.
    std::vector<TensorToWrite> conversions() const
    {
        std::vector<TensorToWrite> writes;
        for (const Pending& p : m_to_offload) {
            TensorToWrite w;
            w.name = p.tensor->full_name;
            w.dtype = p.target;
            w.shape = p.entry->shape;
            const TensorEntry* entry = p.entry;
            const DType target = p.target;
            w.fill = [ck = &m_ck, entry, target](std::byte* out) {
                at::Tensor dst = at::from_blob(out, entry->shape, at::TensorOptions().dtype(scalar_type(target)));
                dst.copy_(tensor_view(*ck, *entry));
            };
            writes.push_back(std::move(w));
        }
        return writes;
    }

    // One offload file per checkpoint, dtype and quantization, so a later load can tell them apart.
    std::filesystem::path offload_file_name() const
    {
        const QuantOptions& quant = m_options.quant;
        const std::string quant_tag =
            quant.enabled() ? "-" + parse_weight_format(std::string(quant_method_name(quant.method)) + (quant.double_quant ? "-dq" : ""),
                                                        m_compute).name() + "-" + std::string(torch_name(m_compute))
                            : "";
        return m_options.offload_folder /
               ("layerwise-offload-" + std::to_string(std::hash<std::string>{}(m_ck.files().front()->path().string())) + "-" +
                std::string(torch_name(m_model->dtype)) + quant_tag + ".safetensors");
    }

    // Disk weights in another dtype (or quantized here): converted once into an offload file, then mapped.
    void write_offload_file()
    {
        std::vector<TensorToWrite> writes = conversions();
        for (auto& w : m_quant_writes)
            writes.push_back(std::move(w));
        const std::filesystem::path file = offload_file_name();
        std::error_code ec;
        std::filesystem::create_directories(m_options.offload_folder, ec);
        write_safetensors(file, writes, {{"format", "pt"}, {"source", m_ck.folder().string()}});
        m_model->offload = Checkpoint::open(file);
        const Checkpoint& offload = *m_model->offload;
        for (const Pending& p : m_to_offload) {
            const TensorEntry* e = offload.find(p.tensor->full_name);
            m_loaded[p.tensor->full_name] = tensor_view(offload, *e);
            note_mapped(p.tensor->full_name, offload, *e);
        }
        for (const auto& [module, info] : m_quant_writer.infos()) {
            m_quant_infos[module] = info;
            for (const QuantTensorSpec& spec : quant_tensor_specs(info.shape, m_options.quant)) {
                const std::string name = module + "." + spec.suffix;
                const TensorEntry* e = offload.find(name);
                m_loaded[name] = tensor_view(offload, *e);
                note_mapped(name, offload, *e);
            }
        }
        m_options.log.info("converted " + std::to_string(m_to_offload.size()) + " disk-offloaded tensors to " +
                           std::string(torch_name(m_model->dtype)) + " in " + file.string());
    }

    // Tied tensors share the storage of their source (and its block format).
    void tie_weights()
    {
        for (const auto& [tied, source] : m_model->tree.tied())
            if (m_loaded.count(source)) {
                m_loaded[tied] = m_loaded[source];
                m_home[tied] = m_home[source];
                if (auto q = m_quant_infos.find(module_of(source)); q != m_quant_infos.end())
                    m_quant_infos[module_of(tied)] = q->second;
            }
    }

    // The tensors and quantized linears of each decoder block, by their names inside the block; a
    // block lives where its first tensor does.
    void group_into_layers()
    {
        const auto blocks = m_model->tree.no_split_blocks();
        m_model->layers.resize(blocks.size());
        for (std::size_t l = 0; l < blocks.size(); ++l) {
            const std::string prefix = m_model->tree.nodes()[static_cast<std::size_t>(blocks[l])].name + ".";
            LayerWeights& lw = m_model->layers[l];
            lw.home = Device::cpu();
            bool first = true;
            take_prefixed(m_loaded, prefix, [&](const std::string& name, at::Tensor& tensor) {
                const int node = m_model->tree.find(name.substr(0, name.rfind('.')));
                const bool expert = node >= 0 && m_model->tree.in_experts(node);
                if (expert)
                    lw.expert_tensors.insert(name.substr(prefix.size()));
                else if (first) { // a block lives where its first tensor outside its experts does
                    lw.home = m_home[name];
                    first = false;
                }
                if (auto r = m_mapped.find(name); r != m_mapped.end())
                    lw.disk_ranges.push_back(r->second);
                lw.tensors.emplace(name.substr(prefix.size()), std::move(tensor));
            });
            take_prefixed(m_quant_infos, prefix, [&](const std::string& name, QuantInfo& info) {
                lw.quant.emplace(name.substr(prefix.size()), info);
            });
        }
    }

    // What is left outside the decoder blocks becomes the model's globals. GGUF blocks there (the
    // embedding table, the output head) run on the block kernels too; other quantized formats are
    // kept to decoder blocks.
    void keep_globals()
    {
        for (auto it = m_quant_infos.begin(); it != m_quant_infos.end();)
            if (it->second.method == QuantMethod::gguf) {
                m_model->global_quant.emplace(it->first, it->second);
                it = m_quant_infos.erase(it);
            } else {
                ++it;
            }
        if (!m_quant_infos.empty())
            throw UnsupportedError("'" + m_quant_infos.begin()->first + "' is quantized but outside the decoder blocks; "
                                   "Layerwise runs quantized linears inside decoder blocks only (keep it in the skip list)");
        m_model->globals = std::move(m_loaded);
    }

    std::unique_ptr<LoadedModel> m_model;
    const Checkpoint& m_ck;
    const std::optional<GptqConfig> m_gptq;
    const LoadOptions& m_options;
    std::pair<std::string, std::string>& m_step;
    const DType m_compute;
    std::uint64_t m_total = 0, m_done = 0;

    std::unordered_map<std::string, at::Tensor> m_loaded;     // by full name
    std::unordered_map<std::string, Device> m_home;           // where each tensor lives
    std::unordered_map<std::string, ByteRange> m_mapped;      // disk tensors: the bytes they read
    std::unordered_map<std::string, QuantInfo> m_quant_infos; // full module name -> info
    std::vector<Pending> m_to_offload;
    QuantOffloadWriter m_quant_writer;
    std::vector<TensorToWrite> m_quant_writes;
};

std::unique_ptr<LoadedModel> load_model_steps(ModelDescription&& description, const LoadOptions& options,
                                              std::pair<std::string, std::string>& step)
{
    std::unique_ptr<LoadedModel> model = adopt_description(description, options);
    std::optional<GptqConfig> gptq = description.gptq ? std::optional<GptqConfig>(description.gptq->config) : std::nullopt;
    validate_device_map(model->tree, model->device_map);
    return ModelLoader(std::move(model), std::move(gptq), options, step).run();
}

} // namespace

std::unique_ptr<LoadedModel> load_model(ModelDescription&& description, const LoadOptions& options)
{
    // The step is read when the allocation fails, so it names the tensor being placed then.
    std::pair<std::string, std::string> step{"loading the model", "cpu"};
    try {
        return load_model_steps(std::move(description), options, step);
    } catch (const c10::OutOfMemoryError& e) {
        throw_out_of_memory(step.first, step.second, e.what());
    } catch (const c10::Error& e) {
        if (is_cpu_out_of_memory(e))
            throw_out_of_memory(step.first, step.second, e.what());
        throw;
    }
}

} // namespace layerwise
