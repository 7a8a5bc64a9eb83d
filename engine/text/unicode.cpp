#include "text/unicode.h"

#include "text/unicode_tables.h"

#include <algorithm>
#include <array>
#include <bitset>
#include <memory>
#include <vector>

namespace layerwise::text {

namespace {

// One step of a UTF-8 decoder. Returns the length of the sequence at `pos` and sets `valid`;
// an invalid sequence's length is its maximal valid-looking prefix (at least one byte), the
// unit that Rust's lossy conversion replaces by one U+FFFD.
std::size_t decode_step(std::string_view s, std::size_t pos, bool& valid, char32_t& code)
{
    const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
    const unsigned char lead = byte(pos);
    valid = false;
    if (lead < 0x80) {
        valid = true;
        code = lead;
        return 1;
    }
    std::size_t need = 0;
    unsigned char low = 0x80, high = 0xBF; // allowed range of the second byte
    if (lead >= 0xC2 && lead <= 0xDF) {
        need = 1;
        code = lead & 0x1F;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
        need = 2;
        code = lead & 0x0F;
        if (lead == 0xE0)
            low = 0xA0; // no overlongs
        else if (lead == 0xED)
            high = 0x9F; // no surrogates
    } else if (lead >= 0xF0 && lead <= 0xF4) {
        need = 3;
        code = lead & 0x07;
        if (lead == 0xF0)
            low = 0x90;
        else if (lead == 0xF4)
            high = 0x8F; // nothing above U+10FFFF
    } else {
        return 1;
    }
    std::size_t i = pos + 1;
    for (std::size_t k = 0; k < need; ++k, ++i) {
        if (i >= s.size())
            return i - pos;
        const unsigned char b = byte(i);
        const unsigned char lo = k == 0 ? low : 0x80;
        const unsigned char hi = k == 0 ? high : 0xBF;
        if (b < lo || b > hi)
            return i - pos;
        code = (code << 6) | (b & 0x3F);
    }
    valid = true;
    return need + 1;
}

constexpr char32_t hangul_s_base = 0xAC00, hangul_l_base = 0x1100, hangul_v_base = 0x1161,
                   hangul_t_base = 0x11A7;
constexpr char32_t hangul_l_count = 19, hangul_v_count = 21, hangul_t_count = 28;
constexpr char32_t hangul_n_count = hangul_v_count * hangul_t_count;
constexpr char32_t hangul_s_count = hangul_l_count * hangul_n_count;

bool is_hangul_syllable(char32_t c) { return c >= hangul_s_base && c < hangul_s_base + hangul_s_count; }

std::uint8_t combining_class(char32_t c)
{
    if (c < 0x300)
        return 0;
    const auto* begin = tables::combining_classes;
    const auto* end = begin + tables::combining_class_count;
    const auto* it = std::upper_bound(begin, end, c, [](char32_t v, const auto& r) { return v < r.first; });
    if (it == begin)
        return 0;
    --it;
    return c <= it->last ? it->combining_class : 0;
}

const tables::Decomposition* find_decomposition(char32_t c)
{
    const auto* begin = tables::decompositions;
    const auto* end = begin + tables::decomposition_count;
    const auto* it = std::lower_bound(begin, end, c, [](const auto& d, char32_t v) { return d.code < v; });
    return it != end && it->code == c ? it : nullptr;
}

bool compose_pair(char32_t a, char32_t b, char32_t& out)
{
    if (a >= hangul_l_base && a < hangul_l_base + hangul_l_count && b >= hangul_v_base &&
        b < hangul_v_base + hangul_v_count) {
        out = hangul_s_base + ((a - hangul_l_base) * hangul_v_count + (b - hangul_v_base)) * hangul_t_count;
        return true;
    }
    if (is_hangul_syllable(a) && (a - hangul_s_base) % hangul_t_count == 0 && b > hangul_t_base &&
        b < hangul_t_base + hangul_t_count) {
        out = a + (b - hangul_t_base);
        return true;
    }
    const auto* begin = tables::compositions;
    const auto* end = begin + tables::composition_count;
    const auto* it = std::lower_bound(begin, end, std::pair(a, b), [](const auto& c, const std::pair<char32_t, char32_t>& v) {
        return c.first != v.first ? c.first < v.first : c.second < v.second;
    });
    if (it != end && it->first == a && it->second == b) {
        out = it->composite;
        return true;
    }
    return false;
}

// Code points that may change under NFC: a string without any is already in NFC.
class NfcUnstable {
public:
    NfcUnstable()
    {
        std::vector<char32_t> composites;
        for (std::size_t i = 0; i < tables::composition_count; ++i) {
            add(tables::compositions[i].second);
            composites.push_back(tables::compositions[i].composite);
        }
        std::sort(composites.begin(), composites.end());
        for (std::size_t i = 0; i < tables::decomposition_count; ++i) {
            const char32_t c = tables::decompositions[i].code;
            if (!std::binary_search(composites.begin(), composites.end(), c))
                add(c); // a singleton or an excluded composite
        }
        for (std::size_t i = 0; i < tables::combining_class_count; ++i)
            for (char32_t c = tables::combining_classes[i].first; c <= tables::combining_classes[i].last; ++c)
                add(c);
        for (char32_t c = hangul_v_base; c < hangul_v_base + hangul_v_count; ++c)
            add(c);
        for (char32_t c = hangul_t_base + 1; c < hangul_t_base + hangul_t_count; ++c)
            add(c);
        std::sort(m_astral.begin(), m_astral.end());
        m_astral.erase(std::unique(m_astral.begin(), m_astral.end()), m_astral.end());
    }
    bool contains(char32_t c) const
    {
        if (c < 0x10000)
            return m_bmp[c];
        return std::binary_search(m_astral.begin(), m_astral.end(), c);
    }

private:
    void add(char32_t c)
    {
        if (c < 0x10000)
            m_bmp.set(c);
        else
            m_astral.push_back(c);
    }
    std::bitset<0x10000> m_bmp;
    std::vector<char32_t> m_astral;
};

const NfcUnstable& nfc_unstable()
{
    static const auto table = std::make_unique<NfcUnstable>();
    return *table;
}

std::vector<char32_t> decompose(std::string_view s)
{
    std::vector<char32_t> out;
    out.reserve(s.size());
    std::size_t pos = 0;
    while (pos < s.size()) {
        const char32_t c = next_code_point(s, pos);
        if (is_hangul_syllable(c)) {
            const char32_t index = c - hangul_s_base;
            out.push_back(hangul_l_base + index / hangul_n_count);
            out.push_back(hangul_v_base + (index % hangul_n_count) / hangul_t_count);
            if (index % hangul_t_count != 0)
                out.push_back(hangul_t_base + index % hangul_t_count);
        } else if (const auto* d = c >= 0xC0 ? find_decomposition(c) : nullptr) {
            out.insert(out.end(), tables::decomposition_chars + d->offset,
                       tables::decomposition_chars + d->offset + d->length);
        } else {
            out.push_back(c);
        }
    }
    // Canonical ordering: each run of non-starters sorted (stably) by combining class.
    for (std::size_t i = 0; i < out.size();) {
        if (combining_class(out[i]) == 0) {
            ++i;
            continue;
        }
        std::size_t j = i;
        while (j < out.size() && combining_class(out[j]) != 0)
            ++j;
        std::stable_sort(out.begin() + static_cast<std::ptrdiff_t>(i), out.begin() + static_cast<std::ptrdiff_t>(j),
                         [](char32_t a, char32_t b) { return combining_class(a) < combining_class(b); });
        i = j;
    }
    return out;
}

std::string encode(const std::vector<char32_t>& code_points)
{
    std::string out;
    out.reserve(code_points.size() * 2);
    for (char32_t c : code_points)
        append_utf8(out, c);
    return out;
}

bool is_ascii(std::string_view s)
{
    for (char c : s)
        if (static_cast<unsigned char>(c) >= 0x80)
            return false;
    return true;
}

} // namespace

std::size_t utf8_sequence_length(unsigned char lead)
{
    if (lead < 0xC0)
        return 1;
    if (lead < 0xE0)
        return 2;
    if (lead < 0xF0)
        return 3;
    return lead < 0xF8 ? 4 : 1;
}

std::size_t find_invalid_utf8(std::string_view s)
{
    std::size_t pos = 0;
    while (pos < s.size()) {
        if (static_cast<unsigned char>(s[pos]) < 0x80) {
            ++pos;
            continue;
        }
        bool valid = false;
        char32_t code = 0;
        const std::size_t n = decode_step(s, pos, valid, code);
        if (!valid)
            return pos;
        pos += n;
    }
    return std::string_view::npos;
}

char32_t next_code_point(std::string_view s, std::size_t& pos)
{
    const auto lead = static_cast<unsigned char>(s[pos]);
    if (lead < 0x80) {
        ++pos;
        return lead;
    }
    bool valid = false;
    char32_t code = 0;
    pos += decode_step(s, pos, valid, code);
    return valid ? code : 0xFFFD;
}

void append_utf8(std::string& out, char32_t c)
{
    if (c < 0x80) {
        out.push_back(static_cast<char>(c));
    } else if (c < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (c >> 6)));
        out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    } else if (c < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (c >> 12)));
        out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    } else {
        out.push_back(static_cast<char>(0xF0 | (c >> 18)));
        out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    }
}

std::string utf8_lossy(std::string_view bytes)
{
    std::string out;
    out.reserve(bytes.size());
    std::size_t pos = 0;
    while (pos < bytes.size()) {
        if (static_cast<unsigned char>(bytes[pos]) < 0x80) {
            out.push_back(bytes[pos++]);
            continue;
        }
        bool valid = false;
        char32_t code = 0;
        const std::size_t n = decode_step(bytes, pos, valid, code);
        if (valid)
            out.append(bytes.substr(pos, n));
        else
            out.append(replacement_character);
        pos += n;
    }
    return out;
}

bool is_white_space(char32_t c)
{
    if (c < 0x80)
        return c == ' ' || (c >= 0x09 && c <= 0x0D);
    switch (c) {
    case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000:
        return true;
    default:
        return c >= 0x2000 && c <= 0x200A;
    }
}

std::string normalize_nfd(std::string_view s)
{
    if (is_ascii(s))
        return std::string(s);
    return encode(decompose(s));
}

std::string normalize_nfc(std::string_view s)
{
    if (is_ascii(s))
        return std::string(s);
    const NfcUnstable& unstable = nfc_unstable();
    bool stable = true;
    for (std::size_t pos = 0; pos < s.size() && stable;) {
        const char32_t c = next_code_point(s, pos);
        stable = c < 0x300 || !unstable.contains(c);
    }
    if (stable)
        return std::string(s);

    const std::vector<char32_t> cps = decompose(s);
    std::vector<char32_t> out;
    out.reserve(cps.size());
    std::ptrdiff_t starter = -1;
    int last_class = -1;
    for (char32_t c : cps) {
        const int cls = combining_class(c);
        // `c` joins the last starter unless a character between them blocks it.
        const bool adjacent = starter >= 0 && static_cast<std::ptrdiff_t>(out.size()) - 1 == starter;
        char32_t composed = 0;
        if (starter >= 0 && (adjacent || last_class < cls) && compose_pair(out[static_cast<std::size_t>(starter)], c, composed)) {
            out[static_cast<std::size_t>(starter)] = composed;
            continue;
        }
        if (cls == 0)
            starter = static_cast<std::ptrdiff_t>(out.size());
        last_class = cls;
        out.push_back(c);
    }
    return encode(out);
}

} // namespace layerwise::text
