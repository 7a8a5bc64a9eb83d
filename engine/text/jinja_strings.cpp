#include "text/jinja_strings.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace layerwise::jinja {

// ---------------------------------------------------------------- UTF-8

namespace {

// Decodes one code point at `i`, advancing it. Input is assumed valid (checked at the boundary).
char32_t decode_at(std::string_view s, std::size_t& i)
{
    const auto b0 = static_cast<unsigned char>(s[i]);
    if (b0 < 0x80) {
        ++i;
        return b0;
    }
    int extra = b0 >= 0xF0 ? 3 : b0 >= 0xE0 ? 2 : 1;
    char32_t cp = b0 & (0x3F >> extra);
    ++i;
    for (int k = 0; k < extra && i < s.size(); ++k, ++i)
        cp = (cp << 6) | (static_cast<unsigned char>(s[i]) & 0x3F);
    return cp;
}

} // namespace

bool utf8_valid(std::string_view s)
{
    std::size_t i = 0;
    while (i < s.size()) {
        const auto b0 = static_cast<unsigned char>(s[i]);
        if (b0 < 0x80) {
            ++i;
            continue;
        }
        int extra;
        char32_t min;
        if ((b0 & 0xE0) == 0xC0) {
            extra = 1;
            min = 0x80;
        } else if ((b0 & 0xF0) == 0xE0) {
            extra = 2;
            min = 0x800;
        } else if ((b0 & 0xF8) == 0xF0) {
            extra = 3;
            min = 0x10000;
        } else {
            return false;
        }
        if (i + static_cast<std::size_t>(extra) >= s.size())
            return false;
        char32_t cp = b0 & (0x3F >> extra);
        for (int k = 1; k <= extra; ++k) {
            const auto b = static_cast<unsigned char>(s[i + k]);
            if ((b & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (b & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += extra + 1;
    }
    return true;
}

bool is_ascii(std::string_view s)
{
    for (char c : s)
        if (static_cast<unsigned char>(c) >= 0x80)
            return false;
    return true;
}

void append_utf8(std::string& out, char32_t cp)
{
    if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
        out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
}

std::u32string to_u32(std::string_view s)
{
    std::u32string out;
    out.reserve(s.size());
    std::size_t i = 0;
    while (i < s.size())
        out.push_back(decode_at(s, i));
    return out;
}

std::string to_utf8(std::u32string_view s)
{
    std::string out;
    out.reserve(s.size());
    for (char32_t c : s)
        append_utf8(out, c);
    return out;
}

std::size_t code_point_count(std::string_view s)
{
    std::size_t n = 0;
    for (char c : s)
        if ((static_cast<unsigned char>(c) & 0xC0) != 0x80)
            ++n;
    return n;
}

// ---------------------------------------------------------------- character classes

bool py_isspace(char32_t c)
{
    switch (c) {
    case 0x09: case 0x0A: case 0x0B: case 0x0C: case 0x0D:
    case 0x1C: case 0x1D: case 0x1E: case 0x1F: case 0x20:
    case 0x85: case 0xA0: case 0x1680:
    case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000:
        return true;
    default:
        return c >= 0x2000 && c <= 0x200A;
    }
}

char32_t simple_upper(char32_t c)
{
    if (c < 0x80)
        return (c >= 'a' && c <= 'z') ? c - 32 : c;
    if (c == 0xB5)
        return 0x39C;
    if (c >= 0xE0 && c <= 0xFE && c != 0xF7)
        return c - 32;
    if (c == 0xFF)
        return 0x178;
    if (c >= 0x100 && c <= 0x12F)
        return (c & 1) ? c - 1 : c;
    if (c == 0x131)
        return 'I';
    if (c >= 0x132 && c <= 0x137)
        return (c & 1) ? c - 1 : c;
    if (c >= 0x139 && c <= 0x148)
        return (c & 1) ? c : c - 1;
    if (c >= 0x14A && c <= 0x177)
        return (c & 1) ? c - 1 : c;
    if (c == 0x17A || c == 0x17C || c == 0x17E)
        return c - 1;
    if (c == 0x17F)
        return 'S';
    if ((c >= 0x3B1 && c <= 0x3C1) || (c >= 0x3C3 && c <= 0x3CB))
        return c - 32;
    if (c == 0x3C2)
        return 0x3A3;
    if (c == 0x3AC)
        return 0x386;
    if (c >= 0x3AD && c <= 0x3AF)
        return c - 37;
    if (c == 0x3CC)
        return 0x38C;
    if (c == 0x3CD || c == 0x3CE)
        return c - 63;
    if (c >= 0x430 && c <= 0x44F)
        return c - 32;
    if (c >= 0x450 && c <= 0x45F)
        return c - 80;
    if ((c >= 0x460 && c <= 0x481) || (c >= 0x48A && c <= 0x4BF) || (c >= 0x4D0 && c <= 0x52F))
        return (c & 1) ? c - 1 : c;
    if (c >= 0x4C1 && c <= 0x4CE)
        return (c & 1) ? c : c - 1;
    if (c == 0x4CF)
        return 0x4C0;
    if (c >= 0x561 && c <= 0x586)
        return c - 48;
    if (c >= 0xFF41 && c <= 0xFF5A)
        return c - 32;
    // Latin Extended-B and Latin Extended Additional (Vietnamese and other Latin scripts)
    if (c == 0x1C5 || c == 0x1C6)
        return 0x1C4;
    if (c == 0x1C8 || c == 0x1C9)
        return 0x1C7;
    if (c == 0x1CB || c == 0x1CC)
        return 0x1CA;
    if (c == 0x1F2 || c == 0x1F3)
        return 0x1F1;
    if (c >= 0x1CE && c <= 0x1DC)
        return (c & 1) ? c : c - 1;
    if (c == 0x1DD)
        return 0x18E;
    if (c == 0x1F5)
        return 0x1F4;
    if ((c >= 0x1DE && c <= 0x1EF) || (c >= 0x1F8 && c <= 0x21F) || (c >= 0x222 && c <= 0x233) ||
        (c >= 0x1E00 && c <= 0x1E95) || (c >= 0x1EA0 && c <= 0x1EFF))
        return (c & 1) ? c - 1 : c;
    return c;
}

char32_t simple_lower(char32_t c)
{
    if (c < 0x80)
        return (c >= 'A' && c <= 'Z') ? c + 32 : c;
    if (c >= 0xC0 && c <= 0xDE && c != 0xD7)
        return c + 32;
    if (c >= 0x100 && c <= 0x12F)
        return (c & 1) ? c : c + 1;
    if (c == 0x130)
        return 'i';
    if (c >= 0x132 && c <= 0x137)
        return (c & 1) ? c : c + 1;
    if (c >= 0x139 && c <= 0x148)
        return (c & 1) ? c + 1 : c;
    if (c >= 0x14A && c <= 0x177)
        return (c & 1) ? c : c + 1;
    if (c == 0x178)
        return 0xFF;
    if (c == 0x179 || c == 0x17B || c == 0x17D)
        return c + 1;
    if ((c >= 0x391 && c <= 0x3A1) || (c >= 0x3A3 && c <= 0x3AB))
        return c + 32;
    if (c == 0x386)
        return 0x3AC;
    if (c >= 0x388 && c <= 0x38A)
        return c + 37;
    if (c == 0x38C)
        return 0x3CC;
    if (c == 0x38E || c == 0x38F)
        return c + 63;
    if (c >= 0x410 && c <= 0x42F)
        return c + 32;
    if (c >= 0x400 && c <= 0x40F)
        return c + 80;
    if ((c >= 0x460 && c <= 0x481) || (c >= 0x48A && c <= 0x4BF) || (c >= 0x4D0 && c <= 0x52F))
        return (c & 1) ? c : c + 1;
    if (c >= 0x4C1 && c <= 0x4CE)
        return (c & 1) ? c + 1 : c;
    if (c == 0x4C0)
        return 0x4CF;
    if (c >= 0x531 && c <= 0x556)
        return c + 48;
    if (c >= 0xFF21 && c <= 0xFF3A)
        return c + 32;
    if (c == 0x1C4 || c == 0x1C5)
        return 0x1C6;
    if (c == 0x1C7 || c == 0x1C8)
        return 0x1C9;
    if (c == 0x1CA || c == 0x1CB)
        return 0x1CC;
    if (c == 0x1F1 || c == 0x1F2)
        return 0x1F3;
    if (c >= 0x1CD && c <= 0x1DB)
        return (c & 1) ? c + 1 : c;
    if (c == 0x18E)
        return 0x1DD;
    if (c == 0x1F4)
        return 0x1F5;
    if (c == 0x1E9E)
        return 0xDF;
    if ((c >= 0x1DE && c <= 0x1EF) || (c >= 0x1F8 && c <= 0x21F) || (c >= 0x222 && c <= 0x233) ||
        (c >= 0x1E00 && c <= 0x1E95) || (c >= 0x1EA0 && c <= 0x1EFF))
        return (c & 1) ? c : c + 1;
    return c;
}

bool is_cased(char32_t c)
{
    return simple_upper(c) != c || simple_lower(c) != c || c == 0xDF || c == 0x138 || c == 0x149 ||
           (c >= 0xFB00 && c <= 0xFB06);
}

namespace {
bool is_upper_char(char32_t c) { return simple_lower(c) != c && simple_upper(c) == c; }
bool is_lower_char(char32_t c)
{
    return (simple_upper(c) != c && simple_lower(c) == c) || c == 0xDF || c == 0x138 || c == 0x149 ||
           (c >= 0xFB00 && c <= 0xFB06);
}
} // namespace

bool is_alpha(char32_t c)
{
    if (c < 0x80)
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (is_cased(c) || c == 0xAA || c == 0xBA)
        return true;
    return (c >= 0x5D0 && c <= 0x5EA) || (c >= 0x620 && c <= 0x64A) || (c >= 0x904 && c <= 0x939) ||
           (c >= 0xE01 && c <= 0xE30) || (c >= 0x3041 && c <= 0x3096) || (c >= 0x30A1 && c <= 0x30FA) ||
           (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0xAC00 && c <= 0xD7A3);
}

bool is_digit(char32_t c)
{
    return (c >= '0' && c <= '9') || (c >= 0x660 && c <= 0x669) || (c >= 0xFF10 && c <= 0xFF19);
}

// ---------------------------------------------------------------- str methods

namespace {

// Ligatures and other characters whose uppercase is several letters (SpecialCasing.txt).
const char* special_upper(char32_t c)
{
    switch (c) {
    case 0xDF: return "SS";
    case 0x149: return "\u02BCN";
    case 0xFB00: return "FF";
    case 0xFB01: return "FI";
    case 0xFB02: return "FL";
    case 0xFB03: return "FFI";
    case 0xFB04: return "FFL";
    case 0xFB05:
    case 0xFB06: return "ST";
    default: return nullptr;
    }
}

const char* special_title(char32_t c)
{
    switch (c) {
    case 0xDF: return "Ss";
    case 0x149: return "\u02BCN";
    case 0xFB00: return "Ff";
    case 0xFB01: return "Fi";
    case 0xFB02: return "Fl";
    case 0xFB03: return "Ffi";
    case 0xFB04: return "Ffl";
    case 0xFB05:
    case 0xFB06: return "St";
    default: return nullptr;
    }
}

char32_t title_of(char32_t c)
{
    if (c >= 0x1C4 && c <= 0x1C6)
        return 0x1C5;
    if (c >= 0x1C7 && c <= 0x1C9)
        return 0x1C8;
    if (c >= 0x1CA && c <= 0x1CC)
        return 0x1CB;
    if (c >= 0x1F1 && c <= 0x1F3)
        return 0x1F2;
    return simple_upper(c);
}

// Characters the final-sigma rule looks past (a subset of Unicode's Case_Ignorable).
bool case_ignorable(char32_t c)
{
    return c == 0x27 || c == 0x2E || c == 0x3A || c == 0x5E || c == 0x60 || c == 0xA8 || c == 0xAD || c == 0xAF ||
           c == 0xB4 || c == 0xB7 || c == 0xB8 || (c >= 0x2B0 && c <= 0x36F) || c == 0x2019;
}

void append_upper(std::string& out, char32_t c)
{
    if (const char* special = special_upper(c))
        out += special;
    else
        append_utf8(out, simple_upper(c));
}

void append_title(std::string& out, char32_t c)
{
    if (const char* special = special_title(c))
        out += special;
    else
        append_utf8(out, title_of(c));
}

// Lowercase of u[i]: capital sigma becomes final sigma at the end of a word (as CPython does).
void append_lower(std::string& out, const std::u32string& u, std::size_t i)
{
    const char32_t c = u[i];
    if (c == 0x130) {
        out.push_back('i');
        append_utf8(out, 0x307);
        return;
    }
    if (c == 0x3A3) {
        std::size_t j = i;
        while (j > 0 && case_ignorable(u[j - 1]))
            --j;
        bool final_sigma = j > 0 && is_cased(u[j - 1]);
        if (final_sigma) {
            std::size_t k = i + 1;
            while (k < u.size() && case_ignorable(u[k]))
                ++k;
            final_sigma = k == u.size() || !is_cased(u[k]);
        }
        append_utf8(out, final_sigma ? 0x3C2 : 0x3C3);
        return;
    }
    append_utf8(out, simple_lower(c));
}

} // namespace

std::string py_upper(std::string_view s)
{
    std::string out;
    out.reserve(s.size());
    for (char32_t c : to_u32(s))
        append_upper(out, c);
    return out;
}

std::string py_lower(std::string_view s)
{
    const std::u32string u = to_u32(s);
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < u.size(); ++i)
        append_lower(out, u, i);
    return out;
}

std::string py_swapcase(std::string_view s)
{
    const std::u32string u = to_u32(s);
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < u.size(); ++i) {
        const char32_t c = u[i];
        if (is_upper_char(c))
            append_lower(out, u, i);
        else if (is_lower_char(c))
            append_upper(out, c);
        else
            append_utf8(out, c);
    }
    return out;
}

std::string py_title(std::string_view s)
{
    const std::u32string u = to_u32(s);
    std::string out;
    out.reserve(s.size());
    bool previous_cased = false;
    for (std::size_t i = 0; i < u.size(); ++i) {
        if (previous_cased)
            append_lower(out, u, i);
        else
            append_title(out, u[i]);
        previous_cased = is_cased(u[i]);
    }
    return out;
}

std::string py_capitalize(std::string_view s)
{
    const std::u32string u = to_u32(s);
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < u.size(); ++i) {
        if (i == 0)
            append_title(out, u[i]);
        else
            append_lower(out, u, i);
    }
    return out;
}

std::string py_strip(std::string_view s, const std::optional<std::string>& chars, bool left, bool right)
{
    const std::u32string u = to_u32(s);
    std::u32string set;
    if (chars)
        set = to_u32(*chars);
    auto strip_it = [&](char32_t c) {
        if (!chars)
            return py_isspace(c);
        return set.find(c) != std::u32string::npos;
    };
    std::size_t b = 0, e = u.size();
    if (left)
        while (b < e && strip_it(u[b]))
            ++b;
    if (right)
        while (e > b && strip_it(u[e - 1]))
            --e;
    return to_utf8(std::u32string_view(u).substr(b, e - b));
}

std::vector<std::string> py_split(std::string_view s, const std::optional<std::string>& sep, std::int64_t maxsplit)
{
    std::vector<std::string> out;
    if (sep) {
        if (sep->empty())
            throw std::invalid_argument("empty separator");
        std::size_t pos = 0;
        while (maxsplit < 0 || static_cast<std::int64_t>(out.size()) < maxsplit) {
            const std::size_t hit = s.find(*sep, pos);
            if (hit == std::string_view::npos)
                break;
            out.emplace_back(s.substr(pos, hit - pos));
            pos = hit + sep->size();
        }
        out.emplace_back(s.substr(pos));
        return out;
    }
    const std::u32string u = to_u32(s);
    std::size_t i = 0;
    const std::size_t n = u.size();
    while (true) {
        while (i < n && py_isspace(u[i]))
            ++i;
        if (i >= n)
            break;
        if (maxsplit >= 0 && static_cast<std::int64_t>(out.size()) >= maxsplit) {
            out.push_back(to_utf8(std::u32string_view(u).substr(i)));
            break;
        }
        std::size_t j = i;
        while (j < n && !py_isspace(u[j]))
            ++j;
        out.push_back(to_utf8(std::u32string_view(u).substr(i, j - i)));
        i = j;
    }
    return out;
}

std::vector<std::string> py_rsplit(std::string_view s, const std::optional<std::string>& sep, std::int64_t maxsplit)
{
    std::vector<std::string> out;
    if (sep) {
        if (sep->empty())
            throw std::invalid_argument("empty separator");
        std::size_t end = s.size();
        while (maxsplit < 0 || static_cast<std::int64_t>(out.size()) < maxsplit) {
            if (end < sep->size())
                break;
            const std::size_t hit = s.rfind(*sep, end - sep->size());
            if (hit == std::string_view::npos)
                break;
            out.emplace_back(s.substr(hit + sep->size(), end - hit - sep->size()));
            end = hit;
        }
        out.emplace_back(s.substr(0, end));
        return {out.rbegin(), out.rend()};
    }
    const std::u32string u = to_u32(s);
    std::size_t j = u.size();
    while (true) {
        while (j > 0 && py_isspace(u[j - 1]))
            --j;
        if (j == 0)
            break;
        if (maxsplit >= 0 && static_cast<std::int64_t>(out.size()) >= maxsplit) {
            out.push_back(to_utf8(std::u32string_view(u).substr(0, j)));
            break;
        }
        std::size_t i = j;
        while (i > 0 && !py_isspace(u[i - 1]))
            --i;
        out.push_back(to_utf8(std::u32string_view(u).substr(i, j - i)));
        j = i;
    }
    return {out.rbegin(), out.rend()};
}

std::vector<std::string> py_splitlines(std::string_view s, bool keepends)
{
    const std::u32string u = to_u32(s);
    std::vector<std::string> out;
    std::size_t i = 0, start = 0;
    const std::size_t n = u.size();
    while (i < n) {
        const char32_t c = u[i];
        const bool brk = c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D || c == 0x1E ||
                         c == 0x85 || c == 0x2028 || c == 0x2029;
        if (!brk) {
            ++i;
            continue;
        }
        std::size_t eol = i + 1;
        if (c == '\r' && eol < n && u[eol] == '\n')
            ++eol;
        out.push_back(to_utf8(std::u32string_view(u).substr(start, (keepends ? eol : i) - start)));
        start = i = eol;
    }
    if (start < n)
        out.push_back(to_utf8(std::u32string_view(u).substr(start)));
    return out;
}

std::string py_replace(std::string_view s, std::string_view old, std::string_view repl, std::int64_t count)
{
    std::string out;
    if (old.empty()) {
        std::size_t i = 0;
        std::int64_t done = 0;
        while (true) {
            if (count >= 0 && done >= count) {
                out.append(s.substr(i));
                break;
            }
            out.append(repl);
            ++done;
            if (i >= s.size())
                break;
            std::size_t j = i;
            decode_at(s, j);
            out.append(s.substr(i, j - i));
            i = j;
        }
        return out;
    }
    std::size_t pos = 0;
    std::int64_t done = 0;
    while (count < 0 || done < count) {
        const std::size_t hit = s.find(old, pos);
        if (hit == std::string_view::npos)
            break;
        out.append(s.substr(pos, hit - pos));
        out.append(repl);
        pos = hit + old.size();
        ++done;
    }
    out.append(s.substr(pos));
    return out;
}

std::int64_t py_find(std::string_view s, std::string_view sub, bool reverse)
{
    const std::size_t hit = reverse ? s.rfind(sub) : s.find(sub);
    if (hit == std::string_view::npos)
        return -1;
    return static_cast<std::int64_t>(code_point_count(s.substr(0, hit)));
}

std::int64_t py_count(std::string_view s, std::string_view sub)
{
    if (sub.empty())
        return static_cast<std::int64_t>(code_point_count(s)) + 1;
    std::int64_t n = 0;
    std::size_t pos = 0;
    while ((pos = s.find(sub, pos)) != std::string_view::npos) {
        ++n;
        pos += sub.size();
    }
    return n;
}

bool py_islower(std::string_view s)
{
    bool any = false;
    std::size_t i = 0;
    while (i < s.size()) {
        const char32_t c = decode_at(s, i);
        if (is_upper_char(c))
            return false;
        if (is_lower_char(c))
            any = true;
    }
    return any;
}

bool py_isupper(std::string_view s)
{
    bool any = false;
    std::size_t i = 0;
    while (i < s.size()) {
        const char32_t c = decode_at(s, i);
        if (is_lower_char(c))
            return false;
        if (is_upper_char(c))
            any = true;
    }
    return any;
}

// ---------------------------------------------------------------- repr

namespace {

// CPython's str.isprintable for the code points likely in chat data: control
// characters, format characters, separators other than the space, private use.
bool printable(char32_t c)
{
    if (c < 0x20 || (c >= 0x7F && c <= 0xA0) || c == 0xAD)
        return false;
    if (c == 0x1680 || (c >= 0x2000 && c <= 0x200F) || (c >= 0x2028 && c <= 0x202F) ||
        (c >= 0x205F && c <= 0x2064) || (c >= 0x2066 && c <= 0x206F) || c == 0x3000 || c == 0xFEFF)
        return false;
    if ((c >= 0x600 && c <= 0x605) || c == 0x61C || c == 0x6DD || c == 0x70F || c == 0x180E)
        return false;
    if ((c >= 0xD800 && c <= 0xF8FF) || (c >= 0xFFF9 && c <= 0xFFFB) || c >= 0xF0000)
        return false;
    if (c == 0xFFFE || c == 0xFFFF || (c >= 0xE0000 && c <= 0xE007F))
        return false;
    return true;
}

void append_hex(std::string& out, char prefix, unsigned value, int digits)
{
    char buf[16];
    std::snprintf(buf, sizeof buf, "\\%c%0*x", prefix, digits, value);
    out += buf;
}

} // namespace

std::string py_repr_string(std::string_view s)
{
    const bool has_single = s.find('\'') != std::string_view::npos;
    const bool has_double = s.find('"') != std::string_view::npos;
    const char quote = (has_single && !has_double) ? '"' : '\'';
    std::string out;
    out.reserve(s.size() + 2);
    out.push_back(quote);
    std::size_t i = 0;
    while (i < s.size()) {
        const char32_t c = decode_at(s, i);
        if (c == static_cast<char32_t>(quote) || c == '\\') {
            out.push_back('\\');
            out.push_back(static_cast<char>(c));
        } else if (c == '\t') {
            out += "\\t";
        } else if (c == '\n') {
            out += "\\n";
        } else if (c == '\r') {
            out += "\\r";
        } else if (printable(c)) {
            append_utf8(out, c);
        } else if (c <= 0xFF) {
            append_hex(out, 'x', c, 2);
        } else if (c <= 0xFFFF) {
            append_hex(out, 'u', c, 4);
        } else {
            append_hex(out, 'U', c, 8);
        }
    }
    out.push_back(quote);
    return out;
}

std::string py_float_repr(double v)
{
    if (std::isnan(v))
        return "nan";
    if (std::isinf(v))
        return v < 0 ? "-inf" : "inf";
    if (v == 0)
        return std::signbit(v) ? "-0.0" : "0.0";
    char buf[64];
    const auto res = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
    const std::string sci(buf, res.ptr);
    // sci = [-]d[.ddd]e±XX
    const bool negative = sci[0] == '-';
    const std::size_t e_pos = sci.find('e');
    std::string mantissa = sci.substr(negative ? 1 : 0, e_pos - (negative ? 1 : 0));
    const int exponent = std::stoi(sci.substr(e_pos + 1));
    std::string digits;
    for (char c : mantissa)
        if (c != '.')
            digits.push_back(c);
    const int decpt = exponent + 1; // value = 0.DIGITS x 10^decpt
    std::string out = negative ? "-" : "";
    if (decpt > -4 && decpt <= 16) {
        if (decpt <= 0) {
            out += "0.";
            out.append(static_cast<std::size_t>(-decpt), '0');
            out += digits;
        } else if (static_cast<std::size_t>(decpt) >= digits.size()) {
            out += digits;
            out.append(static_cast<std::size_t>(decpt) - digits.size(), '0');
            out += ".0";
        } else {
            out += digits.substr(0, static_cast<std::size_t>(decpt));
            out.push_back('.');
            out += digits.substr(static_cast<std::size_t>(decpt));
        }
        return out;
    }
    out.push_back(digits[0]);
    if (digits.size() > 1) {
        out.push_back('.');
        out += digits.substr(1);
    }
    char exp_buf[16];
    std::snprintf(exp_buf, sizeof exp_buf, "e%c%02d", exponent < 0 ? '-' : '+', exponent < 0 ? -exponent : exponent);
    out += exp_buf;
    return out;
}

std::string json_quote(std::string_view s, bool ensure_ascii)
{
    std::string out;
    out.reserve(s.size() + 2);
    out.push_back('"');
    std::size_t i = 0;
    while (i < s.size()) {
        const auto byte = static_cast<unsigned char>(s[i]);
        if (byte < 0x80) {
            ++i;
            switch (byte) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            case '\b': out += "\\b"; break;
            case '\f': out += "\\f"; break;
            default:
                if (byte < 0x20)
                    append_hex(out, 'u', byte, 4);
                else
                    out.push_back(static_cast<char>(byte));
            }
            continue;
        }
        const std::size_t start = i;
        const char32_t c = decode_at(s, i);
        if (!ensure_ascii) {
            out.append(s.substr(start, i - start));
        } else if (c <= 0xFFFF) {
            append_hex(out, 'u', c, 4);
        } else {
            const char32_t v = c - 0x10000;
            append_hex(out, 'u', 0xD800 + (v >> 10), 4);
            append_hex(out, 'u', 0xDC00 + (v & 0x3FF), 4);
        }
    }
    out.push_back('"');
    return out;
}

} // namespace layerwise::jinja
