// `layerwise bench batch`: continuous batching's decode throughput. N sequences join one batch
// (Session::batch) and decode together; the aggregate decode tokens/s for each N is printed
// beside one sequence alone in the same run, with the ratio.
#include "commands.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>

namespace layerwise::app {

namespace {

struct BatchRun {
    double decode_tokens_per_s = 0; // all sequences' tokens after their first, per second of steps
    double step_ms = 0;             // median decode step
};

// `rows` sequences with distinct prompts, joined at once; their first tokens (the prefills) are
// left out, so the figure is the decode steps alone.
BatchRun runBatch(Session& session, std::size_t rows, std::int64_t promptTokens, std::int64_t newTokens)
{
    const auto batch = session.batch(rows);
    const std::int64_t vocab = session.config().vocab_size;
    std::size_t started = 0;
    for (std::size_t r = 0; r < rows; ++r) {
        SequenceRequest s;
        for (std::int64_t i = 0; i < promptTokens; ++i)
            s.prompt.push_back(1 + static_cast<std::int64_t>((i * 7919 + r * 104729) % static_cast<std::uint64_t>(std::max<std::int64_t>(2, vocab - 1))));
        s.options.sampling.greedy = true;
        s.options.max_new_tokens = newTokens;
        s.on_token = [&started, first = true](std::int64_t) mutable {
            if (first)
                ++started;
            first = false;
            return true;
        };
        batch->join(std::move(s));
    }
    while (started < rows)
        batch->step(); // the prefills (one per step) and the first tokens
    std::vector<double> steps;
    std::size_t tokens = 0;
    const auto t0 = std::chrono::steady_clock::now();
    while (true) {
        const std::size_t active = batch->active();
        if (active == 0)
            break;
        const auto s0 = std::chrono::steady_clock::now();
        batch->step();
        steps.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - s0).count());
        tokens += active;
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::sort(steps.begin(), steps.end());
    return {static_cast<double>(tokens) / std::max(1e-9, seconds), steps.empty() ? 0.0 : steps[steps.size() / 2]};
}

} // namespace

void addBatchBench(CLI::App* bench, int& exitCode)
{
    auto* run = bench->add_subcommand("batch", "Continuous batching: aggregate decode tokens/s of N sequences decoded together, "
                                               "against one alone");
    struct Options {
        std::string model;
        std::string dtype = "auto";
        std::vector<std::size_t> rows{1, 2, 4, 8};
        std::int64_t prompt = 32;
        std::int64_t newTokens = 64;
        int threads = 0;
        PipelineCli pipeline;
        bool noMicroBatches = false;
    };
    auto o = std::make_shared<Options>();
    run->add_option("model", o->model, "A model folder or .gguf file")->required();
    run->add_option("--dtype", o->dtype, "auto, float32, bfloat16, float16")->capture_default_str();
    run->add_option("--rows", o->rows, "Sequence counts to measure (1 is always measured)")->delimiter(',')->capture_default_str();
    run->add_option("--prompt-tokens", o->prompt, "Prompt length of each sequence")->capture_default_str();
    run->add_option("--new-tokens", o->newTokens, "Tokens each sequence generates")->capture_default_str();
    run->add_option("--threads", o->threads, "CPU threads (default: all this process may use)");
    addPipelineOptions(run, o->pipeline);
    run->add_flag("--no-micro-batches", o->noMicroBatches,
                  "Over a pipeline (--host): the whole batch through each stage in turn, not in micro-batches");
    run->callback([o, &exitCode]() {
        set_cpu_threads(o->threads);
        Model model = Model::open(o->model);
        const DType dtype = dtypeOption(o->dtype, model.dtype());
        SessionOptions load;
        load.dtype = dtype;
        load.context = o->prompt + o->newTokens + 1;
        std::vector<std::size_t> rows = o->rows;
        rows.push_back(1);
        std::sort(rows.begin(), rows.end());
        rows.erase(std::unique(rows.begin(), rows.end()), rows.end());
        const PlanRequest request = planRequestFor(model, "auto", "", load.context, dtype, "none",
                                                   static_cast<std::int64_t>(rows.back()) + 1, {});
        if (!applyPipeline(o->pipeline, model, request, load, nullptr))
            load.device_map = deviceMapOf(model, request, nullptr);
        load.micro_batches = !o->noMicroBatches;
        load.require_tokenizer = false;
        const auto session = Session::load(std::move(model), load);
        runBatch(*session, 1, o->prompt, 8); // warm-up
        nlohmann::json results = nlohmann::json::array();
        double alone = 0;
        for (std::size_t n : rows) {
            const BatchRun r = runBatch(*session, n, o->prompt, o->newTokens);
            if (n == 1)
                alone = r.decode_tokens_per_s;
            results.push_back({{"rows", n},
                               {"decode_tokens_per_s", r.decode_tokens_per_s},
                               {"median_step_ms", r.step_ms},
                               {"over_one_sequence", alone > 0 ? r.decode_tokens_per_s / alone : 0.0}});
        }
        nlohmann::json j{{"benchmark", "batch"}, {"model", o->model}, {"dtype", torch_name(dtype)}, {"threads", cpu_threads()},
                         {"prompt_tokens", o->prompt}, {"new_tokens", o->newTokens}, {"results", results}};
        std::cout << j.dump(1) << "\n";
        exitCode = 0;
    });
}

} // namespace layerwise::app
