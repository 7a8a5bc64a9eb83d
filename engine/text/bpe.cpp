#include "text/bpe.h"

#include "core/error.h"
#include "text/unicode.h"

#include <algorithm>
#include <cstdio>
#include <iterator>
#include <queue>

namespace layerwise::text {

namespace {

constexpr std::size_t cache_capacity = 100000; // words; cleared when full
constexpr std::size_t cache_max_word = 256;    // bytes; longer words are not cached

} // namespace

BpeModel::BpeModel(std::vector<std::string> tokens, const std::vector<std::pair<std::string, std::string>>& merges,
                   BpeOptions options, const std::string& where)
    : m_tokens(std::move(tokens)), m_options(std::move(options))
{
    m_vocab.reserve(m_tokens.size());
    for (std::size_t id = 0; id < m_tokens.size(); ++id)
        if (!m_tokens[id].empty())
            m_vocab.emplace(m_tokens[id], static_cast<TokenId>(id));
    if (m_options.unk_token)
        m_unk_id = token_to_id(*m_options.unk_token);
    for (int b = 0; b < 256; ++b) {
        char name[8];
        std::snprintf(name, sizeof name, "<0x%02X>", b);
        m_byte_tokens[b] = token_to_id(name).value_or(-1);
    }

    if (m_options.continuing_subword_prefix.empty() && m_options.end_of_word_suffix.empty()) {
        std::vector<char32_t> single, joined; // single-character tokens; characters seen after another one
        for (const std::string& t : m_tokens) {
            std::size_t pos = 0;
            char32_t previous = 0;
            bool first = true;
            while (pos < t.size()) {
                const char32_t c = next_code_point(t, pos);
                if (!first && c != previous)
                    joined.push_back(c);
                previous = c;
                first = false;
            }
            if (!t.empty() && pos == t.size() && utf8_sequence_length(static_cast<unsigned char>(t[0])) == t.size())
                single.push_back(previous);
        }
        std::sort(single.begin(), single.end());
        std::sort(joined.begin(), joined.end());
        std::set_difference(single.begin(), single.end(), joined.begin(), joined.end(), std::back_inserter(m_boundaries));
        m_boundaries.erase(std::unique(m_boundaries.begin(), m_boundaries.end()), m_boundaries.end());
    }

    const std::size_t prefix_length = m_options.continuing_subword_prefix.size();
    m_merges.reserve(merges.size());
    for (std::size_t rank = 0; rank < merges.size(); ++rank) {
        const std::string& left = merges[rank].first;
        const std::string& right = merges[rank].second;
        const auto fail = [&](const std::string& token) {
            throw FormatError(where + ": merge " + std::to_string(rank) + " ('" + left + " " + right +
                              "') needs the token '" + token +
                              "', which is not in the vocabulary; the vocabulary and the merges do not belong "
                              "together");
        };
        const auto a = token_to_id(left);
        if (!a)
            fail(left);
        const auto b = token_to_id(right);
        if (!b)
            fail(right);
        if (right.size() < prefix_length)
            fail(right);
        const std::string merged = left + right.substr(prefix_length);
        const auto m = token_to_id(merged);
        if (!m)
            fail(merged);
        // A repeated pair keeps its last rank, as HF's map built from the list does.
        m_merges[pair_key(*a, *b)] = Merge{static_cast<std::int32_t>(rank), *m};
    }
}

std::optional<TokenId> BpeModel::token_to_id(std::string_view token) const
{
    const auto it = m_vocab.find(token);
    if (it == m_vocab.end())
        return std::nullopt;
    return it->second;
}

const std::string& BpeModel::id_to_token(TokenId id) const
{
    static const std::string none;
    if (id < 0 || static_cast<std::size_t>(id) >= m_tokens.size())
        return none;
    return m_tokens[static_cast<std::size_t>(id)];
}

const BpeModel::Merge* BpeModel::find_merge(TokenId a, TokenId b) const
{
    const auto it = m_merges.find(pair_key(a, b));
    return it == m_merges.end() ? nullptr : &it->second;
}

bool BpeModel::is_boundary(char32_t c) const { return std::binary_search(m_boundaries.begin(), m_boundaries.end(), c); }

void BpeModel::tokenize(std::string_view word, std::vector<TokenId>& out) const
{
    if (word.empty())
        return;
    if (m_options.ignore_merges) {
        if (const auto id = token_to_id(word)) {
            out.push_back(*id);
            return;
        }
    }
    if (word.size() <= cache_max_word || m_boundaries.empty()) {
        merge_cached(word, out);
        return;
    }
    std::size_t start = 0;
    char32_t previous = 0;
    for (std::size_t pos = 0; pos < word.size();) {
        const std::size_t at = pos;
        const char32_t c = next_code_point(word, pos);
        if (at > start && c != previous && is_boundary(c)) {
            merge_cached(word.substr(start, at - start), out);
            start = at;
        }
        previous = c;
    }
    merge_cached(word.substr(start), out);
}

void BpeModel::merge_cached(std::string_view word, std::vector<TokenId>& out) const
{
    const bool cacheable = word.size() <= cache_max_word;
    if (cacheable) {
        std::lock_guard lock(m_cache_mutex);
        const auto it = m_cache.find(word);
        if (it != m_cache.end()) {
            out.insert(out.end(), it->second.begin(), it->second.end());
            return;
        }
    }
    const std::size_t first = out.size();
    merge_word(word, out);
    if (cacheable) {
        std::lock_guard lock(m_cache_mutex);
        if (m_cache.size() >= cache_capacity)
            m_cache.clear();
        m_cache.emplace(std::string(word), std::vector<TokenId>(out.begin() + static_cast<std::ptrdiff_t>(first), out.end()));
    }
}

void BpeModel::merge_word(std::string_view word, std::vector<TokenId>& out) const
{
    // The initial symbols: one per character (with prefix/suffix), byte tokens or unknowns.
    struct Symbol {
        TokenId id;
        std::int32_t prev;
        std::int32_t next;
        bool removed;
    };
    std::vector<Symbol> symbols;
    symbols.reserve(word.size());
    const auto add = [&](TokenId id) {
        const auto index = static_cast<std::int32_t>(symbols.size());
        symbols.push_back(Symbol{id, index - 1, index + 1, false});
    };
    std::optional<TokenId> pending_unk;
    std::string piece;
    for (std::size_t pos = 0; pos < word.size();) {
        const std::size_t begin = pos;
        pos += std::min(utf8_sequence_length(static_cast<unsigned char>(word[pos])), word.size() - pos);
        std::string_view character = word.substr(begin, pos - begin);
        const bool is_first = begin == 0, is_last = pos == word.size();
        std::optional<TokenId> id;
        if ((is_first || m_options.continuing_subword_prefix.empty()) && (!is_last || m_options.end_of_word_suffix.empty())) {
            id = token_to_id(character);
        } else {
            piece.clear();
            if (!is_first)
                piece += m_options.continuing_subword_prefix;
            piece += character;
            if (is_last)
                piece += m_options.end_of_word_suffix;
            character = piece;
            id = token_to_id(piece);
        }
        if (id) {
            if (pending_unk) {
                add(*pending_unk);
                pending_unk.reset();
            }
            add(*id);
            continue;
        }
        if (m_options.byte_fallback) {
            bool all_bytes = true;
            for (char c : character)
                all_bytes = all_bytes && m_byte_tokens[static_cast<unsigned char>(c)] >= 0;
            if (all_bytes) {
                // A pending unknown stays pending, as in HF: it is flushed by the next known character.
                for (char c : character)
                    add(m_byte_tokens[static_cast<unsigned char>(c)]);
                continue;
            }
        }
        if (m_options.unk_token) {
            if (!m_unk_id)
                throw FormatError("the unknown token '" + *m_options.unk_token +
                                  "' (model.unk_token) is not in the vocabulary; the tokenizer file is inconsistent");
            if (pending_unk && !m_options.fuse_unk)
                add(*pending_unk);
            pending_unk = *m_unk_id;
        }
    }
    if (pending_unk)
        add(*pending_unk);
    if (symbols.empty())
        return;
    symbols.back().next = -1;

    struct Candidate {
        std::int32_t rank;
        std::int32_t pos;
        TokenId merged;
        bool operator<(const Candidate& o) const // a max-heap: lowest rank, then leftmost on top
        {
            return rank != o.rank ? rank > o.rank : pos > o.pos;
        }
    };
    std::priority_queue<Candidate> queue;
    for (std::size_t i = 0; i + 1 < symbols.size(); ++i)
        if (const Merge* m = find_merge(symbols[i].id, symbols[i + 1].id))
            queue.push(Candidate{m->rank, static_cast<std::int32_t>(i), m->merged});
    while (!queue.empty()) {
        const Candidate top = queue.top();
        queue.pop();
        Symbol& left = symbols[static_cast<std::size_t>(top.pos)];
        if (left.removed || left.next < 0)
            continue;
        Symbol& right = symbols[static_cast<std::size_t>(left.next)];
        const Merge* current = find_merge(left.id, right.id);
        if (!current || current->merged != top.merged)
            continue; // stale: one side changed since this candidate was queued
        left.id = top.merged;
        right.removed = true;
        left.next = right.next;
        if (right.next >= 0)
            symbols[static_cast<std::size_t>(right.next)].prev = top.pos;
        if (left.prev >= 0)
            if (const Merge* m = find_merge(symbols[static_cast<std::size_t>(left.prev)].id, left.id))
                queue.push(Candidate{m->rank, left.prev, m->merged});
        if (left.next >= 0)
            if (const Merge* m = find_merge(left.id, symbols[static_cast<std::size_t>(left.next)].id))
                queue.push(Candidate{m->rank, top.pos, m->merged});
    }
    for (const Symbol& s : symbols)
        if (!s.removed)
            out.push_back(s.id);
}

} // namespace layerwise::text
