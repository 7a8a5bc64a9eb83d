// `layerwise bench plan`: how long planning takes (the GUI re-plans on every slider move);
// `bench model`: load and generate. `bench kernels` lives in cli_bench_kernels.cpp.
#include "commands.h"

#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>

namespace layerwise::app {

namespace {

double median(std::vector<double> v)
{
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[v.size() / 2];
}

void addModelBench(CLI::App* bench, int& exitCode)
{
    auto* run = bench->add_subcommand("model", "Load and generate: load time, peak RSS, TTFT, prefill and decode tokens/s");
    struct Options {
        std::string model;
        std::string deviceMap = "auto";
        std::string maxMemory;
        std::string dtype = "auto";
        std::int64_t prompt = 128;
        std::int64_t newTokens = 64;
        int repeats = 3;
        int threads = 0;
        bool noPrefetch = false;
        QuantCli quant;
    };
    auto o = std::make_shared<Options>();
    run->add_option("model", o->model, "A model folder")->required();
    run->add_option("--device-map", o->deviceMap, "auto, balanced, balanced_low_0, sequential or a map file")->capture_default_str();
    run->add_option("--max-memory", o->maxMemory, "Limits per device");
    run->add_option("--dtype", o->dtype, "auto, float32, bfloat16, float16")->capture_default_str();
    run->add_option("--prompt-tokens", o->prompt, "Prompt length")->capture_default_str();
    run->add_option("--new-tokens", o->newTokens, "Tokens generated")->capture_default_str();
    run->add_option("--repeats", o->repeats, "Generations (medians are reported)")->capture_default_str();
    run->add_option("--threads", o->threads, "CPU threads (default: all this process may use)");
    run->add_flag("--no-prefetch", o->noPrefetch,
                  "GPU runs with CPU-offloaded layers: copy each layer when it is needed instead of while the previous one computes");
    addQuantOptions(run, o->quant);
    run->callback([o, &exitCode]() {
        set_cpu_threads(o->threads);
        const auto t0 = std::chrono::steady_clock::now();
        OpenOptions open;
        open.gptq = gptqSource(o->quant.gptq);
        Model model = Model::open(o->model, open);
        const DType dtype = dtypeOption(o->dtype, model.dtype());
        const std::int64_t context = o->prompt + o->newTokens;
        SessionOptions load;
        load.dtype = dtype;
        load.quant = quantOptions(o->quant);
        load.device_map = deviceMapFor(model, o->deviceMap, o->maxMemory, context, dtype, nullptr, quantFormatName(o->quant));
        load.context = context;
        load.require_tokenizer = false;
        const std::uint64_t weights = model_bytes(model, parse_weight_format(quantFormatName(o->quant), dtype));
        const std::int64_t vocab = model.config().vocab_size;
        const auto session = Session::load(std::move(model), load);
        const double loadSeconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        rusage u{};
        getrusage(RUSAGE_SELF, &u);
        const auto loadRss = static_cast<std::uint64_t>(u.ru_maxrss) * 1024;
        session->set_prefetch(!o->noPrefetch);
        std::vector<std::int64_t> prompt;
        for (std::int64_t i = 0; i < o->prompt; ++i)
            prompt.push_back(1 + (i * 7919) % std::max<std::int64_t>(2, vocab - 1));
        GenerationOptions g;
        g.sampling.greedy = true;
        g.max_new_tokens = o->newTokens;
        std::vector<double> ttft, prefill, decode;
        for (int r = 0; r < o->repeats; ++r) {
            const GenerationResult res = session->generate(prompt, g);
            ttft.push_back(res.ttft_s);
            prefill.push_back(res.prefill_tokens_per_s);
            decode.push_back(res.decode_tokens_per_s);
        }
        getrusage(RUSAGE_SELF, &u);
        nlohmann::json j{{"benchmark", "model"},
                         {"model", o->model},
                         {"dtype", torch_name(dtype)},
                         {"threads", cpu_threads()},
                         {"weights_bytes", weights},
                         {"device_map", session->hf_device_map()},
                         {"offload_prefetch", session->prefetching()},
                         {"load_s", loadSeconds},
                         {"peak_rss_after_load_bytes", loadRss},
                         {"peak_rss_bytes", static_cast<std::uint64_t>(u.ru_maxrss) * 1024},
                         {"prompt_tokens", o->prompt},
                         {"new_tokens", o->newTokens},
                         {"ttft_s", median(ttft)},
                         // The first prompt after loading: where a zero-copy load moves the
                         // page reads to (the median above leaves it out).
                         {"first_ttft_s", ttft.empty() ? 0.0 : ttft.front()},
                         {"prefill_tokens_per_s", median(prefill)},
                         {"decode_tokens_per_s", median(decode)}};
        std::cout << j.dump(1) << "\n";
        exitCode = 0;
    });
}

} // namespace

void addBenchCommand(CLI::App& app, int& exitCode)
{
    auto* bench = app.add_subcommand("bench", "Benchmarks (JSON out)");
    bench->require_subcommand(0, 1);
    auto kernelsFlag = std::make_shared<bool>(false);
    bench->add_flag("--kernels", *kernelsFlag, "The quantized GEMV kernels with default options (as `bench kernels`)");
    bench->callback([bench, kernelsFlag, &exitCode]() {
        if (*kernelsFlag) {
            runKernelBench(KernelBenchOptions{});
            exitCode = 0;
        } else if (bench->get_subcommands().empty()) {
            throw CLI::RequiredError("bench needs a subcommand (model, plan, kernels, peer, batch) or --kernels");
        }
    });
    addModelBench(bench, exitCode);
    addKernelBench(bench, exitCode);
    addPeerBench(bench, exitCode);
    addBatchBench(bench, exitCode);
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
        const Model d = Model::open(o->model);
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
        r.weights.dtype = d.dtype();
        r.accelerate = o->accelerate;
        std::vector<double> ms;
        Plan last;
        for (int i = 0; i < o->runs; ++i) {
            const auto t0 = std::chrono::steady_clock::now();
            last = plan_model(d, r);
            ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
        }
        std::sort(ms.begin(), ms.end());
        nlohmann::json j{{"benchmark", "plan"},
                         {"model", o->model},
                         {"layers", d.config().num_layers},
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
