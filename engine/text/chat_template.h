#pragma once
// Chat templates: the Jinja programs Hugging Face tokenizers carry to turn a list of
// messages into the model's prompt text. Rendering is byte-identical to Python
// jinja2 configured the way transformers configures it (ImmutableSandboxedEnvironment,
// trim_blocks, lstrip_blocks, loop controls, its own tojson, raise_exception,
// strftime_now, namespace, dict), and apply() prepares the inputs the way
// transformers' apply_chat_template(..., tokenize=False) does.
//
// Errors: a template that does not parse, fails while rendering, or calls
// raise_exception() throws ChatTemplateError (a FormatError) whose message is
// "chat template line N: <what jinja2 says>"; reason() is jinja2's message alone.
//
// No template: load_chat_template() falls back to ChatML (chatml_fallback_template()),
// marks the result is_fallback() and logs a warning.
//
// Not supported (each fails with a clear error, or differs only where noted):
// - {% include %}, {% extends %}, {% import %} (no other template files) and
//   {% autoescape %}: UnsupportedError when parsing;
// - the filters random, urlize, wordwrap, xmlattr and the global lipsum(): error when used;
// - integers beyond 64 bits, string escapes \N{NAME}: error;
// - upper/lower/title/capitalize map case for ASCII, Latin-1, Latin Extended-A, Greek,
//   Cyrillic, Armenian and fullwidth Latin only (other scripts are left unchanged);
// - printing a function, method or generator (Python shows a memory address), a range()
//   (printed as a list), and the .grouper/.list attributes of groupby() results;
// - HTML-safe strings (Markup): escape() returns plain escaped text.
// Limits that stop hostile templates: 256 levels of syntax nesting, 200 nested macro
// calls, 500 levels of nested values, 64 MiB per value printed, 256 MiB of output.
#include "core/log.h"
#include "text/jinja_error.h"

#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace layerwise::gguf {
class Metadata;
}

namespace layerwise {

// The inputs of transformers' apply_chat_template(conversation, tools=..., documents=...,
// add_generation_prompt=..., continue_final_message=..., tokenize=False, **kwargs).
// JSON objects keep their key order (ordered_json): tojson in a template prints keys
// in the order they were given, as Python dicts do.
struct ChatRequest {
    nlohmann::ordered_json messages = nlohmann::ordered_json::array();
    nlohmann::ordered_json tools;     // null: not given (the template sees None)
    nlohmann::ordered_json documents; // null: not given
    bool add_generation_prompt = false;
    // Leave the last message open for the model to continue: "" = off, "content"
    // (transformers' True), or the field to continue such as "reasoning_content".
    std::string continue_final_message;
    // More template variables (enable_thinking, custom flags...). They override the
    // tokenizer's special tokens of the same name.
    nlohmann::ordered_json variables = nlohmann::ordered_json::object();
};

class ChatTemplate {
public:
    // Parses `source`; throws ChatTemplateError (kind syntax) with jinja2's message and line.
    static ChatTemplate parse(std::string source);

    // Renders with exactly these variables, like jinja2's template.render(**context).
    std::string render(const nlohmann::ordered_json& context) const;
    std::string render(const nlohmann::json& context) const;

    // transformers' apply_chat_template(tokenize=False): drops message keys whose value is
    // null, aliases reasoning fields (reasoning_content / thinking / reasoning), passes tools,
    // documents, add_generation_prompt and the special tokens, and handles continue_final_message.
    // Throws FormatError for inputs transformers refuses, ChatTemplateError from the template.
    std::string apply(const ChatRequest& request) const;

    const std::string& source() const;
    // The special tokens apply() passes as variables (bos_token, eos_token, unk_token,
    // pad_token...), as the tokenizer defines them.
    std::map<std::string, std::string> special_tokens;
    // True when the model had no template and the ChatML fallback is in use.
    bool is_fallback() const { return m_fallback; }
    // Where the template came from (file and template name), for messages.
    std::string origin;

private:
    struct Compiled;
    std::shared_ptr<const Compiled> m_compiled;
    bool m_fallback = false;
    friend ChatTemplate load_chat_template(const std::filesystem::path&, const std::string&, const Logger&);
    friend ChatTemplate chat_template_from_gguf(const gguf::Metadata&, const std::filesystem::path&, const std::string&,
                                                const Logger&);
};

// The ChatML template used when a model has none:
// <|im_start|>{role}\n{content}<|im_end|>\n per message, "<|im_start|>assistant\n" as the generation prompt.
std::string_view chatml_fallback_template();

// Loads a model's chat template the way transformers' from_pretrained finds it:
// chat_template.jinja and additional_chat_templates/*.jinja take priority over the
// "chat_template" entry of tokenizer_config.json (a string, or a list of {name, template});
// a processor's chat_template.json is used last. `name` picks a named template (empty:
// "default", or the only one). The special tokens come from tokenizer_config.json.
// Without any template: the ChatML fallback, is_fallback() true, and a warning on `log`.
// Throws IoError for an unreadable path, FormatError for a malformed config or template.
ChatTemplate load_chat_template(const std::filesystem::path& model_dir_or_tokenizer_config,
                                const std::string& name = {}, const Logger& log = {});

} // namespace layerwise
