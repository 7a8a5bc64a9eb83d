#include "text/added_vocabulary.h"

#include "text/regex.h"
#include "text/unicode.h"

namespace layerwise::text {

namespace {

// Rust regex's \w: alphabetic, marks, decimal digits, connector punctuation, joiners.
bool is_word_character(std::string_view character)
{
    static const Regex word(R"(^[\p{L}\p{Nl}\p{Nd}\p{M}\p{Pc}\x{200C}\x{200D}])", "the added-token word test");
    return word.search(character);
}

std::string_view last_character(std::string_view s)
{
    std::size_t start = s.size() - 1;
    while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80)
        --start;
    return s.substr(start);
}

std::string_view first_character(std::string_view s)
{
    return s.substr(0, std::min(s.size(), utf8_sequence_length(static_cast<unsigned char>(s[0]))));
}

// Start of the run of white space that ends `s` (s.size() when there is none).
std::size_t white_space_run_before(std::string_view s)
{
    std::size_t start = s.size();
    while (start > 0) {
        std::size_t prev = start - 1;
        while (prev > 0 && (static_cast<unsigned char>(s[prev]) & 0xC0) == 0x80)
            --prev;
        std::size_t pos = prev;
        if (!is_white_space(next_code_point(s, pos)))
            break;
        start = prev;
    }
    return start;
}

// Length of the run of white space that starts `s`.
std::size_t white_space_run_after(std::string_view s)
{
    std::size_t end = 0;
    while (end < s.size()) {
        std::size_t pos = end;
        if (!is_white_space(next_code_point(s, pos)))
            break;
        end = pos;
    }
    return end;
}

} // namespace

void AddedVocabulary::Trie::insert(std::string_view content, std::int32_t token_index)
{
    if (terminal.empty())
        terminal.push_back(-1);
    std::int32_t node = 0;
    for (char c : content) {
        const auto key = (static_cast<std::uint64_t>(node) << 8) | static_cast<unsigned char>(c);
        const auto it = edges.find(key);
        if (it != edges.end()) {
            node = it->second;
        } else {
            const auto next = static_cast<std::int32_t>(terminal.size());
            terminal.push_back(-1);
            edges.emplace(key, next);
            node = next;
        }
    }
    terminal[static_cast<std::size_t>(node)] = token_index;
    first_byte[static_cast<unsigned char>(content[0])] = true;
}

std::pair<std::size_t, std::int32_t> AddedVocabulary::Trie::longest_at(std::string_view text, std::size_t pos) const
{
    std::pair<std::size_t, std::int32_t> best{0, -1};
    std::int32_t node = 0;
    for (std::size_t i = pos; i < text.size(); ++i) {
        const auto it = edges.find((static_cast<std::uint64_t>(node) << 8) | static_cast<unsigned char>(text[i]));
        if (it == edges.end())
            break;
        node = it->second;
        if (terminal[static_cast<std::size_t>(node)] >= 0)
            best = {i + 1 - pos, terminal[static_cast<std::size_t>(node)]};
    }
    return best;
}

void AddedVocabulary::add(AddedToken token)
{
    if (token.content.empty())
        return;
    const auto it = m_by_id.find(token.id);
    if (it != m_by_id.end()) {
        m_tokens[it->second] = std::move(token);
        return;
    }
    m_by_id.emplace(token.id, m_tokens.size());
    m_tokens.push_back(std::move(token));
}

void AddedVocabulary::build(const std::function<void(std::string&)>& normalize)
{
    m_raw = Trie{};
    m_normalized = Trie{};
    m_by_content.clear();
    for (std::size_t i = 0; i < m_tokens.size(); ++i) {
        AddedToken& t = m_tokens[i];
        t.text = t.content;
        if (t.normalized && normalize)
            normalize(t.text);
        m_by_content[t.content] = i;
        if (!t.text.empty())
            (t.normalized ? m_normalized : m_raw).insert(t.text, static_cast<std::int32_t>(i));
    }
}

const AddedToken* AddedVocabulary::by_id(TokenId id) const
{
    const auto it = m_by_id.find(id);
    return it == m_by_id.end() ? nullptr : &m_tokens[it->second];
}

const AddedToken* AddedVocabulary::by_content(std::string_view content) const
{
    const auto it = m_by_content.find(std::string(content));
    return it == m_by_content.end() ? nullptr : &m_tokens[it->second];
}

void AddedVocabulary::split(std::string_view text, bool normalized_tokens, std::vector<Segment>& out) const
{
    out.clear();
    const Trie& t = trie(normalized_tokens);
    std::size_t done = 0; // end of the last emitted segment
    if (!t.nodes_empty()) {
        for (std::size_t pos = 0; pos < text.size();) {
            if (!t.first_byte[static_cast<unsigned char>(text[pos])]) {
                ++pos;
                continue;
            }
            const auto [length, index] = t.longest_at(text, pos);
            if (index < 0) {
                ++pos;
                continue;
            }
            const AddedToken& token = m_tokens[static_cast<std::size_t>(index)];
            std::size_t start = pos, stop = pos + length;
            pos = stop; // matches never overlap, rejected ones included
            if (token.single_word) {
                const bool word_before = start > 0 && is_word_character(last_character(text.substr(0, start)));
                const bool word_after = stop < text.size() && is_word_character(first_character(text.substr(stop)));
                if (word_before || word_after)
                    continue;
            }
            if (token.lstrip)
                start = std::max(white_space_run_before(text.substr(0, start)), done);
            if (token.rstrip) {
                stop += white_space_run_after(text.substr(stop));
                pos = stop;
            }
            if (done < start)
                out.push_back({done, start, -1});
            out.push_back({start, stop, token.id});
            done = stop;
        }
    }
    if (done < text.size())
        out.push_back({done, text.size(), -1});
}

} // namespace layerwise::text
