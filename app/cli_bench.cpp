// `layerwise bench plan`: how long planning takes (the GUI re-plans on every slider move).
#include "commands.h"

#include "core/error.h"
#include "inspect.h"
#include "plan/plan.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>

namespace layerwise::app {

void addBenchCommand(CLI::App& app, int& exitCode)
{
    auto* bench = app.add_subcommand("bench", "Benchmarks (JSON out)");
    bench->require_subcommand(1);
    auto* plan = bench->add_subcommand("plan", "Median time of one plan of a model on hypothetical devices");
    struct Options {
        std::string model = "Llama-3.1-405B";
        int gpus = 7;
        std::string profile = "H100-80GB";
        int runs = 200;
        std::int64_t context = 8192;
        bool accelerate = false;
    };
    auto o = std::make_shared<Options>();
    plan->add_option("--model", o->model, "Model folder or preset")->capture_default_str();
    plan->add_option("--gpus", o->gpus, "Hypothetical GPUs (plus the CPU and the disk)")->capture_default_str();
    plan->add_option("--profile", o->profile, "GPU profile")->capture_default_str();
    plan->add_option("--runs", o->runs, "Repetitions")->capture_default_str();
    plan->add_option("--context", o->context, "Context length")->capture_default_str();
    plan->add_flag("--accelerate", o->accelerate, "Time accelerate's algorithm instead of the layerwise planner");
    plan->callback([o, &exitCode]() {
        const ModelDescription d = describe_model(o->model);
        PlanRequest r;
        std::vector<std::string> specs;
        for (int g = 0; g < o->gpus; ++g)
            specs.push_back("cuda:" + std::to_string(g) + "=" + o->profile);
        specs.push_back("cpu=512GiB");
        specs.push_back("disk=4000GB");
        DeviceInfo cpu;
        cpu.id = Device::cpu();
        cpu.name = "CPU";
        cpu.bandwidth = 100e9;
        cpu.flops = 2e12;
        r.devices = apply_device_specs({cpu}, specs);
        r.context = o->context;
        r.weights.dtype = d.tree.dtype();
        r.accelerate = o->accelerate;
        std::vector<double> ms;
        Plan last;
        for (int i = 0; i < o->runs; ++i) {
            const auto t0 = std::chrono::steady_clock::now();
            last = make_plan(d.tree, d.config, r);
            ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
        }
        std::sort(ms.begin(), ms.end());
        nlohmann::json j{{"benchmark", "plan"},
                         {"model", o->model},
                         {"layers", d.config.num_layers},
                         {"devices", r.devices.size()},
                         {"mode", last.mode},
                         {"runs", o->runs},
                         {"median_ms", ms[ms.size() / 2]},
                         {"p90_ms", ms[ms.size() * 9 / 10]},
                         {"min_ms", ms.front()},
                         {"verdict", verdict_name(last.verdict)}};
        std::cout << j.dump(1) << "\n";
        exitCode = 0;
    });
}

} // namespace layerwise::app
