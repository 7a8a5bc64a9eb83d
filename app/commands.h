#pragma once
#include <limits>
#include <optional>
// Subcommands of the `layerwise` executable. Each returns the process exit code;
// engine errors propagate to main(), the one place that catches them.
#include "api/layerwise.h"

#include <cstdint>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace layerwise::app {

// --dtype: "auto" keeps the model's dtype; otherwise a floating-point torch dtype (PlanError).
DType dtypeOption(const std::string& option, DType model);

// The device map for a model: a strategy planned on this machine's devices, or a map file.
// PlanError when the plan does not fit; `verdictOut` receives the verdict and its reason.
// `quant`: the weight format planned ("none", "int8", "nf4", "nf4-dq"...). `sequences`: KV
// caches of `context` tokens the plan counts (the server's slots and the session's own).
// --cpu-moe, --n-cpu-moe N: mixtures of experts whose experts (all, or the first N blocks')
// stay in CPU RAM and compute there; neither: the planner chooses.
struct MoeCli {
    bool all = false;
    std::int64_t layers = -1;
    std::optional<std::int64_t> cpuMoeLayers() const
    {
        return all ? std::optional<std::int64_t>(std::numeric_limits<std::int32_t>::max())
                   : layers >= 0 ? std::optional<std::int64_t>(layers) : std::nullopt;
    }
};
void addMoeOptions(CLI::App* cmd, MoeCli& m);

// The request behind deviceMapFor (this machine's devices, the limits, the strategy or map file),
// and its plan's map.
PlanRequest planRequestFor(const Model& model, const std::string& spec, const std::string& maxMemory, std::int64_t context,
                           DType dtype, const std::string& quant, std::int64_t sequences, const MoeCli& moe);
DeviceMap deviceMapOf(const Model& model, const PlanRequest& request, std::string* verdictOut);
DeviceMap deviceMapFor(const Model& model, const std::string& spec, const std::string& maxMemory,
                       std::int64_t context, DType dtype, std::string* verdictOut, const std::string& quant = "none",
                       std::int64_t sequences = 1, const MoeCli& moe = {});

// --host HOST:PORT (repeatable), --token, --remote-timeout, --split: the decoder layers in
// pipeline stages over this machine and `layerwise worker` processes on others (cli_worker.cpp).
struct PipelineCli {
    std::vector<std::string> hosts;
    std::string token;
    double timeoutSeconds = 60;
    std::string split = "plan"; // "plan": the pipeline planner's; "even": equal shares, in RAM
};
// `hostFlag`: --host, except where --host is taken already (serve: --worker-host).
void addPipelineOptions(CLI::App* cmd, PipelineCli& p, const std::string& hostFlag = "--host");
// The machines behind --host, described and their links measured ("host2", "host3"... in order).
std::vector<Machine> remoteMachines(const PipelineCli& p);
// With --host: plans the pipeline for `request` (this machine's part) and the hosts, says the
// split on stderr and sets load's map and remote stages; PlanError when it does not fit. false
// without --host (nothing set).
bool applyPipeline(const PipelineCli& p, const Model& model, const PlanRequest& request, SessionOptions& load,
                   std::string* verdictOut);

// --gptq-config, --gptq-basename: where a GPTQ model's config and weights are when the folder
// does not say (files saved by other tools).
struct GptqCli {
    std::string config;
    std::string basename;
};
void addGptqOptions(CLI::App* cmd, GptqCli& g);
GptqSource gptqSource(const GptqCli& g);

// --quantize, --double-quant, --compute-dtype, --skip-modules, --int8-threshold (and GptqCli's).
struct QuantCli {
    std::string method = "none";
    bool doubleQuant = false;
    std::string computeDtype;
    std::vector<std::string> skipModules;
    double int8Threshold = 6.0;
    GptqCli gptq;
};
void addQuantOptions(CLI::App* cmd, QuantCli& q);
QuantOptions quantOptions(const QuantCli& q);   // PlanError for bad values
std::string quantFormatName(const QuantCli& q); // the planner's name: none, int8, nf4, nf4-dq...

// `layerwise bench kernels` / `bench --kernels` (engine/api/kernel_bench.h).
void addKernelBench(CLI::App* bench, int& exitCode);
void addPeerBench(CLI::App* bench, int& exitCode);
void addBatchBench(CLI::App* bench, int& exitCode);
void runKernelBench(const KernelBenchOptions& options);

void addInspectCommand(CLI::App& app, int& exitCode);
void addDevicesCommand(CLI::App& app, int& exitCode);
void addPlanCommand(CLI::App& app, int& exitCode);
void addBenchCommand(CLI::App& app, int& exitCode);
void addGenerateCommand(CLI::App& app, int& exitCode);
void addChatCommand(CLI::App& app, int& exitCode);
void addTokenizeCommand(CLI::App& app, int& exitCode);
void addQuantizeCommand(CLI::App& app, int& exitCode);
void addEvalCommand(CLI::App& app, int& exitCode);
void addServeCommand(CLI::App& app, int& exitCode);
void addWorkerCommand(CLI::App& app, int& exitCode);
int runGui(int argc, char** argv);

} // namespace layerwise::app
