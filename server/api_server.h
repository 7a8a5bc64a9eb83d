#pragma once
// `layerwise serve`: OpenAI's HTTP API over a loaded Session, on cpp-httplib. HTTP threads
// parse, validate and stream; every generation is a sequence of one continuous batch run by
// one generation thread (batch_loop.h): up to `parallel` requests decode together, each with
// its own KV cache, joining and leaving between steps; more wait in order for a slot. A client
// that disconnects cancels its generation at the next step.
#include "api/layerwise.h"

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace layerwise::server {

struct RequestLog {
    std::string method, path;
    int status = 0;
    std::int64_t prompt_tokens = 0, completion_tokens = 0;
    double ttft_s = 0, tokens_per_s = 0, seconds = 0;
    std::string finish; // "stop", "length", "disconnected", "error", or "" for requests that generate nothing
};

struct ServerOptions {
    std::string host = "127.0.0.1";
    int port = 8080;                          // 0: any free port (see ApiServer::port())
    std::string api_key;                      // required to bind anywhere but loopback
    std::size_t max_body_bytes = 4u << 20;    // larger bodies get 413
    std::size_t parallel = 4;                 // requests decoded together (a KV cache each)
    // true: generations run on a thread of the server's own. false: the owner generates, on the
    // thread that loaded the model (faster: batch_loop.h says why), by calling generate() or,
    // from an event loop, pump_generation() whenever on_generation_work is called and for as
    // long as it returns true.
    bool own_generation_thread = true;
    std::function<void()> on_generation_work; // called from HTTP threads
    std::string model_name;                   // the id /v1/models lists
    std::function<void(const RequestLog&)> on_request; // called from the server's threads, one line per request
    std::function<void(int)> on_clients;               // the number of requests being served changed
};

class ApiServer {
public:
    // PlanError when `options.host` is not a loopback address and no API key is given.
    ApiServer(Session& session, ServerOptions options);
    ~ApiServer();
    ApiServer(const ApiServer&) = delete;
    ApiServer& operator=(const ApiServer&) = delete;

    // Binds (IoError naming the address when it cannot); returns the port.
    int bind();
    // Serves HTTP until stop(); call bind() first.
    void run();
    // own_generation_thread false: generates until stop() (run() on another thread meanwhile),
    // or one step per call (true while work remains).
    void generate();
    bool pump_generation();
    void stop();
    int port() const;
    int active_clients() const;

private:
    struct Impl;
    std::unique_ptr<Impl> m;
};

// True for 127.0.0.0/8, ::1 and "localhost".
bool is_loopback(const std::string& host);

} // namespace layerwise::server
