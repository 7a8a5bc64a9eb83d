#include "runtime/chat.h"

#include "core/error.h"
#include "core/json_read.h"
#include "text/harmony.h"
#include "text/tokenizer.h"

#include <algorithm>

namespace layerwise {

namespace {

// End-of-turn tokens of widespread chat templates: an answer ends there even when the
// model's generation_config does not list them.
constexpr const char* end_of_turn_tokens[] = {"<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>"};

} // namespace

ChatSession::ChatSession(LoadedModel& model, std::int64_t context, const Logger& log)
    : m_tokenizer(text::load_tokenizer(model.checkpoint->text_source())),
      m_template(load_chat_template(model.checkpoint->text_source(), {}, log)),
      m_runner(model, context)
{
    m_eos = eos_token_ids(model.checkpoint->folder(), model.config);
    if (m_tokenizer->eos_id())
        m_eos.push_back(*m_tokenizer->eos_id());
    m_harmony = text::harmony_ids(*m_tokenizer);
    for (const char* end : end_of_turn_tokens)
        if (auto id = m_tokenizer->token_to_id(end); id && !(m_harmony && *id == m_harmony->end))
            m_eos.push_back(*id);
    if (m_harmony) { // harmony: <|end|> closes one message of several; the answer ends at <|return|> or <|call|>
        std::erase(m_eos, static_cast<std::int64_t>(m_harmony->end));
        m_eos.push_back(m_harmony->return_);
        m_eos.push_back(m_harmony->call);
    }
}

ChatSession::~ChatSession() = default;

std::string ChatSession::prompt_text(const Conversation& conversation) const
{
    if (conversation.raw) {
        std::string text = conversation.system;
        for (const auto& m : conversation.messages)
            text += m.content;
        return text;
    }
    ChatRequest request;
    if (!conversation.system.empty())
        request.messages.push_back({{"role", "system"}, {"content", conversation.system}});
    for (const auto& m : conversation.messages) {
        nlohmann::ordered_json message{{"role", m.role}, {"content", m.content}};
        if (!m.extra_json.empty())
            for (const auto& [key, value] : parse_ordered_json(m.extra_json, "a chat message's fields").items())
                message[key] = value;
        request.messages.push_back(std::move(message));
    }
    if (!conversation.tools_json.empty())
        request.tools = parse_ordered_json(conversation.tools_json, "the tool definitions");
    request.add_generation_prompt = true;
    return m_template.apply(request);
}

std::vector<std::int64_t> ChatSession::prompt_ids(const Conversation& conversation) const
{
    // A template writes its own special tokens (BOS included); raw text gets the tokenizer's.
    const auto ids = m_tokenizer->encode(prompt_text(conversation), /*add_special_tokens=*/conversation.raw);
    return {ids.begin(), ids.end()};
}

ChatAnswer ChatSession::reply(const Conversation& conversation, const GenerationOptions& options,
                              const std::function<bool(std::string_view)>& on_text, const std::atomic<bool>* stop,
                              const std::function<bool(std::string_view)>& on_reasoning)
{
    const std::vector<std::int64_t> ids = prompt_ids(conversation);
    if (ids.empty())
        throw FormatError("the prompt is empty: write a message first");
    const auto capacity = m_runner.capacity();
    if (static_cast<std::int64_t>(ids.size()) >= capacity)
        throw PlanError("the conversation needs " + std::to_string(ids.size()) + " tokens but the context holds " +
                        std::to_string(capacity) + ": start a new conversation, shorten it, or load the model with a "
                        "longer context");
    // Keep the cache for the prefix this prompt shares with the last prompt + answer.
    std::size_t keep = 0;
    while (keep < m_cached.size() && keep < ids.size() && m_cached[keep] == ids[keep])
        ++keep;
    if (keep == ids.size())
        --keep; // at least one token must go through the model to produce logits
    if (static_cast<std::int64_t>(keep) > m_runner.position())
        keep = static_cast<std::size_t>(m_runner.position());
    m_runner.rewind(static_cast<std::int64_t>(keep));
    m_cached.resize(keep); // until this turn completes, only the kept prefix is known good
    const std::vector<std::int64_t> fresh(ids.begin() + static_cast<std::ptrdiff_t>(keep), ids.end());

    GenerationOptions g = options;
    g.max_new_tokens = std::min<std::int64_t>(g.max_new_tokens, capacity - static_cast<std::int64_t>(ids.size()));
    if (g.eos_ids.empty())
        g.eos_ids = m_eos;

    // The prompt's tail primes the decoder so the answer's first piece gets its leading space
    // right (SentencePiece drops the space of a sequence's first word).
    text::IncrementalDecoder decoder(*m_tokenizer, /*skip_special_tokens=*/true);
    const std::size_t prime = std::min<std::size_t>(ids.size(), 4);
    for (std::size_t i = ids.size() - prime; i < ids.size(); ++i)
        decoder.push(static_cast<text::TokenId>(ids[i]));

    ChatAnswer answer;
    answer.prompt_tokens = static_cast<std::int64_t>(ids.size());
    answer.reused_tokens = static_cast<std::int64_t>(keep);
    // A harmony model's messages: the final channel is the answer, the analysis channel the
    // reasoning; headers and other channels are not shown.
    std::optional<text::HarmonyReader> harmony;
    if (m_harmony)
        harmony.emplace(*m_harmony);
    auto route = [&](text::HarmonyReader::Part part, const std::string& piece) {
        if (piece.empty())
            return true;
        if (part == text::HarmonyReader::Part::answer) {
            answer.text += piece;
            return !on_text || on_text(piece);
        }
        if (part == text::HarmonyReader::Part::reasoning) {
            answer.reasoning += piece;
            return !on_reasoning || on_reasoning(piece);
        }
        return true;
    };
    text::HarmonyReader::Part last = text::HarmonyReader::Part::answer;
    answer.generation = generate(m_runner, fresh, g, [&](std::int64_t id) {
        if (std::find(g.eos_ids.begin(), g.eos_ids.end(), id) != g.eos_ids.end())
            return true;
        const std::string piece = decoder.push(static_cast<text::TokenId>(id));
        if (harmony)
            last = harmony->push(static_cast<text::TokenId>(id), piece);
        return route(last, piece);
    }, stop);
    route(last, decoder.flush());
    m_cached = ids;
    m_cached.insert(m_cached.end(), answer.generation.tokens.begin(), answer.generation.tokens.end());
    m_cached.resize(std::min<std::size_t>(m_cached.size(), static_cast<std::size_t>(m_runner.position())));
    answer.context_used = m_runner.position();
    answer.context_length = capacity;
    return answer;
}

void ChatSession::reset()
{
    m_cached.clear();
    m_runner.reset();
}

} // namespace layerwise
