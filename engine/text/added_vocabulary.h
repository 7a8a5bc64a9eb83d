#pragma once
// Added and special tokens: matched in the text before the model runs, leftmost-longest, with
// HF's lstrip / rstrip / single_word rules. Tokens with normalized=false are matched in the raw
// text; tokens with normalized=true in the normalized text.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace layerwise::text {

using TokenId = std::int32_t;

struct AddedToken {
    TokenId id = -1;
    std::string content;
    bool single_word = false;
    bool lstrip = false;
    bool rstrip = false;
    bool normalized = false;
    bool special = false;
    // What the token matches and decodes to: the content, passed through the normalizer when
    // `normalized` (HF stores "dog" as "▁dog" under a Prepend("▁") normalizer). Set by build().
    std::string text;
};

// A special token matched literally: no stripping, not normalized.
inline AddedToken literal_special_token(TokenId id, std::string content)
{
    AddedToken t;
    t.id = id;
    t.content = std::move(content);
    t.special = true;
    return t;
}

class AddedVocabulary {
public:
    // Adds or replaces (by id) a token. Empty contents are ignored, as in HF. Call build()
    // once all tokens are in, with the tokenizer's normalizer (or none).
    void add(AddedToken token);
    void build(const std::function<void(std::string&)>& normalize = {});

    // A run of text ([begin, end) bytes) or a matched added token (id >= 0; the range then
    // includes the white space its lstrip/rstrip swallowed).
    struct Segment {
        std::size_t begin;
        std::size_t end;
        TokenId id;
    };
    // Splits `text` on the tokens whose `normalized` flag equals `normalized_tokens`.
    void split(std::string_view text, bool normalized_tokens, std::vector<Segment>& out) const;
    bool has_tokens(bool normalized_tokens) const { return !trie(normalized_tokens).nodes_empty(); }

    const AddedToken* by_id(TokenId id) const;
    const AddedToken* by_content(std::string_view content) const;
    const std::vector<AddedToken>& tokens() const { return m_tokens; }

private:
    struct Trie {
        // Edges keyed by (node << 8 | byte); node 0 is the root.
        std::unordered_map<std::uint64_t, std::int32_t> edges;
        std::vector<std::int32_t> terminal; // per node: index into m_tokens, or -1
        bool first_byte[256] = {};
        bool nodes_empty() const { return terminal.size() <= 1; }
        void insert(std::string_view content, std::int32_t token_index);
        // The longest token starting at `pos`: its length and index, or {0, -1}.
        std::pair<std::size_t, std::int32_t> longest_at(std::string_view text, std::size_t pos) const;
    };
    const Trie& trie(bool normalized_tokens) const { return normalized_tokens ? m_normalized : m_raw; }

    std::vector<AddedToken> m_tokens;
    std::unordered_map<TokenId, std::size_t> m_by_id;
    std::unordered_map<std::string, std::size_t> m_by_content;
    Trie m_raw;
    Trie m_normalized;
};

} // namespace layerwise::text
