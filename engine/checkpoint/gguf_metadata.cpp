// The typed lookups of gguf::Metadata (the parser itself is in gguf.cpp).
#include "checkpoint/gguf.h"

#include "core/error.h"

#include <limits>

namespace layerwise::gguf {

namespace {

// Local: value_type_name() belongs to the parser.
std::string_view type_name(ValueType type)
{
    switch (type) {
    case ValueType::u8: return "uint8";
    case ValueType::i8: return "int8";
    case ValueType::u16: return "uint16";
    case ValueType::i16: return "int16";
    case ValueType::u32: return "uint32";
    case ValueType::i32: return "int32";
    case ValueType::f32: return "float32";
    case ValueType::boolean: return "bool";
    case ValueType::string: return "string";
    case ValueType::array: return "array";
    case ValueType::u64: return "uint64";
    case ValueType::i64: return "int64";
    case ValueType::f64: return "float64";
    }
    return "unknown type";
}

bool is_integer(ValueType t)
{
    switch (t) {
    case ValueType::u8: case ValueType::i8: case ValueType::u16: case ValueType::i16:
    case ValueType::u32: case ValueType::i32: case ValueType::u64: case ValueType::i64:
        return true;
    default:
        return false;
    }
}

std::string describe(const Value& v)
{
    std::string s(type_name(v.type));
    if (v.type == ValueType::array)
        s += " of " + std::string(type_name(v.element_type));
    return s;
}

[[noreturn]] void wrong_type(const std::string& where, std::string_view key, const Value& v, const char* wanted)
{
    throw FormatError((where.empty() ? std::string("GGUF metadata") : where) + ": key '" + std::string(key) + "' is " +
                      describe(v) + ", expected " + wanted + "; the file is damaged or was written by an "
                      "incompatible converter");
}

// An integer value as int64 (nullopt when a u64 does not fit).
std::optional<std::int64_t> as_int(const Value& v)
{
    if (const auto* u = std::get_if<std::uint64_t>(&v.data)) {
        if (*u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
            return std::nullopt;
        return static_cast<std::int64_t>(*u);
    }
    if (const auto* i = std::get_if<std::int64_t>(&v.data))
        return *i;
    return std::nullopt;
}

} // namespace

Metadata::Metadata(std::vector<KeyValue> entries, std::string where) : m_entries(std::move(entries)), m_where(std::move(where)) {}

const Value* Metadata::find(std::string_view key) const
{
    for (const KeyValue& kv : m_entries)
        if (kv.key == key)
            return &kv.value;
    return nullptr;
}

std::optional<std::string> Metadata::get_string(std::string_view key) const
{
    const Value* v = find(key);
    if (!v)
        return std::nullopt;
    if (v->type != ValueType::string)
        wrong_type(m_where, key, *v, "a string");
    return std::get<std::string>(v->data);
}

std::optional<std::int64_t> Metadata::get_int(std::string_view key) const
{
    const Value* v = find(key);
    if (!v)
        return std::nullopt;
    if (!is_integer(v->type))
        wrong_type(m_where, key, *v, "an integer");
    const auto i = as_int(*v);
    if (!i)
        wrong_type(m_where, key, *v, "an integer below 2^63");
    return i;
}

std::optional<double> Metadata::get_float(std::string_view key) const
{
    const Value* v = find(key);
    if (!v)
        return std::nullopt;
    if (v->type == ValueType::f32 || v->type == ValueType::f64)
        return std::get<double>(v->data);
    if (is_integer(v->type))
        if (const auto i = as_int(*v))
            return static_cast<double>(*i);
    wrong_type(m_where, key, *v, "a number");
}

std::optional<bool> Metadata::get_bool(std::string_view key) const
{
    const Value* v = find(key);
    if (!v)
        return std::nullopt;
    if (v->type != ValueType::boolean)
        wrong_type(m_where, key, *v, "a bool");
    return std::get<bool>(v->data);
}

std::optional<std::vector<std::string>> Metadata::get_strings(std::string_view key) const
{
    const Value* v = find(key);
    if (!v)
        return std::nullopt;
    if (v->type != ValueType::array || v->element_type != ValueType::string)
        wrong_type(m_where, key, *v, "an array of strings");
    std::vector<std::string> out;
    const Array& a = std::get<Array>(v->data);
    out.reserve(a.size());
    for (const Value& e : a)
        out.push_back(std::get<std::string>(e.data));
    return out;
}

std::optional<std::vector<std::int64_t>> Metadata::get_ints(std::string_view key) const
{
    const Value* v = find(key);
    if (!v)
        return std::nullopt;
    if (v->type != ValueType::array || !is_integer(v->element_type))
        wrong_type(m_where, key, *v, "an array of integers");
    std::vector<std::int64_t> out;
    const Array& a = std::get<Array>(v->data);
    out.reserve(a.size());
    for (const Value& e : a) {
        const auto i = as_int(e);
        if (!i)
            wrong_type(m_where, key, *v, "an array of integers below 2^63");
        out.push_back(*i);
    }
    return out;
}

std::optional<std::vector<double>> Metadata::get_floats(std::string_view key) const
{
    const Value* v = find(key);
    if (!v)
        return std::nullopt;
    if (v->type != ValueType::array ||
        !(v->element_type == ValueType::f32 || v->element_type == ValueType::f64 || is_integer(v->element_type)))
        wrong_type(m_where, key, *v, "an array of numbers");
    std::vector<double> out;
    const Array& a = std::get<Array>(v->data);
    out.reserve(a.size());
    for (const Value& e : a) {
        if (const auto* d = std::get_if<double>(&e.data))
            out.push_back(*d);
        else if (const auto i = as_int(e))
            out.push_back(static_cast<double>(*i));
        else
            wrong_type(m_where, key, *v, "an array of numbers");
    }
    return out;
}

} // namespace layerwise::gguf
