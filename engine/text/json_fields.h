#pragma once
// Reading tokenizer.json fields with errors that name the file and the field
// ("tokenizer.json: field 'model.merges[12]' must be a string ...").
#include "core/error.h"

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace layerwise::text {

class JsonField {
public:
    JsonField(std::string file, std::string path, const nlohmann::json& value)
        : m_file(std::move(file)), m_path(std::move(path)), m_value(&value)
    {
    }

    const nlohmann::json& value() const { return *m_value; }
    const std::string& file() const { return m_file; }
    const std::string& path() const { return m_path; }
    // "<file>: field '<path>'" for messages.
    std::string where() const { return m_file + ": field '" + m_path + "'"; }

    bool has(const char* key) const { return m_value->is_object() && m_value->contains(key) && !(*m_value)[key].is_null(); }

    // The member `key` (which must exist unless `optional`); a null member counts as missing.
    JsonField operator[](const char* key) const
    {
        require_object();
        const auto it = m_value->find(key);
        if (it == m_value->end())
            throw FormatError(m_file + ": field '" + join(key) + "' is missing; the file is incomplete or not a "
                                                                 "tokenizer of a kind Layerwise knows");
        return JsonField(m_file, join(key), *it);
    }
    JsonField at(std::size_t index) const
    {
        require_array();
        if (index >= m_value->size())
            fail("has " + std::to_string(m_value->size()) + " items, too few");
        return JsonField(m_file, m_path + "[" + std::to_string(index) + "]", (*m_value)[index]);
    }

    std::string string() const
    {
        if (!m_value->is_string())
            fail("must be a string, not " + std::string(m_value->type_name()));
        return m_value->get<std::string>();
    }
    std::string string_or(const char* key, const std::string& fallback) const
    {
        return has(key) ? (*this)[key].string() : fallback;
    }
    bool boolean() const
    {
        if (!m_value->is_boolean())
            fail("must be true or false, not " + std::string(m_value->type_name()));
        return m_value->get<bool>();
    }
    bool boolean_or(const char* key, bool fallback) const { return has(key) ? (*this)[key].boolean() : fallback; }
    std::int64_t integer() const
    {
        if (!m_value->is_number_integer())
            fail("must be an integer, not " + std::string(m_value->type_name()));
        return m_value->get<std::int64_t>();
    }
    std::int64_t integer_or(const char* key, std::int64_t fallback) const
    {
        return has(key) ? (*this)[key].integer() : fallback;
    }
    void require_object() const
    {
        if (!m_value->is_object())
            fail("must be a JSON object, not " + std::string(m_value->type_name()));
    }
    void require_array() const
    {
        if (!m_value->is_array())
            fail("must be a JSON array, not " + std::string(m_value->type_name()));
    }

    [[noreturn]] void fail(const std::string& what) const
    {
        throw FormatError(where() + " " + what + "; the file is damaged or was not written by HF tokenizers");
    }
    [[noreturn]] void unsupported(const std::string& what, const std::string& supported) const
    {
        throw UnsupportedError(where() + " is " + what + ", which Layerwise does not support (supported: " +
                               supported + "); use a tokenizer of a supported kind or report it");
    }

private:
    std::string join(const char* key) const { return m_path.empty() ? std::string(key) : m_path + "." + key; }

    std::string m_file;
    std::string m_path;
    const nlohmann::json* m_value;
};

} // namespace layerwise::text
