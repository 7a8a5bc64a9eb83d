// `layerwise devices` and `layerwise plan`: what this machine (or a hypothetical one) has,
// and where a model's layers go on it.
#include "commands.h"


#include <CLI/CLI.hpp>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace layerwise::app {

namespace {

struct DeviceOptions {
    std::vector<std::string> specs;
    std::string offloadFolder = ".";
    bool noProbe = false;
    bool reprobe = false;
    bool noRealGpus = false;
};

void addDeviceOptions(CLI::App* cmd, DeviceOptions& o)
{
    cmd->add_option("--device", o.specs,
                    "A hypothetical device: cuda:0=24GiB, cuda:1=RTX-4090 (a profile), cpu=64GiB, disk=2TB; repeatable");
    cmd->add_option("--offload-folder", o.offloadFolder, "Folder for disk offload (its disk is the disk device)")
        ->capture_default_str();
    cmd->add_flag("--no-probe", o.noProbe, "Do not measure RAM and disk bandwidth (use assumed figures)");
    cmd->add_flag("--reprobe", o.reprobe, "Measure RAM and disk bandwidth again");
    cmd->add_flag("--no-real-gpus", o.noRealGpus, "Ignore this machine's GPUs (plan only for --device ones)");
}

std::vector<DeviceInfo> devicesFor(const DeviceOptions& o)
{
    DetectOptions d;
    d.offload_folder = o.offloadFolder;
    d.probe_bandwidth = !o.noProbe;
    d.refresh_probe = o.reprobe;
    d.real_gpus = !o.noRealGpus;
    return apply_device_specs(detect_devices(d), o.specs);
}

} // namespace

void addDevicesCommand(CLI::App& app, int& exitCode)
{
    auto* cmd = app.add_subcommand("devices", "List the devices plans can use (GPUs, CPU RAM, disk)");
    auto opts = std::make_shared<DeviceOptions>();
    auto json = std::make_shared<bool>(false);
    auto profiles = std::make_shared<bool>(false);
    auto pipeline = std::make_shared<PipelineCli>();
    addDeviceOptions(cmd, *opts);
    cmd->add_option("--host", pipeline->hosts, "Also list the devices of a machine running `layerwise worker` (HOST:PORT; repeat for more)");
    cmd->add_option("--token", pipeline->token, "The workers' shared secret (default: $LAYERWISE_TOKEN)");
    cmd->add_flag("--json", *json, "Print JSON");
    cmd->add_flag("--profiles", *profiles, "List the GPU profiles for hypothetical devices");
    cmd->callback([opts, json, profiles, pipeline, &exitCode]() {
        if (*profiles) {
            for (const auto& p : gpu_profiles())
                std::cout << p.key << "\t" << p.name << "\t" << format_bytes(p.memory) << "\t" << p.bandwidth / 1e9
                          << " GB/s\tPCIe " << p.pcie_generation << "\n";
            return;
        }
        const auto devices = devicesFor(*opts);
        if (*json) {
            nlohmann::json out = nlohmann::json::array();
            for (const auto& d : devices)
                out.push_back(device_info_to_json(d));
            for (const Machine& m : pipeline->hosts.empty() ? std::vector<Machine>{} : remoteMachines(*pipeline))
                for (const DeviceInfo& d : m.devices) {
                    nlohmann::json j = device_info_to_json(d);
                    j["device"] = m.name + "/" + d.id.name();
                    j["machine"] = m.name;
                    j["address"] = m.address;
                    j["link_latency_s"] = m.link.latency;
                    j["link_bytes_per_s"] = m.link.bandwidth;
                    out.push_back(std::move(j));
                }
            std::cout << out.dump(1) << "\n";
        } else {
            bool gpu = false;
            for (const auto& d : devices) {
                gpu = gpu || d.id.is_gpu();
                std::cout << d.id.name() << "  " << d.name << (d.hypothetical ? " (hypothetical)" : "") << "\n";
                std::cout << "    memory " << format_bytes(d.available_bytes) << " available of "
                          << format_bytes(d.total_bytes) << ", bandwidth " << d.bandwidth / 1e9 << " GB/s ("
                          << d.bandwidth_source << ")";
                if (d.id.is_gpu())
                    std::cout << ", compute capability " << d.compute_capability << ", host link "
                              << d.link_bandwidth / 1e9 << " GB/s";
                if (d.id.kind == Device::Kind::cpu) {
                    std::cout << ", " << d.cores << " cores, ISA";
                    for (const auto& i : d.isa)
                        std::cout << " " << i;
                }
                if (d.id.kind == Device::Kind::disk)
                    std::cout << ", offload folder " << d.path;
                std::cout << "\n";
            }
            if (!gpu)
                std::cout << "no CUDA GPU found: models run on the CPU (add hypothetical GPUs with --device cuda:0=RTX-4090)\n";
            for (const Machine& m : pipeline->hosts.empty() ? std::vector<Machine>{} : remoteMachines(*pipeline)) {
                std::cout << "\n" << m.name << " (" << m.address << "): link " << m.link.bandwidth * 8 / 1e9 << " Gb/s, "
                          << m.link.latency * 1e3 << " ms latency (measured)\n";
                for (const DeviceInfo& d : m.devices)
                    std::cout << m.name << "/" << d.id.name() << "  " << d.name << "\n    memory " << format_bytes(d.available_bytes)
                              << " available of " << format_bytes(d.total_bytes) << ", bandwidth " << d.bandwidth / 1e9 << " GB/s ("
                              << d.bandwidth_source << ")\n";
            }
        }
        exitCode = 0;
    });
}

void addPlanCommand(CLI::App& app, int& exitCode)
{
    auto* cmd = app.add_subcommand("plan", "Place a model's layers on devices: verdict, footprints, speed estimate, device map");
    struct Options {
        std::string model;
        std::string strategy = "auto";
        std::string maxMemory;
        std::int64_t context = 4096;
        std::int64_t batch = 1;
        std::int64_t chunk = 512;
        std::string dtype = "auto";
        std::string kvDtype = "auto";
        std::string quant = "none";
        std::string quantize;
        bool doubleQuant = false;
        bool accelerate = false;
        std::string mapFile;
        bool json = false;
        DeviceOptions devices;
        GptqCli gptq;
        MoeCli moe;
        PipelineCli pipeline;
    };
    auto o = std::make_shared<Options>();
    cmd->add_option("model", o->model, "A model folder, a config.json or a preset")->required();
    addGptqOptions(cmd, o->gptq);
    cmd->add_option("--strategy", o->strategy, "auto, balanced, balanced_low_0, sequential")->capture_default_str();
    cmd->add_option("--max-memory", o->maxMemory, "Limits per device: 0=20GiB,1=22GiB,cpu=64GB,disk=1TB");
    cmd->add_option("--context", o->context, "Context length (tokens of KV cache)")->capture_default_str();
    cmd->add_option("--batch", o->batch, "Sequences generated together")->capture_default_str();
    cmd->add_option("--prefill-chunk", o->chunk, "Prompt tokens processed at once")->capture_default_str();
    cmd->add_option("--dtype", o->dtype, "Weights dtype: auto (as transformers), bfloat16, float16, float32")->capture_default_str();
    cmd->add_option("--kv-dtype", o->kvDtype, "KV cache dtype: auto (the compute dtype), float16, bfloat16, float32, float8_e4m3fn");
    cmd->add_option("--quant", o->quant, "none, int8, nf4, fp4, nf4-dq, gptq-4bit-128g")->capture_default_str();
    cmd->add_option("--quantize", o->quantize, "int8, nf4 or fp4: the sizes --quantize loads with (same as --quant)");
    cmd->add_flag("--double-quant", o->doubleQuant, "With --quantize nf4|fp4: double quantization");
    cmd->add_flag("--accelerate", o->accelerate, "The device_map from_pretrained(device_map=STRATEGY, max_memory=..., dtype=...) gives (KV cache not counted)");
    cmd->add_option("--map", o->mapFile, "A custom hf_device_map (JSON or a Python dict printout) to evaluate");
    addMoeOptions(cmd, o->moe);
    cmd->add_option("--host", o->pipeline.hosts,
                    "Plan over this machine and a machine running `layerwise worker` too (HOST:PORT; repeat for more): "
                    "pipeline stages, the link measured and counted");
    cmd->add_option("--token", o->pipeline.token, "The workers' shared secret (default: $LAYERWISE_TOKEN)");
    cmd->add_flag("--json", o->json, "Print one JSON object");
    addDeviceOptions(cmd, o->devices);
    cmd->callback([o, &exitCode]() {
        OpenOptions open;
        open.gptq = gptqSource(o->gptq);
        const Model d = Model::open(o->model, open);
        PlanRequest r;
        r.devices = devicesFor(o->devices);
        if (!o->maxMemory.empty())
            r.max_memory = parse_max_memory(o->maxMemory);
        r.strategy = parse_strategy(o->strategy);
        r.accelerate = o->accelerate;
        r.context = o->context;
        r.batch = o->batch;
        r.prefill_chunk = o->chunk;
        r.cpu_moe_layers = o->moe.cpuMoeLayers();
        const DType dtype = dtypeOption(o->dtype, d.dtype());
        r.weights = weight_format_for(d, o->quantize.empty() ? o->quant : o->quantize + (o->doubleQuant ? "-dq" : ""), dtype);
        if (o->kvDtype != "auto") {
            auto kv = dtype_from_torch_name(o->kvDtype);
            if (!kv || !is_floating(*kv))
                throw PlanError("--kv-dtype '" + o->kvDtype + "' is not a floating-point dtype");
            r.kv_dtype = *kv;
        }
        if (!o->mapFile.empty()) {
            std::ifstream in(o->mapFile);
            if (!in)
                throw IoError("cannot read the device map " + o->mapFile);
            std::stringstream s;
            s << in.rdbuf();
            try {
                r.custom_map = parse_device_map(s.str());
            } catch (...) {
                rethrow_with_context(o->mapFile);
            }
            r.strategy = Strategy::custom;
        }
        if (!o->pipeline.hosts.empty()) {
            const PipelinePlan plan = plan_pipeline(d, r, remoteMachines(o->pipeline));
            if (o->json) {
                auto j = pipeline_plan_to_json(plan);
                j["model"] = d.source();
                j["weights"] = r.weights.name();
                std::cout << j.dump(1) << "\n";
            } else {
                std::cout << "model     " << d.source() << " (" << d.config().architecture << ", " << d.config().num_layers
                          << " layers, " << r.weights.name() << ")\n"
                          << pipeline_plan_to_text(plan);
            }
            exitCode = plan.verdict == Verdict::does_not_fit ? 3 : 0;
            return;
        }
        const Plan plan = plan_model(d, r);
        if (o->json) {
            auto j = plan_to_json(plan);
            j["model"] = d.source();
            j["weights"] = r.weights.name();
            j["weights_present"] = d.has_weights();
            std::cout << j.dump(1) << "\n";
        } else {
            std::cout << "model     " << d.source() << " (" << d.config().architecture << ", " << d.config().num_layers
                      << " layers, " << r.weights.name() << ")\n";
            if (!d.has_weights())
                std::cout << "weights   none present: planned from " << d.config_path().string() << " alone\n";
            std::cout << plan_to_text(plan);
        }
        exitCode = plan.verdict == Verdict::does_not_fit ? 3 : 0;
    });
}

} // namespace layerwise::app
