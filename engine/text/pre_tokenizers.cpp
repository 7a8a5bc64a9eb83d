#include "text/pre_tokenizers.h"

#include "text/regex.h"
#include "text/unicode.h"

#include <algorithm>
#include <array>
#include <vector>

namespace layerwise::text {

namespace {

// GPT-2's pre-tokenization pattern, which HF's ByteLevel pre-tokenizer applies when use_regex is set.
const char* const gpt2_pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

struct ByteLevelAlphabet {
    std::array<std::string, 256> chars;
    std::array<int, 512> bytes{}; // indexed by code point; every alphabet character is below U+0200
    ByteLevelAlphabet()
    {
        bytes.fill(-1);
        int next = 0;
        for (int b = 0; b < 256; ++b) {
            const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
            const char32_t c = printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + next++);
            append_utf8(chars[static_cast<std::size_t>(b)], c);
            bytes[c] = b;
        }
    }
};

const ByteLevelAlphabet& alphabet()
{
    static const ByteLevelAlphabet a;
    return a;
}

void map_to_byte_level(std::string_view text, std::string& out)
{
    const ByteLevelAlphabet& a = alphabet();
    out.clear();
    out.reserve(text.size() * 2);
    for (char c : text)
        out += a.chars[static_cast<unsigned char>(c)];
}

enum class SplitBehavior { removed, isolated, merged_with_previous, merged_with_next, contiguous };

struct Span {
    std::size_t begin, end;
    bool is_match;
};

// HF's SplitDelimiterBehavior applied to the matches of a pattern in `piece`.
void split_by_matches(std::string_view piece, bool at_start, const std::vector<std::pair<std::size_t, std::size_t>>& matches,
                      SplitBehavior behavior, bool invert, PieceSink sink)
{
    std::vector<Span> spans;
    spans.reserve(matches.size() * 2 + 1);
    std::size_t previous = 0;
    for (const auto& [b, e] : matches) {
        if (previous != b)
            spans.push_back({previous, b, invert});
        spans.push_back({b, e, !invert});
        previous = e;
    }
    if (previous != piece.size())
        spans.push_back({previous, piece.size(), invert});

    std::vector<Span> out;
    out.reserve(spans.size());
    bool previous_match = false;
    switch (behavior) {
    case SplitBehavior::removed:
        for (const Span& s : spans)
            if (!s.is_match)
                out.push_back(s);
        break;
    case SplitBehavior::isolated:
        out = spans;
        break;
    case SplitBehavior::merged_with_previous:
        for (const Span& s : spans) {
            if (s.is_match && !previous_match && !out.empty())
                out.back().end = s.end;
            else
                out.push_back(s);
            previous_match = s.is_match;
        }
        break;
    case SplitBehavior::merged_with_next:
        for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
            if (it->is_match && !previous_match && !out.empty())
                out.back().begin = it->begin;
            else
                out.push_back(*it);
            previous_match = it->is_match;
        }
        std::reverse(out.begin(), out.end());
        break;
    case SplitBehavior::contiguous:
        for (const Span& s : spans) {
            if (s.is_match == previous_match && !out.empty())
                out.back().end = s.end;
            else
                out.push_back(s);
            previous_match = s.is_match;
        }
        break;
    }
    for (const Span& s : out)
        if (s.end > s.begin)
            sink(piece.substr(s.begin, s.end - s.begin), at_start && s.begin == 0);
}

class SequencePreTokenizer : public PreTokenizer {
public:
    explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> parts) : m_parts(std::move(parts)) {}
    void split(std::string_view piece, bool at_start, PieceSink sink) const override { run(0, piece, at_start, sink); }

private:
    void run(std::size_t stage, std::string_view piece, bool at_start, PieceSink sink) const
    {
        if (stage == m_parts.size()) {
            sink(piece, at_start);
            return;
        }
        m_parts[stage]->split(piece, at_start, [&](std::string_view sub, bool sub_at_start) { run(stage + 1, sub, sub_at_start, sink); });
    }
    std::vector<std::unique_ptr<PreTokenizer>> m_parts;
};

class ByteLevelPreTokenizer : public PreTokenizer {
public:
    ByteLevelPreTokenizer(bool add_prefix_space, bool use_regex) : m_add_prefix_space(add_prefix_space), m_use_regex(use_regex) {}
    void split(std::string_view piece, bool at_start, PieceSink sink) const override
    {
        std::string prefixed;
        if (m_add_prefix_space && (piece.empty() || piece.front() != ' ')) {
            prefixed.reserve(piece.size() + 1);
            (prefixed += ' ') += piece;
            piece = prefixed;
        }
        std::string mapped;
        if (!m_use_regex) {
            map_to_byte_level(piece, mapped);
            sink(mapped, at_start);
            return;
        }
        static const Regex gpt2(gpt2_pattern, "the ByteLevel pre-tokenizer");
        std::vector<std::pair<std::size_t, std::size_t>> matches;
        gpt2.find_all(piece, matches);
        split_by_matches(piece, at_start, matches, SplitBehavior::isolated, false, [&](std::string_view word, bool word_at_start) {
            map_to_byte_level(word, mapped);
            sink(mapped, word_at_start);
        });
    }

private:
    bool m_add_prefix_space;
    bool m_use_regex;
};

class RegexSplitPreTokenizer : public PreTokenizer {
public:
    RegexSplitPreTokenizer(const std::string& pattern, const std::string& where, SplitBehavior behavior, bool invert)
        : m_regex(pattern, where), m_behavior(behavior), m_invert(invert)
    {
    }
    void split(std::string_view piece, bool at_start, PieceSink sink) const override
    {
        std::vector<std::pair<std::size_t, std::size_t>> matches;
        m_regex.find_all(piece, matches);
        split_by_matches(piece, at_start, matches, m_behavior, m_invert, sink);
    }

private:
    Regex m_regex;
    SplitBehavior m_behavior;
    bool m_invert;
};

enum class PrependScheme { always, first, never };

class MetaspacePreTokenizer : public PreTokenizer {
public:
    MetaspacePreTokenizer(std::string replacement, PrependScheme scheme, bool split)
        : m_replacement(std::move(replacement)), m_scheme(scheme), m_split(split)
    {
    }
    void split(std::string_view piece, bool at_start, PieceSink sink) const override
    {
        std::string text;
        text.reserve(piece.size() + m_replacement.size());
        for (char c : piece) {
            if (c == ' ')
                text += m_replacement;
            else
                text += c;
        }
        const bool starts_with_replacement = text.compare(0, m_replacement.size(), m_replacement) == 0;
        if (!starts_with_replacement && (m_scheme == PrependScheme::always || (m_scheme == PrependScheme::first && at_start)))
            text.insert(0, m_replacement);
        if (!m_split) {
            sink(text, at_start);
            return;
        }
        std::vector<std::pair<std::size_t, std::size_t>> matches;
        for (std::size_t at = 0; (at = text.find(m_replacement, at)) != std::string::npos; at += m_replacement.size())
            matches.emplace_back(at, at + m_replacement.size());
        split_by_matches(text, at_start, matches, SplitBehavior::merged_with_next, false, sink);
    }

private:
    std::string m_replacement;
    PrependScheme m_scheme;
    bool m_split;
};

class WhitespaceSplitPreTokenizer : public PreTokenizer {
public:
    void split(std::string_view piece, bool at_start, PieceSink sink) const override
    {
        std::size_t word = std::string_view::npos;
        for (std::size_t pos = 0; pos < piece.size();) {
            const std::size_t at = pos;
            const bool space = is_white_space(next_code_point(piece, pos));
            if (space && word != std::string_view::npos) {
                sink(piece.substr(word, at - word), at_start && word == 0);
                word = std::string_view::npos;
            } else if (!space && word == std::string_view::npos) {
                word = at;
            }
        }
        if (word != std::string_view::npos)
            sink(piece.substr(word), at_start && word == 0);
    }
};

SplitBehavior parse_behavior(const JsonField& field)
{
    const std::string name = field.string();
    if (name == "Removed")
        return SplitBehavior::removed;
    if (name == "Isolated")
        return SplitBehavior::isolated;
    if (name == "MergedWithPrevious")
        return SplitBehavior::merged_with_previous;
    if (name == "MergedWithNext")
        return SplitBehavior::merged_with_next;
    if (name == "Contiguous")
        return SplitBehavior::contiguous;
    field.unsupported("'" + name + "'", "Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous");
}

} // namespace

const std::string& byte_level_char(unsigned char b) { return alphabet().chars[b]; }

std::string metaspace_prepend_scheme(const JsonField& field)
{
    std::string scheme = "always";
    if (field.has("prepend_scheme")) {
        const JsonField s = field["prepend_scheme"];
        scheme = s.string();
        if (scheme != "always" && scheme != "first" && scheme != "never")
            s.unsupported("'" + scheme + "'", "always, first, never");
    }
    if (field.has("add_prefix_space") && !field["add_prefix_space"].boolean() && scheme != "never")
        field["add_prefix_space"].fail("is false, which contradicts prepend_scheme '" + scheme + "'");
    return scheme;
}

int byte_level_byte(char32_t c) { return c < 512 ? alphabet().bytes[c] : -1; }

std::unique_ptr<PreTokenizer> make_byte_level_pre_tokenizer(bool add_prefix_space, bool use_regex)
{
    return std::make_unique<ByteLevelPreTokenizer>(add_prefix_space, use_regex);
}

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const JsonField& field)
{
    if (field.value().is_null())
        return nullptr;
    field.require_object();
    const std::string type = field["type"].string();
    if (type == "Sequence") {
        const JsonField list = field["pretokenizers"];
        list.require_array();
        std::vector<std::unique_ptr<PreTokenizer>> parts;
        for (std::size_t i = 0; i < list.value().size(); ++i)
            if (auto p = make_pre_tokenizer(list.at(i)))
                parts.push_back(std::move(p));
        return std::make_unique<SequencePreTokenizer>(std::move(parts));
    }
    if (type == "ByteLevel")
        return make_byte_level_pre_tokenizer(field.boolean_or("add_prefix_space", true), field.boolean_or("use_regex", true));
    if (type == "Split") {
        const JsonField pattern = field["pattern"];
        pattern.require_object();
        std::string regex;
        if (pattern.has("String"))
            regex = regex_escape(pattern["String"].string());
        else if (pattern.has("Regex"))
            regex = pattern["Regex"].string();
        else
            pattern.fail("must hold \"String\" or \"Regex\"");
        return std::make_unique<RegexSplitPreTokenizer>(regex, pattern.where(), parse_behavior(field["behavior"]),
                                                        field.boolean_or("invert", false));
    }
    if (type == "Metaspace") {
        const std::string replacement = field.string_or("replacement", "\xE2\x96\x81");
        std::size_t pos = 0;
        if (replacement.empty() || (next_code_point(replacement, pos), pos != replacement.size()))
            field["replacement"].fail("must be exactly one character");
        const std::string name = metaspace_prepend_scheme(field);
        const PrependScheme scheme = name == "first" ? PrependScheme::first : name == "never" ? PrependScheme::never : PrependScheme::always;
        return std::make_unique<MetaspacePreTokenizer>(replacement, scheme, field.boolean_or("split", true));
    }
    if (type == "Digits")
        return std::make_unique<RegexSplitPreTokenizer>(field.boolean_or("individual_digits", false) ? R"(\p{N})" : R"(\p{N}+)",
                                                        field.where(), SplitBehavior::isolated, false);
    if (type == "Whitespace")
        return std::make_unique<RegexSplitPreTokenizer>(R"(\w+|[^\w\s]+)", field.where(), SplitBehavior::removed, true);
    if (type == "WhitespaceSplit")
        return std::make_unique<WhitespaceSplitPreTokenizer>();
    field["type"].unsupported("'" + type + "'", "ByteLevel, Split, Metaspace, Digits, Whitespace, WhitespaceSplit, Sequence");
}

} // namespace layerwise::text
