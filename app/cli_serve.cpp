// `layerwise serve MODEL`: load a model by its plan and serve OpenAI's HTTP API
// (server/api_server.h) until Ctrl-C. One line per request on stderr.
#include "commands.h"
#include "default_model.h"

#include "api_server.h"

#include <CLI/CLI.hpp>
#include <csignal>
#include <thread>
#include <cstdio>
#include <iostream>
#include <mutex>

namespace layerwise::app {

namespace {

server::ApiServer* g_server = nullptr;

void onSignal(int)
{
    if (g_server)
        g_server->stop();
}

} // namespace

void addServeCommand(CLI::App& app, int& exitCode)
{
    auto* cmd = app.add_subcommand("serve", "Serve a model over OpenAI's HTTP API (chat completions, completions, streaming)");
    struct Options {
        std::string model;
        std::string host = "127.0.0.1";
        int port = 8080;
        std::string apiKey;
        std::size_t maxBody = 4u << 20;
        std::string name;
        std::string deviceMap = "auto";
        std::string maxMemory;
        std::string dtype = "auto";
        std::int64_t context = 4096;
        std::string offloadFolder = ".";
        int threads = 0;
        std::size_t parallel = 4;
        QuantCli quant;
        MoeCli moe;
        PipelineCli pipeline;
    };
    auto o = std::make_shared<Options>();
    cmd->add_option("model", o->model, "A model folder or .gguf file (default: the installed default chat model)");
    cmd->add_option("--host", o->host, "Address to listen on (anything but loopback needs --api-key)")->capture_default_str();
    addPipelineOptions(cmd, o->pipeline, "--worker-host");
    cmd->add_option("--port", o->port, "Port (0: any free one, printed)")->capture_default_str();
    cmd->add_option("--api-key", o->apiKey, "Clients must send 'Authorization: Bearer KEY'");
    cmd->add_option("--max-body-bytes", o->maxBody, "Largest request body (larger: 413)")->capture_default_str();
    cmd->add_option("--model-name", o->name, "The model id /v1/models lists (default: the folder's name)");
    cmd->add_option("--device-map", o->deviceMap, "auto, balanced, balanced_low_0, sequential, or an hf_device_map file")->capture_default_str();
    addMoeOptions(cmd, o->moe);
    cmd->add_option("--max-memory", o->maxMemory, "Limits per device: 0=20GiB,cpu=8GB");
    cmd->add_option("--dtype", o->dtype, "auto, float32, bfloat16, float16")->capture_default_str();
    cmd->add_option("--context", o->context, "KV cache length: prompt + answer of one request")->capture_default_str();
    cmd->add_option("--parallel", o->parallel, "Requests decoded together, each with its own KV cache of --context tokens")
        ->capture_default_str()
        ->check(CLI::Range(1, 256));
    cmd->add_option("--offload-folder", o->offloadFolder, "Where converted disk weights are written")->capture_default_str();
    cmd->add_option("--threads", o->threads, "CPU threads (default: all this process may use)");
    addQuantOptions(cmd, o->quant);
    cmd->callback([o, &exitCode]() {
        set_cpu_threads(o->threads);
        o->model = modelOrDefault(o->model);
        server::ServerOptions options;
        options.host = o->host;
        options.port = o->port;
        options.api_key = o->apiKey;
        options.max_body_bytes = o->maxBody;
        options.parallel = o->parallel;
        if (!server::is_loopback(o->host) && o->apiKey.empty())
            throw PlanError("serving on " + o->host + " exposes the model to the network: give --api-key KEY, or serve on 127.0.0.1");
        OpenOptions open;
        open.gptq = gptqSource(o->quant.gptq);
        Model model = Model::open(o->model, open);
        options.model_name = o->name.empty() ? std::filesystem::path(o->model).filename().string() : o->name;
        const DType dtype = dtypeOption(o->dtype, model.dtype());
        std::string verdict;
        SessionOptions load;
        load.dtype = dtype;
        load.quant = quantOptions(o->quant);
        // The plan counts a KV cache per slot plus the session's own.
        const PlanRequest request = planRequestFor(model, o->deviceMap, o->maxMemory, o->context, dtype, quantFormatName(o->quant),
                                                   static_cast<std::int64_t>(o->parallel) + 1, o->moe);
        if (!applyPipeline(o->pipeline, model, request, load, &verdict))
            load.device_map = deviceMapOf(model, request, &verdict);
        load.offload_folder = o->offloadFolder;
        load.context = o->context;
        load.require_tokenizer = false;
        const auto session = Session::load(std::move(model), load);
        std::mutex logMutex;
        options.on_request = [&logMutex](const server::RequestLog& l) {
            std::lock_guard lock(logMutex);
            std::fprintf(stderr, "%s %s %d", l.method.c_str(), l.path.c_str(), l.status);
            if (l.prompt_tokens || l.completion_tokens)
                std::fprintf(stderr, " prompt %lld completion %lld ttft %.0f ms %.1f tokens/s %s", static_cast<long long>(l.prompt_tokens),
                             static_cast<long long>(l.completion_tokens), l.ttft_s * 1e3, l.tokens_per_s, l.finish.c_str());
            std::fprintf(stderr, " %.2f s\n", l.seconds);
        };
        // Generations run on this thread, which loaded the model (server/batch_loop.h says why);
        // HTTP is served from another.
        options.own_generation_thread = false;
        server::ApiServer server(*session, options);
        const int port = server.bind();
        g_server = &server;
        std::signal(SIGINT, onSignal);
        std::signal(SIGTERM, onSignal);
        std::cout << "serving " << options.model_name << " (" << verdict << "; " << o->parallel
                  << " requests at once) on http://" << o->host << ":" << port << "/v1" << std::endl;
        std::thread http([&server] { server.run(); });
        server.generate();
        http.join();
        g_server = nullptr;
        exitCode = 0;
    });
}

} // namespace layerwise::app
