// `layerwise chat MODEL`: an interactive terminal chat with streaming output. Ctrl-C stops the
// current answer (a second Ctrl-C at the prompt quits). Commands: /system TEXT, /reset,
// /save FILE, /load FILE, /params, /quit.
#include "commands.h"

#include "core/bytes.h"
#include "core/error.h"
#include "inspect.h"
#include "plan/plan.h"
#include "runtime/loaded_model.h"
#include "runtime/runner.h"
#include "runtime/session.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"

#include <ATen/Parallel.h>
#include <CLI/CLI.hpp>
#include <atomic>
#include <csignal>
#include <fstream>
#include <iostream>
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
    };
    auto o = std::make_shared<Options>();
    o->sampling.temperature = 0.7;
    o->sampling.top_p = 0.9;
    cmd->add_option("model", o->model, "A model folder")->required();
    cmd->add_option("--system", o->system, "System prompt");
    cmd->add_option("--device-map", o->deviceMap, "auto, balanced, balanced_low_0, sequential or an hf_device_map file")->capture_default_str();
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
        at::set_num_threads(o->threads > 0 ? o->threads : usable_cpu_count());
        Logger log([](LogLevel level, const std::string& m) {
            if (level == LogLevel::warning)
                std::cerr << "warning: " << m << "\n";
        });
        ModelDescription d = describe_model(o->model);
        if (!d.checkpoint)
            throw UnsupportedError("'" + o->model + "' has no weights to chat with (a preset can only be planned)");
        const std::filesystem::path folder = d.checkpoint->folder();
        const auto tokenizer = text::load_tokenizer(folder);
        const ChatTemplate chatTemplate = load_chat_template(folder, {}, log);
        const DType dtype = dtypeOption(o->dtype, d.tree.dtype());
        LoadOptions load;
        load.dtype = dtype;
        std::string verdict;
        load.quant = quantOptions(o->quant);
        load.device_map = deviceMapFor(d, o->deviceMap, o->maxMemory, o->context, dtype, &verdict, quantFormatName(o->quant));
        load.log = log;
        auto model = load_model(std::move(d), load);
        Runner runner(*model, o->context);
        GenerationOptions g;
        g.max_new_tokens = o->maxNewTokens;
        g.sampling = o->sampling;
        g.eos_ids = eos_token_ids(folder, model->config);
        if (tokenizer->eos_id())
            g.eos_ids.push_back(*tokenizer->eos_id());
        for (const char* end : {"<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>"})
            if (auto id = tokenizer->token_to_id(end))
                g.eos_ids.push_back(*id);

        std::signal(SIGINT, onInterrupt);
        std::cerr << "Layerwise chat with " << o->model << " (" << verdict << ")\n"
                  << "Commands: /system TEXT, /reset, /save FILE, /load FILE, /params, /quit. Ctrl-C stops an answer.\n";
        std::string system = o->system;
        nlohmann::ordered_json messages = nlohmann::ordered_json::array();
        std::vector<std::int64_t> cached; // tokens whose keys and values the runner holds
        std::string line;
        while (true) {
            std::cout << "\n> " << std::flush;
            if (!std::getline(std::cin, line))
                break;
            if (line.empty())
                continue;
            if (line == "/quit" || line == "/exit")
                break;
            if (line == "/reset") {
                messages = nlohmann::ordered_json::array();
                cached.clear();
                runner.reset();
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
                          << runner.capacity() << ", seed " << g.sampling.seed << "\n";
                continue;
            }
            try {
                if (line.rfind("/save ", 0) == 0) {
                    saveConversation(line.substr(6), system, messages);
                    std::cout << "(saved)\n";
                    continue;
                }
                if (line.rfind("/load ", 0) == 0) {
                    std::ifstream in(line.substr(6));
                    if (!in)
                        throw IoError("cannot read " + line.substr(6));
                    const auto j = nlohmann::ordered_json::parse(in);
                    system = j.value("system", "");
                    messages = j.at("messages");
                    cached.clear();
                    runner.reset();
                    std::cout << "(loaded " << messages.size() << " messages)\n";
                    continue;
                }
                messages.push_back({{"role", "user"}, {"content", line}});
                ChatRequest request;
                if (!system.empty())
                    request.messages.push_back({{"role", "system"}, {"content", system}});
                for (const auto& m : messages)
                    request.messages.push_back(m);
                request.add_generation_prompt = true;
                const std::string prompt = chatTemplate.apply(request);
                const auto ids32 = tokenizer->encode(prompt, /*add_special_tokens=*/false);
                std::vector<std::int64_t> ids(ids32.begin(), ids32.end());
                // Reuse the cache for the prefix this turn shares with the last one.
                std::size_t keep = 0;
                while (keep < cached.size() && keep < ids.size() && cached[keep] == ids[keep])
                    ++keep;
                if (keep == ids.size())
                    --keep; // at least one token must go through the model
                runner.rewind(static_cast<std::int64_t>(keep));
                const std::vector<std::int64_t> fresh(ids.begin() + static_cast<std::ptrdiff_t>(keep), ids.end());
                text::IncrementalDecoder decoder(*tokenizer, /*skip_special_tokens=*/true,
                                                 [](std::string_view t) { std::cout << t << std::flush; });
                g_stop = false;
                g_generating = true;
                const GenerationResult r = generate(runner, fresh, g, [&](std::int64_t id) {
                    decoder.push(static_cast<text::TokenId>(id));
                    return true;
                }, &g_stop);
                g_generating = false;
                decoder.flush();
                std::vector<text::TokenId> answerIds(r.tokens.begin(), r.tokens.end());
                const std::string answer = tokenizer->decode(answerIds, /*skip_special_tokens=*/true);
                messages.push_back({{"role", "assistant"}, {"content", answer}});
                cached = ids;
                cached.insert(cached.end(), r.tokens.begin(), r.tokens.end());
                std::cout << "\n[" << r.tokens.size() << " tokens, " << r.stop_reason << ", first after "
                          << static_cast<int>(r.ttft_s * 1000) << " ms, " << static_cast<int>(r.decode_tokens_per_s * 10) / 10.0
                          << " tokens/s; context " << runner.position() << "/" << runner.capacity() << "]\n";
            } catch (const Error& e) {
                g_generating = false;
                if (!messages.empty() && messages.back()["role"] == "user")
                    messages.erase(messages.size() - 1);
                std::cout << "\nerror: " << e.what() << "\n";
            }
        }
        exitCode = 0;
    });
}

} // namespace layerwise::app
