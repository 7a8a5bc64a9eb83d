// `layerwise worker`: serve a share of a model's layers to a coordinator on another machine, and
// the coordinator's side of it: --host / --token on generate and chat.
#include "commands.h"

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdlib>
#include <iostream>

namespace layerwise::app {

namespace {

std::atomic<bool> g_stop{false};

void onSignal(int) { g_stop = true; }

std::string tokenOrEnvironment(const std::string& token)
{
    if (!token.empty())
        return token;
    const char* env = std::getenv("LAYERWISE_TOKEN");
    return env ? env : "";
}

} // namespace

void addPipelineOptions(CLI::App* cmd, PipelineCli& p)
{
    cmd->add_option("--host", p.hosts,
                    "A machine running `layerwise worker` (HOST:PORT; repeat for more): the model's layers are split evenly, "
                    "this machine first, then each host in order");
    cmd->add_option("--token", p.token, "The workers' shared secret (default: $LAYERWISE_TOKEN)");
    cmd->add_option("--remote-timeout", p.timeoutSeconds, "Seconds to wait for a worker's answer before giving up on it")
        ->capture_default_str();
}

void applyPipeline(const PipelineCli& p, std::int64_t layers, SessionOptions& load)
{
    if (p.hosts.empty())
        return;
    load.remote_token = tokenOrEnvironment(p.token);
    if (load.remote_token.empty())
        throw PlanError("--host needs the workers' token: give --token or set LAYERWISE_TOKEN");
    load.remote_stages = even_stages(layers, p.hosts);
    load.remote_timeout = std::chrono::milliseconds(static_cast<std::int64_t>(p.timeoutSeconds * 1000));
    std::cerr << "pipeline: layers 0-" << load.remote_stages.front().first - 1 << " here";
    for (const RemoteStage& s : load.remote_stages)
        std::cerr << ", " << s.first << "-" << s.end - 1 << " on " << s.address;
    std::cerr << "\n";
}

std::vector<std::string> remoteDeviceLines(const PipelineCli& p)
{
    std::vector<std::string> lines;
    for (const std::string& host : p.hosts) {
        const std::string token = tokenOrEnvironment(p.token);
        if (token.empty())
            throw PlanError("--host needs the workers' token: give --token or set LAYERWISE_TOKEN");
        for (std::string& line : describe_worker(host, token, std::chrono::milliseconds(static_cast<std::int64_t>(p.timeoutSeconds * 1000))))
            lines.push_back(std::move(line));
    }
    return lines;
}

void addWorkerCommand(CLI::App& app, int& exitCode)
{
    auto* cmd = app.add_subcommand("worker", "Serve a share of a model's layers to a coordinator on another machine (pipeline stage)");
    struct Options {
        std::string listen = "127.0.0.1:7070";
        std::string token;
        int threads = 0;
    };
    auto o = std::make_shared<Options>();
    cmd->add_option("--listen", o->listen, "The interface and port to listen on (HOST:PORT; port 0 picks a free one)")
        ->capture_default_str();
    cmd->add_option("--token", o->token, "The shared secret coordinators must prove they hold (default: $LAYERWISE_TOKEN)");
    cmd->add_option("--threads", o->threads, "CPU threads");
    cmd->callback([o, &exitCode] {
        set_cpu_threads(o->threads);
        std::signal(SIGINT, onSignal);
        std::signal(SIGTERM, onSignal);
        WorkerOptions w;
        w.listen = o->listen;
        w.token = tokenOrEnvironment(o->token);
        w.log = [](const std::string& line) { std::cerr << "worker: " << line << std::endl; };
        const auto host = o->listen.substr(0, o->listen.rfind(':'));
        run_worker(w, g_stop, [&](std::uint16_t port) {
            std::cout << "listening on " << host << ":" << port << std::endl;
        });
        exitCode = 0;
    });
}

} // namespace layerwise::app
