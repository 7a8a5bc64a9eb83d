#include "api_server.h"

#include "batch_loop.h"
#include "peer_socket.h"
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
    std::string reasoning; // a harmony model's (gpt-oss's) analysis channel: message.reasoning_content
    std::string finish; // stop, length, disconnected, error
    std::string error;  // finish "error": what failed
    std::int64_t prompt_tokens = 0, completion_tokens = 0;
    double ttft_s = 0, tokens_per_s = 0;
};

// One request's answer while it is generated: ids -> whole UTF-8 characters -> stop strings ->
// the text to send. Lives in a shared_ptr that the sequence's callbacks hold.
struct Answer {
    explicit Answer(std::vector<std::string> stop) : stops(std::move(stop)) {}
    StopText stops;
    std::optional<text::IncrementalDecoder> decoder;
    std::vector<std::int64_t> hidden;                 // ids never shown (a chat's end-of-turn ids)
    std::optional<text::HarmonyReader> harmony;       // a harmony model's chat: only the final channel is the answer
    std::function<void(const std::string&)> emit;     // gets the text as it becomes final
    std::function<void(const std::string&)> emit_reasoning;
    Outcome outcome;

    void show(const std::string& text)
    {
        if (text.empty())
            return;
        outcome.text += text;
        if (emit)
            emit(text);
    }
    void take(std::int64_t id)
    {
        if (!decoder || std::find(hidden.begin(), hidden.end(), id) != hidden.end())
            return;
        const std::string piece = decoder->push(static_cast<text::TokenId>(id));
        if (harmony) {
            const auto part = harmony->push(static_cast<text::TokenId>(id), piece);
            if (part == text::HarmonyReader::Part::reasoning && !piece.empty()) {
                outcome.reasoning += piece;
                if (emit_reasoning)
                    emit_reasoning(piece);
            }
            if (part != text::HarmonyReader::Part::answer)
                return;
        }
        show(stops.push(piece));
    }
    void end()
    {
        if (decoder)
            show(stops.push(decoder->flush()));
        show(stops.flush());
    }
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
    BatchLoop generator; // last: it lets the running generations end before the rest goes

    Impl(Session& s, ServerOptions o)
        : session(s), options(std::move(o)),
          generator(s, std::max<std::size_t>(options.parallel, 1),
                    options.own_generation_thread ? BatchLoop::Driver::own_thread : BatchLoop::Driver::caller,
                    options.on_generation_work)
    {
    }

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

    // The answer of a chat (primed with the prompt's tail, so the first word gets its leading
    // space; end-of-turn ids hidden) or of a completion (primed with the whole prompt).
    std::shared_ptr<Answer> answer(const SamplingRequest& r, const std::vector<std::int64_t>& ids, bool chat) const
    {
        auto a = std::make_shared<Answer>(r.stop);
        if (const text::Tokenizer* tok = session.tokenizer()) {
            a->decoder.emplace(*tok, /*skip_special_tokens=*/true);
            const std::size_t prime = chat ? std::min<std::size_t>(ids.size(), 4) : ids.size();
            for (std::size_t i = ids.size() - prime; i < ids.size(); ++i)
                a->decoder->push(static_cast<text::TokenId>(ids[i]));
        }
        if (chat) {
            a->hidden = session.eos_ids();
            if (const text::Tokenizer* tok = session.tokenizer())
                if (const auto ids = text::harmony_ids(*tok))
                    a->harmony.emplace(*ids);
        }
        return a;
    }

    // The sequence that generates `a` after `ids`; `done` gets the answer once it has ended.
    SequenceRequest sequence(const std::shared_ptr<Answer>& a, const SamplingRequest& r, const std::vector<std::int64_t>& ids,
                             std::int64_t max_new, const std::atomic<bool>* cancel,
                             std::function<void(const std::shared_ptr<Answer>&)> done)
    {
        SequenceRequest s;
        s.prompt = ids;
        s.options.max_new_tokens = max_new;
        s.options.sampling = r.sampling;
        s.options.eos_ids = session.eos_ids();
        s.stop = cancel;
        s.on_token = [this, a](std::int64_t id) {
            a->take(id);
            return !a->stops.stopped() && !shutting_down.load();
        };
        s.on_done = [a, cancel, prompt = static_cast<std::int64_t>(ids.size()), done = std::move(done)](const GenerationResult& g) {
            a->end();
            Outcome& o = a->outcome;
            o.finish = g.stop_reason == "error" ? "error" : finish_of(g.stop_reason, a->stops.stopped(), cancel && cancel->load());
            o.error = g.error;
            o.prompt_tokens = prompt;
            o.completion_tokens = static_cast<std::int64_t>(g.tokens.size());
            o.ttft_s = g.ttft_s;
            o.tokens_per_s = g.decode_tokens_per_s;
            done(a);
        };
        return s;
    }

    // A whole (not streamed) answer: queued, then waited for; counted as a client meanwhile. A
    // client that hangs up meanwhile cancels it (checked every 50 ms).
    Outcome whole(const httplib::Request& req, const std::shared_ptr<Answer>& a, const SamplingRequest& r,
                  const std::vector<std::int64_t>& ids, std::int64_t max_new)
    {
        auto finished = std::make_shared<std::promise<Outcome>>();
        auto cancel = std::make_shared<std::atomic<bool>>(false);
        std::future<Outcome> outcome = finished->get_future();
        const int socket = find_request_socket(req.local_port, req.remote_addr, req.remote_port);
        clients(+1);
        generator.submit(sequence(a, r, ids, max_new, cancel.get(), [finished, cancel](const std::shared_ptr<Answer>& done) {
            finished->set_value(done->outcome);
        }));
        while (outcome.wait_for(std::chrono::milliseconds(50)) != std::future_status::ready)
            if (socket >= 0 && !cancel->load() && peer_hung_up(socket))
                cancel->store(true);
        Outcome o = outcome.get();
        clients(-1);
        if (o.finish == "error")
            throw std::runtime_error("the generation failed: " + o.error);
        return o;
    }

    using UsageChunk = std::function<json(const json& usage)>;
    // What a stream sends once its sequence has ended: the chunk with the finish reason, the usage
    // chunk when asked (`usage` not empty), or an error object; then the stream closes.
    std::function<void(const std::shared_ptr<Answer>&)> stream_end(const std::shared_ptr<EventChannel>& channel,
                                                                   std::function<json(const std::string&)> last, UsageChunk usage,
                                                                   const httplib::Request& req, Clock::time_point t0)
    {
        return [this, channel, last = std::move(last), usage = std::move(usage), req, t0](const std::shared_ptr<Answer>& done) {
            const Outcome& o = done->outcome;
            if (o.finish == "error") {
                channel->push(sse(error_object(500, "the generation failed: " + o.error, "server_error")));
            } else if (o.finish != "disconnected") {
                channel->push(sse(last(o.finish)));
                if (usage)
                    channel->push(sse(usage(usage_object(o.prompt_tokens, o.completion_tokens))));
            }
            log(req, 200, &o, std::chrono::duration<double>(Clock::now() - t0).count());
            channel->finish();
        };
    }

    void handle_chat(const httplib::Request& req, httplib::Response& res);
    void handle_completion(const httplib::Request& req, httplib::Response& res);
    void stream(httplib::Response& res, const std::shared_ptr<EventChannel>& channel);
    void routes();
};

// Sends what the generation pushes to `channel` as server-sent events; a failed write (the
// client went away) raises the channel's cancel flag, which ends the sequence at the next step.
void ApiServer::Impl::stream(httplib::Response& res, const std::shared_ptr<EventChannel>& channel)
{
    clients(+1);
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider("text/event-stream", [channel](std::size_t, httplib::DataSink& sink) {
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
        ids = session.prompt_ids(r.conversation);
    } catch (const Error& e) {
        throw RequestError(400, std::string("the chat template cannot render these messages: ") + e.what(), "messages");
    }
    if (ids.empty())
        throw RequestError(400, "the chat template rendered an empty prompt", "messages");
    const std::int64_t max_new = budget(r.options, static_cast<std::int64_t>(ids.size()));
    const std::string id = random_id("chatcmpl-");
    const std::int64_t created = unix_now();
    const std::string model = r.options.model.empty() ? options.model_name : r.options.model;
    const std::shared_ptr<Answer> a = answer(r.options, ids, true);
    if (!r.options.stream) {
        const Outcome o = whole(req, a, r.options, ids, max_new);
        json body = chat_completion(id, created, model, o.text, o.finish, usage_object(o.prompt_tokens, o.completion_tokens));
        if (!o.reasoning.empty()) // the field llama.cpp's and vLLM's servers use for a model's reasoning
            body["choices"][0]["message"]["reasoning_content"] = o.reasoning;
        res.set_content(body.dump(), "application/json");
        log(req, 200, &o, std::chrono::duration<double>(Clock::now() - t0).count());
        return;
    }
    auto channel = std::make_shared<EventChannel>();
    channel->push(sse(chat_chunk(id, created, model, {{"role", "assistant"}, {"content", ""}}, "")));
    a->emit = [channel, id, created, model](const std::string& text) {
        channel->push(sse(chat_chunk(id, created, model, {{"content", text}}, "")));
    };
    a->emit_reasoning = [channel, id, created, model](const std::string& text) {
        channel->push(sse(chat_chunk(id, created, model, {{"reasoning_content", text}}, "")));
    };
    const auto usage = [id, created, model](const json& u) { return usage_chunk("chat.completion.chunk", id, created, model, u); };
    generator.submit(sequence(a, r.options, ids, max_new, &channel->cancel,
                              stream_end(channel, [id, created, model](const std::string& finish) {
                                  return chat_chunk(id, created, model, json::object(), finish);
                              }, r.options.include_usage ? UsageChunk(usage) : UsageChunk(), req, t0)));
    stream(res, channel);
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
    const std::shared_ptr<Answer> a = answer(r.options, ids, false);
    const std::string echo = r.echo ? r.prompt : std::string();
    if (!r.options.stream) {
        const Outcome o = whole(req, a, r.options, ids, max_new);
        res.set_content(completion(id, created, model, echo + o.text, o.finish, usage_object(o.prompt_tokens, o.completion_tokens)).dump(),
                        "application/json");
        log(req, 200, &o, std::chrono::duration<double>(Clock::now() - t0).count());
        return;
    }
    auto channel = std::make_shared<EventChannel>();
    if (!echo.empty())
        channel->push(sse(completion_chunk(id, created, model, echo, "")));
    a->emit = [channel, id, created, model](const std::string& text) {
        channel->push(sse(completion_chunk(id, created, model, text, "")));
    };
    const auto usage = [id, created, model](const json& u) { return usage_chunk("text_completion", id, created, model, u); };
    generator.submit(sequence(a, r.options, ids, max_new, &channel->cancel,
                              stream_end(channel, [id, created, model](const std::string& finish) {
                                  return completion_chunk(id, created, model, "", finish);
                              }, r.options.include_usage ? UsageChunk(usage) : UsageChunk(), req, t0)));
    stream(res, channel);
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
        res.set_content(json{{"status", "ok"}, {"active_clients", active.load()}, {"slots", generator.slots()}}.dump(),
                        "application/json");
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
void ApiServer::generate() { m->generator.drive(); }
bool ApiServer::pump_generation() { return m->generator.pump(); }
void ApiServer::stop()
{
    m->shutting_down = true;
    m->http.stop();
    m->generator.quit();
}
int ApiServer::port() const { return m->bound_port; }
int ApiServer::active_clients() const { return m->active.load(); }

} // namespace layerwise::server
