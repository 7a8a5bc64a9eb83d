#pragma once
// A conversation with a loaded model: messages -> the prompt text (the model's chat template,
// or the raw text for completion) -> prompt ids -> a streamed answer. The keys and values of
// the previous turn stay in the runner's cache; a new turn only feeds the tokens that differ
// from the last prompt + answer (the prefix cache). Used by the terminal chat and the GUI.
#include "runtime/run_types.h"
#include "runtime/runner.h"
#include "runtime/session.h"
#include "text/chat_template.h"
#include "text/harmony.h"

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace layerwise {


class ChatSession {
public:
    // `model` must outlive the session. The template and tokenizer come from the model's
    // folder (no template: the ChatML fallback, is_fallback() true). IoError / FormatError /
    // UnsupportedError when they cannot be read.
    ChatSession(LoadedModel& model, std::int64_t context, const Logger& log = {});
    ~ChatSession();

    // The text fed to the model for `conversation` (with the generation prompt).
    std::string prompt_text(const Conversation& conversation) const;
    std::vector<std::int64_t> prompt_ids(const Conversation& conversation) const;

    // Answers the last message. `on_text` receives the answer piece by piece (whole UTF-8
    // characters only) and returns false to stop; `stop` is polled between tokens. A stopped
    // answer is returned as far as it got (stop_reason "stopped"). PlanError when the prompt
    // does not fit the context.
    // A harmony model's (gpt-oss's) answer is its final channel; its analysis channel goes to
    // `on_reasoning` and ChatAnswer::reasoning.
    ChatAnswer reply(const Conversation& conversation, const GenerationOptions& options,
                     const std::function<bool(std::string_view)>& on_text = {},
                     const std::atomic<bool>* stop = nullptr,
                     const std::function<bool(std::string_view)>& on_reasoning = {});

    // Forgets the cached prefix.
    void reset();

    const text::Tokenizer& tokenizer() const { return *m_tokenizer; }
    const ChatTemplate& chat_template() const { return m_template; }
    bool has_template() const { return !m_template.is_fallback(); }
    // The model's end-of-sequence ids plus the end-of-turn tokens of common templates.
    const std::vector<std::int64_t>& eos_ids() const { return m_eos; }
    std::int64_t context_length() const { return m_runner.capacity(); }
    Runner& runner() { return m_runner; }

private:
    std::unique_ptr<text::Tokenizer> m_tokenizer;
    ChatTemplate m_template;
    Runner m_runner;
    std::vector<std::int64_t> m_eos;
    std::optional<text::HarmonyIds> m_harmony; // the model writes harmony messages (gpt-oss)
    std::vector<std::int64_t> m_cached; // the ids whose keys and values the runner holds
};

} // namespace layerwise
