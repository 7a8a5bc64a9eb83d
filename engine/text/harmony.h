#pragma once
// gpt-oss's harmony format, on the answer's side. The model writes one or more messages after the
// prompt's "<|start|>assistant":
//   <|channel|>analysis<|message|>(reasoning)<|end|><|start|>assistant<|channel|>final<|message|>(answer)<|return|>
// A message's header (role, channel, a " to=functions.name" recipient) runs up to <|message|>; its
// text up to <|end|> (another message follows), <|return|> (the answer is done) or <|call|> (a tool
// call). So <|end|> must not end an answer, and the text of the analysis channel is reasoning,
// not answer. HarmonyReader follows the token ids and says where each one's text belongs.
#include "text/tokenizer.h"

#include <cstdint>
#include <optional>
#include <string>

namespace layerwise::text {

// The special tokens' ids in a tokenizer; nullopt when it lacks any (not a harmony model).
struct HarmonyIds {
    TokenId start, end, message, channel, return_, call;
};
std::optional<HarmonyIds> harmony_ids(const Tokenizer& tokenizer);

class HarmonyReader {
public:
    // Where a token's text goes: a message header (never shown), the reasoning (analysis
    // channel), the answer (final channel), or another channel's message (commentary: tool
    // calls and their preambles).
    enum class Part { header, reasoning, answer, other };

    explicit HarmonyReader(const HarmonyIds& ids) : m_ids(ids) {}
    // Reads one generated id (its text decoded by the caller) and says where its text belongs.
    // Starts in a header: the prompt ends with "<|start|>assistant".
    Part push(TokenId id, std::string_view text);
    // The channel of the message being read ("" in a header before <|channel|>).
    const std::string& channel() const { return m_channel; }
    // True once <|return|> or <|call|> was read: the answer is complete.
    bool done() const { return m_done; }

private:
    HarmonyIds m_ids;
    enum class State { header, channel_name, text, between } m_state = State::header;
    std::string m_channel;
    bool m_done = false;
};

} // namespace layerwise::text
