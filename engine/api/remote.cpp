// Pipelines across machines, the engine API's side (api/remote.h); the link itself is remote/.
// `layerwise worker`: one machine's stage of a pipeline. A coordinator joins (remote/stage_link.h),
// asks it to load decoder layers [first, end) of a model from this machine's own copy (the rest of
// the model stays unread: mapped on "disk" and never touched), then sends each step's hidden
// states, which run through those layers with this worker's KV cache and go back.
#include "api/remote.h"

#include "api/footprint.h"

#include "core/dtype.h"
#include "core/error.h"
#include "devices/inventory.h"
#include "inspect.h"
#include "plan/device_map.h"
#include "plan/pipeline.h"
#include "remote/stage_link.h"
#include "remote/wire.h"
#include "runtime/loaded_model.h"
#include "runtime/runner.h"

#include <ATen/ATen.h>
#include <c10/util/Logging.h>
#include <algorithm>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

namespace layerwise {
namespace {

struct WorkerState {
    std::unique_ptr<LoadedModel> model;
    std::unique_ptr<Runner> runner;
    std::size_t first = 0, end = 0;
    // The caches of a coordinator's batch (its sequences, by the ids it gives them): this stage's
    // share of each; the runner's own cache is sequence 0.
    std::map<std::int64_t, KvCache> sequences;

    KvCache& sequence(std::int64_t id)
    {
        auto it = sequences.find(id);
        if (it == sequences.end())
            it = sequences.emplace(id, runner->make_cache()).first;
        return it->second;
    }
};

// This machine's devices, with RAM and disk bandwidth measured once (then the cached figure).
nlohmann::json describe_devices()
{
    DetectOptions o;
    o.offload_folder = std::filesystem::temp_directory_path();
    nlohmann::json devices = nlohmann::json::array();
    for (const DeviceInfo& d : detect_devices(o))
        devices.push_back(device_info_to_json(d));
    return devices;
}

remote::Message load(WorkerState& s, const nlohmann::json& h)
{
    s.sequences.clear();
    s.runner.reset();
    s.model.reset();
    const std::string source = h.at("model").get<std::string>();
    ModelDescription d = describe_model(source);
    const auto blocks = d.tree.no_split_blocks();
    const auto first = h.at("first").get<std::int64_t>(), end = h.at("end").get<std::int64_t>();
    if (static_cast<std::int64_t>(blocks.size()) != h.at("layers").get<std::int64_t>())
        throw PlanError("'" + source + "' here has " + std::to_string(blocks.size()) + " decoder layers, the coordinator's " +
                        std::to_string(h.at("layers").get<std::int64_t>()) + ": the two machines hold different models");
    if (first < 0 || end <= first || end > static_cast<std::int64_t>(blocks.size()))
        throw PlanError("layers " + std::to_string(first) + "-" + std::to_string(end - 1) + " are not layers of '" + source + "'");
    // Only this stage's layers are read (where the coordinator's plan puts them; else in RAM);
    // everything else stays mapped, never touched.
    DeviceMap stage_map;
    if (h.contains("map"))
        stage_map = device_map_from_json(h["map"]);
    const DeviceMap map = whole_model_map(d.tree, stage_map, first, end, false);
    LoadOptions o;
    if (h.contains("dtype") && h["dtype"].is_string())
        o.dtype = dtype_from_torch_name(h["dtype"].get<std::string>());
    o.device_map = map;
    o.offload_folder = std::filesystem::temp_directory_path();
    s.model = load_model(std::move(d), o);
    // The layers before and after this stage run elsewhere: no KV cache here for them.
    for (const auto& [begin, stop] : {std::pair<std::int64_t, std::int64_t>{0, first}, {end, static_cast<std::int64_t>(blocks.size())}})
        if (begin < stop)
            s.model->remote.push_back({static_cast<std::size_t>(begin), static_cast<std::size_t>(stop), "the coordinator",
                                       [](const at::Tensor&, std::int64_t, std::int64_t) -> at::Tensor {
                                           throw PlanError("a worker runs only its own stage's layers");
                                       },
                                       {}});
    s.runner = std::make_unique<Runner>(*s.model, h.value("context", std::int64_t(2048)));
    s.first = static_cast<std::size_t>(first);
    s.end = static_cast<std::size_t>(end);
    return {{{"loaded", true}}, {}};
}

remote::Message forward(WorkerState& s, const remote::Message& m)
{
    if (!s.runner)
        throw PlanError("no model is loaded on this worker yet (the coordinator sends 'load' first)");
    const at::Tensor hidden = remote::tensor_from_wire(m);
    const std::int64_t start = m.header.at("start").get<std::int64_t>();
    const std::int64_t id = m.header.value("sequence", std::int64_t(0));
    if (id == 0)
        return remote::tensor_to_wire(s.runner->forward_layers(hidden, s.first, s.end, start));
    // One of a batch's sequences (its prompt's prefill): on that sequence's cache.
    return remote::tensor_to_wire(s.runner->forward_layers(hidden, s.first, s.end, start, s.sequence(id)));
}

// A batched step: a row per sequence, each at its own position.
remote::Message forward_rows(WorkerState& s, const remote::Message& m)
{
    if (!s.runner)
        throw PlanError("no model is loaded on this worker yet (the coordinator sends 'load' first)");
    const auto ids = m.header.at("sequences").get<std::vector<std::int64_t>>();
    const auto starts = m.header.at("starts").get<std::vector<std::int64_t>>();
    const at::Tensor hidden = remote::tensor_from_wire(m);
    if (ids.size() != starts.size() || static_cast<std::int64_t>(ids.size()) != hidden.size(0))
        throw FormatError("a batched pipeline step names " + std::to_string(ids.size()) + " sequences for " +
                          std::to_string(hidden.size(0)) + " rows");
    std::vector<KvCache*> caches;
    for (std::size_t b = 0; b < ids.size(); ++b) {
        KvCache& c = s.sequence(ids[b]);
        if (starts[b] > c.length)
            throw PlanError("a batched pipeline step continues a sequence at position " + std::to_string(starts[b]) +
                            " but this stage holds " + std::to_string(c.length) + "; the stages lost step (start again)");
        c.length = starts[b];
        caches.push_back(&c);
    }
    return remote::tensor_to_wire(s.runner->forward_layers_rows(hidden, s.first, s.end, caches));
}

// What this worker holds where: its stage's weights and KV cache.
remote::Message footprint(const WorkerState& s)
{
    nlohmann::json devices = nlohmann::json::array();
    std::vector<const KvCache*> caches;
    if (s.runner)
        caches.push_back(&s.runner->cache());
    for (const auto& [id, cache] : s.sequences)
        caches.push_back(&cache);
    if (s.model)
        for (const LoadedFootprint& f : model_footprint(*s.model, caches, false))
            devices.push_back({{"device", f.device.name()}, {"weight_bytes", f.weight_bytes}, {"kv_cache_bytes", f.kv_cache_bytes},
                               {"layers", f.layers}});
    return {{{"devices", devices}}, {}};
}

} // namespace

void run_worker(const WorkerOptions& options, const std::atomic<bool>& stop, const std::function<void(std::uint16_t)>& on_listening)
{
    // A waiting worker's store waits time out every fraction of a second by design; c10d warns
    // about each one. Only errors are worth a worker's log.
    FLAGS_caffe2_log_level = std::max(FLAGS_caffe2_log_level, 2);
    remote::StageServer server(options.listen, options.token);
    if (on_listening)
        on_listening(server.port());
    WorkerState state;
    const nlohmann::json devices = describe_devices();
    const auto log = [&](const std::string& line) {
        if (options.log)
            options.log(line);
    };
    server.serve(
        [&](const remote::Message& m) {
            const std::string op = m.header.value("op", std::string());
            if (op == "describe")
                return remote::Message{{{"devices", devices}}, {}};
            if (op == "echo") // the link's probe: answers at once
                return remote::Message{{{"echo", true}}, {}};
            if (op == "load") {
                log("loading layers " + std::to_string(m.header.value("first", 0)) + "-" + std::to_string(m.header.value("end", 0) - 1) +
                    " of " + m.header.value("model", std::string()));
                return load(state, m.header);
            }
            if (op == "forward")
                return forward(state, m);
            if (op == "forward_rows")
                return forward_rows(state, m);
            if (op == "footprint")
                return footprint(state);
            throw FormatError("unknown request '" + op + "'");
        },
        stop, log);
}

namespace {

// The median seconds of `n` echo round trips carrying `bytes` there.
double median_round_trip(remote::StageClient& link, std::size_t bytes, int n)
{
    std::vector<double> t;
    const std::string payload(bytes, '\x5a');
    for (int i = 0; i < n; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        link.call({{{"op", "echo"}}, payload});
        t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    std::nth_element(t.begin(), t.begin() + n / 2, t.end());
    return t[static_cast<std::size_t>(n / 2)];
}

} // namespace

Machine describe_machine(const std::string& address, const std::string& token, const std::string& name, std::chrono::milliseconds timeout)
{
    remote::StageClient link(address, token, timeout);
    const remote::Message m = link.call({{{"op", "describe"}}, {}});
    Machine machine;
    machine.name = name;
    machine.address = address;
    try {
        for (const auto& d : m.header.at("devices"))
            machine.devices.push_back(device_info_from_json(d));
    } catch (const Error& e) {
        throw RemoteError("the worker at " + address + " described its devices wrongly: " + e.what(), address);
    } catch (const nlohmann::json::exception& e) {
        throw RemoteError("the worker at " + address + " described its devices wrongly: " + e.what(), address);
    }
    constexpr std::size_t probe_bytes = 4u << 20;
    const double empty = median_round_trip(link, 0, 5);
    const double full = median_round_trip(link, probe_bytes, 5);
    machine.link.latency = empty / 2;
    // A link too fast to tell the two apart on this message is at least as fast as memory copies.
    machine.link.bandwidth = static_cast<double>(probe_bytes) / std::max(full - empty, 1e-5);
    machine.link.source = "measured";
    return machine;
}

std::vector<RemoteStage> even_stages(std::int64_t layers, const std::vector<std::string>& hosts)
{
    const auto stages = static_cast<std::int64_t>(hosts.size()) + 1;
    if (stages > layers)
        throw PlanError("the model has " + std::to_string(layers) + " decoder layers, fewer than the " + std::to_string(stages) +
                        " machines (this one and " + std::to_string(hosts.size()) + " hosts); give fewer --host");
    std::vector<RemoteStage> out;
    std::int64_t at = layers * 1 / stages; // this machine's share comes first
    for (std::size_t i = 0; i < hosts.size(); ++i) {
        const std::int64_t end = layers * static_cast<std::int64_t>(i + 2) / stages;
        out.push_back({hosts[i], at, end});
        at = end;
    }
    return out;
}

} // namespace layerwise
