#pragma once
// The regular expressions of tokenizer.json (Oniguruma syntax in HF tokenizers) through PCRE2
// in UTF + UCP mode, JIT-compiled where the platform allows it, after adapt_pattern() has
// aligned the Unicode classes with Oniguruma's. Subjects must be valid UTF-8 (the tokenizer
// checks its input once).
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace layerwise::text {

class Regex {
public:
    // Throws FormatError naming `where` (e.g. "tokenizer.json: pre_tokenizer.pattern.Regex")
    // when PCRE2 rejects the pattern.
    Regex(const std::string& pattern, const std::string& where);
    ~Regex();
    Regex(const Regex&) = delete;
    Regex& operator=(const Regex&) = delete;

    // Every non-overlapping match, left to right, as [begin, end) byte offsets. After an empty
    // match the search resumes one character further.
    void find_all(std::string_view subject, std::vector<std::pair<std::size_t, std::size_t>>& matches) const;

    // Whether the pattern matches somewhere in `subject`.
    bool search(std::string_view subject) const;

    const std::string& pattern() const { return m_pattern; }

private:
    struct Compiled;
    std::string m_pattern;
    std::unique_ptr<Compiled> m_compiled;
};

// tokenizer.json's Replace (normalizer and decoder alike): every match of a literal string or a
// regex, left to right, replaced by `content`.
class Replacement {
public:
    Replacement(const std::string& pattern, bool literal, std::string content, const std::string& where);
    // Replaces in place; false (and `text` untouched) when nothing matched.
    bool apply(std::string& text) const;

private:
    std::string m_literal;          // a non-empty literal pattern
    std::unique_ptr<Regex> m_regex; // otherwise
    std::string m_content;
};

// An Oniguruma pattern as PCRE2 should see it: \p{L} and \p{N} gain the characters HF's
// newer Unicode assigned to them, \s and \S become Unicode's White_Space exactly.
std::string adapt_pattern(std::string_view pattern);

// `text` with every PCRE2 metacharacter escaped, for literal patterns.
std::string regex_escape(std::string_view text);

} // namespace layerwise::text
