#pragma once
// Typed reads of config.json keys with errors naming the key and the file: what config.cpp and
// the architectures' own config readers (engine/archs/) use.
#include "core/error.h"

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace layerwise {

class ConfigReader {
public:
    ConfigReader(const nlohmann::json& j, const std::string& where) : m_j(j), m_where(where) {}

    bool has(const char* key) const { return m_j.contains(key) && !m_j[key].is_null(); }

    std::int64_t positive(const char* key) const
    {
        if (!has(key))
            throw FormatError(m_where + ": '" + key + "' is missing; the config cannot describe the model without it");
        return positive_value(key, m_j[key]);
    }
    std::int64_t positive_or(const char* key, std::int64_t fallback) const
    {
        return has(key) ? positive_value(key, m_j[key]) : fallback;
    }
    double number_or(const char* key, double fallback) const
    {
        if (!has(key))
            return fallback;
        if (!m_j[key].is_number())
            throw FormatError(m_where + ": '" + key + "' must be a number, not " + m_j[key].dump());
        return m_j[key].get<double>();
    }
    bool flag_or(const char* key, bool fallback) const
    {
        if (!has(key))
            return fallback;
        if (!m_j[key].is_boolean())
            throw FormatError(m_where + ": '" + key + "' must be true or false, not " + m_j[key].dump());
        return m_j[key].get<bool>();
    }
    std::string string_or(const char* key, const std::string& fallback) const
    {
        if (!has(key))
            return fallback;
        if (!m_j[key].is_string())
            throw FormatError(m_where + ": '" + key + "' must be a string, not " + m_j[key].dump());
        return m_j[key].get<std::string>();
    }
    std::vector<std::int64_t> ids(const char* key) const
    {
        std::vector<std::int64_t> out;
        if (!has(key))
            return out;
        const nlohmann::json& v = m_j[key];
        if (v.is_number_integer())
            out.push_back(v.get<std::int64_t>());
        else if (v.is_array())
            for (const auto& x : v)
                if (x.is_number_integer())
                    out.push_back(x.get<std::int64_t>());
        return out;
    }
    const nlohmann::json& raw() const { return m_j; }

private:
    std::int64_t positive_value(const char* key, const nlohmann::json& v) const
    {
        if (!v.is_number_integer() || v.get<std::int64_t>() <= 0)
            throw FormatError(m_where + ": '" + key + "' must be a positive integer, not " + v.dump());
        return v.get<std::int64_t>();
    }
    const nlohmann::json& m_j;
    std::string m_where; // a copy: callers pass temporaries such as where + " rope_parameters"
};

} // namespace layerwise
