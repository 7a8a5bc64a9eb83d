#include "text/normalizers.h"

#include "text/regex.h"
#include "text/unicode.h"

#include <vector>

namespace layerwise::text {

namespace {

class SequenceNormalizer : public Normalizer {
public:
    explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> parts) : m_parts(std::move(parts)) {}
    void normalize(std::string& text) const override
    {
        for (const auto& p : m_parts)
            p->normalize(text);
    }

private:
    std::vector<std::unique_ptr<Normalizer>> m_parts;
};

class NfcNormalizer : public Normalizer {
public:
    void normalize(std::string& text) const override { text = normalize_nfc(text); }
};

class NfdNormalizer : public Normalizer {
public:
    void normalize(std::string& text) const override { text = normalize_nfd(text); }
};

class PrependNormalizer : public Normalizer {
public:
    explicit PrependNormalizer(std::string prefix) : m_prefix(std::move(prefix)) {}
    void normalize(std::string& text) const override
    {
        if (!text.empty()) // HF prepends to non-empty text only
            text.insert(0, m_prefix);
    }

private:
    std::string m_prefix;
};

class ReplaceNormalizer : public Normalizer {
public:
    ReplaceNormalizer(const std::string& pattern, bool literal, std::string content, const std::string& where)
        : m_replacement(pattern, literal, std::move(content), where)
    {
    }
    void normalize(std::string& text) const override { m_replacement.apply(text); }

private:
    Replacement m_replacement;
};

class StripNormalizer : public Normalizer {
public:
    StripNormalizer(bool left, bool right) : m_left(left), m_right(right) {}
    void normalize(std::string& text) const override
    {
        std::size_t begin = 0;
        while (m_left && begin < text.size()) {
            std::size_t next = begin;
            if (!is_white_space(next_code_point(text, next)))
                break;
            begin = next;
        }
        std::size_t end = text.size();
        while (m_right && end > begin) {
            std::size_t start = end - 1; // back to the first byte of the last character
            while (start > begin && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80)
                --start;
            std::size_t next = start;
            if (!is_white_space(next_code_point(text, next)))
                break;
            end = start;
        }
        text = text.substr(begin, end - begin);
    }

private:
    bool m_left, m_right;
};

} // namespace

std::unique_ptr<Normalizer> make_normalizer(const JsonField& field)
{
    if (field.value().is_null())
        return nullptr;
    field.require_object();
    const std::string type = field["type"].string();
    if (type == "Sequence") {
        const JsonField list = field["normalizers"];
        list.require_array();
        std::vector<std::unique_ptr<Normalizer>> parts;
        for (std::size_t i = 0; i < list.value().size(); ++i)
            if (auto n = make_normalizer(list.at(i)))
                parts.push_back(std::move(n));
        return std::make_unique<SequenceNormalizer>(std::move(parts));
    }
    if (type == "NFC")
        return std::make_unique<NfcNormalizer>();
    if (type == "NFD")
        return std::make_unique<NfdNormalizer>();
    if (type == "Prepend")
        return std::make_unique<PrependNormalizer>(field["prepend"].string());
    if (type == "Replace") {
        const JsonField pattern = field["pattern"];
        pattern.require_object();
        const bool literal = pattern.has("String");
        if (!literal && !pattern.has("Regex"))
            pattern.fail("must hold \"String\" or \"Regex\"");
        const std::string text = literal ? pattern["String"].string() : pattern["Regex"].string();
        return std::make_unique<ReplaceNormalizer>(text, literal, field["content"].string(),
                                                   pattern.where());
    }
    if (type == "Strip")
        return std::make_unique<StripNormalizer>(field.boolean_or("strip_left", true), field.boolean_or("strip_right", true));
    field["type"].unsupported("'" + type + "'", "Sequence, NFC, NFD, Prepend, Replace, Strip");
}

} // namespace layerwise::text
