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
                               ", which Layerwise has no kernel for (supported: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, "
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
    b.weight = at::from_blob(const_cast<std::byte*>(file.data(entry.offset, entry.size)), {rows, row_bytes},
                             at::TensorOptions().dtype(at::kByte));
    b.mapped = true;
    if (const std::int64_t heads = entry.gguf->rope_permuted_heads) {
        if (heads <= 0 || rows % (2 * heads) != 0)
            throw FormatError(where + " has " + std::to_string(rows) + " rows, not divisible into " + std::to_string(heads) +
                              " rotary heads; the GGUF head counts contradict the weights");
        b.info.rope_interleaved_heads = heads; // kept as stored; see LayerWeights::rope_pairs
    }
    if (d.is_gpu()) { // the same bytes on the GPU; the source pages are dropped again
        b.weight = b.weight.to(torch_device(d));
        b.mapped = false;
        file.release(entry.offset, entry.size);
    }
    b.info.method = QuantMethod::gguf;
    b.info.shape = t.shape;
    b.info.ggml_type = entry.gguf->ggml_type;
    b.info.dtype = compute;
    b.info.compute_dtype = compute;
    return b;
}

struct Pending {
    const ModuleTensor* tensor;
    const TensorEntry* entry;
    DType target;
};

} // namespace

namespace {

// load_model's work; `step` says what it is doing (for an out-of-memory message).
std::unique_ptr<LoadedModel> load_model_steps(ModelDescription&& description, const LoadOptions& options,
                                              std::pair<std::string, std::string>& step)
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
    const std::optional<GptqConfig> gptq =
        description.gptq ? std::optional<GptqConfig>(description.gptq->config) : std::nullopt;
    validate_device_map(model->tree, model->device_map);
    const Checkpoint& ck = *model->checkpoint;

    std::uint64_t total = 0;
    for (const auto& n : model->tree.nodes())
        for (const auto& t : n.tensors)
            if (t.checkpoint_entry && t.tied_to.empty())
                total += ck.tensors()[*t.checkpoint_entry].size;
    std::uint64_t done = 0;
    auto report = [&](const std::string& item) {
        if (options.progress && !options.progress({done, total, item}))
            throw CancelledError("loading cancelled");
    };

    std::unordered_map<std::string, at::Tensor> loaded;
    std::unordered_map<std::string, Device> home;
    std::unordered_map<std::string, ByteRange> mapped; // disk tensors: the bytes they read
    std::vector<Pending> to_offload;
    Device exec = Device::cpu();
    for (const auto& [k, d] : model->device_map)
        if (d.is_gpu() && (!exec.is_gpu() || d < exec))
            exec = d;
    model->execution_device = exec;

    // Quantized linears: saved by bitsandbytes (used as they are) or quantized here, always on
    // the CPU so every device map holds bit-identical weights.
    const DType compute = options.quant.compute_dtype.value_or(model->dtype);
    std::unordered_map<std::string, QuantInfo> quant_infos; // full module name -> info
    QuantOffloadWriter quant_writer(options.quant, compute);
    std::vector<TensorToWrite> quant_writes;
    auto quantized = [&](const ModuleTensor& t, const TensorEntry& entry, const Device& d) {
        if (t.name != "weight" || t.shape.size() != 2 || !t.tied_to.empty())
            return false;
        const std::string module = t.full_name.substr(0, t.full_name.size() - 7);
        if (std::optional<GgufBlocks> blocks = options.gguf_decode ? std::nullopt : gguf_blocks(ck, entry, t, d, compute)) {
            // A GGUF weight kept in its block format: the file's bytes are the weight.
            if (options.quant.enabled())
                throw UnsupportedError(ck.folder().string() + ": '" + t.full_name + "' is stored as GGUF " +
                                       blocks->format + "; it cannot be re-quantized as " +
                                       std::string(quant_method_name(options.quant.method)) + " (load it without --quantize)");
            quant_infos[module] = blocks->info;
            loaded[t.full_name] = blocks->weight;
            if (blocks->mapped && d.kind == Device::Kind::disk) // read ahead and released per step
                mapped[t.full_name] = {ck.files()[entry.file].get(), entry.offset, entry.size};
            else if (blocks->mapped && d.kind == Device::Kind::cpu) // in RAM now, not at the first prompt
                ck.files()[entry.file]->populate(entry.offset, entry.size);
            return true;
        }
        std::vector<std::pair<std::string, at::Tensor>> parts;
        if (auto saved = saved_quant_info(ck, module, gptq ? &*gptq : nullptr)) {
            // A quantized Conv1D ([in, out] as stored plain) is saved as the Linear [out, in] it computes.
            std::vector<std::int64_t> expected = t.shape;
            if (model->tree.nodes()[static_cast<std::size_t>(model->tree.find(module))].class_name == "Conv1D")
                std::swap(expected[0], expected[1]);
            if (saved->shape != expected)
                throw FormatError(ck.folder().string() + ": the quantized '" + t.full_name + "' has shape [" +
                                  std::to_string(saved->shape[0]) + ", " + std::to_string(saved->shape[1]) +
                                  "] but " + model->config.described_by + " implies [" + std::to_string(expected[0]) + ", " +
                                  std::to_string(expected[1]) + "]; the config and the weights do not belong together");
            if (options.quant.enabled() && options.quant.method != saved->method)
                throw UnsupportedError(ck.folder().string() + ": '" + t.full_name + "' is saved quantized as " +
                                       std::string(quant_method_name(saved->method)) + "; it cannot be re-quantized as " +
                                       std::string(quant_method_name(options.quant.method)) + " (load it without --quantize)");
            model->quant.method = saved->method;
            model->quant.double_quant = saved->nested;
            saved->compute_dtype = compute;
            saved->threshold = options.quant.int8_threshold;
            parts = saved_quant_tensors(ck, module, *saved);
            quant_infos[module] = *saved;
            for (auto& [suffix, view] : parts) {
                const std::string name = module + "." + suffix;
                const TensorEntry* e = ck.find(name);
                if (d.is_gpu()) {
                    loaded[name] = view.to(torch_device(d));
                } else {
                    loaded[name] = view;
                    if (d.kind == Device::Kind::disk)
                        mapped[name] = {ck.files()[e->file].get(), e->offset, e->size};
                }
                home[name] = d;
            }
            return true;
        }
        if (!options.quant.enabled() || !is_quantizable(model->tree, t) || options.quant.skips(module))
            return false;
        const bool conv1d = model->tree.nodes()[static_cast<std::size_t>(model->tree.find(module))].class_name == "Conv1D";
        auto source = [&ck, &entry, conv1d, dtype = model->dtype]() {
            at::Tensor w = tensor_view(ck, entry).to(scalar_type(dtype));
            return conv1d ? w.t().contiguous() : w; // Conv1D [in, out] runs as a Linear [out, in]
        };
        if (d.kind == Device::Kind::disk) {
            std::vector<std::int64_t> shape = t.shape;
            if (conv1d)
                std::swap(shape[0], shape[1]);
            const std::size_t first = quant_writes.size();
            quant_writer.add(module, shape, source, quant_writes);
            for (std::size_t i = first; i < quant_writes.size(); ++i)
                home[quant_writes[i].name] = d;
            return true;
        }
        QuantizedWeight q = quantize_weight(source(), options.quant, compute);
        quant_infos[module] = q.info;
        for (auto& [suffix, tensor] : q.tensors) {
            const std::string name = module + "." + suffix;
            loaded[name] = d.is_gpu() ? tensor.to(torch_device(d)) : tensor;
            home[name] = d;
        }
        ck.files()[entry.file]->release(entry.offset, entry.size);
        return true;
    };

    for (const auto& node : model->tree.nodes()) {
        for (const auto& t : node.tensors) {
            if (!t.checkpoint_entry || !t.tied_to.empty())
                continue;
            const TensorEntry& entry = ck.tensors()[*t.checkpoint_entry];
            const Device* where = device_of(model->device_map, t.full_name);
            const Device d = where ? *where : Device::cpu();
            home[t.full_name] = d;
            const DType target = is_floating(entry.dtype) ? model->dtype : entry.dtype;
            report(t.full_name);
            step = {"loading '" + t.full_name + "' (" + std::to_string(entry.size) + " bytes in the file)", d.name()};
            if (quantized(t, entry, d)) {
                done += entry.size;
                continue;
            }
            at::Tensor view = tensor_view(ck, entry);
            // After a copy the source pages are dropped again, so loading never holds the
            // checkpoint and the converted weights at once (peak = resident weights + one tensor).
            const MappedFile& source = *ck.files()[entry.file];
            if (d.is_gpu()) {
                loaded[t.full_name] = view.to(torch_device(d), scalar_type(target));
                source.release(entry.offset, entry.size);
            } else if (entry.dtype == target && entry.is_view()) {
                loaded[t.full_name] = view; // zero-copy: the mapping is the storage
                if (d.kind == Device::Kind::disk)
                    mapped[t.full_name] = {ck.files()[entry.file].get(), entry.offset, entry.size};
                else // in RAM now: the page reads belong to loading, not to the first prompt
                    source.populate(entry.offset, entry.size);
            } else if (d.kind == Device::Kind::cpu) {
                loaded[t.full_name] = view.to(scalar_type(target));
                source.release(entry.offset, entry.size);
            } else {
                to_offload.push_back({&t, &entry, target});
            }
            done += entry.size;
        }
    }

    if (!to_offload.empty() || !quant_writes.empty()) {
        // Disk weights in another dtype: converted once into an offload file, then mapped.
        std::vector<TensorToWrite> writes;
        for (const Pending& p : to_offload) {
            TensorToWrite w;
            w.name = p.tensor->full_name;
            w.dtype = p.target;
            w.shape = p.entry->shape;
            const TensorEntry* entry = p.entry;
            const DType target = p.target;
            w.fill = [&ck, entry, target](std::byte* out) {
                at::Tensor dst = at::from_blob(out, entry->shape, at::TensorOptions().dtype(scalar_type(target)));
                dst.copy_(tensor_view(ck, *entry));
            };
            writes.push_back(std::move(w));
        }
        const std::string quant_tag = options.quant.enabled()
                                          ? "-" + parse_weight_format(std::string(quant_method_name(options.quant.method)) +
                                                                          (options.quant.double_quant ? "-dq" : ""),
                                                                      compute).name() + "-" + std::string(torch_name(compute))
                                          : "";
        for (auto& w : quant_writes)
            writes.push_back(std::move(w));
        const std::filesystem::path file =
            options.offload_folder / ("layerwise-offload-" + std::to_string(std::hash<std::string>{}(ck.files().front()->path().string())) +
                                      "-" + std::string(torch_name(model->dtype)) + quant_tag + ".safetensors");
        std::error_code ec;
        std::filesystem::create_directories(options.offload_folder, ec);
        write_safetensors(file, writes, {{"format", "pt"}, {"source", ck.folder().string()}});
        model->offload = Checkpoint::open(file);
        for (const Pending& p : to_offload) {
            const TensorEntry* e = model->offload->find(p.tensor->full_name);
            loaded[p.tensor->full_name] = tensor_view(*model->offload, *e);
            mapped[p.tensor->full_name] = {model->offload->files()[e->file].get(), e->offset, e->size};
        }
        for (const auto& [module, info] : quant_writer.infos()) {
            quant_infos[module] = info;
            for (const QuantTensorSpec& spec : quant_tensor_specs(info.shape, options.quant)) {
                const std::string name = module + "." + spec.suffix;
                const TensorEntry* e = model->offload->find(name);
                loaded[name] = tensor_view(*model->offload, *e);
                mapped[name] = {model->offload->files()[e->file].get(), e->offset, e->size};
            }
        }
        options.log.info("converted " + std::to_string(to_offload.size()) + " disk-offloaded tensors to " +
                         std::string(torch_name(model->dtype)) + " in " + file.string());
    }

    // Tied tensors share the storage of their source (and its block format).
    for (const auto& [tied, source] : model->tree.tied())
        if (loaded.count(source)) {
            loaded[tied] = loaded[source];
            home[tied] = home[source];
            if (auto q = quant_infos.find(module_of(source)); q != quant_infos.end())
                quant_infos[module_of(tied)] = q->second;
        }

    // Group by decoder block.
    const auto blocks = model->tree.no_split_blocks();
    model->layers.resize(blocks.size());
    for (std::size_t l = 0; l < blocks.size(); ++l) {
        const std::string prefix = model->tree.nodes()[static_cast<std::size_t>(blocks[l])].name + ".";
        LayerWeights& lw = model->layers[l];
        lw.home = Device::cpu();
        bool first = true;
        for (auto it = loaded.begin(); it != loaded.end();) {
            if (it->first.compare(0, prefix.size(), prefix) == 0) {
                if (first) {
                    lw.home = home[it->first];
                    first = false;
                }
                if (auto r = mapped.find(it->first); r != mapped.end())
                    lw.disk_ranges.push_back(r->second);
                lw.tensors.emplace(it->first.substr(prefix.size()), std::move(it->second));
                it = loaded.erase(it);
            } else {
                ++it;
            }
        }
        for (auto it = quant_infos.begin(); it != quant_infos.end();) {
            if (it->first.compare(0, prefix.size(), prefix) == 0) {
                lw.quant.emplace(it->first.substr(prefix.size()), it->second);
                it = quant_infos.erase(it);
            } else {
                ++it;
            }
        }
    }
    // q and k must agree on their row order: where only one of them kept llama.cpp's interleaved
    // rows (the other is not in a block format), that one is put back in Hugging Face's order.
    for (LayerWeights& lw : model->layers) {
        QuantInfo* q = lw.quant.count("self_attn.q_proj") ? &lw.quant["self_attn.q_proj"] : nullptr;
        QuantInfo* k = lw.quant.count("self_attn.k_proj") ? &lw.quant["self_attn.k_proj"] : nullptr;
        const bool qi = q && q->rope_interleaved_heads, ki = k && k->rope_interleaved_heads;
        if (qi == ki)
            continue;
        QuantInfo& info = qi ? *q : *k;
        at::Tensor& w = lw.tensors.at(qi ? "self_attn.q_proj.weight" : "self_attn.k_proj.weight");
        const std::int64_t heads = info.rope_interleaved_heads, rows = w.size(0), row_bytes = w.size(1);
        w = w.reshape({heads, rows / heads / 2, 2, row_bytes}).transpose(1, 2).reshape({rows, row_bytes}).contiguous();
        info.rope_interleaved_heads = 0;
    }

    // GGUF blocks outside the decoder blocks (the embedding table, the output head) run on the
    // block kernels too; other quantized formats are kept to decoder blocks.
    for (auto it = quant_infos.begin(); it != quant_infos.end();)
        if (it->second.method == QuantMethod::gguf) {
            model->global_quant.emplace(it->first, it->second);
            it = quant_infos.erase(it);
        } else {
            ++it;
        }
    if (!quant_infos.empty())
        throw UnsupportedError("'" + quant_infos.begin()->first + "' is quantized but outside the decoder blocks; "
                               "Layerwise runs quantized linears inside decoder blocks only (keep it in the skip list)");
    model->globals = std::move(loaded);
    if (const std::uint64_t pinned = pin_offloaded_layers(*model))
        options.log.info("CPU-offloaded layers: " + std::to_string(pinned) + " bytes in pinned memory");
    done = total;
    report("");
    return model;
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
