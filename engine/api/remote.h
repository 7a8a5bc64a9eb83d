#pragma once
// Pipelines across machines: a model's decoder layers split into contiguous stages, some run by
// `layerwise worker` processes on other machines (engine/remote/). The coordinator keeps the
// embedding, the head and its own share of the layers; each step's hidden states go to each stage
// in turn and come back. The link is c10d's TCPStore (inside LibTorch); joining needs a shared token.
#include "plan/device_map.h"
#include "plan/pipeline.h"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace layerwise {

struct WorkerOptions {
    std::string listen = "127.0.0.1:7070"; // the interface and port to bind (port 0: any free one)
    std::string token;                     // coordinators must prove they hold it
    std::function<void(const std::string&)> log;
};

// Serves coordinators until `stop`: reports this machine's devices, loads the layers a
// coordinator asks for from its own copy of the model, runs them. `on_listening` gets the port
// once bound. IoError when the address cannot be bound, FormatError for a bad address or no token.
void run_worker(const WorkerOptions& options, const std::atomic<bool>& stop,
                const std::function<void(std::uint16_t port)>& on_listening = {});

// Decoder layers [first, end) run by the worker at `address` ("host:port"), placed on its
// devices as `device_map` says (a pipeline plan's stage map; empty: all in its CPU RAM).
struct RemoteStage {
    std::string address;
    std::int64_t first = 0, end = 0;
    DeviceMap device_map;
};

// `layers` decoder layers split evenly into 1 + hosts.size() contiguous stages: the first (this
// machine's) kept here, the others on the hosts in order. PlanError when there are more stages
// than layers.
std::vector<RemoteStage> even_stages(std::int64_t layers, const std::vector<std::string>& hosts);

// A worker's machine as the pipeline planner needs it: the devices it reports (their memory and
// measured bandwidth) and the link to it, measured: the latency is half the median round trip
// of an empty message, the bandwidth that of a 4 MiB message over the empty one's time
// (medians of 5). `name` names its devices in plans ("host2" -> "host2/cuda:0"). RemoteError
// when it cannot be reached or refuses the token.
Machine describe_machine(const std::string& address, const std::string& token, const std::string& name,
                         std::chrono::milliseconds timeout = std::chrono::seconds(10));

} // namespace layerwise
