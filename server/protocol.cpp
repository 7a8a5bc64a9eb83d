#include "protocol.h"

#include <cmath>

namespace layerwise::server {

using nlohmann::json;

RequestError::RequestError(int status, const std::string& message, std::string param, std::string type, std::string code)
    : std::runtime_error(message), m_status(status), m_param(std::move(param)), m_type(std::move(type)), m_code(std::move(code))
{
}

namespace {

json parse_body(std::string_view body)
{
    json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded())
        throw RequestError(400, "the request body is not valid JSON");
    if (!j.is_object())
        throw RequestError(400, "the request body must be a JSON object");
    return j;
}

[[noreturn]] void wrong_type(const std::string& name, const char* expected)
{
    throw RequestError(400, "'" + name + "' must be " + expected, name);
}

// A field that is absent or null reads as nullopt; present with another type is an error.
std::optional<double> number(const json& j, const std::string& name, double lo, double hi)
{
    if (!j.contains(name) || j[name].is_null())
        return std::nullopt;
    if (!j[name].is_number())
        wrong_type(name, "a number");
    const double v = j[name].get<double>();
    if (!std::isfinite(v) || v < lo || v > hi)
        throw RequestError(400, "'" + name + "' must be between " + json(lo).dump() + " and " + json(hi).dump() +
                                    ", not " + j[name].dump(), name);
    return v;
}

std::optional<std::int64_t> integer(const json& j, const std::string& name, std::int64_t lo)
{
    if (!j.contains(name) || j[name].is_null())
        return std::nullopt;
    if (!j[name].is_number_integer())
        wrong_type(name, "an integer");
    const auto v = j[name].get<std::int64_t>();
    if (v < lo)
        throw RequestError(400, "'" + name + "' must be at least " + std::to_string(lo) + ", not " + std::to_string(v), name);
    return v;
}

std::optional<bool> boolean(const json& j, const std::string& name)
{
    if (!j.contains(name) || j[name].is_null())
        return std::nullopt;
    if (!j[name].is_boolean())
        wrong_type(name, "true or false");
    return j[name].get<bool>();
}

SamplingRequest sampling_request(const json& j, std::optional<std::int64_t> default_max_tokens)
{
    SamplingRequest r;
    if (j.contains("model") && !j["model"].is_null()) {
        if (!j["model"].is_string())
            wrong_type("model", "a string");
        r.model = j["model"].get<std::string>();
    }
    r.max_tokens = default_max_tokens;
    if (auto v = integer(j, "max_completion_tokens", 1))
        r.max_tokens = *v;
    else if (auto w = integer(j, "max_tokens", 1))
        r.max_tokens = *w;
    const double temperature = number(j, "temperature", 0, 2).value_or(1.0);
    r.sampling.temperature = temperature;
    r.sampling.greedy = temperature == 0;
    r.sampling.top_p = number(j, "top_p", 0, 1).value_or(1.0);
    if (r.sampling.top_p == 0)
        r.sampling.greedy = true; // only the most likely token survives
    r.sampling.presence_penalty = number(j, "presence_penalty", -2, 2).value_or(0.0);
    r.sampling.frequency_penalty = number(j, "frequency_penalty", -2, 2).value_or(0.0);
    if (j.contains("seed") && !j["seed"].is_null()) {
        if (!j["seed"].is_number_integer())
            wrong_type("seed", "an integer");
        r.sampling.seed = static_cast<std::uint64_t>(j["seed"].get<std::int64_t>());
    }
    if (auto n = integer(j, "n", 1); n && *n != 1)
        throw RequestError(400, "'n' must be 1: one choice per request is generated", "n");
    if (j.contains("stop") && !j["stop"].is_null()) {
        const json& s = j["stop"];
        if (s.is_string()) {
            r.stop.push_back(s.get<std::string>());
        } else if (s.is_array()) {
            if (s.size() > 4)
                throw RequestError(400, "'stop' takes at most 4 sequences", "stop");
            for (const auto& e : s) {
                if (!e.is_string())
                    wrong_type("stop", "a string or an array of strings");
                r.stop.push_back(e.get<std::string>());
            }
        } else {
            wrong_type("stop", "a string or an array of strings");
        }
        for (const auto& stop : r.stop)
            if (stop.empty())
                throw RequestError(400, "'stop' sequences must not be empty", "stop");
    }
    r.stream = boolean(j, "stream").value_or(false);
    if (j.contains("stream_options") && !j["stream_options"].is_null()) {
        if (!j["stream_options"].is_object())
            wrong_type("stream_options", "an object");
        if (!r.stream)
            throw RequestError(400, "'stream_options' is only allowed with 'stream': true", "stream_options");
        r.include_usage = boolean(j["stream_options"], "include_usage").value_or(false);
    }
    return r;
}

// A message's content: a string, null, or an array of {"type": "text", "text": ...} parts.
std::string message_content(const json& content, std::size_t index)
{
    const std::string param = "messages[" + std::to_string(index) + "].content";
    if (content.is_null())
        return {};
    if (content.is_string())
        return content.get<std::string>();
    if (!content.is_array())
        wrong_type(param, "a string or an array of content parts");
    std::string text;
    for (const auto& part : content) {
        if (!part.is_object() || !part.contains("type") || !part["type"].is_string())
            wrong_type(param, "an array of content parts ({\"type\": \"text\", \"text\": ...})");
        if (part["type"] != "text")
            throw RequestError(400, "content parts of type '" + part["type"].get<std::string>() +
                                        "' are not supported: this model reads text", param);
        if (!part.contains("text") || !part["text"].is_string())
            wrong_type(param + ".text", "a string");
        text += part["text"].get<std::string>();
    }
    return text;
}

} // namespace

ChatCompletionRequest parse_chat_request(std::string_view body)
{
    const json j = parse_body(body);
    ChatCompletionRequest r;
    if (!j.contains("messages"))
        throw RequestError(400, "'messages' is required", "messages");
    if (!j["messages"].is_array() || j["messages"].empty())
        throw RequestError(400, "'messages' must be a non-empty array", "messages");
    for (std::size_t i = 0; i < j["messages"].size(); ++i) {
        const json& m = j["messages"][i];
        const std::string where = "messages[" + std::to_string(i) + "]";
        if (!m.is_object())
            wrong_type(where, "an object");
        if (!m.contains("role") || !m["role"].is_string())
            throw RequestError(400, where + ".role is required (a string)", where + ".role");
        const std::string role = m["role"].get<std::string>();
        if (role != "system" && role != "developer" && role != "user" && role != "assistant" && role != "tool")
            throw RequestError(400, where + ".role '" + role + "' is not system, developer, user, assistant or tool",
                               where + ".role");
        if (!m.contains("content") && !(role == "assistant" && m.contains("tool_calls")))
            throw RequestError(400, where + ".content is required", where + ".content");
        ChatMessage message;
        message.role = role == "developer" ? "system" : role;
        message.content = message_content(m.value("content", json()), i);
        json extra = json::object();
        for (const auto& [key, value] : m.items())
            if (key != "role" && key != "content")
                extra[key] = value;
        if (m.contains("tool_calls") && (!m.contains("content") || m["content"].is_null()))
            extra["content"] = nullptr; // the template sees no content, as transformers passes it
        if (!extra.empty())
            message.extra_json = extra.dump();
        r.conversation.messages.push_back(std::move(message));
    }
    if (j.contains("tools") && !j["tools"].is_null()) {
        if (!j["tools"].is_array())
            wrong_type("tools", "an array of tool definitions");
        if (!j["tools"].empty())
            r.conversation.tools_json = j["tools"].dump();
    }
    r.options = sampling_request(j, std::nullopt);
    return r;
}

CompletionRequest parse_completion_request(std::string_view body)
{
    const json j = parse_body(body);
    CompletionRequest r;
    if (!j.contains("prompt"))
        throw RequestError(400, "'prompt' is required", "prompt");
    const json& p = j["prompt"];
    const auto ids_of = [](const json& a) {
        std::vector<std::int64_t> ids;
        for (const auto& e : a) {
            if (!e.is_number_integer() || e.get<std::int64_t>() < 0)
                wrong_type("prompt", "a string, an array of one string, or an array of token ids");
            ids.push_back(e.get<std::int64_t>());
        }
        return ids;
    };
    if (p.is_string()) {
        r.prompt = p.get<std::string>();
    } else if (p.is_array() && p.size() == 1 && p[0].is_string()) {
        r.prompt = p[0].get<std::string>();
    } else if (p.is_array() && p.size() == 1 && p[0].is_array()) {
        r.prompt_ids = ids_of(p[0]);
    } else if (p.is_array() && !p.empty() && p[0].is_number()) {
        r.prompt_ids = ids_of(p);
    } else if (p.is_array() && p.size() > 1) {
        throw RequestError(400, "'prompt' holds several prompts: send one prompt per request", "prompt");
    } else {
        wrong_type("prompt", "a string, an array of one string, or an array of token ids");
    }
    r.echo = boolean(j, "echo").value_or(false);
    r.options = sampling_request(j, 16);
    return r;
}

json error_object(const RequestError& e)
{
    return {{"error",
             {{"message", e.what()},
              {"type", e.type()},
              {"param", e.param().empty() ? json() : json(e.param())},
              {"code", e.code().empty() ? json() : json(e.code())}}}};
}

json error_object(int status, const std::string& message, const std::string& type)
{
    (void)status;
    return {{"error", {{"message", message}, {"type", type}, {"param", nullptr}, {"code", nullptr}}}};
}

json usage_object(std::int64_t prompt_tokens, std::int64_t completion_tokens)
{
    return {{"prompt_tokens", prompt_tokens},
            {"completion_tokens", completion_tokens},
            {"total_tokens", prompt_tokens + completion_tokens}};
}

namespace {

json finish(const std::string& reason) { return reason.empty() ? json() : json(reason); }

} // namespace

json chat_completion(const std::string& id, std::int64_t created, const std::string& model, const std::string& text,
                     const std::string& finish_reason, const json& usage)
{
    return {{"id", id},
            {"object", "chat.completion"},
            {"created", created},
            {"model", model},
            {"choices",
             json::array({{{"index", 0},
                           {"message", {{"role", "assistant"}, {"content", text}}},
                           {"logprobs", nullptr},
                           {"finish_reason", finish(finish_reason)}}})},
            {"usage", usage}};
}

json chat_chunk(const std::string& id, std::int64_t created, const std::string& model, const json& delta,
                const std::string& finish_reason)
{
    return {{"id", id},
            {"object", "chat.completion.chunk"},
            {"created", created},
            {"model", model},
            {"choices", json::array({{{"index", 0}, {"delta", delta}, {"logprobs", nullptr}, {"finish_reason", finish(finish_reason)}}})}};
}

json completion(const std::string& id, std::int64_t created, const std::string& model, const std::string& text,
                const std::string& finish_reason, const json& usage)
{
    return {{"id", id},
            {"object", "text_completion"},
            {"created", created},
            {"model", model},
            {"choices", json::array({{{"index", 0}, {"text", text}, {"logprobs", nullptr}, {"finish_reason", finish(finish_reason)}}})},
            {"usage", usage}};
}

json completion_chunk(const std::string& id, std::int64_t created, const std::string& model, const std::string& text,
                      const std::string& finish_reason)
{
    return {{"id", id},
            {"object", "text_completion"},
            {"created", created},
            {"model", model},
            {"choices", json::array({{{"index", 0}, {"text", text}, {"logprobs", nullptr}, {"finish_reason", finish(finish_reason)}}})}};
}

json usage_chunk(const std::string& object, const std::string& id, std::int64_t created, const std::string& model,
                 const json& usage)
{
    return {{"id", id}, {"object", object}, {"created", created}, {"model", model}, {"choices", json::array()}, {"usage", usage}};
}

} // namespace layerwise::server
