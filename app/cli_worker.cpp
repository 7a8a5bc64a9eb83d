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

void addPipelineOptions(CLI::App* cmd, PipelineCli& p, const std::string& hostFlag)
{
    cmd->add_option(hostFlag, p.hosts,
                    "A machine running `layerwise worker` (HOST:PORT; repeat for more): the model's layers are planned in "
                    "stages over this machine and the hosts, in order");
    cmd->add_option("--token", p.token, "The workers' shared secret (default: $LAYERWISE_TOKEN)");
    cmd->add_option("--remote-timeout", p.timeoutSeconds, "Seconds to wait for a worker's answer before giving up on it")
        ->capture_default_str();
    cmd->add_option("--split", p.split,
                    "plan: the stages the pipeline planner chooses (a host only where it makes the model fit or run faster); "
                    "even: equal shares of the layers on every machine, in RAM")
        ->check(CLI::IsMember({"plan", "even"}))
        ->capture_default_str();
}

std::vector<Machine> remoteMachines(const PipelineCli& p)
{
    const std::string token = tokenOrEnvironment(p.token);
    if (token.empty())
        throw PlanError("--host needs the workers' token: give --token or set LAYERWISE_TOKEN");
    std::vector<Machine> machines;
    for (std::size_t i = 0; i < p.hosts.size(); ++i)
        machines.push_back(describe_machine(p.hosts[i], token, "host" + std::to_string(i + 2),
                                            std::chrono::milliseconds(static_cast<std::int64_t>(p.timeoutSeconds * 1000))));
    return machines;
}

bool applyPipeline(const PipelineCli& p, const Model& model, const PlanRequest& request, SessionOptions& load, std::string* verdictOut)
{
    if (p.hosts.empty())
        return false;
    load.remote_token = tokenOrEnvironment(p.token);
    if (load.remote_token.empty())
        throw PlanError("--host needs the workers' token: give --token or set LAYERWISE_TOKEN");
    load.remote_timeout = std::chrono::milliseconds(static_cast<std::int64_t>(p.timeoutSeconds * 1000));
    if (p.split == "even") {
        load.device_map = deviceMapOf(model, request, verdictOut);
        load.remote_stages = even_stages(static_cast<std::int64_t>(model.tree().no_split_blocks().size()), p.hosts);
        std::cerr << "pipeline (even split): layers 0-" << load.remote_stages.front().first - 1 << " here";
        for (const RemoteStage& s : load.remote_stages)
            std::cerr << ", " << s.first << "-" << s.end - 1 << " on " << s.address;
        std::cerr << "\n";
        return true;
    }
    const PipelinePlan plan = plan_pipeline(model, request, remoteMachines(p));
    if (verdictOut)
        *verdictOut = std::string(verdict_name(plan.verdict)) + ": " + plan.reason;
    if (plan.verdict == Verdict::does_not_fit)
        throw PlanError("the model does not fit: " + plan.reason);
    use_pipeline(model, plan, load);
    std::cerr << "pipeline: " << plan.reason << "\n";
    return true;
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
