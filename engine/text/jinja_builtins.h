#pragma once
// jinja2's built-in filters and tests, the globals transformers adds (raise_exception,
// strftime_now, namespace, dict), and the Python methods of str, dict and list that
// templates call (strip, split, startswith, items, get...).
#include "text/jinja_value.h"

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

namespace layerwise::jinja {

class Interpreter;

// raise_exception(message) in a template: surfaces as ChatTemplateError::Kind::raised.
class TemplateRaised : public RenderFailure {
public:
    using RenderFailure::RenderFailure;
};

// Names jinja2 knows (an unknown name is a syntax error, as in jinja2).
bool is_jinja_filter(std::string_view name);
bool is_jinja_test(std::string_view name);

Value apply_filter(Interpreter& interp, const std::string& name, const Value& input, CallArgs& args);
bool apply_test(Interpreter& interp, const std::string& name, const Value& input, CallArgs& args);

// Python getattr() on str/dict/list/tuple values: a bound method, or nullopt when the
// type has no such attribute. `unsafe` is set for methods the immutable sandbox refuses.
std::optional<Value> builtin_attribute(const Value& self, const std::string& name, bool& unsafe);
Value call_method(Interpreter& interp, const Value& self, const std::string& name, CallArgs& args);

// The environment's globals: range, dict, namespace, cycler, joiner, raise_exception, strftime_now.
void install_globals(DictData& globals);

// seq[start:stop:step] with Python's rules (any of the bounds may be None/undefined-free).
Value python_slice(const Value& seq, const Value& start, const Value& stop, const Value& step);
// `item in container`.
bool python_contains(const Value& container, const Value& item);
// `fmt % args` (printf-style) and `fmt.format(*args, **kwargs)`.
std::string percent_format(Interpreter& interp, const std::string& fmt, const Value& args);
std::string brace_format(Interpreter& interp, const std::string& fmt, CallArgs& args);
// Python arithmetic on two values (+ - * / // % **).
enum class ArithOp { add, sub, mul, div, floordiv, mod, pow };
Value arithmetic(Interpreter& interp, ArithOp op, const Value& a, const Value& b);

// Binds call arguments to parameters the way a Python signature does.
class ArgBinder {
public:
    struct Param {
        const char* name;
        std::optional<Value> fallback; // nullopt = required
    };
    ArgBinder(const std::string& function, CallArgs& args, std::initializer_list<Param> params,
              bool extra_positional = false, bool extra_keyword = false);
    const Value& operator[](std::size_t i) const { return m_values[i]; }
    std::size_t size() const { return m_values.size(); }
    ValueList extra_positional;
    std::vector<std::pair<std::string, Value>> extra_keyword;

private:
    std::vector<Value> m_values;
};

// dict.fromkeys(iterable, value=None)
Value dict_fromkeys(CallArgs& args);

// Python int() / float() conversions used by filters and methods; nullopt when impossible.
std::optional<std::int64_t> to_index(const Value& v);
std::int64_t require_int(const Value& v, const std::string& what);

} // namespace layerwise::jinja
