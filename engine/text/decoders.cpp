#include "text/decoders.h"

#include "text/pre_tokenizers.h"
#include "text/regex.h"
#include "text/unicode.h"

namespace layerwise::text {

namespace {

class SequenceDecoder : public Decoder {
public:
    explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> parts) : m_parts(std::move(parts)) {}
    void decode_chain(std::vector<std::string>& tokens) const override
    {
        for (const auto& p : m_parts)
            p->decode_chain(tokens);
    }

private:
    std::vector<std::unique_ptr<Decoder>> m_parts;
};

// Byte-level characters back to bytes; a token with a character outside the alphabet (an added
// token such as "<think>\n") contributes its own UTF-8. The bytes become one lossy string.
class ByteLevelDecoder : public Decoder {
public:
    void decode_chain(std::vector<std::string>& tokens) const override
    {
        std::string bytes;
        for (const std::string& token : tokens) {
            const std::size_t mark = bytes.size();
            bool in_alphabet = true;
            for (std::size_t pos = 0; pos < token.size() && in_alphabet;) {
                const int b = byte_level_byte(next_code_point(token, pos));
                in_alphabet = b >= 0;
                if (in_alphabet)
                    bytes.push_back(static_cast<char>(b));
            }
            if (!in_alphabet) {
                bytes.resize(mark);
                bytes += token;
            }
        }
        tokens.assign(1, utf8_lossy(bytes));
    }
};

class MetaspaceDecoder : public Decoder {
public:
    MetaspaceDecoder(std::string replacement, bool strip_first) : m_replacement(std::move(replacement)), m_strip_first(strip_first) {}
    void decode_chain(std::vector<std::string>& tokens) const override
    {
        for (std::size_t i = 0; i < tokens.size(); ++i) {
            std::string out;
            const std::string& t = tokens[i];
            for (std::size_t pos = 0; pos < t.size();) {
                if (t.compare(pos, m_replacement.size(), m_replacement) == 0) {
                    if (i != 0 || !m_strip_first)
                        out += ' ';
                    pos += m_replacement.size();
                } else {
                    out += t[pos++];
                }
            }
            tokens[i] = std::move(out);
        }
    }

private:
    std::string m_replacement;
    bool m_strip_first;
};

class ReplaceDecoder : public Decoder {
public:
    ReplaceDecoder(const std::string& pattern, bool literal, std::string content, const std::string& where)
        : m_replacement(pattern, literal, std::move(content), where)
    {
    }
    void decode_chain(std::vector<std::string>& tokens) const override
    {
        for (std::string& t : tokens)
            m_replacement.apply(t);
    }

private:
    Replacement m_replacement;
};

// Runs of <0xAB> tokens become their bytes when those are valid UTF-8, else one U+FFFD per byte.
class ByteFallbackDecoder : public Decoder {
public:
    void decode_chain(std::vector<std::string>& tokens) const override
    {
        std::vector<std::string> out;
        out.reserve(tokens.size());
        std::string bytes;
        std::size_t byte_count = 0;
        const auto flush = [&] {
            if (byte_count == 0)
                return;
            if (find_invalid_utf8(bytes) == std::string::npos)
                out.push_back(bytes);
            else
                for (std::size_t i = 0; i < byte_count; ++i)
                    out.emplace_back(replacement_character);
            bytes.clear();
            byte_count = 0;
        };
        for (std::string& t : tokens) {
            int value = -1;
            if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>')
                value = parse_hex_byte(t.substr(3, 2));
            if (value >= 0) {
                bytes.push_back(static_cast<char>(value));
                ++byte_count;
                continue;
            }
            flush();
            out.push_back(std::move(t));
        }
        flush();
        tokens = std::move(out);
    }

private:
    // Rust's u8::from_str_radix(_, 16) on two characters (a leading '+' is allowed).
    static int parse_hex_byte(const std::string& s)
    {
        const auto digit = hex_digit_value;
        if (s[0] == '+')
            return digit(s[1]);
        const int hi = digit(s[0]), lo = digit(s[1]);
        return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
    }
};

class FuseDecoder : public Decoder {
public:
    void decode_chain(std::vector<std::string>& tokens) const override
    {
        std::string all;
        for (const std::string& t : tokens)
            all += t;
        tokens.assign(1, std::move(all));
    }
};

// Removes up to `start` leading and `stop` trailing occurrences of one character from each token.
class StripDecoder : public Decoder {
public:
    StripDecoder(char32_t content, std::size_t start, std::size_t stop) : m_start(start), m_stop(stop)
    {
        append_utf8(m_content, content);
    }
    void decode_chain(std::vector<std::string>& tokens) const override
    {
        for (std::string& t : tokens) {
            std::size_t begin = 0;
            for (std::size_t i = 0; i < m_start && t.compare(begin, m_content.size(), m_content) == 0; ++i)
                begin += m_content.size();
            std::size_t end = t.size();
            for (std::size_t i = 0; i < m_stop && end >= begin + m_content.size() &&
                                    t.compare(end - m_content.size(), m_content.size(), m_content) == 0;
                 ++i)
                end -= m_content.size();
            t = t.substr(begin, end - begin);
        }
    }

private:
    std::string m_content;
    std::size_t m_start, m_stop;
};

} // namespace

std::unique_ptr<Decoder> make_byte_level_decoder() { return std::make_unique<ByteLevelDecoder>(); }

std::unique_ptr<Decoder> make_decoder(const JsonField& field)
{
    if (field.value().is_null())
        return nullptr;
    field.require_object();
    const std::string type = field["type"].string();
    if (type == "Sequence") {
        const JsonField list = field["decoders"];
        list.require_array();
        std::vector<std::unique_ptr<Decoder>> parts;
        for (std::size_t i = 0; i < list.value().size(); ++i)
            if (auto d = make_decoder(list.at(i)))
                parts.push_back(std::move(d));
        return std::make_unique<SequenceDecoder>(std::move(parts));
    }
    if (type == "ByteLevel")
        return make_byte_level_decoder();
    if (type == "Metaspace") {
        const bool strip_first = metaspace_prepend_scheme(field) != "never";
        return std::make_unique<MetaspaceDecoder>(field.string_or("replacement", "\xE2\x96\x81"), strip_first);
    }
    if (type == "Replace") {
        const JsonField pattern = field["pattern"];
        pattern.require_object();
        const bool literal = pattern.has("String");
        if (!literal && !pattern.has("Regex"))
            pattern.fail("must hold \"String\" or \"Regex\"");
        return std::make_unique<ReplaceDecoder>(literal ? pattern["String"].string() : pattern["Regex"].string(), literal,
                                                field["content"].string(), pattern.where());
    }
    if (type == "ByteFallback")
        return std::make_unique<ByteFallbackDecoder>();
    if (type == "Fuse")
        return std::make_unique<FuseDecoder>();
    if (type == "Strip") {
        const JsonField content = field["content"];
        const std::string text = content.string();
        std::size_t pos = 0;
        if (text.empty() || (next_code_point(text, pos), pos != text.size()))
            content.fail("must be exactly one character");
        pos = 0;
        const std::int64_t start = field.integer_or("start", 0), stop = field.integer_or("stop", 0);
        if (start < 0 || stop < 0)
            field.fail("has a negative start or stop");
        return std::make_unique<StripDecoder>(next_code_point(text, pos), static_cast<std::size_t>(start),
                                              static_cast<std::size_t>(stop));
    }
    field["type"].unsupported("'" + type + "'", "ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip, Sequence");
}

} // namespace layerwise::text
