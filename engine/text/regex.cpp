#include "text/regex.h"

#include <cstdio>

#include "core/error.h"
#include "text/unicode_tables.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

namespace layerwise::text {

namespace {

struct MatchDataDeleter {
    void operator()(pcre2_match_data* d) const { pcre2_match_data_free(d); }
};

struct JitStack {
    // A thread's JIT stack: long whitespace runs under a look-ahead need more than the default 32 KiB.
    pcre2_jit_stack* stack = pcre2_jit_stack_create(32 * 1024, 16 * 1024 * 1024, nullptr);
    pcre2_match_context* context = nullptr;
    JitStack()
    {
        context = pcre2_match_context_create(nullptr);
        if (stack && context)
            pcre2_jit_stack_assign(context, nullptr, stack);
    }
    ~JitStack()
    {
        pcre2_match_context_free(context);
        pcre2_jit_stack_free(stack);
    }
};

pcre2_match_context* thread_match_context()
{
    thread_local JitStack jit;
    return jit.context;
}

std::string pcre2_message(int code)
{
    PCRE2_UCHAR buffer[256];
    if (pcre2_get_error_message(code, buffer, sizeof buffer) < 0)
        return "PCRE2 error " + std::to_string(code);
    return reinterpret_cast<const char*>(buffer);
}

std::string class_ranges(const tables::CodePointRange* ranges, std::size_t count)
{
    std::string out;
    char buffer[40];
    for (std::size_t i = 0; i < count; ++i) {
        if (ranges[i].first == ranges[i].last)
            std::snprintf(buffer, sizeof buffer, "\\x{%X}", static_cast<unsigned>(ranges[i].first));
        else
            std::snprintf(buffer, sizeof buffer, "\\x{%X}-\\x{%X}", static_cast<unsigned>(ranges[i].first),
                          static_cast<unsigned>(ranges[i].last));
        out += buffer;
    }
    return out;
}

// Oniguruma's \s: exactly Unicode's White_Space (PCRE2 10.42 adds U+180E).
const char* const white_space_items = "\\t\\n\\x{0B}\\f\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}"
                                      "\\x{2029}\\x{202F}\\x{205F}\\x{3000}";

} // namespace

std::string adapt_pattern(std::string_view pattern)
{
    static const std::string letter_items = "\\p{L}" + class_ranges(tables::regex_letter_extra, tables::regex_letter_extra_count);
    static const std::string number_items = "\\p{N}" + class_ranges(tables::regex_number_extra, tables::regex_number_extra_count);
    std::string out;
    out.reserve(pattern.size() * 2);
    bool in_class = false;
    std::size_t i = 0;
    const std::size_t n = pattern.size();
    while (i < n) {
        const char c = pattern[i];
        if (c == '\\' && i + 1 < n) {
            const char d = pattern[i + 1];
            if (d == 'Q') { // a quoted literal runs to \E
                const std::size_t end = pattern.find("\\E", i + 2);
                const std::size_t stop = end == std::string_view::npos ? n : end + 2;
                out.append(pattern.substr(i, stop - i));
                i = stop;
                continue;
            }
            if (d == 'p' || d == 'P') {
                std::size_t stop = i + 2;
                std::string_view name;
                if (stop < n && pattern[stop] == '{') {
                    const std::size_t close = pattern.find('}', stop);
                    if (close != std::string_view::npos) {
                        name = pattern.substr(stop + 1, close - stop - 1);
                        stop = close + 1;
                    }
                } else if (stop < n) {
                    name = pattern.substr(stop, 1);
                    stop += 1;
                }
                const std::string* items = nullptr;
                if (name == "L" || name == "Letter")
                    items = &letter_items;
                else if (name == "N" || name == "Number")
                    items = &number_items;
                if (items && !in_class)
                    ((out += d == 'p' ? "[" : "[^") += *items) += ']';
                else if (items && d == 'p')
                    out += *items;
                else
                    out.append(pattern.substr(i, stop - i));
                i = stop;
                continue;
            }
            if (d == 's') {
                if (in_class)
                    out += white_space_items;
                else
                    ((out += '[') += white_space_items) += ']';
                i += 2;
                continue;
            }
            if (d == 'S' && !in_class) {
                ((out += "[^") += white_space_items) += ']';
                i += 2;
                continue;
            }
            out.append(pattern.substr(i, 2));
            i += 2;
            continue;
        }
        if (!in_class && c == '[') {
            in_class = true;
            out += c;
            ++i;
            if (i < n && pattern[i] == '^')
                out += pattern[i++];
            if (i < n && pattern[i] == ']') // a leading ']' is a literal
                out += pattern[i++];
            continue;
        }
        if (in_class && c == '[' && i + 1 < n && pattern[i + 1] == ':') { // [:alpha:]
            const std::size_t close = pattern.find(":]", i + 2);
            const std::size_t stop = close == std::string_view::npos ? i + 1 : close + 2;
            out.append(pattern.substr(i, stop - i));
            i = stop;
            continue;
        }
        if (in_class && c == ']')
            in_class = false;
        out += c;
        ++i;
    }
    return out;
}

struct Regex::Compiled {
    pcre2_code* code = nullptr;
    bool jit = false;
    ~Compiled() { pcre2_code_free(code); }

    // One match at or after `start`; returns false when there is none.
    bool match(std::string_view subject, std::size_t start, pcre2_match_data* data, const std::string& pattern) const
    {
        const auto* text = reinterpret_cast<PCRE2_SPTR>(subject.data());
        int rc = PCRE2_ERROR_NOMATCH;
        if (jit)
            rc = pcre2_jit_match(code, text, subject.size(), start, 0, data, thread_match_context());
        if (!jit || (rc < 0 && rc != PCRE2_ERROR_NOMATCH)) // the interpreter when JIT is absent or ran out of stack
            rc = pcre2_match(code, text, subject.size(), start, PCRE2_NO_UTF_CHECK, data, nullptr);
        if (rc == PCRE2_ERROR_NOMATCH)
            return false;
        if (rc < 0)
            throw UnsupportedError("the regular expression '" + pattern + "' failed on a text of " +
                                   std::to_string(subject.size()) + " bytes: " + pcre2_message(rc) +
                                   "; split the text into smaller pieces");
        return true;
    }
};

Regex::Regex(const std::string& pattern, const std::string& where) : m_pattern(pattern), m_compiled(std::make_unique<Compiled>())
{
    int error = 0;
    PCRE2_SIZE offset = 0;
    const std::string adapted = adapt_pattern(pattern);
    m_compiled->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(adapted.data()), adapted.size(),
                                     PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &error, &offset, nullptr);
    if (!m_compiled->code)
        throw FormatError(where + ": the regular expression '" + pattern + "' is invalid at offset " +
                          std::to_string(offset) + " (" + pcre2_message(error) +
                          "); the file may be damaged or use a regex feature PCRE2 lacks");
    m_compiled->jit = pcre2_jit_compile(m_compiled->code, PCRE2_JIT_COMPLETE) == 0;
}

Regex::~Regex() = default;

void Regex::find_all(std::string_view subject, std::vector<std::pair<std::size_t, std::size_t>>& matches) const
{
    matches.clear();
    std::unique_ptr<pcre2_match_data, MatchDataDeleter> data(
        pcre2_match_data_create_from_pattern(m_compiled->code, nullptr));
    std::size_t start = 0;
    while (start <= subject.size()) {
        if (!m_compiled->match(subject, start, data.get(), m_pattern))
            break;
        const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data.get());
        const std::size_t begin = ovector[0], end = ovector[1];
        matches.emplace_back(begin, end);
        if (end > begin) {
            start = end;
        } else {
            if (end >= subject.size())
                break;
            start = end + 1; // past one whole character
            while (start < subject.size() && (static_cast<unsigned char>(subject[start]) & 0xC0) == 0x80)
                ++start;
        }
    }
}

bool Regex::search(std::string_view subject) const
{
    std::unique_ptr<pcre2_match_data, MatchDataDeleter> data(
        pcre2_match_data_create_from_pattern(m_compiled->code, nullptr));
    return m_compiled->match(subject, 0, data.get(), m_pattern);
}

std::string regex_escape(std::string_view text)
{
    std::string out;
    for (char c : text) {
        if (std::string_view("\\^$.|?*+()[]{}-/#& \t\n\r").find(c) != std::string_view::npos) {
            if (c == '\t')
                out += "\\t";
            else if (c == '\n')
                out += "\\n";
            else if (c == '\r')
                out += "\\r";
            else
                (out += '\\') += c;
        } else {
            out += c;
        }
    }
    return out;
}

Replacement::Replacement(const std::string& pattern, bool literal, std::string content, const std::string& where)
    : m_content(std::move(content))
{
    if (literal && !pattern.empty())
        m_literal = pattern;
    else
        m_regex = std::make_unique<Regex>(literal ? regex_escape(pattern) : pattern, where);
}

bool Replacement::apply(std::string& text) const
{
    std::vector<std::pair<std::size_t, std::size_t>> matches;
    if (m_regex) {
        m_regex->find_all(text, matches);
    } else {
        for (std::size_t at = 0; (at = text.find(m_literal, at)) != std::string::npos; at += m_literal.size())
            matches.emplace_back(at, at + m_literal.size());
    }
    if (matches.empty())
        return false;
    std::string out;
    std::size_t from = 0;
    for (const auto& [b, e] : matches) {
        (out.append(text, from, b - from)) += m_content;
        from = e;
    }
    out.append(text, from, std::string::npos);
    text = std::move(out);
    return true;
}

} // namespace layerwise::text
