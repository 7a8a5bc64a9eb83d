#pragma once
// The BPE model of HF tokenizers: a vocabulary, ranked merges applied lowest rank first (ties:
// leftmost first), an optional unknown token (fused or not), byte fallback to <0xAB> tokens,
// continuing-subword prefix and end-of-word suffix, ignore_merges (a whole word found in the
// vocabulary is one token). Words are cached.
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace layerwise::text {

using TokenId = std::int32_t;

struct BpeOptions {
    std::optional<std::string> unk_token;
    std::string continuing_subword_prefix;
    std::string end_of_word_suffix;
    bool fuse_unk = false;
    bool byte_fallback = false;
    bool ignore_merges = false;
};

class BpeModel {
public:
    // `tokens[id]` is the token of `id` (empty for ids absent from the vocabulary); `merges`
    // are the (left, right) pairs in rank order. `where` names the file for error messages.
    // Throws FormatError when a merge names a token that is not in the vocabulary.
    BpeModel(std::vector<std::string> tokens, const std::vector<std::pair<std::string, std::string>>& merges,
             BpeOptions options, const std::string& where);

    // Appends the ids of one pre-tokenized word.
    void tokenize(std::string_view word, std::vector<TokenId>& out) const;

    std::optional<TokenId> token_to_id(std::string_view token) const;
    // Empty when `id` is not in the vocabulary.
    const std::string& id_to_token(TokenId id) const;
    // One past the largest id.
    std::size_t size() const { return m_tokens.size(); }

private:
    struct Merge {
        std::int32_t rank;
        TokenId merged;
    };
    static std::uint64_t pair_key(TokenId a, TokenId b)
    {
        return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) | static_cast<std::uint32_t>(b);
    }
    void merge_cached(std::string_view word, std::vector<TokenId>& out) const;
    void merge_word(std::string_view word, std::vector<TokenId>& out) const;
    bool is_boundary(char32_t c) const;
    const Merge* find_merge(TokenId a, TokenId b) const;

    std::vector<std::string> m_tokens;
    std::unordered_map<std::string_view, TokenId> m_vocab; // views into m_tokens
    std::unordered_map<std::uint64_t, Merge> m_merges;
    BpeOptions m_options;
    std::optional<TokenId> m_unk_id;
    TokenId m_byte_tokens[256];

    // Characters no merge can join to a different preceding character: a long word (a whole
    // SentencePiece-style text) is cut before them and its parts merged separately, with the
    // same result.
    std::vector<char32_t> m_boundaries; // sorted

    struct StringHash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
    };
    mutable std::mutex m_cache_mutex;
    mutable std::unordered_map<std::string, std::vector<TokenId>, StringHash, std::equal_to<>> m_cache;
};

} // namespace layerwise::text
