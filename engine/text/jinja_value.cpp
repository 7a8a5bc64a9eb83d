#include "text/jinja_value.h"

#include "text/jinja_strings.h"

#include <algorithm>
#include <cmath>

namespace layerwise::jinja {

// ---------------------------------------------------------------- Value

Value::Value() = default;

Value Value::undefined(std::string message)
{
    Value v;
    v.m_type = Type::undefined;
    v.m_ptr = std::make_shared<std::string>(std::move(message));
    return v;
}

Value Value::none()
{
    Value v;
    v.m_type = Type::none;
    return v;
}

Value Value::boolean(bool b)
{
    Value v;
    v.m_type = Type::boolean;
    v.m_scalar.b = b;
    return v;
}

Value Value::integer(std::int64_t i)
{
    Value v;
    v.m_type = Type::integer;
    v.m_scalar.i = i;
    return v;
}

Value Value::floating(double f)
{
    Value v;
    v.m_type = Type::floating;
    v.m_scalar.f = f;
    return v;
}

Value Value::string(std::string s)
{
    Value v;
    v.m_type = Type::string;
    v.m_ptr = std::make_shared<std::string>(std::move(s));
    return v;
}

int nesting_of(const Value& v)
{
    switch (v.type()) {
    case Value::Type::list: return v.as_list().depth;
    case Value::Type::dict: return v.as_dict().depth;
    case Value::Type::object: return v.as_object().nesting();
    default: return 0;
    }
}

int nesting_of(const ValueList& items)
{
    int depth = 0;
    for (const auto& item : items)
        depth = std::max(depth, nesting_of(item));
    return depth;
}

void check_nesting(int depth)
{
    if (depth > max_nesting_depth)
        throw RenderFailure("values nested more than " + std::to_string(max_nesting_depth) +
                            " deep are not supported");
}

void check_text_size(std::uint64_t bytes)
{
    if (bytes > (64u << 20))
        throw RenderFailure("the text would be larger than Layerwise allows (64 MiB)");
}

namespace {
thread_local std::vector<Value>* graveyard = nullptr;
}

void release_deferred(std::vector<Value>&& values)
{
    if (graveyard) {
        for (auto& v : values)
            graveyard->push_back(std::move(v));
        values.clear();
        return;
    }
    std::vector<Value> grave = std::move(values);
    graveyard = &grave;
    while (!grave.empty()) {
        Value v = std::move(grave.back());
        grave.pop_back();
        v = Value(); // may hand more values to the graveyard
    }
    graveyard = nullptr;
}

Value Value::list(ValueList items, ListKind kind)
{
    Value v;
    v.m_type = Type::list;
    const int depth = nesting_of(items);
    check_nesting(depth + 1);
    auto data = std::make_shared<ListData>();
    data->depth = depth + 1;
    data->items = std::move(items);
    data->kind = kind;
    v.m_ptr = std::move(data);
    return v;
}

Value Value::dict(std::shared_ptr<const DictData> d)
{
    int depth = 0;
    for (const auto& [k, val] : d->entries)
        depth = std::max({depth, nesting_of(k), nesting_of(val)});
    check_nesting(depth + 1);
    const_cast<DictData&>(*d).depth = depth + 1;
    Value v;
    v.m_type = Type::dict;
    v.m_ptr = std::const_pointer_cast<DictData>(std::move(d));
    return v;
}

Value Value::object(std::shared_ptr<Object> o)
{
    Value v;
    v.m_type = Type::object;
    v.m_ptr = std::move(o);
    return v;
}

bool Value::is_sequence_list() const
{
    return m_type == Type::list && (as_list().kind == ListKind::list || as_list().kind == ListKind::tuple);
}

double Value::as_number() const
{
    switch (m_type) {
    case Type::boolean: return m_scalar.b ? 1.0 : 0.0;
    case Type::integer: return static_cast<double>(m_scalar.i);
    default: return m_scalar.f;
    }
}

const std::string& Value::as_string() const { return *static_cast<const std::string*>(m_ptr.get()); }
const ListData& Value::as_list() const { return *static_cast<const ListData*>(m_ptr.get()); }
const DictData& Value::as_dict() const { return *static_cast<const DictData*>(m_ptr.get()); }
Object& Value::as_object() const { return *static_cast<Object*>(m_ptr.get()); }
std::shared_ptr<Object> Value::object_ptr() const { return std::static_pointer_cast<Object>(m_ptr); }

const std::string& Value::undefined_message() const
{
    static const std::string anonymous = "None is undefined";
    return m_ptr ? *static_cast<const std::string*>(m_ptr.get()) : anonymous;
}

// ---------------------------------------------------------------- DictData

const Value* DictData::find(std::string_view key) const
{
    const auto it = m_string_index.find(std::string(key));
    return it == m_string_index.end() ? nullptr : &entries[it->second].second;
}

const Value* DictData::find(const Value& key) const
{
    if (key.is_string())
        return find(key.as_string());
    for (const auto& [k, v] : entries)
        if (!k.is_string() && py_equal(k, key))
            return &v;
    return nullptr;
}

void DictData::set(Value key, Value value)
{
    if (key.is_string()) {
        const auto it = m_string_index.find(key.as_string());
        if (it != m_string_index.end()) {
            entries[it->second].second = std::move(value);
            return;
        }
        m_string_index.emplace(key.as_string(), entries.size());
        entries.emplace_back(std::move(key), std::move(value));
        return;
    }
    for (auto& [k, v] : entries)
        if (!k.is_string() && py_equal(k, key)) {
            v = std::move(value);
            return;
        }
    entries.emplace_back(std::move(key), std::move(value));
}

// ---------------------------------------------------------------- Object

std::string Object::repr() const { return "<" + type_name() + " object>"; }
std::optional<Value> Object::attribute(const std::string&) { return std::nullopt; }
std::optional<Value> Object::item(const Value&) { return std::nullopt; }

Value Object::call(Interpreter&, CallArgs&)
{
    throw RenderFailure("'" + type_name() + "' object is not callable");
}

ValueList Object::iterate()
{
    throw RenderFailure("'" + type_name() + "' object is not iterable");
}

IteratorObject::IteratorObject(ValueList items, std::string type) : m_items(std::move(items)), m_type(std::move(type))
{
    m_nesting = nesting_of(m_items) + 1;
    check_nesting(m_nesting);
}

ValueList IteratorObject::iterate()
{
    ValueList rest(m_items.begin() + static_cast<std::ptrdiff_t>(m_pos), m_items.end());
    m_pos = m_items.size();
    return rest;
}

// ---------------------------------------------------------------- Python semantics

bool truthy(const Value& v)
{
    switch (v.type()) {
    case Value::Type::undefined:
    case Value::Type::none: return false;
    case Value::Type::boolean: return v.as_bool();
    case Value::Type::integer: return v.as_int() != 0;
    case Value::Type::floating: return v.as_float() != 0.0;
    case Value::Type::string: return !v.as_string().empty();
    case Value::Type::list: return !v.items().empty();
    case Value::Type::dict: return v.as_dict().size() != 0;
    case Value::Type::object: return v.as_object().truthy();
    }
    return false;
}

std::string type_name(const Value& v)
{
    switch (v.type()) {
    case Value::Type::undefined: return "Undefined";
    case Value::Type::none: return "NoneType";
    case Value::Type::boolean: return "bool";
    case Value::Type::integer: return "int";
    case Value::Type::floating: return "float";
    case Value::Type::string: return "str";
    case Value::Type::list:
        switch (v.list_kind()) {
        case ListKind::list: return "list";
        case ListKind::tuple: return "tuple";
        case ListKind::dict_keys: return "dict_keys";
        case ListKind::dict_values: return "dict_values";
        case ListKind::dict_items: return "dict_items";
        }
        return "list";
    case Value::Type::dict: return "dict";
    case Value::Type::object: return v.as_object().type_name();
    }
    return "object";
}

std::string object_type_repr(const Value& v)
{
    if (v.is_none())
        return "None";
    if (v.is_undefined())
        return "jinja2.runtime.Undefined object";
    if (v.is_object() && v.as_object().module_name() != "builtins")
        return v.as_object().module_name() + "." + v.as_object().type_name() + " object";
    return type_name(v) + " object";
}

namespace {

// Python raises RecursionError for very deep structures and runs out of memory on huge
// ones; Layerwise stops with an error instead of exhausting the stack or the RAM.
constexpr int max_nesting = 500;
constexpr std::size_t max_repr_bytes = 64u << 20;

void check_depth(int depth)
{
    if (depth > max_nesting)
        throw RenderFailure("maximum recursion depth exceeded while getting the repr of an object");
}

// Depth across nested repr() calls that pass through objects (a namespace printing itself).
thread_local int repr_depth = 0;

struct ReprDepth {
    ReprDepth()
    {
        if (++repr_depth > max_nesting) {
            --repr_depth;
            throw RenderFailure("maximum recursion depth exceeded while getting the repr of an object");
        }
    }
    ~ReprDepth() { --repr_depth; }
};

void check_size(const std::string& out)
{
    if (out.size() > max_repr_bytes)
        throw RenderFailure("the text of a value is too large (more than 64 MiB)");
}

void repr_into(const Value& v, std::string& out, int depth);

void join_repr(const ValueList& items, std::string& out, int depth)
{
    for (std::size_t i = 0; i < items.size(); ++i) {
        if (i)
            out += ", ";
        repr_into(items[i], out, depth + 1);
    }
}

void repr_into(const Value& v, std::string& out, int depth)
{
    const ReprDepth guard;
    check_depth(depth);
    switch (v.type()) {
    case Value::Type::undefined: out += "Undefined"; break;
    case Value::Type::none: out += "None"; break;
    case Value::Type::boolean: out += v.as_bool() ? "True" : "False"; break;
    case Value::Type::integer: out += std::to_string(v.as_int()); break;
    case Value::Type::floating: out += py_float_repr(v.as_float()); break;
    case Value::Type::string: out += py_repr_string(v.as_string()); break;
    case Value::Type::list: {
        const auto& items = v.items();
        switch (v.list_kind()) {
        case ListKind::list: out += "["; join_repr(items, out, depth); out += "]"; break;
        case ListKind::tuple:
            out += "(";
            join_repr(items, out, depth);
            out += items.size() == 1 ? ",)" : ")";
            break;
        case ListKind::dict_keys: out += "dict_keys(["; join_repr(items, out, depth); out += "])"; break;
        case ListKind::dict_values: out += "dict_values(["; join_repr(items, out, depth); out += "])"; break;
        case ListKind::dict_items: out += "dict_items(["; join_repr(items, out, depth); out += "])"; break;
        }
        break;
    }
    case Value::Type::dict: {
        out += "{";
        bool first = true;
        for (const auto& [k, val] : v.as_dict().entries) {
            if (!first)
                out += ", ";
            first = false;
            repr_into(k, out, depth + 1);
            out += ": ";
            repr_into(val, out, depth + 1);
        }
        out += "}";
        break;
    }
    case Value::Type::object: out += v.as_object().repr(); break;
    }
    check_size(out);
}

} // namespace

std::string repr(const Value& v)
{
    std::string out;
    repr_into(v, out, 0);
    return out;
}

std::string to_str(const Value& v)
{
    switch (v.type()) {
    case Value::Type::undefined: return "";
    case Value::Type::string: return v.as_string();
    default: return repr(v);
    }
}

namespace {
bool equal_at(const Value& a, const Value& b, int depth);
}

bool py_equal(const Value& a, const Value& b) { return equal_at(a, b, 0); }

namespace {
bool equal_at(const Value& a, const Value& b, int depth)
{
    check_depth(depth);
    if (a.is_number() && b.is_number()) {
        if (a.is_float() || b.is_float())
            return a.as_number() == b.as_number();
        return a.as_int() == b.as_int();
    }
    if (a.type() != b.type())
        return false;
    switch (a.type()) {
    case Value::Type::undefined:
    case Value::Type::none: return true;
    case Value::Type::string: return a.as_string() == b.as_string();
    case Value::Type::list: {
        const bool a_tuple = a.list_kind() == ListKind::tuple, b_tuple = b.list_kind() == ListKind::tuple;
        if (a_tuple != b_tuple)
            return false;
        const auto &x = a.items(), &y = b.items();
        if (x.size() != y.size())
            return false;
        for (std::size_t i = 0; i < x.size(); ++i)
            if (!equal_at(x[i], y[i], depth + 1))
                return false;
        return true;
    }
    case Value::Type::dict: {
        const auto &x = a.as_dict(), &y = b.as_dict();
        if (x.size() != y.size())
            return false;
        for (const auto& [k, v] : x.entries) {
            const Value* other = y.find(k);
            if (!other || !equal_at(v, *other, depth + 1))
                return false;
        }
        return true;
    }
    case Value::Type::object: return a.identity() == b.identity();
    default: return false;
    }
}
} // namespace

int py_compare(const Value& a, const Value& b, std::string_view op)
{
    if (a.is_undefined())
        throw RenderFailure(a.undefined_message());
    if (b.is_undefined())
        throw RenderFailure(b.undefined_message());
    if (a.is_number() && b.is_number()) {
        if (a.is_float() || b.is_float()) {
            const double x = a.as_number(), y = b.as_number();
            return x < y ? -1 : (x > y ? 1 : 0); // NaN compares as equal: every ordering test is then false
        }
        const auto x = a.as_int(), y = b.as_int();
        return x < y ? -1 : (x > y ? 1 : 0);
    }
    if (a.is_string() && b.is_string()) {
        const int c = a.as_string().compare(b.as_string());
        return c < 0 ? -1 : (c > 0 ? 1 : 0);
    }
    if (a.is_list() && b.is_list() && a.list_kind() == b.list_kind() &&
        (a.list_kind() == ListKind::list || a.list_kind() == ListKind::tuple)) {
        const auto &x = a.items(), &y = b.items();
        for (std::size_t i = 0; i < x.size() && i < y.size(); ++i)
            if (!py_equal(x[i], y[i]))
                return py_compare(x[i], y[i], op);
        return x.size() < y.size() ? -1 : (x.size() > y.size() ? 1 : 0);
    }
    throw RenderFailure("'" + std::string(op) + "' not supported between instances of '" + type_name(a) + "' and '" +
                        type_name(b) + "'");
}

void require_hashable(const Value& key)
{
    if (key.is_dict() || (key.is_list() && key.list_kind() != ListKind::tuple))
        throw RenderFailure("unhashable type: '" + type_name(key) + "'");
    if (key.is_list())
        for (const auto& item : key.items())
            require_hashable(item);
}

ValueList iterate(const Value& v)
{
    switch (v.type()) {
    case Value::Type::undefined: return {};
    case Value::Type::list: return v.items();
    case Value::Type::dict: {
        ValueList keys;
        keys.reserve(v.as_dict().size());
        for (const auto& [k, val] : v.as_dict().entries)
            keys.push_back(k);
        return keys;
    }
    case Value::Type::string: {
        ValueList chars;
        const std::string& s = v.as_string();
        std::size_t i = 0;
        while (i < s.size()) {
            std::size_t j = i + 1;
            while (j < s.size() && (static_cast<unsigned char>(s[j]) & 0xC0) == 0x80)
                ++j;
            chars.push_back(Value::string(s.substr(i, j - i)));
            i = j;
        }
        return chars;
    }
    case Value::Type::object: return v.as_object().iterate();
    default: throw RenderFailure("'" + type_name(v) + "' object is not iterable");
    }
}

bool is_iterable(const Value& v)
{
    switch (v.type()) {
    case Value::Type::undefined:
    case Value::Type::list:
    case Value::Type::dict:
    case Value::Type::string: return true;
    case Value::Type::object: return v.as_object().is_iterable();
    default: return false;
    }
}

std::optional<std::int64_t> length_if_any(const Value& v)
{
    switch (v.type()) {
    case Value::Type::undefined: return 0;
    case Value::Type::string: return static_cast<std::int64_t>(code_point_count(v.as_string()));
    case Value::Type::list: return static_cast<std::int64_t>(v.items().size());
    case Value::Type::dict: return static_cast<std::int64_t>(v.as_dict().size());
    case Value::Type::object: return v.as_object().length();
    default: return std::nullopt;
    }
}

std::int64_t length(const Value& v)
{
    if (auto n = length_if_any(v))
        return *n;
    throw RenderFailure("object of type '" + type_name(v) + "' has no len()");
}

// ---------------------------------------------------------------- JSON

namespace {

template <typename Json>
Value convert_json(const Json& j)
{
    switch (j.type()) {
    case nlohmann::json::value_t::null: return Value::none();
    case nlohmann::json::value_t::boolean: return Value::boolean(j.template get<bool>());
    case nlohmann::json::value_t::number_integer: return Value::integer(j.template get<std::int64_t>());
    case nlohmann::json::value_t::number_unsigned: {
        const auto u = j.template get<std::uint64_t>();
        if (u > static_cast<std::uint64_t>(INT64_MAX))
            return Value::floating(static_cast<double>(u));
        return Value::integer(static_cast<std::int64_t>(u));
    }
    case nlohmann::json::value_t::number_float: return Value::floating(j.template get<double>());
    case nlohmann::json::value_t::string: return Value::string(j.template get<std::string>());
    case nlohmann::json::value_t::array: {
        ValueList items;
        items.reserve(j.size());
        for (const auto& e : j)
            items.push_back(convert_json(e));
        return Value::list(std::move(items));
    }
    case nlohmann::json::value_t::object: {
        auto d = std::make_shared<DictData>();
        for (auto it = j.begin(); it != j.end(); ++it)
            d->set(Value::string(it.key()), convert_json(it.value()));
        return Value::dict(std::move(d));
    }
    default: return Value::none();
    }
}

std::string json_float(double f)
{
    if (std::isnan(f))
        return "NaN";
    if (std::isinf(f))
        return f < 0 ? "-Infinity" : "Infinity";
    return py_float_repr(f);
}

std::string json_key(const Value& k)
{
    switch (k.type()) {
    case Value::Type::string: return k.as_string();
    case Value::Type::boolean: return k.as_bool() ? "true" : "false";
    case Value::Type::integer: return std::to_string(k.as_int());
    case Value::Type::floating: return json_float(k.as_float());
    case Value::Type::none: return "null";
    default: throw RenderFailure("keys must be str, int, float, bool or None, not " + type_name(k));
    }
}

void dump(const Value& v, const JsonDumpOptions& o, int level, std::string& out)
{
    check_depth(level);
    check_size(out);
    auto newline = [&](int depth) {
        out.push_back('\n');
        for (int i = 0; i < depth; ++i)
            out += *o.indent;
    };
    switch (v.type()) {
    case Value::Type::none: out += "null"; return;
    case Value::Type::boolean: out += v.as_bool() ? "true" : "false"; return;
    case Value::Type::integer: out += std::to_string(v.as_int()); return;
    case Value::Type::floating: out += json_float(v.as_float()); return;
    case Value::Type::string: out += json_quote(v.as_string(), o.ensure_ascii); return;
    case Value::Type::list:
        if (v.list_kind() == ListKind::list || v.list_kind() == ListKind::tuple) {
            const auto& items = v.items();
            if (items.empty()) {
                out += "[]";
                return;
            }
            out.push_back('[');
            for (std::size_t i = 0; i < items.size(); ++i) {
                if (i)
                    out += o.item_separator;
                if (o.indent)
                    newline(level + 1);
                dump(items[i], o, level + 1, out);
            }
            if (o.indent)
                newline(level);
            out.push_back(']');
            return;
        }
        break;
    case Value::Type::dict: {
        const auto& entries = v.as_dict().entries;
        if (entries.empty()) {
            out += "{}";
            return;
        }
        std::vector<const std::pair<Value, Value>*> order;
        order.reserve(entries.size());
        for (const auto& e : entries)
            order.push_back(&e);
        if (o.sort_keys)
            std::stable_sort(order.begin(), order.end(),
                             [](const auto* a, const auto* b) { return py_compare(a->first, b->first, "<") < 0; });
        out.push_back('{');
        bool first = true;
        for (const auto* e : order) {
            if (!first)
                out += o.item_separator;
            first = false;
            if (o.indent)
                newline(level + 1);
            out += json_quote(json_key(e->first), o.ensure_ascii);
            out += o.key_separator;
            dump(e->second, o, level + 1, out);
        }
        if (o.indent)
            newline(level);
        out.push_back('}');
        return;
    }
    default: break;
    }
    throw RenderFailure("Object of type " + type_name(v) + " is not JSON serializable");
}

} // namespace

Value from_json(const nlohmann::ordered_json& j) { return convert_json(j); }
Value from_json(const nlohmann::json& j) { return convert_json(j); }

std::string dump_json(const Value& v, const JsonDumpOptions& options)
{
    std::string out;
    dump(v, options, 0, out);
    return out;
}

} // namespace layerwise::jinja
