#include "api_server.h"

#include "protocol.h"
#include "stop_text.h"

#include <httplib.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <random>
#include <thread>

namespace layerwise::server {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

bool is_loopback(const std::string& host)
{
    return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

namespace {

// One thread runs every generation, in the order they were asked for.
class GenerationThread {
public:
    GenerationThread() : m_thread([this] { loop(); }) {}
    ~GenerationThread()
    {
        {
            std::lock_guard lock(m_mutex);
            m_quit = true;
        }
        m_wake.notify_all();
        m_thread.join();
    }
    void submit(std::function<void()> task)
    {
        {
            std::lock_guard lock(m_mutex);
            m_tasks.push_back(std::move(task));
        }
        m_wake.notify_all();
    }

private:
    void loop()
    {
        while (true) {
            std::function<void()> task;
            {
                std::unique_lock lock(m_mutex);
                m_wake.wait(lock, [&] { return m_quit || !m_tasks.empty(); });
                if (m_tasks.empty())
                    return;
                task = std::move(m_tasks.front());
                m_tasks.pop_front();
            }
            task();
        }
    }
    std::mutex m_mutex;
    std::condition_variable m_wake;
    std::deque<std::function<void()>> m_tasks;
    bool m_quit = false;
    std::thread m_thread;
};

// Server-sent events from the generation thread to the HTTP thread that writes them.
struct EventChannel {
    std::mutex mutex;
    std::condition_variable ready;
    std::deque<std::string> events;
    bool done = false;
    std::atomic<bool> cancel{false};

    void push(std::string event)
    {
        {
            std::lock_guard lock(mutex);
            events.push_back(std::move(event));
        }
        ready.notify_all();
    }
    void finish()
    {
        {
            std::lock_guard lock(mutex);
            done = true;
        }
        ready.notify_all();
    }
};

std::string sse(const json& j) { return "data: " + j.dump() + "\n\n"; }

std::string random_id(const char* prefix)
{
    static std::mt19937_64 rng{std::random_device{}()};
    static std::mutex mutex;
    std::lock_guard lock(mutex);
    static const char digits[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    std::string id = prefix;
    for (int i = 0; i < 24; ++i)
        id += digits[rng() % 36];
    return id;
}

std::int64_t unix_now()
{
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// What one generation produced, for the response and the log.
struct Outcome {
    std::string text;
    std::string finish; // stop, length, disconnected
    std::int64_t prompt_tokens = 0, completion_tokens = 0;
    double ttft_s = 0, tokens_per_s = 0;
};

std::string finish_of(const std::string& stop_reason, bool stopped_by_text, bool cancelled)
{
    if (cancelled)
        return "disconnected";
    if (stopped_by_text || stop_reason == "eos" || stop_reason == "stop_string")
        return "stop";
    return "length"; // the token budget or the context
}

} // namespace

struct ApiServer::Impl {
    Session& session;
    ServerOptions options;
    httplib::Server http;
    std::atomic<int> active{0};
    std::atomic<bool> shutting_down{false}; // stop(): running generations end at their next token
    int bound_port = 0;
    GenerationThread generator; // last: it finishes the queued generations before the rest goes

    Impl(Session& s, ServerOptions o) : session(s), options(std::move(o)) {}

    void clients(int delta)
    {
        const int now = active.fetch_add(delta) + delta;
        if (options.on_clients)
            options.on_clients(now);
    }

    void log(const httplib::Request& req, int status, const Outcome* o, double seconds)
    {
        if (!options.on_request)
            return;
        RequestLog l;
        l.method = req.method;
        l.path = req.path;
        l.status = status;
        l.seconds = seconds;
        if (o) {
            l.prompt_tokens = o->prompt_tokens;
            l.completion_tokens = o->completion_tokens;
            l.ttft_s = o->ttft_s;
            l.tokens_per_s = o->tokens_per_s;
            l.finish = o->finish;
        }
        options.on_request(l);
    }

    static void reply_error(httplib::Response& res, const RequestError& e)
    {
        res.status = e.status();
        res.set_content(error_object(e).dump(), "application/json");
    }

    // The generation budget: what the client asked, at most what the context leaves.
    std::int64_t budget(const SamplingRequest& r, std::int64_t prompt_tokens) const
    {
        const std::int64_t room = session.context_length() - prompt_tokens;
        if (room <= 0)
            throw RequestError(400,
                               "the prompt has " + std::to_string(prompt_tokens) + " tokens but the context holds " +
                                   std::to_string(session.context_length()) +
                                   ": shorten the prompt, or serve the model with a longer --context",
                               "messages", "invalid_request_error", "context_length_exceeded");
        return r.max_tokens ? std::min(*r.max_tokens, room) : room;
    }

    GenerationOptions generation(const SamplingRequest& r, std::int64_t max_new) const
    {
        GenerationOptions g;
        g.max_new_tokens = max_new;
        g.sampling = r.sampling;
        return g;
    }

    // Runs on the generation thread. `emit` gets the text as it becomes final.
    Outcome run_chat(const ChatCompletionRequest& r, std::int64_t max_new, const std::function<void(const std::string&)>& emit,
                     const std::atomic<bool>* cancel)
    {
        StopText stops(r.options.stop);
        Outcome o;
        const ChatAnswer a = session.chat(r.conversation, generation(r.options, max_new), [&](std::string_view piece) {
            const std::string out = stops.push(piece);
            if (!out.empty()) {
                o.text += out;
                emit(out);
            }
            return !stops.stopped() && !shutting_down.load();
        }, cancel);
        if (const std::string rest = stops.flush(); !rest.empty()) {
            o.text += rest;
            emit(rest);
        }
        o.finish = finish_of(a.generation.stop_reason, stops.stopped(), cancel && cancel->load());
        o.prompt_tokens = a.prompt_tokens;
        o.completion_tokens = static_cast<std::int64_t>(a.generation.tokens.size());
        o.ttft_s = a.generation.ttft_s;
        o.tokens_per_s = a.generation.decode_tokens_per_s;
        return o;
    }

    std::vector<std::int64_t> completion_ids(const CompletionRequest& r) const
    {
        if (!r.prompt_ids.empty()) {
            for (auto id : r.prompt_ids)
                if (id >= session.config().vocab_size)
                    throw RequestError(400, "token id " + std::to_string(id) + " is outside the vocabulary (" +
                                                std::to_string(session.config().vocab_size) + " tokens)", "prompt");
            return r.prompt_ids;
        }
        if (!session.tokenizer())
            throw RequestError(400, "this model has no tokenizer: give the prompt as token ids", "prompt");
        const auto ids = session.tokenizer()->encode(r.prompt, true);
        if (ids.empty())
            throw RequestError(400, "the prompt is empty", "prompt");
        return {ids.begin(), ids.end()};
    }

    Outcome run_completion(const CompletionRequest& r, const std::vector<std::int64_t>& ids, std::int64_t max_new,
                           const std::function<void(const std::string&)>& emit, const std::atomic<bool>* cancel)
    {
        StopText stops(r.options.stop);
        Outcome o;
        const auto send = [&](const std::string& piece) {
            const std::string out = stops.push(piece);
            if (!out.empty()) {
                o.text += out;
                emit(out);
            }
        };
        std::optional<text::IncrementalDecoder> decoder;
        bool priming = true;
        if (session.tokenizer()) {
            decoder.emplace(*session.tokenizer(), true, [&](std::string_view t) {
                if (!priming)
                    send(std::string(t));
            });
            for (auto id : ids) // the prompt primes the decoder (the first new word's spacing)
                decoder->push(static_cast<text::TokenId>(id));
            priming = false;
        }
        GenerationOptions g = generation(r.options, max_new);
        g.eos_ids = session.eos_ids();
        const GenerationResult res = session.generate(ids, g, [&](std::int64_t id) {
            if (decoder)
                decoder->push(static_cast<text::TokenId>(id));
            return !stops.stopped() && !shutting_down.load();
        }, cancel);
        if (decoder)
            decoder->flush();
        if (const std::string rest = stops.flush(); !rest.empty()) {
            o.text += rest;
            emit(rest);
        }
        o.finish = finish_of(res.stop_reason, stops.stopped(), cancel && cancel->load());
        o.prompt_tokens = static_cast<std::int64_t>(ids.size());
        o.completion_tokens = static_cast<std::int64_t>(res.tokens.size());
        o.ttft_s = res.ttft_s;
        o.tokens_per_s = res.decode_tokens_per_s;
        return o;
    }

    // Runs `job` on the generation thread and waits for it.
    template <typename F>
    auto on_generator(F job) -> decltype(job())
    {
        std::packaged_task<decltype(job())()> task(std::move(job));
        auto result = task.get_future();
        generator.submit([&task] { task(); });
        return result.get();
    }

    // A whole (not streamed) generation on the generation thread, counted as a client meanwhile.
    Outcome whole(const std::function<Outcome()>& job)
    {
        clients(+1);
        try {
            Outcome o = on_generator(job);
            clients(-1);
            return o;
        } catch (...) {
            clients(-1);
            throw;
        }
    }

    void handle_chat(const httplib::Request& req, httplib::Response& res);
    void handle_completion(const httplib::Request& req, httplib::Response& res);
    void stream(httplib::Response& res, const std::function<void(EventChannel&)>& produce);
    void routes();
};

// Streams what `produce` (run on the generation thread) pushes; a failed write cancels it.
void ApiServer::Impl::stream(httplib::Response& res, const std::function<void(EventChannel&)>& produce)
{
    auto channel = std::make_shared<EventChannel>();
    clients(+1);
    generator.submit([channel, produce] {
        try {
            if (!channel->cancel.load())
                produce(*channel);
        } catch (const std::exception& e) {
            channel->push(sse(error_object(500, e.what(), "server_error")));
        }
        channel->finish();
    });
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider("text/event-stream", [this, channel](std::size_t, httplib::DataSink& sink) {
        std::unique_lock lock(channel->mutex);
        while (true) {
            channel->ready.wait(lock, [&] { return channel->done || !channel->events.empty(); });
            while (!channel->events.empty()) {
                const std::string event = std::move(channel->events.front());
                channel->events.pop_front();
                lock.unlock();
                const bool written = sink.write(event.data(), event.size());
                lock.lock();
                if (!written) {
                    channel->cancel = true;
                    return false;
                }
            }
            if (channel->done) {
                lock.unlock();
                const std::string end = "data: [DONE]\n\n";
                sink.write(end.data(), end.size());
                sink.done();
                return true;
            }
        }
    }, [this, channel](bool) {
        channel->cancel = true; // the connection ended, finished or not
        clients(-1);
    });
}

void ApiServer::Impl::handle_chat(const httplib::Request& req, httplib::Response& res)
{
    const auto t0 = Clock::now();
    const ChatCompletionRequest r = parse_chat_request(req.body);
    if (!session.tokenizer())
        throw RequestError(400, "this model has no tokenizer and chat template: use /v1/completions with token ids");
    std::vector<std::int64_t> ids;
    try {
        ids = on_generator([&] { return session.prompt_ids(r.conversation); });
    } catch (const Error& e) {
        throw RequestError(400, std::string("the chat template cannot render these messages: ") + e.what(), "messages");
    }
    const std::int64_t max_new = budget(r.options, static_cast<std::int64_t>(ids.size()));
    const std::string id = random_id("chatcmpl-");
    const std::int64_t created = unix_now();
    const std::string model = r.options.model.empty() ? options.model_name : r.options.model;
    if (!r.options.stream) {
        const Outcome o = whole([&] { return run_chat(r, max_new, [](const std::string&) {}, nullptr); });
        res.set_content(chat_completion(id, created, model, o.text, o.finish, usage_object(o.prompt_tokens, o.completion_tokens)).dump(),
                        "application/json");
        log(req, 200, &o, std::chrono::duration<double>(Clock::now() - t0).count());
        return;
    }
    stream(res, [this, r, max_new, id, created, model, req_copy = req, t0](EventChannel& channel) {
        channel.push(sse(chat_chunk(id, created, model, {{"role", "assistant"}, {"content", ""}}, "")));
        const Outcome o = run_chat(r, max_new, [&](const std::string& text) {
            channel.push(sse(chat_chunk(id, created, model, {{"content", text}}, "")));
        }, &channel.cancel);
        if (o.finish != "disconnected") {
            channel.push(sse(chat_chunk(id, created, model, json::object(), o.finish)));
            if (r.options.include_usage)
                channel.push(sse(usage_chunk("chat.completion.chunk", id, created, model, usage_object(o.prompt_tokens, o.completion_tokens))));
        }
        log(req_copy, 200, &o, std::chrono::duration<double>(Clock::now() - t0).count());
    });
}

void ApiServer::Impl::handle_completion(const httplib::Request& req, httplib::Response& res)
{
    const auto t0 = Clock::now();
    const CompletionRequest r = parse_completion_request(req.body);
    const std::vector<std::int64_t> ids = completion_ids(r);
    const std::int64_t max_new = budget(r.options, static_cast<std::int64_t>(ids.size()));
    const std::string id = random_id("cmpl-");
    const std::int64_t created = unix_now();
    const std::string model = r.options.model.empty() ? options.model_name : r.options.model;
    if (!r.options.stream) {
        const Outcome o = whole([&] { return run_completion(r, ids, max_new, [](const std::string&) {}, nullptr); });
        const std::string text = r.echo && !r.prompt.empty() ? r.prompt + o.text : o.text;
        res.set_content(completion(id, created, model, text, o.finish, usage_object(o.prompt_tokens, o.completion_tokens)).dump(),
                        "application/json");
        log(req, 200, &o, std::chrono::duration<double>(Clock::now() - t0).count());
        return;
    }
    stream(res, [this, r, ids, max_new, id, created, model, req_copy = req, t0](EventChannel& channel) {
        if (r.echo && !r.prompt.empty())
            channel.push(sse(completion_chunk(id, created, model, r.prompt, "")));
        const Outcome o = run_completion(r, ids, max_new, [&](const std::string& text) {
            channel.push(sse(completion_chunk(id, created, model, text, "")));
        }, &channel.cancel);
        if (o.finish != "disconnected") {
            channel.push(sse(completion_chunk(id, created, model, "", o.finish)));
            if (r.options.include_usage)
                channel.push(sse(usage_chunk("text_completion", id, created, model, usage_object(o.prompt_tokens, o.completion_tokens))));
        }
        log(req_copy, 200, &o, std::chrono::duration<double>(Clock::now() - t0).count());
    });
}

void ApiServer::Impl::routes()
{
    http.set_payload_max_length(options.max_body_bytes);
    http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
        if (options.api_key.empty() || req.path == "/health")
            return httplib::Server::HandlerResponse::Unhandled;
        if (req.get_header_value("Authorization") == "Bearer " + options.api_key)
            return httplib::Server::HandlerResponse::Unhandled;
        reply_error(res, RequestError(401, "a valid API key is required: send 'Authorization: Bearer KEY'", "",
                                      "invalid_request_error", "invalid_api_key"));
        log(req, 401, nullptr, 0);
        return httplib::Server::HandlerResponse::Handled;
    });
    http.set_exception_handler([this](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
        try {
            std::rethrow_exception(ep);
        } catch (const RequestError& e) {
            reply_error(res, e);
        } catch (const PlanError& e) {
            reply_error(res, RequestError(400, e.what()));
        } catch (const std::exception& e) {
            res.status = 500;
            res.set_content(error_object(500, e.what(), "server_error").dump(), "application/json");
        }
        Outcome none;
        none.finish = "error";
        log(req, res.status, &none, 0);
    });
    http.set_error_handler([](const httplib::Request&, httplib::Response& res) {
        if (!res.body.empty())
            return;
        const std::string message = res.status == 404   ? "no such endpoint"
                                    : res.status == 413 ? "the request body is too large"
                                                        : "the request failed";
        res.set_content(error_object(res.status, message, "invalid_request_error").dump(), "application/json");
    });
    http.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
        res.set_content(json{{"status", "ok"}, {"active_clients", active.load()}}.dump(), "application/json");
    });
    http.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
        const json model{{"id", options.model_name}, {"object", "model"}, {"created", 0}, {"owned_by", "layerwise"},
                         {"context_length", session.context_length()}};
        res.set_content(json{{"object", "list"}, {"data", json::array({model})}}.dump(), "application/json");
    });
    http.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) { handle_chat(req, res); });
    http.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) { handle_completion(req, res); });
    // llama.cpp's server helpers: {"content": TEXT, "add_special": BOOL} -> {"tokens": [...]};
    // {"tokens": [...]} -> {"content": TEXT}.
    http.Post("/tokenize", [this](const httplib::Request& req, httplib::Response& res) {
        const json j = json::parse(req.body, nullptr, false);
        if (!j.is_object() || !j.contains("content") || !j["content"].is_string())
            throw RequestError(400, "'content' (a string) is required", "content");
        if (!session.tokenizer())
            throw RequestError(400, "this model has no tokenizer");
        const bool special = j.contains("add_special") && j["add_special"].is_boolean() && j["add_special"].get<bool>();
        const auto ids = session.tokenizer()->encode(j["content"].get<std::string>(), special);
        res.set_content(json{{"tokens", std::vector<std::int64_t>(ids.begin(), ids.end())}}.dump(), "application/json");
    });
    http.Post("/detokenize", [this](const httplib::Request& req, httplib::Response& res) {
        const json j = json::parse(req.body, nullptr, false);
        if (!j.is_object() || !j.contains("tokens") || !j["tokens"].is_array())
            throw RequestError(400, "'tokens' (an array of token ids) is required", "tokens");
        if (!session.tokenizer())
            throw RequestError(400, "this model has no tokenizer");
        std::vector<text::TokenId> ids;
        for (const auto& t : j["tokens"]) {
            if (!t.is_number_integer() || t.get<std::int64_t>() < 0 || t.get<std::int64_t>() >= session.config().vocab_size)
                throw RequestError(400, "'tokens' must hold token ids of this vocabulary", "tokens");
            ids.push_back(static_cast<text::TokenId>(t.get<std::int64_t>()));
        }
        res.set_content(json{{"content", session.tokenizer()->decode(ids, false)}}.dump(), "application/json");
    });
}

ApiServer::ApiServer(Session& session, ServerOptions options) : m(std::make_unique<Impl>(session, std::move(options)))
{
    if (!is_loopback(m->options.host) && m->options.api_key.empty())
        throw PlanError("serving on " + m->options.host +
                        " exposes the model to the network: give an --api-key that clients must send, or serve on 127.0.0.1");
    if (m->options.model_name.empty())
        m->options.model_name = "layerwise";
    m->routes();
}

ApiServer::~ApiServer() { stop(); }

int ApiServer::bind()
{
    const int port = m->options.port == 0 ? m->http.bind_to_any_port(m->options.host)
                                          : (m->http.bind_to_port(m->options.host, m->options.port) ? m->options.port : -1);
    if (port < 0)
        throw IoError("cannot listen on " + m->options.host + ":" + std::to_string(m->options.port) +
                      ": the address is in use or not this machine's; choose another --port or --host");
    m->bound_port = port;
    return port;
}

void ApiServer::run() { m->http.listen_after_bind(); }
void ApiServer::stop()
{
    m->shutting_down = true;
    m->http.stop();
}
int ApiServer::port() const { return m->bound_port; }
int ApiServer::active_clients() const { return m->active.load(); }

} // namespace layerwise::server
