// The planner's cost model, the layerwise placement and the evaluation of any map.
//
// Memory per device (bytes):
//   weights     = sum of the tensors placed there, in the loaded format
//   kv_cache    = for every decoder block executed there: 2 (K and V) x batch x context
//                 (capped by a sliding window) x kv_heads x head_dim x bytes(kv dtype)
//   activations = prefill workspace of one block for a chunk of `prefill_chunk` tokens
//                 (hidden states, q/k/v, MLP intermediates; plus the attention scores on a
//                 CPU, where attention is not fused) + float32 logits of the last position
//   overhead    = on a GPU that runs anything: 512 MiB (CUDA context, kernels) + 5% of its
//                 weights and cache (allocator slack)
//   staging     = two copies of the largest streamed unit (the one computing, the one being
//                 prefetched) on the execution GPU, and in pinned CPU memory for units read from disk
// Layers placed on the CPU or the disk execute on the first GPU that holds part of the model
// (their weights stream in over the host link), else on the CPU.
//
// Time per generated token (the decode estimate, at the full context):
//   t = sum over units of  t_unit  +  0.03 ms per hop between GPUs
//   t_unit on a GPU            = (bytes read + its KV cache) / GPU memory bandwidth
//   t_unit on the CPU, GPU run = max(weights / host link bandwidth, (bytes read + KV) / GPU bandwidth)
//   t_unit on disk, GPU run    = max(weights / min(disk, host link bandwidth), (bytes read + KV) / GPU bandwidth)
//   t_unit on the CPU, no GPU  = (bytes read + KV) / RAM bandwidth
//   t_unit on disk, no GPU     = bytes read / disk bandwidth + KV / RAM bandwidth
//   decode tokens/s = batch / t. An embedding reads one row per token (unless tied to the head).
// Prefill of one chunk: per unit max(2 x parameters x tokens / compute rate, bytes moved / bandwidth),
// prefill tokens/s = chunk x batch / sum.
#include "plan/plan.h"

#include "core/bytes.h"
#include "core/error.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

namespace layerwise {

std::string_view verdict_name(Verdict v)
{
    switch (v) {
    case Verdict::fits_on_gpu: return "fits_on_gpu";
    case Verdict::fits_with_cpu_offload: return "fits_with_cpu_offload";
    case Verdict::fits_with_disk_offload: return "fits_with_disk_offload";
    case Verdict::does_not_fit: return "does_not_fit";
    }
    return "?";
}

namespace {

constexpr std::int64_t gpu_context_bytes = 512ll << 20;
constexpr double allocator_slack = 0.05;
constexpr double gpu_hop_seconds = 30e-6;

// A placement unit: a decoder block, a leaf module, or a direct tensor of a module with children.
struct Unit {
    std::string name;
    std::string first_tensor;   // to look its device up in a map
    int layer = -1;             // decoder block index
    std::int64_t weight = 0;    // bytes stored
    std::int64_t read = 0;      // bytes read per generated token
    std::int64_t kv = 0;        // KV cache bytes (blocks)
    double params = 0;          // parameters, for prefill FLOPs
    bool embedding = false;
    int tied_to_unit = -1;      // a tied head: lives with this unit
    int expert_layer = -1;      // an expert of this decoder block: computes where it lives, never streamed
    double active = 1.0;        // the share of a prefill's tokens it computes (experts_per_token / num_experts)
};

struct CostModel {
    std::vector<Unit> units;
    std::int64_t act_gpu = 0, act_cpu = 0, logits = 0;
    double attention_flops_per_token = 0; // per block, at the full context

    CostModel(const ModuleTree& tree, const ModelConfig& c, const PlanRequest& r)
    {
        const DType compute = r.weights.dtype;
        const DType kv_dtype = r.kv_dtype.value_or(compute);
        // The whole context, whatever a sliding window masks: the runtime's cache holds every
        // position (a window limits what attention reads, not what the cache keeps).
        const std::int64_t kv_per_layer = 2 * r.batch * r.context * c.num_kv_heads * c.head_dim * dtype_bits(kv_dtype) / 8;
        const std::int64_t act_bytes = dtype_bits(compute) / 8;
        const std::int64_t chunk = std::min(r.prefill_chunk, r.context);
        const std::int64_t tokens = r.batch * chunk;
        act_gpu = tokens * act_bytes *
                  (4 * c.hidden_size + (c.num_heads + 2 * c.num_kv_heads) * c.head_dim + 3 * c.intermediate_size);
        act_cpu = act_gpu + r.batch * c.num_heads * chunk * r.context * 4;
        logits = r.batch * c.vocab_size * 4;
        attention_flops_per_token = 4.0 * static_cast<double>(r.context * c.num_heads * c.head_dim);

        // The units of the tensors tied weights name (the only lookups needed).
        std::map<std::string, int> unit_of_tensor;
        for (const auto& [tied, source] : tree.tied()) {
            unit_of_tensor.emplace(tied, -1);
            unit_of_tensor.emplace(source, -1);
        }
        std::vector<int> stack{0};
        while (!stack.empty()) {
            const int i = stack.back();
            stack.pop_back();
            const ModuleNode& n = tree.nodes()[static_cast<std::size_t>(i)];
            if (n.no_split || n.children.empty()) {
                add_unit(tree, r, n.name, i, nullptr, unit_of_tensor);
                if (n.no_split)
                    for (int e : tree.experts_under(i))
                        add_expert(tree, c, r, e, n.layer, unit_of_tensor);
                continue;
            }
            for (const auto& t : n.tensors)
                add_unit(tree, r, t.full_name, -1, &t, unit_of_tensor);
            stack.insert(stack.end(), n.children.rbegin(), n.children.rend());
        }
        for (Unit& u : units) {
            if (u.layer >= 0)
                u.kv = kv_per_layer;
        }
        // Tied weights: the head reads the embedding; both live on one device.
        for (const auto& [tied, source] : tree.tied()) {
            auto a = unit_of_tensor.find(tied), b = unit_of_tensor.find(source);
            if (a == unit_of_tensor.end() || b == unit_of_tensor.end() || a->second < 0 || b->second < 0)
                continue;
            Unit& head = units[static_cast<std::size_t>(a->second)];
            Unit& embed = units[static_cast<std::size_t>(b->second)];
            head.tied_to_unit = b->second;
            embed.read = embed.weight;
            embed.params += static_cast<double>(embed.weight) / std::max(1, dtype_bits(compute) / 8);
        }
    }

    // One expert of decoder block `layer`: a decode step of `batch` sequences reads it when any
    // of them chooses it, 1 - (1 - k/E)^batch of the time on average.
    void add_expert(const ModuleTree& tree, const ModelConfig& c, const PlanRequest& r, int node, int layer,
                    std::map<std::string, int>& unit_of_tensor)
    {
        const std::size_t before = units.size();
        add_unit(tree, r, tree.nodes()[static_cast<std::size_t>(node)].name, node, nullptr, unit_of_tensor);
        if (units.size() == before)
            return;
        Unit& u = units.back();
        u.expert_layer = layer;
        u.active = static_cast<double>(c.experts_per_token) / static_cast<double>(std::max<std::int64_t>(c.num_experts, 1));
        u.read = static_cast<std::int64_t>(static_cast<double>(u.weight) * (1.0 - std::pow(1.0 - u.active, static_cast<double>(r.batch))));
    }

    void add_unit(const ModuleTree& tree, const PlanRequest& r, const std::string& name, int node,
                  const ModuleTensor* tensor, std::map<std::string, int>& unit_of_tensor)
    {
        Unit u;
        u.name = name;
        std::vector<const ModuleTensor*> tensors;
        if (tensor) {
            tensors.push_back(tensor);
        } else {
            std::vector<int> stack{node};
            u.layer = tree.nodes()[static_cast<std::size_t>(node)].no_split ? tree.nodes()[static_cast<std::size_t>(node)].layer : -1;
            u.embedding = tree.nodes()[static_cast<std::size_t>(node)].class_name == "Embedding";
            while (!stack.empty()) {
                const auto& n = tree.nodes()[static_cast<std::size_t>(stack.back())];
                stack.pop_back();
                if (n.expert_list)
                    continue; // its experts are units of their own
                for (const auto& t : n.tensors)
                    tensors.push_back(&t);
                stack.insert(stack.end(), n.children.rbegin(), n.children.rend());
            }
        }
        if (tensors.empty())
            return; // dropout, activations: nothing to place
        u.first_tensor = tensors.front()->full_name;
        for (const ModuleTensor* t : tensors) {
            u.weight += static_cast<std::int64_t>(tensor_bytes(tree, *t, r.weights));
            if (t->is_parameter() && t->tied_to.empty())
                u.params += static_cast<double>(t->numel());
            if (auto it = unit_of_tensor.find(t->full_name); it != unit_of_tensor.end())
                it->second = static_cast<int>(units.size());
        }
        u.read = u.weight;
        if (u.embedding && !tensors.empty() && tensors.front()->shape.size() == 2)
            u.read = r.batch * tensors.front()->shape[1] * dtype_bits(r.weights.dtype) / 8; // one row per token
        units.push_back(std::move(u));
    }
};

struct Resolved {
    std::vector<DeviceInfo> devices; // sorted: GPUs, cpu, disk
    std::vector<std::int64_t> limits;
    int cpu = -1, disk = -1;
    std::vector<int> gpus;
};

Resolved resolve_devices(const PlanRequest& r)
{
    Resolved out;
    out.devices = r.devices;
    std::stable_sort(out.devices.begin(), out.devices.end(),
                     [](const DeviceInfo& a, const DeviceInfo& b) { return a.id < b.id; });
    for (const auto& l : r.max_memory)
        if (std::none_of(out.devices.begin(), out.devices.end(), [&](const DeviceInfo& d) { return d.id == l.device; }))
            throw PlanError("max memory names " + l.device.name() + ", which this machine does not have; add it with --device " +
                            l.device.map_key() + "=PROFILE (e.g. RTX-4090) or =SIZE");
    if (std::none_of(out.devices.begin(), out.devices.end(), [](const DeviceInfo& d) { return d.id == Device::cpu(); }))
        throw PlanError("no CPU device to plan with");
    if (std::none_of(out.devices.begin(), out.devices.end(), [](const DeviceInfo& d) { return d.id == Device::disk(); })) {
        DeviceInfo disk;
        disk.id = Device::disk();
        disk.name = "disk";
        disk.available_bytes = disk.total_bytes = std::numeric_limits<std::int64_t>::max() / 4;
        disk.bandwidth = 1e9;
        disk.bandwidth_source = "assumed";
        out.devices.push_back(disk);
    }
    for (std::size_t i = 0; i < out.devices.size(); ++i) {
        const DeviceInfo& d = out.devices[i];
        const MemoryLimit* l = find_limit(r.max_memory, d.id);
        out.limits.push_back(l ? l->bytes : static_cast<std::int64_t>(d.available_bytes));
        if (d.id.is_gpu())
            out.gpus.push_back(static_cast<int>(i));
        else if (d.id.kind == Device::Kind::cpu)
            out.cpu = static_cast<int>(i);
        else
            out.disk = static_cast<int>(i);
    }
    return out;
}

double safe_div(double a, double b)
{
    return b > 0 ? a / b : std::numeric_limits<double>::infinity();
}

// Per-unit decode and prefill time given where it lives and where it runs.
struct UnitTimes {
    double decode = 0, prefill = 0;
};

UnitTimes unit_times(const CostModel& m, const Unit& u, const DeviceInfo& home, const DeviceInfo* exec,
                     const PlanRequest& r)
{
    const double kv = static_cast<double>(u.kv);
    const double read = static_cast<double>(u.read), weight = static_cast<double>(u.weight);
    const double chunk_tokens = static_cast<double>(r.batch * std::min(r.prefill_chunk, r.context));
    const double flops = 2.0 * u.params * u.active * chunk_tokens + (u.layer >= 0 ? m.attention_flops_per_token * chunk_tokens : 0);
    UnitTimes t;
    if (home.id.is_gpu()) {
        t.decode = (read + kv) / home.bandwidth;
        t.prefill = std::max(safe_div(flops, home.flops), weight / home.bandwidth);
        return t;
    }
    const bool streamed_to_gpu = exec && exec->id.is_gpu() && !u.embedding;
    if (streamed_to_gpu) {
        const double link = home.id.kind == Device::Kind::disk ? std::min(home.bandwidth, exec->link_bandwidth)
                                                               : exec->link_bandwidth;
        t.decode = std::max(safe_div(weight, link), (read + kv) / exec->bandwidth);
        t.prefill = std::max({safe_div(weight, link), safe_div(flops, exec->flops), weight / exec->bandwidth});
        return t;
    }
    // Computed on the CPU, from RAM or from the mapped checkpoint on disk.
    const DeviceInfo& cpu = exec && !exec->id.is_gpu() ? *exec : home;
    const double from = home.id.kind == Device::Kind::disk ? home.bandwidth : cpu.bandwidth;
    t.decode = read / from + kv / cpu.bandwidth;
    t.prefill = std::max(safe_div(flops, cpu.flops), weight / from);
    return t;
}

std::string gib(std::int64_t bytes)
{
    return format_bytes(static_cast<std::uint64_t>(std::max<std::int64_t>(bytes, 0)));
}

} // namespace

namespace {

// Where the units of a map live (indices into the resolved devices) and where they run: GPU units
// where they are; the rest on the first GPU in use, else the CPU.
// Experts off the GPUs compute on the CPU, from RAM or the mapped checkpoint.
struct Homes {
    std::vector<int> home;
    std::vector<bool> expert; // the unit is an expert
    int exec_gpu = -1;     // the first GPU in use; -1: none
    int offload_exec = -1; // where units off the GPUs run
    int cpu = -1;

    int exec_of(const Resolved& res, std::size_t u) const
    {
        if (res.devices[static_cast<std::size_t>(home[u])].id.is_gpu())
            return home[u];
        return expert[u] ? cpu : offload_exec;
    }
};

Homes unit_homes(const CostModel& model, const Resolved& res, const DeviceMap& map)
{
    auto index_of = [&](const Device& d) -> int {
        for (std::size_t i = 0; i < res.devices.size(); ++i)
            if (res.devices[i].id == d)
                return static_cast<int>(i);
        throw PlanError("the device map uses " + d.name() + ", which is not among the devices being planned for; add it with --device " +
                        d.map_key() + "=PROFILE or =SIZE");
    };
    Homes h;
    h.cpu = res.cpu;
    h.home.resize(model.units.size());
    h.expert.resize(model.units.size());
    for (std::size_t u = 0; u < model.units.size(); ++u)
        h.expert[u] = model.units[u].expert_layer >= 0;
    for (std::size_t u = 0; u < model.units.size(); ++u) {
        const Unit& unit = model.units[u];
        const Device* d = unit.tied_to_unit >= 0 ? device_of(map, model.units[static_cast<std::size_t>(unit.tied_to_unit)].first_tensor)
                                                 : device_of(map, unit.first_tensor);
        h.home[u] = index_of(d ? *d : Device::cpu());
    }
    for (std::size_t u = 0; u < h.home.size(); ++u)
        if (res.devices[static_cast<std::size_t>(h.home[u])].id.is_gpu() &&
            (h.exec_gpu < 0 || res.devices[static_cast<std::size_t>(h.home[u])].id < res.devices[static_cast<std::size_t>(h.exec_gpu)].id))
            h.exec_gpu = h.home[u];
    h.offload_exec = h.exec_gpu >= 0 ? h.exec_gpu : res.cpu;
    return h;
}

// The memory each device needs for the map; the device of each decoder block is appended to
// `layer_devices`.
std::vector<DeviceFootprint> footprints(const CostModel& model, const Resolved& res, const Homes& homes,
                                        std::vector<Device>& layer_devices)
{
    std::vector<DeviceFootprint> fp(res.devices.size());
    std::vector<bool> runs_blocks(res.devices.size(), false), used(res.devices.size(), false);
    std::int64_t largest_streamed = 0, largest_from_disk = 0;
    int head_exec = homes.offload_exec;
    for (std::size_t u = 0; u < model.units.size(); ++u) {
        const Unit& unit = model.units[u];
        const int h = homes.home[u];
        const bool on_gpu = res.devices[static_cast<std::size_t>(h)].id.is_gpu();
        const int exec = homes.exec_of(res, u);
        fp[static_cast<std::size_t>(h)].weights += unit.weight;
        fp[static_cast<std::size_t>(h)].read_per_token += unit.read;
        fp[static_cast<std::size_t>(h)].experts += unit.expert_layer >= 0;
        fp[static_cast<std::size_t>(exec)].kv_cache += unit.kv;
        used[static_cast<std::size_t>(h)] = used[static_cast<std::size_t>(exec)] = true;
        if (unit.layer >= 0) {
            runs_blocks[static_cast<std::size_t>(exec)] = true;
            fp[static_cast<std::size_t>(h)].layers += 1;
            layer_devices.push_back(res.devices[static_cast<std::size_t>(h)].id);
        }
        if (!on_gpu && homes.exec_gpu >= 0 && !unit.embedding && unit.expert_layer < 0)
            largest_streamed = std::max(largest_streamed, unit.weight);
        if (h == res.disk && unit.expert_layer < 0) // experts compute from the mapping, unstaged
            largest_from_disk = std::max(largest_from_disk, unit.weight);
        if (unit.name == "lm_head" || unit.name.ends_with(".lm_head"))
            head_exec = exec;
    }
    for (std::size_t d = 0; d < res.devices.size(); ++d) {
        DeviceFootprint& f = fp[d];
        f.device = res.devices[d];
        f.limit = res.limits[d];
        const bool gpu = f.device.id.is_gpu();
        if (runs_blocks[d])
            f.activations = gpu ? model.act_gpu : model.act_cpu;
        if (static_cast<int>(d) == head_exec)
            f.activations += model.logits;
        if (gpu && used[d])
            f.overhead = gpu_context_bytes + static_cast<std::int64_t>(allocator_slack * static_cast<double>(f.weights + f.kv_cache));
    }
    if (largest_streamed > 0)
        fp[static_cast<std::size_t>(homes.exec_gpu)].staging += 2 * largest_streamed;
    if (largest_from_disk > 0)
        fp[static_cast<std::size_t>(res.cpu)].staging += 2 * largest_from_disk;
    return fp;
}

// The expected speed of the map: decode and prefill times summed over units, plus the GPU hops.
Estimate estimate_speed(const CostModel& model, const Resolved& res, const Homes& homes, const PlanRequest& request)
{
    double decode = 0, prefill = 0;
    int hops = 0;
    int last_gpu = -1, last_cpu_experts = -1;
    for (std::size_t u = 0; u < model.units.size(); ++u) {
        const int h = homes.home[u];
        const DeviceInfo* exec = &res.devices[static_cast<std::size_t>(homes.exec_of(res, u))];
        const UnitTimes t = unit_times(model, model.units[u], res.devices[static_cast<std::size_t>(h)], exec, request);
        decode += t.decode;
        prefill += t.prefill;
        // A GPU layer whose experts compute on the CPU: its hidden rows go over and back.
        const int expert_layer = model.units[u].expert_layer;
        if (expert_layer >= 0 && !exec->id.is_gpu() && homes.exec_gpu >= 0 && expert_layer != last_cpu_experts) {
            hops += 2;
            last_cpu_experts = expert_layer;
        }
        if (exec->id.is_gpu()) {
            const int g = exec->id.index;
            hops += last_gpu >= 0 && g != last_gpu;
            last_gpu = g;
        }
    }
    decode += hops * gpu_hop_seconds;
    Estimate e;
    e.seconds_per_token = decode;
    e.decode_tokens_per_s = decode > 0 ? static_cast<double>(request.batch) / decode : 0;
    e.prefill_tokens_per_s =
        prefill > 0 ? static_cast<double>(request.batch * std::min(request.prefill_chunk, request.context)) / prefill : 0;
    return e;
}

// Why a map does not fit: what is short on the device that lacks the most.
std::string shortfall(const DeviceFootprint& worst, const PlanRequest& request)
{
    std::ostringstream why;
    const std::int64_t deficit = worst.used() - worst.limit;
    if (worst.device.id.kind == Device::Kind::disk)
        why << "needs " << gib(deficit) << " more disk space for the offloaded weights (" << gib(worst.weights)
            << " on disk, " << gib(worst.limit) << " free in " << (worst.device.path.empty() ? "the offload folder" : worst.device.path)
            << "); free some space, choose another --offload-folder, or quantize (--quantize nf4 needs about a quarter)";
    else
        why << "needs " << gib(deficit) << " more on " << worst.device.id.name() << " (limit " << gib(worst.limit)
            << ": weights " << gib(worst.weights) << ", KV cache " << gib(worst.kv_cache) << " for a "
            << request.context << "-token context, activations " << gib(worst.activations) << ", overhead "
            << gib(worst.overhead + worst.staging) << ")";
    return why.str();
}

// A map that fits: how far it offloads, and where the room is tightest.
std::string fit_summary(const Plan& plan, const std::vector<DeviceFootprint>& fp, const Resolved& res, int exec_gpu,
                        const PlanRequest& request)
{
    std::ostringstream why;
    int on_gpu = 0, on_cpu = 0, on_disk = 0;
    for (const auto& d : plan.layer_devices)
        (d.is_gpu() ? on_gpu : d.kind == Device::Kind::cpu ? on_cpu : on_disk) += 1;
    if (res.gpus.empty())
        why << "no GPU: runs on the CPU, ";
    why << on_gpu << " of " << plan.layer_devices.size() << " layers on GPU";
    if (on_cpu)
        why << ", " << on_cpu << (exec_gpu >= 0 ? " streamed from CPU RAM" : " in CPU RAM");
    if (on_disk)
        why << ", " << on_disk << " read from disk";
    for (const auto& f : fp)
        if (!f.device.id.is_gpu() && f.experts > 0 && !res.gpus.empty())
            why << "; " << f.experts << " experts in " << (f.device.id.kind == Device::Kind::disk ? "the mapped checkpoint" : "CPU RAM")
                << " (" << gib(f.weights) << " held, " << gib(f.read_per_token) << " read per token), computed on the CPU";
    std::int64_t spare = std::numeric_limits<std::int64_t>::max();
    std::string tightest;
    for (const auto& f : fp)
        if (f.device.id.kind != Device::Kind::disk && f.used() > 0 && f.free() < spare) {
            spare = f.free();
            tightest = f.device.id.name();
        }
    if (!tightest.empty())
        why << "; " << gib(spare) << " to spare on " << tightest;
    why << " with a " << request.context << "-token context";
    return why.str();
}

// The verdict and its reason: the device most over its limit, else how far the map offloads.
void give_verdict(Plan& plan, const std::vector<DeviceFootprint>& fp, const Resolved& res, int exec_gpu, const PlanRequest& request)
{
    const DeviceFootprint* worst = nullptr;
    for (const auto& f : fp)
        if (f.used() > f.limit && (!worst || f.used() - f.limit > worst->used() - worst->limit))
            worst = &f;
    if (worst) {
        plan.verdict = Verdict::does_not_fit;
        plan.reason = shortfall(*worst, request);
        return;
    }
    std::int64_t weights_cpu = fp[static_cast<std::size_t>(res.cpu)].weights;
    std::int64_t weights_disk = res.disk >= 0 ? fp[static_cast<std::size_t>(res.disk)].weights : 0;
    if (weights_disk > 0)
        plan.verdict = Verdict::fits_with_disk_offload;
    else if (weights_cpu > 0 || res.gpus.empty())
        plan.verdict = Verdict::fits_with_cpu_offload;
    else
        plan.verdict = Verdict::fits_on_gpu;
    plan.reason = fit_summary(plan, fp, res, exec_gpu, request);
}

// Footprints, verdict (with what is short, without advice) and estimate of a map; `built`: the
// request's cost model when the caller has it already.
Plan judge(const ModuleTree& tree, const ModelConfig& config, const PlanRequest& request, DeviceMap map, std::string mode,
           const CostModel* built = nullptr)
{
    validate_device_map(tree, map);
    const Resolved res = resolve_devices(request);
    std::optional<CostModel> own;
    if (!built)
        own.emplace(tree, config, request);
    const CostModel& model = built ? *built : *own;
    Plan plan;
    plan.mode = std::move(mode);
    plan.context = request.context;
    plan.device_map = std::move(map);
    const Homes homes = unit_homes(model, res, plan.device_map);
    plan.execution_device = res.devices[static_cast<std::size_t>(homes.offload_exec)].id;
    std::vector<DeviceFootprint> fp = footprints(model, res, homes, plan.layer_devices);
    plan.estimate = estimate_speed(model, res, homes, request);
    give_verdict(plan, fp, res, homes.exec_gpu, request);
    plan.devices = std::move(fp);
    return plan;
}

// The search behind layerwise_map: the placement units in order (tied heads excluded, they follow
// their embedding), the memory prefix sums over them, the usable GPUs and each unit's time on each.
class LayerwiseSearch {
public:
    // `cpu_moe_layers`: the decoder blocks whose experts stay on the CPU (the first ones); the
    // experts of the others are placed with their block.
    LayerwiseSearch(const ModuleTree& tree, const ModelConfig& config, const PlanRequest& r, const CostModel& model,
                    std::int64_t cpu_moe_layers)
        : m_tree(tree), m_r(r), m_res(resolve_devices(r)), m_model(model), m_pinned_layers(cpu_moe_layers)
    {
        m_expert_weight.assign(static_cast<std::size_t>(std::max<std::int64_t>(config.num_layers, 0)), 0);
        for (std::size_t u = 0; u < m_model.units.size(); ++u) {
            const Unit& unit = m_model.units[u];
            if (unit.expert_layer >= 0) {
                if (pinned(unit.expert_layer))
                    m_pinned_of[unit.expert_layer] += unit.weight;
                else
                    m_expert_weight[static_cast<std::size_t>(unit.expert_layer)] += unit.weight;
                m_experts_of[unit.expert_layer].push_back(static_cast<int>(u));
            } else if (unit.tied_to_unit < 0) {
                m_order.push_back(static_cast<int>(u));
            }
        }
        // The CPU experts in RAM while they fit (a quarter of it kept for the rest), then read from the
        // mapped checkpoint on disk.
        const std::int64_t ram = m_res.limits[static_cast<std::size_t>(m_res.cpu)] * 3 / 4;
        for (const auto& [layer, bytes] : m_pinned_of) {
            if (m_pinned_bytes + bytes <= ram) {
                m_pinned_bytes += bytes;
                m_pinned_in_ram.push_back(layer);
            } else {
                m_pinned_disk_bytes += bytes;
                m_pinned_on_disk.push_back(layer);
            }
        }
        m_k = m_order.size();
        m_prefix.assign(m_k + 1, 0);
        for (std::size_t i = 0; i < m_k; ++i)
            m_prefix[i + 1] = m_prefix[i] + static_cast<std::int64_t>(std::ceil(static_cast<double>(weight(i) + unit(i).kv) * (1.0 + allocator_slack)));
        // GPUs too small for the runtime's fixed needs are left out; without any, the CPU runs the model.
        for (int g : m_res.gpus)
            if (gpu_room(g) > 0)
                m_gpus.push_back(g);
        // Time of each unit on each GPU (prefix sums).
        m_t_gpu.assign(m_gpus.size(), std::vector<double>(m_k + 1, 0));
        for (std::size_t g = 0; g < m_gpus.size(); ++g)
            for (std::size_t i = 0; i < m_k; ++i) {
                const DeviceInfo& gpu = m_res.devices[static_cast<std::size_t>(m_gpus[g])];
                double t = unit_times(m_model, unit(i), gpu, nullptr, r).decode;
                if (folds_experts(i))
                    for (int e : m_experts_of.at(unit(i).layer))
                        t += unit_times(m_model, m_model.units[static_cast<std::size_t>(e)], gpu, nullptr, r).decode;
                m_t_gpu[g][i + 1] = m_t_gpu[g][i] + t;
            }
    }

    std::optional<DeviceMap> run()
    {
        std::vector<Device> where(m_k, Device::cpu());
        bool ok = false;
        for (int attempt = 0; attempt < 2 && !ok; ++attempt) {
            if (attempt == 1) { // the usable GPUs cannot run it: try the CPU alone
                if (m_gpus.empty())
                    break;
                m_gpus.clear();
                m_t_gpu.clear();
            }
            for (std::size_t s = fewest_offloaded(); s <= m_k && !ok; ++s)
                ok = place(s, where);
        }
        if (!ok)
            return std::nullopt;
        return map_of(where);
    }

private:
    const Unit& unit(std::size_t i) const { return m_model.units[static_cast<std::size_t>(m_order[i])]; }
    bool pinned(int layer) const { return layer < m_pinned_layers; }
    // Whether search unit i is a decoder block that carries its experts along.
    bool folds_experts(std::size_t i) const
    {
        return unit(i).layer >= 0 && !pinned(unit(i).layer) && m_experts_of.count(unit(i).layer);
    }
    // The bytes search unit i places: a block with its experts, unless they stay on the CPU.
    std::int64_t weight(std::size_t i) const
    {
        return unit(i).weight + (folds_experts(i) ? m_expert_weight[static_cast<std::size_t>(unit(i).layer)] : 0);
    }

    // A GPU's room for weights and cache once the runtime's fixed needs are set aside.
    std::int64_t gpu_room(int g) const
    {
        return m_res.limits[static_cast<std::size_t>(g)] - gpu_context_bytes - m_model.act_gpu - m_model.logits;
    }

    // Smallest number of offloaded units the GPUs' total room allows (all of them without a GPU).
    std::size_t fewest_offloaded() const
    {
        if (m_gpus.empty())
            return m_k;
        std::int64_t total_cap = 0;
        for (int g : m_gpus)
            total_cap += gpu_room(g);
        std::size_t s = 0;
        while (s < m_k && m_prefix[m_k - s] > total_cap)
            ++s;
        return s;
    }

    // The last `s` units offloaded, the rest over the GPUs; false when that does not fit.
    bool place(std::size_t s, std::vector<Device>& where) const
    {
        const std::size_t first_off = m_k - s;
        std::int64_t max_off = 0, kv_off = 0;
        for (std::size_t i = first_off; i < m_k; ++i) {
            const Unit& u = unit(i);
            if (!u.embedding)
                max_off = std::max(max_off, weight(i));
            kv_off += u.kv;
        }
        if (!place_offloaded(first_off, max_off, kv_off, where))
            return false;
        if (m_gpus.empty())
            return first_off == 0;
        return split_over_gpus(s, max_off, kv_off, where);
    }

    // Offloaded suffix [first_off, k): CPU first (faster), then disk.
    bool place_offloaded(std::size_t first_off, std::int64_t max_off, std::int64_t kv_off, std::vector<Device>& where) const
    {
        std::int64_t cpu_room = m_res.limits[static_cast<std::size_t>(m_res.cpu)] - m_pinned_bytes;
        if (m_gpus.empty())
            cpu_room -= m_model.act_cpu + m_model.logits + kv_off + 2 * max_off; // the CPU runs everything
        std::size_t i = first_off;
        // Staging for disk units (pinned) is reserved when any unit goes to disk.
        std::int64_t cpu_used = 0;
        for (; i < m_k; ++i) {
            const std::int64_t w = weight(i);
            if (cpu_used + w > cpu_room - (i + 1 < m_k ? 2 * max_off : 0))
                break;
            cpu_used += w;
            where[i] = Device::cpu();
        }
        std::int64_t disk_used = 0;
        for (; i < m_k; ++i) {
            disk_used += weight(i);
            where[i] = Device::disk();
        }
        return !(disk_used + m_pinned_disk_bytes > m_res.limits[static_cast<std::size_t>(m_res.disk)] || cpu_room < 0);
    }

    // GPU prefix [0, k - s) over the GPUs by dynamic programming; GPU 0 also holds the offloaded
    // units' KV cache and staging.
    bool split_over_gpus(std::size_t s, std::int64_t max_off, std::int64_t kv_off, std::vector<Device>& where) const
    {
        const std::size_t G = m_gpus.size();
        std::vector<std::int64_t> cap(G);
        for (std::size_t g = 0; g < G; ++g)
            cap[g] = gpu_room(m_gpus[g]);
        if (s > 0)
            cap[0] -= static_cast<std::int64_t>(static_cast<double>(kv_off) * (1.0 + allocator_slack)) + 2 * max_off;
        struct Cell {
            double time = std::numeric_limits<double>::infinity();
            double pref = std::numeric_limits<double>::infinity();
            std::size_t from = 0;
        };
        const std::size_t M = m_k - s;
        std::vector<std::vector<Cell>> f(G + 1, std::vector<Cell>(M + 1));
        f[0][0] = {0, 0, 0};
        // auto: fastest first, then earlier GPUs; the other strategies: their preference first, then speed.
        const bool speed_first = m_r.strategy == Strategy::auto_;
        auto better = [speed_first](double t1, double p1, const Cell& c) {
            if (!std::isfinite(c.time))
                return true;
            const double eps_t = 1e-12 * std::max(1.0, std::abs(c.time));
            const double eps_p = 1e-12 * std::max(1.0, std::abs(c.pref));
            if (speed_first)
                return t1 < c.time - eps_t || (t1 <= c.time + eps_t && p1 < c.pref - eps_p);
            return p1 < c.pref - eps_p || (p1 <= c.pref + eps_p && t1 < c.time - eps_t);
        };
        for (std::size_t g = 0; g < G; ++g) {
            const double limit = static_cast<double>(std::max<std::int64_t>(m_res.limits[static_cast<std::size_t>(m_gpus[g])], 1));
            for (std::size_t i = 0; i <= M; ++i) {
                if (!std::isfinite(f[g][i].time))
                    continue;
                // The GPU that runs the streamed layers must hold part of the model (it is the first one in use).
                for (std::size_t j = (g == 0 && s > 0 ? i + 1 : i); j <= M; ++j) {
                    const std::int64_t need = m_prefix[j] - m_prefix[i];
                    if (need > cap[g] && j > i)
                        break;
                    if (need > cap[g])
                        continue;
                    const double pref = preference(f[g][i].pref, g, need, limit);
                    const double time = f[g][i].time + (m_t_gpu[g][j] - m_t_gpu[g][i]) + (j > i && i > 0 ? gpu_hop_seconds : 0);
                    if (better(time, pref, f[g + 1][j]))
                        f[g + 1][j] = {time, pref, i};
                }
            }
        }
        if (!std::isfinite(f[G][M].time))
            return false;
        std::size_t j = M;
        for (std::size_t g = G; g-- > 0;) {
            const std::size_t i = f[g + 1][j].from;
            for (std::size_t x = i; x < j; ++x)
                where[x] = m_res.devices[static_cast<std::size_t>(m_gpus[g])].id;
            j = i;
        }
        return true;
    }

    // The strategy's preference after putting `need` bytes on GPU `g` (lower is better).
    double preference(double pref, std::size_t g, std::int64_t need, double limit) const
    {
        const double fill = static_cast<double>(need) / limit;
        switch (m_r.strategy) {
        case Strategy::balanced: return std::max(pref, fill);
        case Strategy::balanced_low_0: return g == 0 ? fill * 1e6 + pref : std::max(pref, fill);
        default: return pref + static_cast<double>(g) * static_cast<double>(need) / limit; // earlier GPUs first
        }
    }

    // The placement as a device map; tied heads go where their embedding went.
    DeviceMap map_of(const std::vector<Device>& where) const
    {
        DeviceMap map;
        for (std::size_t i = 0; i < m_k; ++i) {
            // A block whose experts stay on the CPU: its other children where the block goes,
            // its experts' list in RAM or on disk (already what cleaning the map would give).
            const int layer = unit(i).layer;
            const bool in_ram = std::find(m_pinned_in_ram.begin(), m_pinned_in_ram.end(), layer) != m_pinned_in_ram.end();
            const bool on_disk = !in_ram && std::find(m_pinned_on_disk.begin(), m_pinned_on_disk.end(), layer) != m_pinned_on_disk.end();
            const Device experts = in_ram ? Device::cpu() : Device::disk();
            if (layer < 0 || (!in_ram && !on_disk) || where[i] == experts) {
                map.emplace_back(unit(i).name, (in_ram || on_disk) && where[i] == experts ? experts : where[i]);
                continue;
            }
            const int block = m_tree.find(unit(i).name);
            std::vector<int> stack{block};
            while (!stack.empty()) {
                const int node = stack.back();
                const ModuleNode& n = m_tree.nodes()[static_cast<std::size_t>(node)];
                stack.pop_back();
                if (n.expert_list) {
                    map.emplace_back(n.name, experts);
                    continue;
                }
                const bool holds_experts = n.no_split || !m_tree.experts_under(node).empty();
                if (!holds_experts) {
                    map.emplace_back(n.name, where[i]);
                    continue;
                }
                for (const auto& t : n.tensors)
                    map.emplace_back(t.full_name, where[i]);
                stack.insert(stack.end(), n.children.rbegin(), n.children.rend());
            }
        }
        for (std::size_t u = 0; u < m_model.units.size(); ++u)
            if (m_model.units[u].tied_to_unit >= 0)
                for (std::size_t i = 0; i < m_k; ++i)
                    if (m_order[i] == m_model.units[u].tied_to_unit)
                        map.emplace_back(m_model.units[u].name, where[i]);
        const bool pinned_any = !m_pinned_in_ram.empty() || !m_pinned_on_disk.empty();
        map = clean_device_map(std::move(map));
        return pinned_any ? in_model_order(m_tree, std::move(map)) : map;
    }

    const ModuleTree& m_tree;
    const PlanRequest& m_r;
    const Resolved m_res;
    const CostModel& m_model; // of the request: the same for every candidate of a search
    std::vector<int> m_order;
    std::size_t m_k = 0;
    std::vector<std::int64_t> m_prefix;
    std::vector<int> m_gpus;
    std::vector<std::vector<double>> m_t_gpu;
    std::int64_t m_pinned_layers = 0;
    std::int64_t m_pinned_bytes = 0;              // experts that stay on the CPU, in RAM
    std::int64_t m_pinned_disk_bytes = 0;         // ... and read from disk
    std::map<int, std::int64_t> m_pinned_of;      // block -> bytes of its experts that stay on the CPU
    std::vector<int> m_pinned_in_ram, m_pinned_on_disk;
    std::vector<std::int64_t> m_expert_weight;    // per block: the bytes of its experts placed with it
    std::map<int, std::vector<int>> m_experts_of; // block -> its expert units
};

// Layerwise placement: contiguous ranges of units over GPUs (in order), then CPU, then disk.
// The first `n - s` units go to GPUs; the last `s` (offloaded) to CPU then disk. For the
// smallest feasible s a dynamic programme splits the GPU prefix so that the estimated time
// per token is lowest (auto; among equal times earlier GPUs first), or the strategy's
// preference holds first and speed second (balanced: the fullest GPU as empty as possible;
// sequential: earlier GPUs first; balanced_low_0: GPU 0 as empty as possible).
// Mixtures of experts without a --n-cpu-moe of the user's: the fewest blocks (the first ones)
// whose experts stay on the CPU such that every block's attention and router fit on the GPUs;
// when none does, the faster of no experts and all experts on the CPU.
std::optional<DeviceMap> layerwise_map(const ModuleTree& tree, const ModelConfig& config, const PlanRequest& r)
{
    const CostModel model(tree, config, r);
    if (!config.is_moe() || r.cpu_moe_layers)
        return LayerwiseSearch(tree, config, r, model, r.cpu_moe_layers.value_or(0)).run();
    auto search = [&](std::int64_t n) { return LayerwiseSearch(tree, config, r, model, n).run(); };
    auto all_blocks_on_gpus = [&](const std::optional<DeviceMap>& map) {
        if (!map)
            return false;
        const Plan p = judge(tree, config, r, *map, "", &model);
        return p.verdict != Verdict::does_not_fit &&
               std::all_of(p.layer_devices.begin(), p.layer_devices.end(), [](const Device& d) { return d.is_gpu(); });
    };
    std::optional<DeviceMap> none = search(0);
    const bool has_gpu = std::any_of(r.devices.begin(), r.devices.end(), [](const DeviceInfo& d) { return d.id.is_gpu(); });
    if (!has_gpu || all_blocks_on_gpus(none))
        return none;
    std::optional<DeviceMap> all = search(config.num_layers);
    if (!all_blocks_on_gpus(all)) {
        if (!none || !all)
            return none ? none : all;
        const double t_none = judge(tree, config, r, *none, "", &model).estimate.seconds_per_token;
        const double t_all = judge(tree, config, r, *all, "", &model).estimate.seconds_per_token;
        return t_all < t_none ? all : none;
    }
    // Fewer CPU experts are faster: bisect for the fewest blocks that still fit.
    std::int64_t lo = 0, hi = config.num_layers; // lo fails, hi fits
    while (hi - lo > 1) {
        const std::int64_t mid = (lo + hi) / 2;
        auto map = search(mid);
        if (all_blocks_on_gpus(map)) {
            hi = mid;
            all = std::move(map);
        } else {
            lo = mid;
        }
    }
    return all;
}

// What from_pretrained(max_memory=...) works with: the table exactly as given (a device left
// out gets nothing; what no listed device takes goes to disk); without a table, what
// get_max_memory() finds: every GPU's free memory and 90% of the available RAM, and for the
// balanced strategies on one GPU 90% of that GPU.
MaxMemory from_pretrained_limits(const PlanRequest& r)
{
    if (!r.max_memory.empty())
        return ordered(r.max_memory);
    const Resolved res = resolve_devices(r);
    MaxMemory mm;
    for (std::size_t i = 0; i < res.devices.size(); ++i) {
        const Device id = res.devices[i].id;
        if (id.kind == Device::Kind::disk)
            continue;
        const auto available = static_cast<std::int64_t>(res.devices[i].available_bytes);
        mm.push_back({id, id.is_gpu() ? available : static_cast<std::int64_t>(0.9 * static_cast<double>(available))});
    }
    const auto positive = std::count_if(mm.begin(), mm.end(), [](const MemoryLimit& l) { return l.device.is_gpu() && l.bytes > 0; });
    if (r.strategy != Strategy::sequential && positive == 1)
        for (auto& l : mm)
            if (l.device.is_gpu()) {
                l.bytes = static_cast<std::int64_t>(0.9 * static_cast<double>(l.bytes));
                break;
            }
    return mm;
}

// Every device with its limit, or its available memory where it has none.
MaxMemory accelerate_limits(const PlanRequest& r, bool with_disk)
{
    const Resolved res = resolve_devices(r);
    MaxMemory mm;
    for (std::size_t i = 0; i < res.devices.size(); ++i) {
        const Device id = res.devices[i].id;
        if (id.kind == Device::Kind::disk && (!with_disk || !find_limit(r.max_memory, id)))
            continue;
        mm.push_back({id, res.limits[i]});
    }
    return mm;
}

DeviceMap accelerate_map(const ModuleTree& tree, const PlanRequest& request)
{
    // transformers sizes the model as built in the requested dtype (buffers keep theirs).
    AccelerateOptions options;
    options.sizes = request.weights.kind == WeightFormat::Kind::plain ? SizeRule::as_loaded(request.weights.dtype)
                                                                      : SizeRule::stored();
    return accelerate_device_map(tree, from_pretrained_limits(request), request.strategy, options);
}

bool fits(const Plan& p) { return p.verdict != Verdict::does_not_fit; }

// `request` with `device` limited to `bytes`.
PlanRequest with_limit(PlanRequest r, const Device& device, std::int64_t bytes)
{
    std::erase_if(r.max_memory, [&](const MemoryLimit& l) { return l.device == device; });
    r.max_memory.push_back({device, bytes});
    return r;
}

// Advice for a plan that does not fit, each piece checked before it is given:
//  - moving the fewest decoder blocks off the most overfilled device (GPU -> CPU, CPU -> disk)
//    so that the map, judged again, fits;
//  - the longest context, and the smallest limit for the most overfilled device, with which
//    `replan` (the same strategy again: the same map for a custom map) gives a plan that fits.
void advise(Plan& plan, const ModuleTree& tree, const ModelConfig& config, const PlanRequest& request,
            const std::function<bool(const PlanRequest&)>& replan)
{
    if (!request.advise)
        return;
    const DeviceFootprint* worst = nullptr;
    for (const auto& f : plan.devices)
        if (f.used() > f.limit && (!worst || f.used() - f.limit > worst->used() - worst->limit))
            worst = &f;
    if (!worst)
        return;
    const Device d = worst->device.id;
    if (d.kind != Device::Kind::disk && worst->layers > 0) {
        std::vector<int> here;
        for (std::size_t i = 0; i < plan.layer_devices.size(); ++i)
            if (plan.layer_devices[i] == d)
                here.push_back(static_cast<int>(i));
        const Device to = d.is_gpu() ? Device::cpu() : Device::disk();
        DeviceMap map = plan.device_map;
        std::vector<int> moved;
        for (auto it = here.rbegin(); it != here.rend(); ++it) {
            map = move_layers(tree, map, *it, *it, to);
            moved.insert(moved.begin(), *it);
            if (fits(judge(tree, config, request, map, "custom"))) {
                plan.advice.push_back({Advice::Kind::offload_layers, d, to, moved, 0});
                break;
            }
        }
    }
    if (worst->kv_cache > 0 || worst->activations > 0)
        if (auto c = longest_fitting_context(request.context, [&](std::int64_t context) {
                PlanRequest r = request;
                r.context = context;
                return replan(r);
            }))
            plan.advice.push_back({Advice::Kind::lower_context, d, d, {}, *c});
    std::int64_t total = 0;
    for (const auto& f : plan.devices)
        total += f.used();
    const std::int64_t ceiling = worst->limit + 2 * total + (std::int64_t(1) << 30);
    if (auto l = smallest_fitting_limit(worst->limit, ceiling, [&](std::int64_t bytes) { return replan(with_limit(request, d, bytes)); }))
        plan.advice.push_back({Advice::Kind::raise_limit, d, d, {}, *l});
    for (std::size_t i = 0; i < plan.advice.size(); ++i)
        plan.reason += (i == 0 ? "; " : ", or ") + advice_text(plan.advice[i]);
}

} // namespace

Plan evaluate_plan(const ModuleTree& tree, const ModelConfig& config, const PlanRequest& request, DeviceMap map,
                   std::string mode)
{
    Plan plan = judge(tree, config, request, map, std::move(mode));
    if (!fits(plan))
        advise(plan, tree, config, request,
               [&](const PlanRequest& r) { return fits(judge(tree, config, r, map, "custom")); });
    return plan;
}

Plan make_plan(const ModuleTree& tree, const ModelConfig& config, const PlanRequest& request)
{
    if (request.context <= 0 || request.batch <= 0 || request.prefill_chunk <= 0)
        throw PlanError("context, batch and prefill chunk must be positive");
    if (request.strategy == Strategy::custom)
        return evaluate_plan(tree, config, request, request.custom_map, "custom");
    if (request.accelerate) {
        const std::string mode = "accelerate " + std::string(strategy_name(request.strategy));
        Plan plan = judge(tree, config, request, accelerate_map(tree, request), mode);
        if (!fits(plan))
            advise(plan, tree, config, request, [&](const PlanRequest& r) {
                try {
                    return fits(judge(tree, config, r, accelerate_map(tree, r), mode));
                } catch (const PlanError&) {
                    return false; // a table transformers refuses
                }
            });
        return plan;
    }
    const std::string mode = "layerwise " + std::string(strategy_name(request.strategy));
    auto replan = [&](const PlanRequest& r) {
        const auto map = layerwise_map(tree, config, r);
        return map && fits(judge(tree, config, r, *map, mode));
    };
    if (auto map = layerwise_map(tree, config, request)) {
        Plan plan = judge(tree, config, request, *map, mode);
        if (!fits(plan))
            advise(plan, tree, config, request, replan);
        return plan;
    }
    // Nothing fits. Show the closest placement — the layerwise placement with unlimited disk (then
    // only the disk is short), else accelerate's sequential fill, which ignores the cache (the
    // devices it overfills are named) — and what would make a plan fit.
    PlanRequest relaxed = request;
    std::erase_if(relaxed.max_memory, [](const MemoryLimit& l) { return l.device.kind == Device::Kind::disk; });
    for (auto& d : relaxed.devices)
        if (d.id.kind == Device::Kind::disk)
            d.available_bytes = std::numeric_limits<std::int64_t>::max() / 4;
    Plan plan;
    if (auto map = layerwise_map(tree, config, relaxed)) {
        plan = judge(tree, config, request, *map, mode);
    } else {
        AccelerateOptions options;
        options.sizes = SizeRule::as_loaded(request.weights.dtype);
        plan = judge(tree, config, request,
                     accelerate_device_map(tree, accelerate_limits(relaxed, false), Strategy::sequential, options), mode);
    }
    plan.verdict = Verdict::does_not_fit;
    advise(plan, tree, config, request, replan);
    return plan;
}

Plan move_layers_in_plan(const ModuleTree& tree, const ModelConfig& config, const PlanRequest& request, const Plan& plan,
                         int first_layer, int last_layer, const Device& device)
{
    return evaluate_plan(tree, config, request, move_layers(tree, plan.device_map, first_layer, last_layer, device), "custom");
}

Plan move_module_in_plan(const ModuleTree& tree, const ModelConfig& config, const PlanRequest& request, const Plan& plan,
                         const std::string& module, const Device& device)
{
    return evaluate_plan(tree, config, request, move_module(tree, plan.device_map, module, device), "custom");
}

nlohmann::json plan_to_json(const Plan& plan)
{
    using nlohmann::json;
    json devices = json::array();
    for (const auto& f : plan.devices)
        devices.push_back({{"device", f.device.id.name()},
                           {"name", f.device.name},
                           {"hypothetical", f.device.hypothetical},
                           {"limit_bytes", f.limit},
                           {"weights_bytes", f.weights},
                           {"kv_cache_bytes", f.kv_cache},
                           {"activation_bytes", f.activations},
                           {"overhead_bytes", f.overhead + f.staging},
                           {"staging_bytes", f.staging},
                           {"used_bytes", f.used()},
                           {"free_bytes", f.free()},
                           {"layers", f.layers},
                           {"experts", f.experts},
                           {"read_per_token_bytes", f.read_per_token},
                           {"bandwidth_bytes_per_s", f.device.bandwidth}});
    json advice = json::array();
    for (const Advice& a : plan.advice) {
        json j{{"text", advice_text(a)}, {"device", a.device.name()}};
        switch (a.kind) {
        case Advice::Kind::offload_layers: j["kind"] = "offload_layers"; j["to"] = a.to.name(); j["layers"] = a.layers; break;
        case Advice::Kind::lower_context: j["kind"] = "lower_context"; j["context"] = a.value; break;
        case Advice::Kind::raise_limit: j["kind"] = "raise_limit"; j["limit_bytes"] = a.value; break;
        }
        advice.push_back(std::move(j));
    }
    json layers = json::array();
    for (const auto& d : plan.layer_devices)
        layers.push_back(d.is_gpu() ? json(d.index) : json(d.name()));
    return {{"mode", plan.mode},
            {"device_map", device_map_to_json(plan.device_map)},
            {"verdict", verdict_name(plan.verdict)},
            {"reason", plan.reason},
            {"advice", advice},
            {"context", plan.context},
            {"execution_device", plan.execution_device ? json(plan.execution_device->name()) : json(nullptr)},
            {"devices", devices},
            {"layers", layers},
            {"estimate",
             {{"decode_tokens_per_s", plan.estimate.decode_tokens_per_s},
              {"prefill_tokens_per_s", plan.estimate.prefill_tokens_per_s},
              {"seconds_per_token", plan.estimate.seconds_per_token}}}};
}

std::string device_table(const Plan& plan, const std::function<std::string(const Device&)>& label)
{
    const auto name_of = [&](const Device& d) { return label ? label(d) : d.name(); };
    int width = 8;
    for (const auto& f : plan.devices)
        width = std::max(width, static_cast<int>(name_of(f.device.id).size()));
    std::ostringstream o;
    char buf[200];
    std::snprintf(buf, sizeof buf, "%-*s %-28s %10s %10s %10s %10s %10s %10s %10s %6s\n", width, "device", "name", "limit", "weights",
                  "read/tok", "kv cache", "activ.", "overhead", "free", "layers");
    o << buf;
    for (const auto& f : plan.devices) {
        if (f.used() == 0 && f.device.id.kind == Device::Kind::disk)
            continue;
        std::string name = f.device.name.substr(0, 28);
        std::snprintf(buf, sizeof buf, "%-*s %-28s %10s %10s %10s %10s %10s %10s %10s %6d%s\n", width, name_of(f.device.id).c_str(),
                      name.c_str(), gib(f.limit).c_str(), gib(f.weights).c_str(), gib(f.read_per_token).c_str(), gib(f.kv_cache).c_str(),
                      gib(f.activations).c_str(), gib(f.overhead + f.staging).c_str(),
                      f.free() < 0 ? ("-" + gib(-f.free())).c_str() : gib(f.free()).c_str(), f.layers,
                      f.used() > f.limit ? "  OVER" : "");
        o << buf;
    }
    return o.str();
}

std::string plan_to_text(const Plan& plan)
{
    std::ostringstream o;
    o << "verdict   " << verdict_name(plan.verdict) << ": " << plan.reason << "\n";
    char buf[160];
    std::snprintf(buf, sizeof buf, "estimate  %.3g tokens/s decode, %.3g tokens/s prefill (%s)\n",
                  plan.estimate.decode_tokens_per_s, plan.estimate.prefill_tokens_per_s, plan.mode.c_str());
    o << buf;
    o << "\n" << device_table(plan);
    // Consecutive numbered modules on one device print as a range: model.layers.0-11: 0
    o << "\ndevice map (" << plan.device_map.size() << " keys)\n";
    auto split = [](const std::string& k) -> std::pair<std::string, int> {
        const auto dot = k.rfind('.');
        if (dot == std::string::npos || dot + 1 == k.size() || k.find_first_not_of("0123456789", dot + 1) != std::string::npos)
            return {k, -1};
        return {k.substr(0, dot), std::stoi(k.substr(dot + 1))};
    };
    for (std::size_t i = 0; i < plan.device_map.size();) {
        const auto& [key, dev] = plan.device_map[i];
        const auto [base, first] = split(key);
        std::size_t j = i + 1;
        int last = first;
        while (first >= 0 && j < plan.device_map.size()) {
            const auto [b, n] = split(plan.device_map[j].first);
            if (b != base || n != last + 1 || !(plan.device_map[j].second == dev))
                break;
            last = n;
            ++j;
        }
        o << "  " << (key.empty() ? std::string("\"\"") : last > first ? base + "." + std::to_string(first) + "-" + std::to_string(last) : key)
          << ": " << dev.map_key() << "\n";
        i = j;
    }
    return o.str();
}

} // namespace layerwise
