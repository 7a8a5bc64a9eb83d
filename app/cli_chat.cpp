// `layerwise chat MODEL`: an interactive terminal chat with streaming output. Ctrl-C stops the
// current answer (a second Ctrl-C at the prompt quits). Commands: /system TEXT, /reset,
// /save FILE, /load FILE, /params, /quit.
#include "commands.h"
#include "default_model.h"

#include <CLI/CLI.hpp>
#include <atomic>
#include <csignal>
#include <fstream>
#include <functional>
#include <iostream>
#include <sstream>
#include <tuple>
#include <unistd.h>
#include <nlohmann/json.hpp>

namespace layerwise::app {

namespace {

std::atomic<bool> g_stop{false};
std::atomic<bool> g_generating{false};

void onInterrupt(int)
{
    if (g_generating.load())
        g_stop.store(true); // stop the answer, keep the program
    else
        std::_Exit(130);
}

void saveConversation(const std::string& file, const std::string& system, const nlohmann::ordered_json& messages)
{
    const std::string tmp = file + ".tmp";
    {
        std::ofstream out(tmp);
        if (!out)
            throw IoError("cannot write " + tmp);
        out << nlohmann::ordered_json{{"system", system}, {"messages", messages}}.dump(1) << "\n";
        if (!out)
            throw IoError("cannot write " + tmp);
    }
    std::error_code ec;
    std::filesystem::rename(tmp, file, ec);
    if (ec)
        throw IoError("cannot rename " + tmp + " to " + file + ": " + ec.message());
}

// A conversation /save wrote: {"system": "...", "messages": [{"role", "content"}...]}.
std::pair<std::string, nlohmann::ordered_json> loadConversation(const std::string& file)
{
    std::ifstream in(file);
    if (!in)
        throw IoError("cannot read " + file);
    std::stringstream text;
    text << in.rdbuf();
    const auto j = parse_ordered_json(text.str(), file);
    const bool system_ok = !j.contains("system") || j["system"].is_string();
    bool messages_ok = j.is_object() && j.contains("messages") && j["messages"].is_array();
    if (messages_ok)
        for (const auto& m : j["messages"])
            messages_ok = messages_ok && m.is_object() && m.contains("role") && m["role"].is_string() &&
                          m.contains("content") && m["content"].is_string();
    if (!j.is_object() || !system_ok || !messages_ok)
        throw FormatError(file + ": not a conversation saved by /save (an object with \"system\" and "
                                 "\"messages\": [{\"role\": ..., \"content\": ...}, ...])");
    return {j.value("system", ""), j["messages"]};
}

// Loads the model again without the pipeline worker at `address` (nullptr: declined or failed).
using Replan = std::function<std::unique_ptr<Session>(const std::string& address)>;

// After a pipeline worker failed: offers to plan again without it. Yes: the old session is freed
// first (its pipeline is broken) and `session` becomes the new one; true. Anything else: false,
// `session` as it was (or empty when loading again failed: the error is said).
bool offerReplan(const RemoteError& e, const Replan& replan, std::unique_ptr<Session>& session)
{
    if (!replan || e.address().empty())
        return false;
    std::cout << "\nPlan again without " << e.address() << " and go on? [Y/n] " << std::flush;
    std::string answer;
    if (!std::getline(std::cin, answer) || !(answer.empty() || answer == "y" || answer == "Y" || answer == "yes"))
        return false;
    session.reset();
    try {
        session = replan(e.address());
        return true;
    } catch (const Error& again) {
        std::cout << "error: " << again.what() << "\n";
        return false;
    }
}

// The read-answer loop with its commands, until /quit or the end of input. A pipeline worker
// that fails mid-answer: `replan` may load the model again without it, and the question is asked again.
void runChat(std::unique_ptr<Session> session, const GenerationOptions& g, std::string system, const Replan& replan)
{
    Session* chat = session.get();
    nlohmann::ordered_json messages = nlohmann::ordered_json::array();
    std::string line, again;
    while (true) {
        if (!again.empty()) {
            line = std::move(again);
            again.clear();
        } else {
            std::cout << "\n> " << std::flush;
            if (!std::getline(std::cin, line))
                break;
        }
        if (line.empty())
            continue;
        if (line == "/quit" || line == "/exit")
            break;
        if (line == "/reset") {
            messages = nlohmann::ordered_json::array();
            chat->reset();
            std::cout << "(conversation cleared)\n";
            continue;
        }
        if (line.rfind("/system", 0) == 0) {
            system = line.size() > 8 ? line.substr(8) : "";
            std::cout << "(system prompt " << (system.empty() ? "removed" : "set") << ")\n";
            continue;
        }
        if (line == "/params") {
            std::cout << "temperature " << g.sampling.temperature << ", top-k " << g.sampling.top_k << ", top-p "
                      << g.sampling.top_p << ", min-p " << g.sampling.min_p << ", repetition penalty "
                      << g.sampling.repetition_penalty << ", max new tokens " << g.max_new_tokens << ", context "
                      << chat->context_length() << ", seed " << g.sampling.seed << "\n";
            continue;
        }
        try {
            if (line.rfind("/save ", 0) == 0) {
                saveConversation(line.substr(6), system, messages);
                std::cout << "(saved)\n";
                continue;
            }
            if (line.rfind("/load ", 0) == 0) {
                std::tie(system, messages) = loadConversation(line.substr(6));
                chat->reset();
                std::cout << "(loaded " << messages.size() << " messages)\n";
                continue;
            }
            messages.push_back({{"role", "user"}, {"content", line}});
            Conversation conversation;
            conversation.system = system;
            for (const auto& m : messages)
                conversation.messages.push_back({m.at("role").get<std::string>(), m.at("content").get<std::string>()});
            g_stop = false;
            g_generating = true;
            // A harmony model's (gpt-oss's) reasoning comes first, dimmed on a terminal, then its answer.
            bool reasoning = false;
            const bool tty = isatty(STDOUT_FILENO) != 0;
            const ChatAnswer answer = chat->chat(
                conversation, g,
                [&](std::string_view piece) {
                    if (reasoning) {
                        std::cout << (tty ? "\x1b[0m" : "") << "\n[answer]\n";
                        reasoning = false;
                    }
                    std::cout << piece << std::flush;
                    return true;
                },
                &g_stop,
                [&](std::string_view piece) {
                    if (!reasoning)
                        std::cout << "[reasoning]\n" << (tty ? "\x1b[2m" : "");
                    reasoning = true;
                    std::cout << piece << std::flush;
                    return true;
                });
            if (reasoning && tty)
                std::cout << "\x1b[0m";
            g_generating = false;
            messages.push_back({{"role", "assistant"}, {"content", answer.text}});
            const GenerationResult& r = answer.generation;
            std::cout << "\n[" << r.tokens.size() << " tokens, " << r.stop_reason << ", first after "
                      << static_cast<int>(r.ttft_s * 1000) << " ms, " << static_cast<int>(r.decode_tokens_per_s * 10) / 10.0
                      << " tokens/s; context " << answer.context_used << "/" << answer.context_length << "]\n";
        } catch (const RemoteError& e) {
            g_generating = false;
            if (!messages.empty() && messages.back()["role"] == "user")
                messages.erase(messages.size() - 1);
            std::cout << "\nerror: " << e.what() << "\n";
            if (offerReplan(e, replan, session))
                again = line;
            chat = session.get();
            if (!chat)
                break; // no model left to chat with
        } catch (const Error& e) {
            g_generating = false;
            if (!messages.empty() && messages.back()["role"] == "user")
                messages.erase(messages.size() - 1);
            std::cout << "\nerror: " << e.what() << "\n";
        }
    }
}

} // namespace

void addChatCommand(CLI::App& app, int& exitCode)
{
    auto* cmd = app.add_subcommand("chat", "Chat with a model in the terminal");
    struct Options {
        std::string model;
        std::string system;
        std::string deviceMap = "auto";
        std::string maxMemory;
        std::string dtype = "auto";
        std::int64_t context = 2048;
        std::int64_t maxNewTokens = 256;
        SamplingOptions sampling;
        int threads = 0;
        QuantCli quant;
        MoeCli moe;
        PipelineCli pipeline;
    };
    auto o = std::make_shared<Options>();
    o->sampling.temperature = 0.7;
    o->sampling.top_p = 0.9;
    cmd->add_option("model", o->model, "A model folder or .gguf file (default: the installed default chat model)");
    cmd->add_option("--system", o->system, "System prompt");
    cmd->add_option("--device-map", o->deviceMap, "auto, balanced, balanced_low_0, sequential or an hf_device_map file")->capture_default_str();
    addMoeOptions(cmd, o->moe);
    addPipelineOptions(cmd, o->pipeline);
    cmd->add_option("--max-memory", o->maxMemory, "Limits per device");
    cmd->add_option("--dtype", o->dtype, "auto, float32, bfloat16, float16")->capture_default_str();
    cmd->add_option("--context", o->context, "Context length")->capture_default_str();
    cmd->add_option("--max-new-tokens", o->maxNewTokens, "Longest answer")->capture_default_str();
    cmd->add_option("--temperature", o->sampling.temperature, "0: greedy")->capture_default_str();
    cmd->add_option("--top-k", o->sampling.top_k, "Top-k (0: off)")->capture_default_str();
    cmd->add_option("--top-p", o->sampling.top_p, "Top-p")->capture_default_str();
    cmd->add_option("--min-p", o->sampling.min_p, "Min-p")->capture_default_str();
    cmd->add_option("--repetition-penalty", o->sampling.repetition_penalty, "Repetition penalty")->capture_default_str();
    cmd->add_option("--seed", o->sampling.seed, "Random seed")->capture_default_str();
    cmd->add_option("--threads", o->threads, "CPU threads");
    addQuantOptions(cmd, o->quant);
    cmd->callback([o, &exitCode]() {
        set_cpu_threads(o->threads);
        Logger log([](LogLevel level, const std::string& m) {
            if (level == LogLevel::warning)
                std::cerr << "warning: " << m << "\n";
        });
        o->model = modelOrDefault(o->model);
        OpenOptions open;
        open.gptq = gptqSource(o->quant.gptq);
        std::string verdict;
        // Opens, plans (over the --host machines too) and loads the model.
        auto load = [o, log, open, &verdict]() {
            Model model = Model::open(o->model, open);
            if (!model.has_weights())
                throw UnsupportedError("'" + o->model + "' has no weights to chat with (a preset can only be planned)");
            const DType dtype = dtypeOption(o->dtype, model.dtype());
            SessionOptions options;
            options.dtype = dtype;
            options.quant = quantOptions(o->quant);
            const PlanRequest request =
                planRequestFor(model, o->deviceMap, o->maxMemory, o->context, dtype, quantFormatName(o->quant), 1, o->moe);
            if (!applyPipeline(o->pipeline, model, request, options, &verdict))
                options.device_map = deviceMapOf(model, request, &verdict);
            options.context = o->context;
            options.log = log;
            return Session::load(std::move(model), options);
        };
        auto chat = load();
        GenerationOptions g;
        g.max_new_tokens = o->maxNewTokens;
        g.sampling = o->sampling;
        g.eos_ids = chat->eos_ids();

        std::signal(SIGINT, onInterrupt);
        std::cerr << "Layerwise chat with " << o->model << " (" << verdict << ")\n"
                  << "Commands: /system TEXT, /reset, /save FILE, /load FILE, /params, /quit. Ctrl-C stops an answer.\n";
        const Replan replan = [o, &load](const std::string& address) {
            std::erase(o->pipeline.hosts, address);
            std::cout << "(planning again over this machine" << (o->pipeline.hosts.empty() ? "" : " and the other hosts") << ")\n";
            return load();
        };
        runChat(std::move(chat), g, o->system, o->pipeline.hosts.empty() ? Replan() : replan);
        exitCode = 0;
    });
}

} // namespace layerwise::app
