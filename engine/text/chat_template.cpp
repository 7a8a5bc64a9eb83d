#include "text/chat_template.h"

#include "core/json_read.h"
#include "text/gguf_tokenizer.h"

#include "text/jinja_builtins.h"
#include "text/jinja_eval.h"
#include "text/jinja_parser.h"
#include "text/jinja_strings.h"

#include <fstream>
#include <sstream>

namespace layerwise {

using namespace jinja;

struct ChatTemplate::Compiled {
    std::string source;
    Body body;
};

namespace {

constexpr const char* chatml_source =
    R"({%- for message in messages -%}
{{- '<|im_start|>' + message['role'] + '\n' -}}
{%- if message['content'] is string -%}
{{- message['content'] -}}
{%- else -%}
{%- for part in message['content'] if part['type'] == 'text' -%}
{{- part['text'] -}}
{%- endfor -%}
{%- endif -%}
{{- '<|im_end|>\n' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}
{{- '<|im_start|>assistant\n' -}}
{%- endif -%}
)";

const DictData& environment_globals()
{
    static const DictData globals = [] {
        DictData g;
        install_globals(g);
        return g;
    }();
    return globals;
}

// The names a message's reasoning arrives under; the first is the one templates read.
constexpr const char* reasoning_fields[] = {"reasoning_content", "thinking", "reasoning"};

constexpr const char* continue_tag = "CONTINUE_FINAL_MESSAGE_TAG ";

std::string read_text(const std::filesystem::path& p)
{
    std::ifstream in(p, std::ios::binary);
    if (!in)
        throw IoError("cannot read " + p.string() + ": check that the file exists and is readable");
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

nlohmann::ordered_json read_json_file(const std::filesystem::path& p)
{
    return parse_ordered_json(read_text(p), p.string());
}

std::string strip_ws(const std::string& s) { return py_strip(s, std::nullopt, true, true); }

} // namespace

ChatTemplate ChatTemplate::parse(std::string source)
{
    if (!utf8_valid(source))
        throw FormatError("chat template: the text is not valid UTF-8");
    auto compiled = std::make_shared<Compiled>();
    compiled->body = parse_template(source);
    compiled->source = std::move(source);
    ChatTemplate t;
    t.m_compiled = std::move(compiled);
    return t;
}

const std::string& ChatTemplate::source() const
{
    static const std::string empty;
    return m_compiled ? m_compiled->source : empty;
}

std::string ChatTemplate::render(const nlohmann::ordered_json& context) const
{
    if (!m_compiled)
        throw FormatError("chat template: rendering a template that was never parsed");
    if (!context.is_object())
        throw FormatError("chat template: the render variables must be a JSON object");
    Interpreter interp(m_compiled->body, from_json(context), environment_globals());
    return interp.render();
}

std::string ChatTemplate::render(const nlohmann::json& context) const
{
    return render(nlohmann::ordered_json(context));
}

namespace {

// The request's own consistency, before anything is rendered (transformers' messages).
void check_chat_request(const ChatRequest& request)
{
    if (!request.messages.is_array())
        throw FormatError("chat template: messages must be a list of message objects");
    if (request.messages.empty())
        throw FormatError("Cannot apply chat template to an empty conversation. Provide at least one message.");
    if (!request.continue_final_message.empty() && request.add_generation_prompt)
        throw FormatError("continue_final_message and add_generation_prompt are not compatible. Use "
                          "continue_final_message when you want the model to continue the final message, and "
                          "add_generation_prompt when you want to add a header that will prompt it to start a new "
                          "assistant message instead.");
    if (!request.documents.is_null()) {
        if (!request.documents.is_array())
            throw FormatError("Documents should be a list of dicts with 'title' and 'text' keys!");
        for (const auto& d : request.documents)
            if (!d.is_object())
                throw FormatError("Documents should be a list of dicts with 'title' and 'text' keys!");
    }
}

// _normalize_chat_messages (keys whose value is None are dropped), then _alias_reasoning_fields.
nlohmann::ordered_json normalized_message(const nlohmann::ordered_json& message)
{
    if (!message.is_object())
        throw FormatError("Chat messages should be dicts, dataclasses or pydantic models, but got " + message.dump() + ".");
    nlohmann::ordered_json m = nlohmann::ordered_json::object();
    for (auto it = message.begin(); it != message.end(); ++it)
        if (!it.value().is_null())
            m[it.key()] = it.value();
    const nlohmann::ordered_json* reasoning = nullptr;
    for (const char* field : reasoning_fields)
        if (m.contains(field) && !m[field].is_null()) {
            reasoning = &m[field];
            break;
        }
    if (reasoning) {
        const nlohmann::ordered_json value = *reasoning;
        nlohmann::ordered_json aliased = nlohmann::ordered_json::object();
        aliased["thinking"] = value;
        for (auto it = m.begin(); it != m.end(); ++it)
            aliased[it.key()] = it.value();
        aliased["reasoning_content"] = value;
        m = std::move(aliased);
    }
    return m;
}

// continue_final_message: the final message's `field` (and the reasoning fields holding the same
// value) gets the continue tag appended, so the rendered text can be cut after it. Returns the
// final message's text.
std::string tag_final_message(nlohmann::ordered_json& chat, const std::string& field, const std::string& template_source)
{
    auto& last = chat.back();
    if (!last.contains(field) || last[field].is_null())
        throw FormatError("continue_final_message is set but the final message has no \"" + field + "\" to continue!");
    const nlohmann::ordered_json final_value = last[field];
    std::vector<std::string> continue_fields{field};
    if (field == "reasoning_content" || field == "thinking" || field == "reasoning") {
        continue_fields.clear();
        for (const char* f : reasoning_fields)
            if (last.contains(f) && last[f] == final_value)
                continue_fields.emplace_back(f);
    }
    bool accepted = false;
    for (const auto& f : continue_fields)
        accepted |= template_source.find(f) != std::string::npos;
    if (!accepted)
        throw FormatError("continue_final_message is set to \"" + field + "\" but this is not an accepted field in the chat_template");
    std::string final_message;
    if (final_value.is_array()) {
        bool found = false;
        for (auto it = last[field].rbegin(); it != last[field].rend(); ++it) {
            if (it->is_object() && it->contains("text")) {
                final_message = (*it)["text"].is_string() ? (*it)["text"].get<std::string>() : "";
                (*it)["text"] = final_message + continue_tag;
                found = true;
                break;
            }
        }
        if (!found)
            throw FormatError("continue_final_message is set but we could not find any text to continue in the final message!");
    } else {
        if (!final_value.is_string())
            throw FormatError("continue_final_message: the final message's \"" + field + "\" is not text");
        final_message = final_value.get<std::string>();
        for (const auto& f : continue_fields)
            last[f] = last[f].get<std::string>() + continue_tag;
    }
    return final_message;
}

// The variables the template sees: messages, tools, documents, the generation-prompt flag, the
// special tokens and the request's extra variables.
nlohmann::ordered_json template_context(nlohmann::ordered_json chat, const ChatRequest& request,
                                        const std::map<std::string, std::string>& special_tokens)
{
    nlohmann::ordered_json context = nlohmann::ordered_json::object();
    context["messages"] = std::move(chat);
    context["tools"] = request.tools;
    context["documents"] = request.documents;
    context["add_generation_prompt"] = request.add_generation_prompt;
    for (const auto& [k, v] : special_tokens)
        context[k] = v;
    if (!request.variables.is_null()) {
        if (!request.variables.is_object())
            throw FormatError("chat template: the extra variables must be a JSON object");
        for (auto it = request.variables.begin(); it != request.variables.end(); ++it)
            context[it.key()] = it.value();
    }
    return context;
}

// The rendered chat cut where the tagged final message ends, so the model continues it.
void cut_after_final_message(std::string& rendered, const std::string& final_message)
{
    const std::string tag = continue_tag;
    const std::string tag_stripped = strip_ws(tag);
    if (rendered.find(strip_ws(final_message)) == std::string::npos || rendered.find(tag_stripped) == std::string::npos)
        throw FormatError(
            "continue_final_message is set but the final message does not appear in the chat after applying the "
            "chat template! This can happen if the chat template deletes portions of the final message. Please "
            "verify the chat template and final message in your chat to ensure they are compatible.Final message "
            "to continue: " +
            strip_ws(final_message) + "\nRendered chat:\n" + rendered);
    const std::size_t at = rendered.rfind(tag_stripped);
    if (rendered.compare(at, tag.size(), tag) == 0)
        rendered.resize(at);
    else
        rendered = py_strip(rendered.substr(0, at), std::nullopt, false, true);
}

} // namespace

std::string ChatTemplate::apply(const ChatRequest& request) const
{
    check_chat_request(request);
    nlohmann::ordered_json chat = nlohmann::ordered_json::array();
    for (const auto& message : request.messages)
        chat.push_back(normalized_message(message));
    std::string final_message;
    if (!request.continue_final_message.empty())
        final_message = tag_final_message(chat, request.continue_final_message, source());
    std::string rendered = render(template_context(std::move(chat), request, special_tokens));
    if (!request.continue_final_message.empty())
        cut_after_final_message(rendered, final_message);
    return rendered;
}

std::string_view chatml_fallback_template() { return chatml_source; }

namespace {

const char* special_token_names[] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                     "pad_token", "cls_token", "mask_token"};

// A special token as tokenizer_config.json writes it: a string, or an AddedToken object.
std::optional<std::string> token_text(const nlohmann::ordered_json& v)
{
    if (v.is_string())
        return v.get<std::string>();
    if (v.is_object() && v.contains("content") && v["content"].is_string())
        return v["content"].get<std::string>();
    return std::nullopt;
}

// A folder's chat templates by name, each with its source and where it came from: the .jinja
// files, else tokenizer_config.json's chat_template (one or a named list), else a processor's
// chat_template.json.
using NamedTemplates = std::map<std::string, std::pair<std::string, std::string>>;

NamedTemplates chat_templates_in(const std::filesystem::path& dir, const nlohmann::ordered_json& config,
                                 const std::filesystem::path& config_path)
{
    namespace fs = std::filesystem;
    std::error_code ec;
    NamedTemplates templates;
    const fs::path jinja_file = dir / "chat_template.jinja";
    if (fs::exists(jinja_file, ec))
        templates["default"] = {read_text(jinja_file), jinja_file.string()};
    const fs::path extra_dir = dir / "additional_chat_templates";
    if (fs::is_directory(extra_dir, ec))
        for (const auto& entry : fs::directory_iterator(extra_dir, ec))
            if (entry.path().extension() == ".jinja")
                templates[entry.path().stem().string()] = {read_text(entry.path()), entry.path().string()};
    if (templates.empty() && config.contains("chat_template") && !config["chat_template"].is_null()) {
        const auto& ct = config["chat_template"];
        if (ct.is_string()) {
            templates["default"] = {ct.get<std::string>(), config_path.string()};
        } else if (ct.is_array()) {
            for (const auto& entry : ct) {
                if (!entry.is_object() || !entry.contains("name") || !entry.contains("template") ||
                    !entry["name"].is_string() || !entry["template"].is_string())
                    throw FormatError(config_path.string() +
                                      ": chat_template list entries must be {\"name\": ..., \"template\": ...}");
                templates[entry["name"].get<std::string>()] = {entry["template"].get<std::string>(), config_path.string()};
            }
        } else {
            throw FormatError(config_path.string() + ": chat_template must be a string or a list of named templates");
        }
    }
    const fs::path processor_file = dir / "chat_template.json";
    if (templates.empty() && fs::exists(processor_file, ec)) {
        const auto j = read_json_file(processor_file);
        if (j.is_object() && j.contains("chat_template") && j["chat_template"].is_string())
            templates["default"] = {j["chat_template"].get<std::string>(), processor_file.string()};
    }
    return templates;
}

std::string template_names(const NamedTemplates& templates)
{
    std::string names;
    for (const auto& [n, t] : templates)
        names += (names.empty() ? "" : ", ") + n;
    return names;
}

// The template asked for by name; without a name "default", or the only one there is.
NamedTemplates::const_iterator choose_template(const NamedTemplates& templates, const std::string& name,
                                               const std::filesystem::path& dir)
{
    std::string chosen = name;
    if (chosen.empty()) {
        if (templates.count("default"))
            chosen = "default";
        else if (templates.size() == 1)
            chosen = templates.begin()->first;
        else
            throw FormatError(dir.string() + " has several chat templates and none is named \"default\": choose "
                                             "one of " +
                              template_names(templates));
    }
    const auto it = templates.find(chosen);
    if (it == templates.end())
        throw FormatError(dir.string() + " has no chat template named '" + chosen + "' (it has: " + template_names(templates) + ")");
    return it;
}

// Special tokens: tokenizer_config.json, or the legacy special_tokens_map.json.
std::map<std::string, std::string> special_tokens_of(const nlohmann::ordered_json& config, const std::filesystem::path& dir)
{
    std::error_code ec;
    nlohmann::ordered_json tokens = config;
    const std::filesystem::path map_file = dir / "special_tokens_map.json";
    if (!config.contains("added_tokens_decoder") && std::filesystem::exists(map_file, ec)) {
        const auto j = read_json_file(map_file);
        if (j.is_object())
            for (auto it = j.begin(); it != j.end(); ++it)
                tokens[it.key()] = it.value();
    }
    std::map<std::string, std::string> out;
    for (const char* key : special_token_names)
        if (tokens.contains(key))
            if (auto text = token_text(tokens[key]))
                out[key] = *text;
    return out;
}

} // namespace

ChatTemplate load_chat_template(const std::filesystem::path& path, const std::string& name, const Logger& log)
{
    namespace fs = std::filesystem;
    std::error_code ec;
    // A .gguf file, or a folder whose only model file is one .gguf without tokenizer files.
    if (const auto gguf_file = text::gguf_file_for(path);
        gguf_file && (!fs::is_directory(path, ec) || !fs::exists(path / "tokenizer_config.json", ec)))
        return chat_template_from_gguf_file(*gguf_file, name, log);
    fs::path dir = path;
    fs::path config_path;
    if (fs::is_directory(path, ec)) {
        config_path = path / "tokenizer_config.json";
    } else if (fs::exists(path, ec)) {
        config_path = path;
        dir = path.parent_path();
    } else {
        throw IoError(path.string() + " does not exist: give a model folder or its tokenizer_config.json");
    }

    nlohmann::ordered_json config = nlohmann::ordered_json::object();
    const bool has_config = fs::exists(config_path, ec);
    if (has_config) {
        config = read_json_file(config_path);
        if (!config.is_object())
            throw FormatError(config_path.string() + ": expected a JSON object");
    }

    const NamedTemplates templates = chat_templates_in(dir, config, config_path);
    ChatTemplate result;
    if (templates.empty()) {
        if (!name.empty())
            throw FormatError(dir.string() + " has no chat template named '" + name + "' (it has no chat template)");
        result = ChatTemplate::parse(std::string(chatml_source));
        result.m_fallback = true;
        result.origin = "ChatML fallback";
        log.warning(dir.string() + " has no chat template; using the ChatML fallback "
                                   "(<|im_start|>role ... <|im_end|>), which may not match how the model was trained");
    } else {
        const auto it = choose_template(templates, name, dir);
        try {
            result = ChatTemplate::parse(it->second.first);
        } catch (const ChatTemplateError& e) {
            throw ChatTemplateError(e.kind(), e.line(), e.reason() + " (in " + it->second.second + ")");
        }
        result.origin = it->second.second + (it->first == "default" ? "" : " [" + it->first + "]");
    }
    result.special_tokens = special_tokens_of(config, dir);
    return result;
}

} // namespace layerwise
