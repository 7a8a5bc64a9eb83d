#pragma once
// OpenAI's HTTP API as values: request bodies of /v1/chat/completions and /v1/completions
// checked and turned into the engine's Conversation and GenerationOptions, and the response
// objects (whole and streamed chunks, usage, errors) built back. Pure functions; no sockets.
#include "api/layerwise.h"

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace layerwise::server {

// A request the server refuses: HTTP status and OpenAI's error object fields.
class RequestError : public std::runtime_error {
public:
    RequestError(int status, const std::string& message, std::string param = {},
                 std::string type = "invalid_request_error", std::string code = {});
    int status() const { return m_status; }
    const std::string& param() const { return m_param; }
    const std::string& type() const { return m_type; }
    const std::string& code() const { return m_code; }

private:
    int m_status;
    std::string m_param, m_type, m_code;
};

// What both endpoints share.
struct SamplingRequest {
    std::optional<std::int64_t> max_tokens; // nullopt: until the context is full (chat) / 16 (completions)
    SamplingOptions sampling;               // temperature (0: greedy), top_p, seed, penalties
    std::vector<std::string> stop;          // up to 4 strings; the text ends before the first one
    bool stream = false;
    bool include_usage = false;             // stream_options.include_usage
    std::string model;                      // as the client named it (echoed back)
};

struct ChatCompletionRequest {
    Conversation conversation;
    SamplingRequest options;
};

struct CompletionRequest {
    std::string prompt;                 // text, or
    std::vector<std::int64_t> prompt_ids; // token ids (prompt given as an array of integers)
    bool echo = false;
    SamplingRequest options;
};

// RequestError (400) for a body that is not JSON, not an object, lacks a required field, or has
// a known field of the wrong type or out of range; unknown fields are ignored, as OpenAI does.
ChatCompletionRequest parse_chat_request(std::string_view body);
CompletionRequest parse_completion_request(std::string_view body);

nlohmann::json error_object(const RequestError& e);
nlohmann::json error_object(int status, const std::string& message, const std::string& type);

nlohmann::json usage_object(std::int64_t prompt_tokens, std::int64_t completion_tokens);

// finish_reason: "stop" or "length"; empty: null (a chunk in the middle of a stream).
nlohmann::json chat_completion(const std::string& id, std::int64_t created, const std::string& model,
                               const std::string& text, const std::string& finish_reason, const nlohmann::json& usage);
nlohmann::json chat_chunk(const std::string& id, std::int64_t created, const std::string& model,
                          const nlohmann::json& delta, const std::string& finish_reason);
nlohmann::json completion(const std::string& id, std::int64_t created, const std::string& model,
                          const std::string& text, const std::string& finish_reason, const nlohmann::json& usage);
nlohmann::json completion_chunk(const std::string& id, std::int64_t created, const std::string& model,
                                const std::string& text, const std::string& finish_reason);
// The last chunk of a stream with stream_options.include_usage: no choices, the usage.
nlohmann::json usage_chunk(const std::string& object, const std::string& id, std::int64_t created,
                           const std::string& model, const nlohmann::json& usage);

} // namespace layerwise::server
