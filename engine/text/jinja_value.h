#pragma once
// The values a chat template computes with, modelled on the Python objects jinja2
// hands around: None, bool, int, float, str, list, tuple, dict (insertion-ordered),
// jinja2's Undefined, and opaque objects (namespaces, loops, macros, methods,
// generators). Lists and dicts are immutable once built — the sandbox transformers
// uses forbids mutating them — so values share them freely.
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace layerwise::jinja {

class Interpreter;
class Object;
class Value;
struct DictData;
using ValueList = std::vector<Value>;

// A failure while rendering, as Python would raise it (TypeError, UndefinedError,
// TemplateError from raise_exception...). The interpreter adds the template line.
class RenderFailure : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Which Python sequence type a list value stands for (they print differently).
enum class ListKind : std::uint8_t { list, tuple, dict_keys, dict_values, dict_items };

struct ListData {
    ValueList items;
    ListKind kind = ListKind::list;
    int depth = 1; // nesting of lists/dicts inside, this one included
};

// Positional and keyword arguments of a call, filter or test.
struct CallArgs {
    ValueList positional;
    std::vector<std::pair<std::string, Value>> keyword;
};

class Value {
public:
    enum class Type : std::uint8_t { undefined, none, boolean, integer, floating, string, list, dict, object };

    Value(); // an Undefined without a name
    static Value undefined(std::string message);
    static Value none();
    static Value boolean(bool b);
    static Value integer(std::int64_t i);
    static Value floating(double f);
    static Value string(std::string s);
    static Value list(ValueList items, ListKind kind = ListKind::list);
    static Value tuple(ValueList items) { return list(std::move(items), ListKind::tuple); }
    static Value dict(std::shared_ptr<const DictData> d);
    static Value object(std::shared_ptr<Object> o);

    Type type() const { return m_type; }
    bool is_undefined() const { return m_type == Type::undefined; }
    bool is_none() const { return m_type == Type::none; }
    bool is_bool() const { return m_type == Type::boolean; }
    bool is_int() const { return m_type == Type::integer; }
    bool is_float() const { return m_type == Type::floating; }
    // int, float or bool (Python's numbers.Number)
    bool is_number() const { return m_type == Type::boolean || m_type == Type::integer || m_type == Type::floating; }
    // int or bool (bool is an int subclass in Python)
    bool is_integral() const { return m_type == Type::boolean || m_type == Type::integer; }
    bool is_string() const { return m_type == Type::string; }
    bool is_list() const { return m_type == Type::list; }
    bool is_dict() const { return m_type == Type::dict; }
    bool is_object() const { return m_type == Type::object; }
    // list or tuple proper (not a dict view)
    bool is_sequence_list() const;

    bool as_bool() const { return m_scalar.b; }
    std::int64_t as_int() const { return m_type == Type::boolean ? (m_scalar.b ? 1 : 0) : m_scalar.i; }
    double as_float() const { return m_scalar.f; }
    double as_number() const;
    const std::string& as_string() const;
    const ListData& as_list() const;
    const ValueList& items() const { return as_list().items; }
    ListKind list_kind() const { return as_list().kind; }
    const DictData& as_dict() const;
    Object& as_object() const;
    std::shared_ptr<Object> object_ptr() const;
    template <typename T>
    T* object_as() const
    {
        return m_type == Type::object ? dynamic_cast<T*>(&as_object()) : nullptr;
    }
    const std::string& undefined_message() const;
    // Identity for `is sameas` (Python's `is`).
    const void* identity() const { return m_ptr.get(); }

private:
    Type m_type = Type::undefined;
    union {
        bool b;
        std::int64_t i;
        double f;
    } m_scalar{};
    std::shared_ptr<void> m_ptr;
};

// An insertion-ordered Python dict.
struct DictData {
    std::vector<std::pair<Value, Value>> entries;

    const Value* find(const Value& key) const;
    const Value* find(std::string_view key) const;
    // Sets key to value; an existing key keeps its position (Python dict semantics).
    void set(Value key, Value value);
    std::size_t size() const { return entries.size(); }
    int depth = 1; // nesting of lists/dicts inside, this one included (set when wrapped in a Value)

private:
    std::unordered_map<std::string, std::size_t> m_string_index;
};

// Everything that is not plain data: namespaces, loops, macros, functions, methods, iterators.
class Object {
public:
    virtual ~Object() = default;
    // How deeply values nest inside this object (see check_nesting). Immutable objects
    // compute it from what they hold; mutable ones (namespaces) release their contents
    // without recursing instead.
    int nesting() const { return m_nesting; }
    // Python's type(obj).__name__ and __module__, for messages and object_type_repr.
    virtual std::string type_name() const = 0;
    virtual std::string module_name() const { return "builtins"; }
    virtual std::string repr() const;
    virtual bool truthy() const { return true; }
    // getattr(obj, name); nullopt when there is no such attribute.
    virtual std::optional<Value> attribute(const std::string& name);
    // obj[key]; nullopt when not subscriptable or absent.
    virtual std::optional<Value> item(const Value& key);
    virtual bool is_callable() const { return false; }
    virtual Value call(Interpreter& interp, CallArgs& args);
    virtual bool is_iterable() const { return false; }
    virtual ValueList iterate();
    virtual std::optional<std::int64_t> length() const { return std::nullopt; }

protected:
    int m_nesting = 1;
};

// A single-pass iterator (Python generator or reverse iterator): truthy even when
// empty, no len(), exhausted after one iteration.
class IteratorObject : public Object {
public:
    IteratorObject(ValueList items, std::string type);
    std::string type_name() const override { return m_type; }
    std::string repr() const override { return "<" + m_type + " object>"; }
    bool is_iterable() const override { return true; }
    ValueList iterate() override;

private:
    ValueList m_items;
    std::size_t m_pos = 0;
    std::string m_type;
};

// Lists, dicts and objects nest at most this deep. Deeper structures are refused when
// built: destroying, printing or comparing them would recurse that deep.
constexpr int max_nesting_depth = 500;
int nesting_of(const Value& v);
int nesting_of(const ValueList& items);
// Throws RenderFailure when `depth` exceeds max_nesting_depth.
void check_nesting(int depth);
// Throws RenderFailure for strings a template asks to build beyond 64 MiB (padding to a
// huge width, repeating text...), where Python would run out of memory.
void check_text_size(std::uint64_t bytes);
// Destroys `values` without deep recursion: a release already in progress takes them
// over and destroys them one at a time (long chains of namespaces and scopes).
void release_deferred(std::vector<Value>&& values);

// ---- Python semantics ----
bool truthy(const Value& v);
std::string type_name(const Value& v);
// jinja2.utils.object_type_repr: "dict object", "None", "str object"...
std::string object_type_repr(const Value& v);
std::string to_str(const Value& v);
std::string repr(const Value& v);
bool py_equal(const Value& a, const Value& b);
// Three-way comparison for <, <=, >, >=; throws RenderFailure for unorderable types.
int py_compare(const Value& a, const Value& b, std::string_view op);
// Throws RenderFailure("unhashable type: 'list'") for keys Python cannot hash.
void require_hashable(const Value& key);
// iter(v) materialised; consumes iterators. Throws for non-iterables.
ValueList iterate(const Value& v);
bool is_iterable(const Value& v);
// len(v); throws for values without a length.
std::int64_t length(const Value& v);
std::optional<std::int64_t> length_if_any(const Value& v);

// ---- JSON ----
Value from_json(const nlohmann::ordered_json& j);
Value from_json(const nlohmann::json& j);

struct JsonDumpOptions {
    bool ensure_ascii = false;
    std::optional<std::string> indent; // json.dumps(indent=...) as the string one level adds
    std::string item_separator = ", ";
    std::string key_separator = ": ";
    bool sort_keys = false;
};
// json.dumps(v, **options); throws RenderFailure for values JSON cannot hold.
std::string dump_json(const Value& v, const JsonDumpOptions& options);

} // namespace layerwise::jinja
