#include "text/jinja_lexer.h"
#include "text/unicode.h"

#include "text/jinja_error.h"
#include "text/jinja_strings.h"

#include <cerrno>
#include <climits>
#include <cstdlib>

namespace layerwise::jinja {

std::string describe(Tok type)
{
    switch (type) {
    case Tok::data: return "template data / text";
    case Tok::variable_begin: return "begin of print statement";
    case Tok::variable_end: return "end of print statement";
    case Tok::block_begin: return "begin of statement block";
    case Tok::block_end: return "end of statement block";
    case Tok::name: return "name";
    case Tok::string: return "string";
    case Tok::integer: return "integer";
    case Tok::floating: return "float";
    case Tok::add: return "+";
    case Tok::sub: return "-";
    case Tok::div: return "/";
    case Tok::floordiv: return "//";
    case Tok::mul: return "*";
    case Tok::mod: return "%";
    case Tok::pow: return "**";
    case Tok::tilde: return "~";
    case Tok::lbracket: return "[";
    case Tok::rbracket: return "]";
    case Tok::lparen: return "(";
    case Tok::rparen: return ")";
    case Tok::lbrace: return "{";
    case Tok::rbrace: return "}";
    case Tok::eq: return "==";
    case Tok::ne: return "!=";
    case Tok::gt: return ">";
    case Tok::gteq: return ">=";
    case Tok::lt: return "<";
    case Tok::lteq: return "<=";
    case Tok::assign: return "=";
    case Tok::dot: return ".";
    case Tok::colon: return ":";
    case Tok::pipe: return "|";
    case Tok::comma: return ",";
    case Tok::semicolon: return ";";
    case Tok::eof: return "end of template";
    }
    return "?";
}

std::string describe(const Token& token)
{
    return token.type == Tok::name ? token.text : describe(token.type);
}

namespace {

[[noreturn]] void syntax_error(int line, const std::string& message)
{
    throw ChatTemplateError(ChatTemplateError::Kind::syntax, line, message);
}

int count_newlines(std::string_view s)
{
    int n = 0;
    for (char c : s)
        n += c == '\n';
    return n;
}

// Length in bytes of the Python-whitespace run at `pos`.
std::size_t whitespace_run(std::string_view s, std::size_t pos)
{
    std::size_t i = pos;
    while (i < s.size()) {
        const auto b = static_cast<unsigned char>(s[i]);
        if (b < 0x80) {
            if (!py_isspace(b))
                break;
            ++i;
            continue;
        }
        std::size_t j = i;
        char32_t cp;
        {
            int extra = b >= 0xF0 ? 3 : b >= 0xE0 ? 2 : 1;
            cp = b & (0x3F >> extra);
            ++j;
            for (int k = 0; k < extra && j < s.size(); ++k, ++j)
                cp = (cp << 6) | (static_cast<unsigned char>(s[j]) & 0x3F);
        }
        if (!py_isspace(cp))
            break;
        i = j;
    }
    return i - pos;
}

// Python's str.rstrip(): length of `s` without its trailing whitespace.
std::size_t rstripped_length(std::string_view s)
{
    const std::u32string u = to_u32(s);
    std::size_t e = u.size();
    while (e > 0 && py_isspace(u[e - 1]))
        --e;
    return to_utf8(std::u32string_view(u).substr(0, e)).size();
}

bool all_whitespace(std::string_view s) { return !s.empty() && whitespace_run(s, 0) == s.size(); }


// A string literal's body decoded the way jinja2 does it:
// .encode("ascii", "backslashreplace").decode("unicode-escape").
std::string unescape(std::string_view raw, int line)
{
    std::string out;
    out.reserve(raw.size());
    std::size_t i = 0;
    while (i < raw.size()) {
        const char c = raw[i];
        if (c != '\\') {
            out.push_back(c);
            ++i;
            continue;
        }
        ++i; // the lexer guarantees a character follows
        const char e = raw[i];
        const auto eb = static_cast<unsigned char>(e);
        if (eb >= 0x80) {
            // backslashreplace turned the character into \xNN / \uNNNN / \UNNNNNNNN, and the
            // escaped backslash before it makes those letters plain text.
            std::size_t j = i;
            const std::u32string one = to_u32(raw.substr(i, 4));
            const char32_t cp = one.empty() ? 0 : one[0];
            std::string tmp;
            append_utf8(tmp, cp);
            j += tmp.size();
            char buf[16];
            if (cp <= 0xFF)
                std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned>(cp));
            else if (cp <= 0xFFFF)
                std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(cp));
            else
                std::snprintf(buf, sizeof buf, "\\U%08x", static_cast<unsigned>(cp));
            out += buf;
            i = j;
            continue;
        }
        ++i;
        switch (e) {
        case '\\': out.push_back('\\'); break;
        case '\'': out.push_back('\''); break;
        case '"': out.push_back('"'); break;
        case 'a': out.push_back('\a'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'v': out.push_back('\v'); break;
        case '\n': break; // line continuation
        case 'x':
        case 'u':
        case 'U': {
            const int digits = e == 'x' ? 2 : e == 'u' ? 4 : 8;
            char32_t cp = 0;
            for (int k = 0; k < digits; ++k) {
                if (i + k >= raw.size() || text::hex_digit_value(raw[i + k]) < 0)
                    syntax_error(line, e == 'x'   ? "truncated \\xXX escape"
                                       : e == 'u' ? "truncated \\uXXXX escape"
                                                  : "truncated \\UXXXXXXXX escape");
                cp = cp * 16 + static_cast<char32_t>(text::hex_digit_value(raw[i + k]));
            }
            if (cp > 0x10FFFF)
                syntax_error(line, "illegal Unicode character");
            append_utf8(out, cp);
            i += digits;
            break;
        }
        case 'N': syntax_error(line, "named Unicode escapes (\\N{...}) are not supported in Layerwise chat templates");
        default:
            if (e >= '0' && e <= '7') {
                char32_t cp = static_cast<char32_t>(e - '0');
                for (int k = 0; k < 2 && i < raw.size() && raw[i] >= '0' && raw[i] <= '7'; ++k, ++i)
                    cp = cp * 8 + static_cast<char32_t>(raw[i] - '0');
                append_utf8(out, cp);
            } else {
                out.push_back('\\');
                out.push_back(e);
            }
        }
    }
    return out;
}

bool is_digit_ascii(char c) { return c >= '0' && c <= '9'; }

// Matches `(\d+_)*\d+` at pos; returns the end or npos.
std::size_t match_digits(std::string_view s, std::size_t pos)
{
    if (pos >= s.size() || !is_digit_ascii(s[pos]))
        return std::string_view::npos;
    std::size_t i = pos;
    while (true) {
        while (i < s.size() && is_digit_ascii(s[i]))
            ++i;
        if (i + 1 < s.size() && s[i] == '_' && is_digit_ascii(s[i + 1])) {
            ++i;
            continue;
        }
        return i;
    }
}

std::size_t match_float(std::string_view s, std::size_t pos)
{
    if (pos > 0 && s[pos - 1] == '.')
        return std::string_view::npos;
    const std::size_t int_end = match_digits(s, pos);
    if (int_end == std::string_view::npos)
        return std::string_view::npos;
    auto match_exponent = [&](std::size_t at) -> std::size_t {
        if (at < s.size() && (s[at] == 'e' || s[at] == 'E')) {
            std::size_t k = at + 1;
            if (k < s.size() && (s[k] == '+' || s[k] == '-'))
                ++k;
            return match_digits(s, k);
        }
        return std::string_view::npos;
    };
    std::size_t frac_end = std::string_view::npos;
    if (int_end < s.size() && s[int_end] == '.')
        frac_end = match_digits(s, int_end + 1);
    // (\.digits)? exponent  |  \.digits
    if (frac_end != std::string_view::npos) {
        const std::size_t with_exp = match_exponent(frac_end);
        return with_exp != std::string_view::npos ? with_exp : frac_end;
    }
    return match_exponent(int_end);
}

std::size_t match_integer(std::string_view s, std::size_t pos, int& base)
{
    auto run = [&](std::size_t i, auto valid) {
        // (_?[valid])+
        std::size_t k = i;
        bool any = false;
        while (true) {
            std::size_t t = k;
            if (t < s.size() && s[t] == '_')
                ++t;
            if (t < s.size() && valid(s[t])) {
                k = t + 1;
                any = true;
                continue;
            }
            break;
        }
        return any ? k : std::string_view::npos;
    };
    if (pos + 1 < s.size() && s[pos] == '0') {
        const char p = static_cast<char>(s[pos + 1] | 0x20);
        std::size_t end = std::string_view::npos;
        if (p == 'b') {
            end = run(pos + 2, [](char c) { return c == '0' || c == '1'; });
            base = 2;
        } else if (p == 'o') {
            end = run(pos + 2, [](char c) { return c >= '0' && c <= '7'; });
            base = 8;
        } else if (p == 'x') {
            end = run(pos + 2, [](char c) { return text::hex_digit_value(c) >= 0; });
            base = 16;
        }
        if (end != std::string_view::npos)
            return end;
    }
    base = 10;
    if (pos >= s.size() || !is_digit_ascii(s[pos]))
        return std::string_view::npos;
    if (s[pos] != '0') {
        const std::size_t rest = run(pos + 1, is_digit_ascii);
        return rest == std::string_view::npos ? pos + 1 : rest;
    }
    const std::size_t zeros = run(pos + 1, [](char c) { return c == '0'; });
    return zeros == std::string_view::npos ? pos + 1 : zeros;
}

bool name_start(unsigned char c) { return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80; }
bool name_char(unsigned char c) { return name_start(c) || is_digit_ascii(static_cast<char>(c)); }

struct OperatorSpelling {
    const char* text;
    Tok type;
};
constexpr OperatorSpelling operators[] = {
    {"//", Tok::floordiv}, {"**", Tok::pow}, {"==", Tok::eq}, {"!=", Tok::ne}, {">=", Tok::gteq},
    {"<=", Tok::lteq},     {"+", Tok::add},  {"-", Tok::sub}, {"/", Tok::div}, {"*", Tok::mul},
    {"%", Tok::mod},       {"~", Tok::tilde}, {"[", Tok::lbracket}, {"]", Tok::rbracket}, {"(", Tok::lparen},
    {")", Tok::rparen},    {"{", Tok::lbrace}, {"}", Tok::rbrace}, {">", Tok::gt}, {"<", Tok::lt},
    {"=", Tok::assign},    {".", Tok::dot},  {":", Tok::colon}, {"|", Tok::pipe}, {",", Tok::comma},
    {";", Tok::semicolon},
};

std::string python_char_repr(std::string_view s, std::size_t pos)
{
    std::size_t end = pos + 1;
    while (end < s.size() && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80)
        ++end;
    return py_repr_string(s.substr(pos, end - pos));
}

class Lexer {
public:
    explicit Lexer(std::string_view source)
    {
        // Only \n, \r\n and \r break lines; a single trailing newline is dropped.
        m_src.reserve(source.size());
        for (std::size_t i = 0; i < source.size(); ++i) {
            if (source[i] == '\r') {
                m_src.push_back('\n');
                if (i + 1 < source.size() && source[i + 1] == '\n')
                    ++i;
            } else {
                m_src.push_back(source[i]);
            }
        }
        if (!m_src.empty() && m_src.back() == '\n')
            m_src.pop_back();
    }

    std::vector<Token> run()
    {
        enum class State { root, block, variable, comment, raw };
        State state = State::root;
        while (true) {
            switch (state) {
            case State::root:
                if (!lex_root())
                    return finish();
                break;
            case State::block:
            case State::variable:
                if (!lex_tag(state == State::block))
                    return finish();
                if (m_popped) {
                    state = State::root;
                    m_popped = false;
                }
                break;
            case State::comment: lex_comment(); state = State::root; break;
            case State::raw: lex_raw(); state = State::root; break;
            }
            if (m_push_comment) {
                m_push_comment = false;
                state = State::comment;
            } else if (m_push_raw) {
                m_push_raw = false;
                state = State::raw;
            } else if (m_push_block) {
                m_push_block = false;
                state = State::block;
            } else if (m_push_variable) {
                m_push_variable = false;
                state = State::variable;
            }
        }
    }

private:
    std::vector<Token> finish()
    {
        Token eof;
        eof.type = Tok::eof;
        eof.line = m_line;
        m_tokens.push_back(eof);
        return std::move(m_tokens);
    }

    void emit(Tok type, std::string text = {})
    {
        Token t;
        t.type = type;
        t.line = m_line;
        t.text = std::move(text);
        m_tokens.push_back(std::move(t));
    }

    // The OptionalLStrip treatment of the text before a tag.
    std::string strip_before_tag(std::string_view text, char sign, bool is_variable, int& newlines_stripped)
    {
        newlines_stripped = 0;
        if (sign == '-') {
            const std::size_t keep = rstripped_length(text);
            newlines_stripped = count_newlines(text.substr(keep));
            return std::string(text.substr(0, keep));
        }
        if (sign != '+' && !is_variable) {
            const std::size_t nl = text.rfind('\n');
            const std::size_t l_pos = nl == std::string_view::npos ? 0 : nl + 1;
            if ((l_pos > 0 || m_line_starting) && all_whitespace(text.substr(l_pos)))
                return std::string(text.substr(0, l_pos));
        }
        return std::string(text);
    }

    void emit_data(std::string text, int newlines_stripped)
    {
        if (!text.empty())
            emit(Tok::data, text);
        m_line += count_newlines(text) + newlines_stripped;
    }

    // Matches `{%[-+]?\s*raw\s*(-%}\s*|%})` at pos; returns its end, the sign in `sign`.
    std::size_t match_raw_begin(std::size_t pos, char& sign) const
    {
        std::size_t i = pos + 2;
        sign = 0;
        if (i < m_src.size() && (m_src[i] == '-' || m_src[i] == '+'))
            sign = m_src[i++];
        i += whitespace_run(m_src, i);
        if (m_src.compare(i, 3, "raw") != 0)
            return std::string::npos;
        i += 3;
        i += whitespace_run(m_src, i);
        if (m_src.compare(i, 3, "-%}") == 0)
            return i + 3 + whitespace_run(m_src, i + 3);
        if (m_src.compare(i, 2, "%}") == 0)
            return i + 2;
        return std::string::npos;
    }

    bool lex_root()
    {
        if (m_pos >= m_src.size())
            return false;
        std::size_t p = m_pos;
        while (true) {
            p = m_src.find('{', p);
            if (p == std::string::npos || p + 1 >= m_src.size()) {
                // the rest is template data
                std::string text = m_src.substr(m_pos);
                m_pos = m_src.size();
                emit_data(std::move(text), 0);
                return false;
            }
            const char next = m_src[p + 1];
            if (next == '{' || next == '%' || next == '#')
                break;
            ++p;
        }
        const std::string_view text(m_src.data() + m_pos, p - m_pos);
        char raw_sign = 0;
        const std::size_t raw_end = m_src[p + 1] == '%' ? match_raw_begin(p, raw_sign) : std::string::npos;
        const char opener = m_src[p + 1];
        std::size_t tag_end;
        char sign = 0;
        if (raw_end != std::string::npos) {
            sign = raw_sign;
            tag_end = raw_end;
        } else {
            tag_end = p + 2;
            if (tag_end < m_src.size() && (m_src[tag_end] == '-' || m_src[tag_end] == '+'))
                sign = m_src[tag_end++];
        }
        int stripped = 0;
        emit_data(strip_before_tag(text, sign, raw_end == std::string::npos && opener == '{', stripped), stripped);
        const std::string_view tag(m_src.data() + p, tag_end - p);
        if (raw_end != std::string::npos) {
            m_push_raw = true;
        } else if (opener == '{') {
            emit(Tok::variable_begin, std::string(tag));
            m_push_variable = true;
        } else if (opener == '%') {
            emit(Tok::block_begin, std::string(tag));
            m_push_block = true;
        } else {
            m_push_comment = true;
        }
        m_line += count_newlines(tag);
        m_line_starting = tag_end > m_pos && m_src[tag_end - 1] == '\n';
        m_pos = tag_end;
        return true;
    }

    // One token inside {% %} or {{ }}; false at the end of the source.
    bool lex_tag(bool block)
    {
        if (m_balance.empty()) {
            std::size_t end = std::string::npos;
            if (block) {
                if (m_src.compare(m_pos, 3, "+%}") == 0)
                    end = m_pos + 3;
                else if (m_src.compare(m_pos, 3, "-%}") == 0)
                    end = m_pos + 3 + whitespace_run(m_src, m_pos + 3);
                else if (m_src.compare(m_pos, 2, "%}") == 0)
                    end = m_pos + 2 + (m_pos + 2 < m_src.size() && m_src[m_pos + 2] == '\n' ? 1 : 0);
            } else {
                if (m_src.compare(m_pos, 3, "-}}") == 0)
                    end = m_pos + 3 + whitespace_run(m_src, m_pos + 3);
                else if (m_src.compare(m_pos, 2, "}}") == 0)
                    end = m_pos + 2;
            }
            if (end != std::string::npos) {
                const std::string_view matched(m_src.data() + m_pos, end - m_pos);
                emit(block ? Tok::block_end : Tok::variable_end, std::string(matched));
                m_line += count_newlines(matched);
                m_line_starting = !matched.empty() && matched.back() == '\n';
                m_pos = end;
                m_popped = true;
                return true;
            }
        }
        if (m_pos >= m_src.size())
            return false;
        const std::size_t ws = whitespace_run(m_src, m_pos);
        if (ws > 0) {
            const std::string_view matched(m_src.data() + m_pos, ws);
            m_line += count_newlines(matched);
            m_line_starting = matched.back() == '\n';
            m_pos += ws;
            return true;
        }
        m_line_starting = false;
        const char c = m_src[m_pos];
        // float, then integer
        if (const std::size_t fend = match_float(m_src, m_pos); fend != std::string::npos) {
            std::string digits;
            for (std::size_t i = m_pos; i < fend; ++i)
                if (m_src[i] != '_')
                    digits.push_back(m_src[i]);
            Token t;
            t.type = Tok::floating;
            t.line = m_line;
            t.text = m_src.substr(m_pos, fend - m_pos);
            t.floating = std::strtod(digits.c_str(), nullptr);
            m_tokens.push_back(std::move(t));
            m_pos = fend;
            return true;
        }
        int base = 10;
        if (const std::size_t iend = match_integer(m_src, m_pos, base); iend != std::string::npos) {
            std::string digits;
            for (std::size_t i = m_pos + (base == 10 ? 0 : 2); i < iend; ++i)
                if (m_src[i] != '_')
                    digits.push_back(m_src[i]);
            Token t;
            t.type = Tok::integer;
            t.line = m_line;
            t.text = m_src.substr(m_pos, iend - m_pos);
            errno = 0;
            const unsigned long long value = std::strtoull(digits.c_str(), nullptr, base);
            if (errno == ERANGE || value > static_cast<unsigned long long>(INT64_MAX))
                syntax_error(m_line, "integer literal " + t.text + " is too large for Layerwise (64-bit integers)");
            t.integer = static_cast<std::int64_t>(value);
            m_tokens.push_back(std::move(t));
            m_pos = iend;
            return true;
        }
        if (name_start(static_cast<unsigned char>(c))) {
            std::size_t i = m_pos + 1;
            while (i < m_src.size() && name_char(static_cast<unsigned char>(m_src[i])))
                ++i;
            emit(Tok::name, m_src.substr(m_pos, i - m_pos));
            m_pos = i;
            return true;
        }
        if (c == '\'' || c == '"') {
            std::size_t i = m_pos + 1;
            while (i < m_src.size() && m_src[i] != c) {
                if (m_src[i] == '\\' && i + 1 < m_src.size())
                    ++i;
                ++i;
            }
            if (i < m_src.size()) {
                const std::string_view raw(m_src.data() + m_pos + 1, i - m_pos - 1);
                emit(Tok::string, unescape(raw, m_line));
                m_line += count_newlines(raw);
                m_pos = i + 1;
                return true;
            }
            // unterminated: falls through to "unexpected char"
        }
        for (const auto& op : operators) {
            const std::size_t n = std::char_traits<char>::length(op.text);
            if (m_src.compare(m_pos, n, op.text) != 0)
                continue;
            if (op.type == Tok::lbrace || op.type == Tok::lparen || op.type == Tok::lbracket) {
                m_balance.push_back(op.type == Tok::lbrace ? '}' : op.type == Tok::lparen ? ')' : ']');
            } else if (op.type == Tok::rbrace || op.type == Tok::rparen || op.type == Tok::rbracket) {
                if (m_balance.empty())
                    syntax_error(m_line, std::string("unexpected '") + op.text + "'");
                const char expected = m_balance.back();
                m_balance.pop_back();
                if (expected != op.text[0])
                    syntax_error(m_line, std::string("unexpected '") + op.text + "', expected '" + expected + "'");
            }
            emit(op.type, op.text);
            m_pos += n;
            return true;
        }
        syntax_error(m_line, "unexpected char " + python_char_repr(m_src, m_pos) + " at " +
                                 std::to_string(code_point_count(std::string_view(m_src).substr(0, m_pos))));
    }

    void lex_comment()
    {
        std::size_t q = m_pos;
        while (true) {
            q = m_src.find("#}", q);
            if (q == std::string::npos)
                syntax_error(m_line, "Missing end of comment tag");
            break;
        }
        // The earliest of "+#}", "-#}" or "#}" — a sign directly before "#}" belongs to the end tag.
        std::size_t text_end = q;
        std::size_t end = q + 2;
        if (q > m_pos && m_src[q - 1] == '-') {
            text_end = q - 1;
            end = q + 2 + whitespace_run(m_src, q + 2);
        } else if (q > m_pos && m_src[q - 1] == '+') {
            text_end = q - 1;
        } else if (end < m_src.size() && m_src[end] == '\n') {
            ++end;
        }
        const std::string_view text(m_src.data() + m_pos, text_end - m_pos);
        const std::string_view tail(m_src.data() + text_end, end - text_end);
        m_line += count_newlines(text) + count_newlines(tail);
        m_line_starting = end > m_pos && m_src[end - 1] == '\n';
        m_pos = end;
    }

    void lex_raw()
    {
        std::size_t q = m_pos;
        while (true) {
            q = m_src.find("{%", q);
            if (q == std::string::npos)
                syntax_error(m_line, "Missing end of raw directive");
            std::size_t i = q + 2;
            char sign = 0;
            if (i < m_src.size() && (m_src[i] == '-' || m_src[i] == '+'))
                sign = m_src[i++];
            i += whitespace_run(m_src, i);
            if (m_src.compare(i, 6, "endraw") != 0) {
                ++q;
                continue;
            }
            i += 6;
            i += whitespace_run(m_src, i);
            std::size_t end;
            if (m_src.compare(i, 3, "+%}") == 0)
                end = i + 3;
            else if (m_src.compare(i, 3, "-%}") == 0)
                end = i + 3 + whitespace_run(m_src, i + 3);
            else if (m_src.compare(i, 2, "%}") == 0)
                end = i + 2 + (i + 2 < m_src.size() && m_src[i + 2] == '\n' ? 1 : 0);
            else {
                ++q;
                continue;
            }
            const std::string_view text(m_src.data() + m_pos, q - m_pos);
            int stripped = 0;
            emit_data(strip_before_tag(text, sign, false, stripped), stripped);
            const std::string_view tail(m_src.data() + q, end - q);
            m_line += count_newlines(tail);
            m_line_starting = end > m_pos && m_src[end - 1] == '\n';
            m_pos = end;
            return;
        }
    }

    std::string m_src;
    std::size_t m_pos = 0;
    int m_line = 1;
    bool m_line_starting = true;
    std::vector<char> m_balance;
    std::vector<Token> m_tokens;
    bool m_push_comment = false, m_push_raw = false, m_push_block = false, m_push_variable = false;
    bool m_popped = false;
};

} // namespace

std::vector<Token> tokenize(std::string_view source)
{
    return Lexer(source).run();
}

} // namespace layerwise::jinja
