#include "runtime/loaded_model.h"

#include "checkpoint/safetensors_writer.h"
#include "checkpoint/tensor_view.h"
#include "core/error.h"
#include "inspect.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>
#include <sched.h>
#include <thread>

namespace layerwise {

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

struct Pending {
    const ModuleTensor* tensor;
    const TensorEntry* entry;
    DType target;
};

} // namespace

std::unique_ptr<LoadedModel> load_model(ModelDescription&& description, const LoadOptions& options)
{
    if (!description.checkpoint)
        throw UnsupportedError("'" + description.source + "' has no weights (a preset or a config.json): it can be planned, not loaded");
    auto model = std::make_unique<LoadedModel>();
    model->config = std::move(description.config);
    model->tree = std::move(description.tree);
    model->checkpoint = std::move(description.checkpoint);
    model->dtype = options.dtype.value_or(model->tree.dtype());
    model->device_map = options.device_map;
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
            } else if (d.kind == Device::Kind::cpu) {
                loaded[t.full_name] = view.to(scalar_type(target));
                source.release(entry.offset, entry.size);
            } else {
                to_offload.push_back({&t, &entry, target});
            }
            done += entry.size;
        }
    }

    if (!to_offload.empty()) {
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
        const std::filesystem::path file =
            options.offload_folder / ("layerwise-offload-" + std::to_string(std::hash<std::string>{}(ck.files().front()->path().string())) +
                                      "-" + std::string(torch_name(model->dtype)) + ".safetensors");
        std::error_code ec;
        std::filesystem::create_directories(options.offload_folder, ec);
        write_safetensors(file, writes, {{"format", "pt"}, {"source", ck.folder().string()}});
        model->offload = Checkpoint::open(file);
        for (const Pending& p : to_offload) {
            const TensorEntry* e = model->offload->find(p.tensor->full_name);
            loaded[p.tensor->full_name] = tensor_view(*model->offload, *e);
            mapped[p.tensor->full_name] = {model->offload->files()[e->file].get(), e->offset, e->size};
        }
        options.log.info("converted " + std::to_string(to_offload.size()) + " disk-offloaded tensors to " +
                         std::string(torch_name(model->dtype)) + " in " + file.string());
    }

    // Tied tensors share the storage of their source.
    for (const auto& [tied, source] : model->tree.tied())
        if (loaded.count(source)) {
            loaded[tied] = loaded[source];
            home[tied] = home[source];
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
    }
    model->globals = std::move(loaded);
    done = total;
    report("");
    return model;
}

} // namespace layerwise
