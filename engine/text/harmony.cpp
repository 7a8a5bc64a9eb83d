#include "text/harmony.h"

namespace layerwise::text {

std::optional<HarmonyIds> harmony_ids(const Tokenizer& tokenizer)
{
    const auto id = [&](const char* t) { return tokenizer.token_to_id(t); };
    const auto start = id("<|start|>"), end = id("<|end|>"), message = id("<|message|>"), channel = id("<|channel|>"),
               ret = id("<|return|>"), call = id("<|call|>");
    if (!start || !end || !message || !channel || !ret || !call)
        return std::nullopt;
    return HarmonyIds{*start, *end, *message, *channel, *ret, *call};
}

HarmonyReader::Part HarmonyReader::push(TokenId id, std::string_view text)
{
    if (id == m_ids.start) {
        m_state = State::header;
        m_channel.clear();
        return Part::header;
    }
    if (id == m_ids.channel) {
        m_state = State::channel_name;
        m_channel.clear();
        return Part::header;
    }
    if (id == m_ids.message) {
        // The channel name ends at the first space or special marker (" to=functions.f",
        // "<|constrain|>json" may follow it in the header).
        const auto cut = m_channel.find_first_of(" <");
        if (cut != std::string::npos)
            m_channel.resize(cut);
        m_state = State::text;
        return Part::header;
    }
    if (id == m_ids.end) {
        m_state = State::between;
        return Part::header;
    }
    if (id == m_ids.return_ || id == m_ids.call) {
        m_state = State::between;
        m_done = true;
        return Part::header;
    }
    switch (m_state) {
    case State::channel_name: m_channel += text; return Part::header;
    case State::text:
        if (m_channel == "analysis")
            return Part::reasoning;
        if (m_channel == "final" || m_channel.empty())
            return Part::answer;
        return Part::other;
    case State::header:
    case State::between: return Part::header;
    }
    return Part::header;
}

} // namespace layerwise::text
