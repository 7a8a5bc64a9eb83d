// `layerwise generate`: load a model by a plan (or a device-map file) and generate.
#include "commands.h"
#include "default_model.h"

#include <CLI/CLI.hpp>
#include <chrono>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <sys/resource.h>

namespace layerwise::app {

namespace {

std::vector<std::int64_t> parseIds(const std::string& text)
{
    std::vector<std::int64_t> ids;
    std::stringstream s(text);
    std::string item;
    while (std::getline(s, item, ',')) {
        if (item.find_first_not_of(" ") == std::string::npos)
            continue;
        try {
            ids.push_back(std::stoll(item));
        } catch (const std::exception&) {
            throw PlanError("--ids: '" + item + "' is not a token id (give comma-separated integers)");
        }
    }
    return ids;
}

std::uint64_t peakRssBytes()
{
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return static_cast<std::uint64_t>(u.ru_maxrss) * 1024;
}

struct GenerateOptions {
    std::string model;
    std::string ids;
    std::string prompt;
    std::string deviceMap = "auto";
    std::string maxMemory;
    std::string dtype = "auto";
    std::int64_t maxNewTokens = 64;
    std::int64_t context = 0;
    bool greedy = false;
    SamplingOptions sampling;
    std::string offloadFolder = ".";
    int threads = 0;
    bool json = false;
    QuantCli quant;
    MoeCli moe;
    PipelineCli pipeline;
};

// Loads the model by its plan and generates, printing as it goes (or one JSON object).
void runGenerate(GenerateOptions& o)
{
    set_cpu_threads(o.threads);
    o.model = modelOrDefault(o.model);
    OpenOptions open;
    open.gptq = gptqSource(o.quant.gptq);
    Model model = Model::open(o.model, open);
    const DType dtype = dtypeOption(o.dtype, model.dtype());
    std::unique_ptr<text::Tokenizer> tokenizer;
    try {
        tokenizer = model.tokenizer();
    } catch (const Error&) {
        if (!o.prompt.empty())
            throw;
    }
    std::vector<std::int64_t> prompt = parseIds(o.ids);
    if (!o.prompt.empty()) {
        const auto ids = tokenizer->encode(o.prompt, true);
        prompt.assign(ids.begin(), ids.end());
    }
    if (prompt.empty()) {
        if (model.config().bos_token_ids.empty())
            throw PlanError("the model declares no BOS id; give the prompt with --ids");
        prompt.push_back(model.config().bos_token_ids.front());
    }
    const std::int64_t context = o.context > 0 ? o.context : static_cast<std::int64_t>(prompt.size()) + o.maxNewTokens;
    std::string verdict;
    SessionOptions load;
    load.dtype = dtype;
    load.quant = quantOptions(o.quant);
    const PlanRequest request = planRequestFor(model, o.deviceMap, o.maxMemory, context, dtype, quantFormatName(o.quant), 1, o.moe);
    if (!applyPipeline(o.pipeline, model, request, load, &verdict))
        load.device_map = deviceMapOf(model, request, &verdict);
    load.offload_folder = o.offloadFolder;
    load.context = context;
    load.require_tokenizer = false;
    const std::vector<std::int64_t> eos = model.eos_ids();
    const auto t0 = std::chrono::steady_clock::now();
    const auto session = Session::load(std::move(model), load);
    const double loadSeconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    GenerationOptions g;
    g.max_new_tokens = o.maxNewTokens;
    g.sampling = o.sampling;
    g.sampling.greedy = o.greedy;
    g.eos_ids = eos;
    std::optional<text::IncrementalDecoder> decoder;
    bool printing = false;
    if (tokenizer) {
        decoder.emplace(*tokenizer, true, [&](std::string_view t) {
            if (!o.json && printing)
                std::cout << t << std::flush;
        });
        // The prompt primes the decoder (spacing of the first new token), printed as given.
        for (auto id : prompt)
            decoder->push(static_cast<text::TokenId>(id));
        if (!o.json && !o.prompt.empty())
            std::cout << o.prompt << std::flush;
        printing = true;
    }
    const GenerationResult r = session->generate(prompt, g, [&](std::int64_t id) {
        if (decoder)
            decoder->push(static_cast<text::TokenId>(id));
        else if (!o.json)
            std::cout << id << " " << std::flush;
        return true;
    });
    if (decoder)
        decoder->flush();
    if (o.json) {
        std::string text;
        if (tokenizer) {
            std::vector<text::TokenId> all(r.tokens.begin(), r.tokens.end());
            text = tokenizer->decode(all, true);
        }
        nlohmann::json j{{"text", text},
                         {"token_ids", r.tokens},
                         {"prompt_ids", prompt},
                         {"stop_reason", r.stop_reason},
                         {"ttft_s", r.ttft_s},
                         {"decode_tokens_per_s", r.decode_tokens_per_s},
                         {"prefill_tokens_per_s", r.prefill_tokens_per_s},
                         {"load_s", loadSeconds},
                         {"peak_rss_bytes", peakRssBytes()},
                         {"device_map", session->hf_device_map()},
                         {"plan", verdict}};
        // What each device holds (a pipeline's workers too, as they report it).
        j["footprint"] = nlohmann::json::array();
        for (const LoadedFootprint& f : session->footprint())
            j["footprint"].push_back({{"machine", f.machine}, {"device", f.device.name()}, {"weight_bytes", f.weight_bytes},
                                      {"kv_cache_bytes", f.kv_cache_bytes}, {"layers", f.layers}});
        // Text cut inside a character (a byte-fallback token mid-sequence) is shown with U+FFFD.
        std::cout << j.dump(1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    } else {
        std::cout << "\n" << r.tokens.size() << " tokens (" << r.stop_reason << "), first after " << r.ttft_s * 1e3
                  << " ms, " << r.decode_tokens_per_s << " tokens/s; peak RSS " << format_bytes(peakRssBytes()) << "\n";
    }
}

} // namespace

DType dtypeOption(const std::string& option, DType model)
{
    if (option == "auto")
        return model;
    const auto parsed = dtype_from_torch_name(option);
    if (!parsed || !is_floating(*parsed))
        throw PlanError("--dtype '" + option + "' is not auto, float32, bfloat16 or float16");
    return *parsed;
}

void addMoeOptions(CLI::App* cmd, MoeCli& m)
{
    cmd->add_flag("--cpu-moe", m.all, "Mixtures of experts: keep every layer's experts in CPU RAM (they compute there)");
    cmd->add_option("--n-cpu-moe", m.layers, "Mixtures of experts: keep the experts of the first N layers in CPU RAM");
}

PlanRequest planRequestFor(const Model& model, const std::string& spec, const std::string& maxMemory, std::int64_t context,
                           DType dtype, const std::string& quant, std::int64_t sequences, const MoeCli& moe)
{
    PlanRequest r;
    r.batch = sequences;
    r.cpu_moe_layers = moe.cpuMoeLayers();
    DetectOptions detect;
    detect.probe_bandwidth = false;
    r.devices = detect_devices(detect);
    if (!maxMemory.empty())
        r.max_memory = parse_max_memory(maxMemory);
    r.context = context;
    r.weights = weight_format_for(model, quant, dtype);
    const bool isStrategy = spec == "auto" || spec == "balanced" || spec == "balanced_low_0" || spec == "sequential";
    if (!isStrategy) {
        std::ifstream in(spec);
        if (!in)
            throw IoError("--device-map '" + spec + "' is neither a strategy (auto, balanced, balanced_low_0, sequential) nor a readable file");
        std::stringstream s;
        s << in.rdbuf();
        r.custom_map = parse_device_map(s.str());
        r.strategy = Strategy::custom;
    } else {
        r.strategy = parse_strategy(spec);
    }
    return r;
}

DeviceMap deviceMapOf(const Model& model, const PlanRequest& request, std::string* verdictOut)
{
    const Plan plan = plan_model(model, request);
    if (verdictOut)
        *verdictOut = std::string(verdict_name(plan.verdict)) + ": " + plan.reason;
    if (plan.verdict == Verdict::does_not_fit)
        throw PlanError("the model does not fit: " + plan.reason);
    return plan.device_map;
}

DeviceMap deviceMapFor(const Model& model, const std::string& spec, const std::string& maxMemory,
                       std::int64_t context, DType dtype, std::string* verdictOut, const std::string& quant,
                       std::int64_t sequences, const MoeCli& moe)
{
    return deviceMapOf(model, planRequestFor(model, spec, maxMemory, context, dtype, quant, sequences, moe), verdictOut);
}

void addGenerateCommand(CLI::App& app, int& exitCode)
{
    auto* cmd = app.add_subcommand("generate", "Load a model by its plan and generate tokens");
    auto o = std::make_shared<GenerateOptions>();
    cmd->add_option("model", o->model, "A model folder or .gguf file (default: the installed default chat model)");
    cmd->add_option("--prompt", o->prompt, "Prompt text (encoded with the model's tokenizer, BOS added as it defines)");
    cmd->add_option("--ids", o->ids, "Prompt token ids, comma-separated (default: the BOS id)");
    cmd->add_option("--device-map", o->deviceMap, "auto, balanced, balanced_low_0, sequential, or an hf_device_map file")->capture_default_str();
    addMoeOptions(cmd, o->moe);
    addPipelineOptions(cmd, o->pipeline);
    cmd->add_option("--max-memory", o->maxMemory, "Limits per device: 0=20GiB,cpu=8GB");
    cmd->add_option("--dtype", o->dtype, "auto, float32, bfloat16, float16")->capture_default_str();
    cmd->add_option("--max-new-tokens", o->maxNewTokens, "Tokens to generate")->capture_default_str();
    cmd->add_option("--context", o->context, "KV cache length (default: prompt + max new tokens)");
    cmd->add_flag("--greedy", o->greedy, "Argmax decoding");
    cmd->add_option("--temperature", o->sampling.temperature, "Sampling temperature")->capture_default_str();
    cmd->add_option("--top-k", o->sampling.top_k, "Top-k (0: off)")->capture_default_str();
    cmd->add_option("--top-p", o->sampling.top_p, "Top-p (1: off)")->capture_default_str();
    cmd->add_option("--min-p", o->sampling.min_p, "Min-p (0: off)")->capture_default_str();
    cmd->add_option("--repetition-penalty", o->sampling.repetition_penalty, "Repetition penalty (1: off)")->capture_default_str();
    cmd->add_option("--seed", o->sampling.seed, "Random seed")->capture_default_str();
    cmd->add_option("--offload-folder", o->offloadFolder, "Where converted disk weights are written")->capture_default_str();
    cmd->add_option("--threads", o->threads, "CPU threads (default: all this process may use)");
    cmd->add_flag("--json", o->json, "Print one JSON object");
    addQuantOptions(cmd, o->quant);
    cmd->callback([o, &exitCode]() {
        runGenerate(*o);
        exitCode = 0;
    });
}

} // namespace layerwise::app
