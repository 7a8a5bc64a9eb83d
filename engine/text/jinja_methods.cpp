// Python semantics the templates lean on: methods of str/dict/list/tuple, slicing,
// `in`, arithmetic, printf-style `%` and str.format, and argument binding.
#include "text/jinja_builtins.h"
#include "text/jinja_eval.h"
#include "text/jinja_strings.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdio>
#include <set>

namespace layerwise::jinja {

namespace {

std::string py_quoted(const std::string& s) { return py_repr_string(s); }

constexpr std::size_t max_repeat_bytes = 64u << 20; // refuse to build strings/lists larger than this

} // namespace

// ---------------------------------------------------------------- argument binding

ArgBinder::ArgBinder(const std::string& function, CallArgs& args, std::initializer_list<Param> params,
                     bool extra_positional_ok, bool extra_keyword_ok)
{
    const std::vector<Param> ps(params);
    std::vector<std::optional<Value>> values(ps.size());
    const std::size_t given = args.positional.size();
    if (given > ps.size() && !extra_positional_ok) {
        std::size_t required = 0;
        for (const auto& p : ps)
            required += p.fallback ? 0 : 1;
        std::string takes = required == ps.size() ? std::to_string(ps.size())
                                                  : "from " + std::to_string(required) + " to " + std::to_string(ps.size());
        throw RenderFailure(function + "() takes " + takes + " positional argument" + (ps.size() == 1 ? "" : "s") +
                            " but " + std::to_string(given) + (given == 1 ? " was" : " were") + " given");
    }
    for (std::size_t i = 0; i < given; ++i) {
        if (i < ps.size())
            values[i] = args.positional[i];
        else
            extra_positional.push_back(args.positional[i]);
    }
    for (auto& [key, value] : args.keyword) {
        std::size_t j = 0;
        while (j < ps.size() && key != ps[j].name)
            ++j;
        if (j == ps.size()) {
            if (!extra_keyword_ok)
                throw RenderFailure(function + "() got an unexpected keyword argument " + py_quoted(key));
            extra_keyword.emplace_back(key, value);
            continue;
        }
        if (values[j])
            throw RenderFailure(function + "() got multiple values for argument " + py_quoted(key));
        values[j] = value;
    }
    m_values.reserve(ps.size());
    for (std::size_t j = 0; j < ps.size(); ++j) {
        if (values[j])
            m_values.push_back(*values[j]);
        else if (ps[j].fallback)
            m_values.push_back(*ps[j].fallback);
        else
            throw RenderFailure(function + "() missing 1 required positional argument: " + py_quoted(ps[j].name));
    }
}

std::optional<std::int64_t> to_index(const Value& v)
{
    if (v.is_integral())
        return v.as_int();
    return std::nullopt;
}

std::int64_t require_int(const Value& v, const std::string& what)
{
    if (v.is_undefined())
        throw RenderFailure(v.undefined_message());
    if (auto i = to_index(v))
        return *i;
    throw RenderFailure(py_quoted(type_name(v)) + " object cannot be interpreted as an integer" +
                        (what.empty() ? "" : " (" + what + ")"));
}

// ---------------------------------------------------------------- slicing

namespace {

struct SliceRange {
    std::int64_t start, stop, step, count;
};

std::optional<std::int64_t> slice_bound(const Value& v)
{
    if (v.is_none())
        return std::nullopt;
    if (auto i = to_index(v))
        return *i;
    throw RenderFailure("slice indices must be integers or None or have an __index__ method");
}

SliceRange adjust_slice(std::int64_t length, const Value& start_v, const Value& stop_v, const Value& step_v)
{
    const auto step_opt = slice_bound(step_v);
    const std::int64_t step = step_opt.value_or(1);
    if (step == 0)
        throw RenderFailure("slice step cannot be zero");
    auto clamp = [&](std::optional<std::int64_t> v, bool is_start) {
        std::int64_t x;
        if (!v)
            x = is_start ? (step < 0 ? INT64_MAX : 0) : (step < 0 ? INT64_MIN : INT64_MAX);
        else
            x = *v;
        if (x < 0) {
            if (x != INT64_MIN)
                x += length;
            if (x < 0)
                x = step < 0 ? -1 : 0;
        } else if (x >= length) {
            x = step < 0 ? length - 1 : length;
        }
        return x;
    };
    SliceRange r{clamp(slice_bound(start_v), true), clamp(slice_bound(stop_v), false), step, 0};
    if (step < 0) {
        if (r.stop < r.start)
            r.count = (r.start - r.stop - 1) / (-step) + 1;
    } else if (r.start < r.stop) {
        r.count = (r.stop - r.start - 1) / step + 1;
    }
    return r;
}

// s[start:end] by code points with Python's clamping (for find/count/startswith ranges).
std::string code_point_range(const std::string& s, const Value& start, const Value& end)
{
    if (start.is_none() && end.is_none())
        return s;
    const std::u32string u = to_u32(s);
    const SliceRange r = adjust_slice(static_cast<std::int64_t>(u.size()), start, end, Value::none());
    if (r.count <= 0)
        return {};
    return to_utf8(std::u32string_view(u).substr(static_cast<std::size_t>(r.start), static_cast<std::size_t>(r.count)));
}

std::int64_t range_offset(const std::string& s, const Value& start)
{
    if (start.is_none())
        return 0;
    const auto n = static_cast<std::int64_t>(code_point_count(s));
    const SliceRange r = adjust_slice(n, start, Value::none(), Value::none());
    return r.start;
}

} // namespace

Value python_slice(const Value& seq, const Value& start, const Value& stop, const Value& step)
{
    if (seq.is_undefined())
        throw RenderFailure(seq.undefined_message());
    if (seq.is_string()) {
        const std::string& s = seq.as_string();
        if (is_ascii(s)) {
            const SliceRange r = adjust_slice(static_cast<std::int64_t>(s.size()), start, stop, step);
            std::string out;
            out.reserve(static_cast<std::size_t>(std::max<std::int64_t>(r.count, 0)));
            for (std::int64_t i = 0, at = r.start; i < r.count; ++i, at += r.step)
                out.push_back(s[static_cast<std::size_t>(at)]);
            return Value::string(std::move(out));
        }
        const std::u32string u = to_u32(s);
        const SliceRange r = adjust_slice(static_cast<std::int64_t>(u.size()), start, stop, step);
        std::u32string out;
        for (std::int64_t i = 0, at = r.start; i < r.count; ++i, at += r.step)
            out.push_back(u[static_cast<std::size_t>(at)]);
        return Value::string(to_utf8(out));
    }
    if (seq.is_sequence_list()) {
        const auto& items = seq.items();
        const SliceRange r = adjust_slice(static_cast<std::int64_t>(items.size()), start, stop, step);
        ValueList out;
        out.reserve(static_cast<std::size_t>(std::max<std::int64_t>(r.count, 0)));
        for (std::int64_t i = 0, at = r.start; i < r.count; ++i, at += r.step)
            out.push_back(items[static_cast<std::size_t>(at)]);
        return Value::list(std::move(out), seq.list_kind());
    }
    if (seq.is_dict())
        throw RenderFailure("unhashable type: 'slice'");
    throw RenderFailure(py_quoted(type_name(seq)) + " object is not subscriptable");
}

bool python_contains(const Value& container, const Value& item)
{
    switch (container.type()) {
    case Value::Type::undefined: return false;
    case Value::Type::string:
        if (!item.is_string())
            throw RenderFailure("'in <string>' requires string as left operand, not " + type_name(item));
        return container.as_string().find(item.as_string()) != std::string::npos;
    case Value::Type::list:
        for (const auto& v : container.items())
            if (py_equal(v, item))
                return true;
        return false;
    case Value::Type::dict:
        require_hashable(item);
        return container.as_dict().find(item) != nullptr;
    case Value::Type::object:
        if (container.as_object().is_iterable()) {
            for (const auto& v : container.as_object().iterate())
                if (py_equal(v, item))
                    return true;
            return false;
        }
        break;
    default: break;
    }
    throw RenderFailure("argument of type " + py_quoted(type_name(container)) + " is not iterable");
}

// ---------------------------------------------------------------- arithmetic

namespace {

const char* op_symbol(ArithOp op)
{
    switch (op) {
    case ArithOp::add: return "+";
    case ArithOp::sub: return "-";
    case ArithOp::mul: return "*";
    case ArithOp::div: return "/";
    case ArithOp::floordiv: return "//";
    case ArithOp::mod: return "%";
    case ArithOp::pow: return "** or pow()";
    }
    return "?";
}

[[noreturn]] void unsupported_operands(ArithOp op, const Value& a, const Value& b)
{
    throw RenderFailure(std::string("unsupported operand type(s) for ") + op_symbol(op) + ": " +
                        py_quoted(type_name(a)) + " and " + py_quoted(type_name(b)));
}

[[noreturn]] void overflow()
{
    throw RenderFailure("integer result does not fit in 64 bits (Layerwise chat templates use 64-bit integers)");
}

Value repeat(const Value& seq, std::int64_t times)
{
    if (times <= 0)
        return seq.is_string() ? Value::string("") : Value::list({}, seq.list_kind());
    if (seq.is_string()) {
        const std::string& s = seq.as_string();
        if (s.size() * static_cast<std::size_t>(times) > max_repeat_bytes)
            throw RenderFailure("the repeated string would be larger than Layerwise allows");
        std::string out;
        out.reserve(s.size() * static_cast<std::size_t>(times));
        for (std::int64_t i = 0; i < times; ++i)
            out += s;
        return Value::string(std::move(out));
    }
    const auto& items = seq.items();
    if (items.size() * static_cast<std::size_t>(times) > max_repeat_bytes / 16)
        throw RenderFailure("the repeated list would be larger than Layerwise allows");
    ValueList out;
    for (std::int64_t i = 0; i < times; ++i)
        out.insert(out.end(), items.begin(), items.end());
    return Value::list(std::move(out), seq.list_kind());
}

double float_floordiv(double a, double b)
{
    double mod = std::fmod(a, b);
    double div = (a - mod) / b;
    if (mod != 0 && ((b < 0) != (mod < 0)))
        div -= 1.0;
    double floordiv;
    if (div != 0) {
        floordiv = std::floor(div);
        if (div - floordiv > 0.5)
            floordiv += 1.0;
    } else {
        floordiv = std::copysign(0.0, a / b);
    }
    return floordiv;
}

double float_mod(double a, double b)
{
    double mod = std::fmod(a, b);
    if (mod != 0) {
        if ((b < 0) != (mod < 0))
            mod += b;
    } else {
        mod = std::copysign(0.0, b);
    }
    return mod;
}

// a + b: numbers, or str, list and tuple concatenation.
Value add_values(const Value& a, const Value& b)
{
    const bool nums = a.is_number() && b.is_number();
    const bool ints = a.is_integral() && b.is_integral();
    if (ints) {
        std::int64_t r;
        if (__builtin_add_overflow(a.as_int(), b.as_int(), &r))
            overflow();
        return Value::integer(r);
    }
    if (nums)
        return Value::floating(a.as_number() + b.as_number());
    if (a.is_string()) {
        if (!b.is_string())
            throw RenderFailure("can only concatenate str (not \"" + type_name(b) + "\") to str");
        return Value::string(a.as_string() + b.as_string());
    }
    if (a.is_sequence_list()) {
        if (!b.is_sequence_list() || b.list_kind() != a.list_kind())
            throw RenderFailure("can only concatenate " + type_name(a) + " (not \"" + type_name(b) + "\") to " +
                                type_name(a));
        ValueList out = a.items();
        out.insert(out.end(), b.items().begin(), b.items().end());
        return Value::list(std::move(out), a.list_kind());
    }
    unsupported_operands(ArithOp::add, a, b);
}

// a - b for numbers.
Value subtract_values(const Value& a, const Value& b)
{
    const bool nums = a.is_number() && b.is_number();
    const bool ints = a.is_integral() && b.is_integral();
    if (ints) {
        std::int64_t r;
        if (__builtin_sub_overflow(a.as_int(), b.as_int(), &r))
            overflow();
        return Value::integer(r);
    }
    if (nums)
        return Value::floating(a.as_number() - b.as_number());
    unsupported_operands(ArithOp::sub, a, b);
}

// a * b: numbers, or a str, list or tuple repeated an integer number of times.
Value multiply_values(const Value& a, const Value& b)
{
    const bool nums = a.is_number() && b.is_number();
    const bool ints = a.is_integral() && b.is_integral();
    if (ints) {
        std::int64_t r;
        if (__builtin_mul_overflow(a.as_int(), b.as_int(), &r))
            overflow();
        return Value::integer(r);
    }
    if (nums)
        return Value::floating(a.as_number() * b.as_number());
    if ((a.is_string() || a.is_sequence_list()) && b.is_integral())
        return repeat(a, b.as_int());
    if ((b.is_string() || b.is_sequence_list()) && a.is_integral())
        return repeat(b, a.as_int());
    if (a.is_string() || a.is_sequence_list())
        throw RenderFailure("can't multiply sequence by non-int of type " + py_quoted(type_name(b)));
    if (b.is_string() || b.is_sequence_list())
        throw RenderFailure("can't multiply sequence by non-int of type " + py_quoted(type_name(a)));
    unsupported_operands(ArithOp::mul, a, b);
}

// a / b: always a float, as in Python 3.
Value divide_values(const Value& a, const Value& b)
{
    const bool nums = a.is_number() && b.is_number();
    const bool ints = a.is_integral() && b.is_integral();
    if (nums) {
        if (b.as_number() == 0)
            throw RenderFailure(ints ? "division by zero" : "float division by zero");
        return Value::floating(a.as_number() / b.as_number());
    }
    unsupported_operands(ArithOp::div, a, b);
}

// a // b: rounded towards negative infinity, as Python does.
Value floor_divide_values(const Value& a, const Value& b)
{
    const bool nums = a.is_number() && b.is_number();
    const bool ints = a.is_integral() && b.is_integral();
    if (ints) {
        const std::int64_t x = a.as_int(), y = b.as_int();
        if (y == 0)
            throw RenderFailure("integer division or modulo by zero");
        if (x == INT64_MIN && y == -1)
            overflow();
        std::int64_t q = x / y;
        if ((x % y != 0) && ((x < 0) != (y < 0)))
            --q;
        return Value::integer(q);
    }
    if (nums) {
        if (b.as_number() == 0)
            throw RenderFailure("float floor division by zero");
        return Value::floating(float_floordiv(a.as_number(), b.as_number()));
    }
    unsupported_operands(ArithOp::floordiv, a, b);
}

// a % b: printf-style formatting for a str; otherwise the remainder with the divisor's sign, as Python does.
Value modulo_values(Interpreter& interp, const Value& a, const Value& b)
{
    const bool nums = a.is_number() && b.is_number();
    const bool ints = a.is_integral() && b.is_integral();
    if (a.is_string())
        return Value::string(percent_format(interp, a.as_string(), b));
    if (ints) {
        const std::int64_t x = a.as_int(), y = b.as_int();
        if (y == 0)
            throw RenderFailure("integer division or modulo by zero");
        if (y == -1)
            return Value::integer(0);
        std::int64_t m = x % y;
        if (m != 0 && ((m < 0) != (y < 0)))
            m += y;
        return Value::integer(m);
    }
    if (nums) {
        if (b.as_number() == 0)
            throw RenderFailure("float modulo");
        return Value::floating(float_mod(a.as_number(), b.as_number()));
    }
    unsupported_operands(ArithOp::mod, a, b);
}

// a ** b: an integer for a non-negative integer exponent, else a float.
Value power_values(const Value& a, const Value& b)
{
    const bool nums = a.is_number() && b.is_number();
    const bool ints = a.is_integral() && b.is_integral();
    if (ints && b.as_int() >= 0) {
        std::int64_t result = 1, base = a.as_int(), e = b.as_int();
        while (e > 0) {
            if (e & 1)
                if (__builtin_mul_overflow(result, base, &result))
                    overflow();
            e >>= 1;
            if (e > 0 && __builtin_mul_overflow(base, base, &base))
                overflow();
        }
        return Value::integer(result);
    }
    if (nums) {
        const double x = a.as_number(), y = b.as_number();
        if (x == 0 && y < 0)
            throw RenderFailure("0.0 cannot be raised to a negative power");
        if (x < 0 && std::floor(y) != y)
            throw RenderFailure("a negative number raised to a fractional power is complex, which Layerwise chat "
                                "templates do not support");
        return Value::floating(std::pow(x, y));
    }
    unsupported_operands(ArithOp::pow, a, b);
}

} // namespace

Value arithmetic(Interpreter& interp, ArithOp op, const Value& a, const Value& b)
{
    if (a.is_undefined())
        throw RenderFailure(a.undefined_message());
    if (b.is_undefined())
        throw RenderFailure(b.undefined_message());
    switch (op) {
    case ArithOp::add: return add_values(a, b);
    case ArithOp::sub: return subtract_values(a, b);
    case ArithOp::mul: return multiply_values(a, b);
    case ArithOp::div: return divide_values(a, b);
    case ArithOp::floordiv: return floor_divide_values(a, b);
    case ArithOp::mod: return modulo_values(interp, a, b);
    case ArithOp::pow: return power_values(a, b);
    }
    unsupported_operands(op, a, b);
}

// ---------------------------------------------------------------- formatting

namespace {

std::string ascii_repr(const Value& v)
{
    const std::string r = repr(v);
    std::string out;
    for (char32_t c : to_u32(r)) {
        if (c < 0x80) {
            out.push_back(static_cast<char>(c));
            continue;
        }
        char buf[16];
        if (c <= 0xFF)
            std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned>(c));
        else if (c <= 0xFFFF)
            std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
        else
            std::snprintf(buf, sizeof buf, "\\U%08x", static_cast<unsigned>(c));
        out += buf;
    }
    return out;
}

std::string pad(const std::string& body, std::size_t width, char32_t fill, char align)
{
    const std::size_t len = code_point_count(body);
    if (len >= width)
        return body;
    check_text_size(width * 4);
    const std::size_t total = width - len;
    std::string f;
    append_utf8(f, fill);
    auto rep = [&](std::size_t n) {
        std::string s;
        for (std::size_t i = 0; i < n; ++i)
            s += f;
        return s;
    };
    if (align == '<')
        return body + rep(total);
    if (align == '^')
        return rep(total / 2) + body + rep(total - total / 2);
    return rep(total) + body;
}

std::string digits_of(std::uint64_t v, int base, bool upper)
{
    if (v == 0)
        return "0";
    std::string s;
    const char* d = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    while (v) {
        s.push_back(d[v % static_cast<unsigned>(base)]);
        v /= static_cast<unsigned>(base);
    }
    return {s.rbegin(), s.rend()};
}

std::uint64_t magnitude(std::int64_t v) { return v < 0 ? static_cast<std::uint64_t>(-(v + 1)) + 1 : static_cast<std::uint64_t>(v); }

std::string group_digits(const std::string& digits, char sep, int every)
{
    std::string out;
    const int n = static_cast<int>(digits.size());
    for (int i = 0; i < n; ++i) {
        if (i && (n - i) % every == 0)
            out.push_back(sep);
        out.push_back(digits[static_cast<std::size_t>(i)]);
    }
    return out;
}

std::string c_float(double v, char conv, int precision, bool alternate)
{
    char fmt[16];
    std::snprintf(fmt, sizeof fmt, "%%%s.*%c", alternate ? "#" : "", conv);
    check_text_size(static_cast<std::uint64_t>(std::max(precision, 0)) + 400);
    const int n = std::snprintf(nullptr, 0, fmt, precision, v);
    std::string out(static_cast<std::size_t>(std::max(n, 0)) + 1, '\0');
    std::snprintf(out.data(), out.size(), fmt, precision, v);
    out.resize(static_cast<std::size_t>(std::max(n, 0)));
    return out;
}

std::int64_t percent_int(const Value& v, char conv)
{
    if (v.is_integral())
        return v.as_int();
    if (v.is_float() && (conv == 'd' || conv == 'i' || conv == 'u')) {
        const double f = v.as_float();
        if (std::isnan(f))
            throw RenderFailure("cannot convert float NaN to integer");
        if (std::isinf(f))
            throw RenderFailure("cannot convert float infinity to integer");
        // Python prints any integer; this renderer's integers are 64-bit.
        if (std::abs(f) >= 9223372036854775808.0)
            throw RenderFailure(std::string("%") + conv + " format: " + std::to_string(f) +
                                " is beyond the 64-bit integers this renderer formats");
        return static_cast<std::int64_t>(std::trunc(f));
    }
    if (v.is_undefined())
        throw RenderFailure(v.undefined_message());
    if (conv == 'd' || conv == 'i' || conv == 'u')
        throw RenderFailure(std::string("%") + conv + " format: a real number is required, not " + type_name(v));
    throw RenderFailure(std::string("%") + conv + " format: an integer is required, not " + type_name(v));
}

// One %-conversion after its optional key: flags, width, precision and the conversion character.
struct PercentSpec {
    bool left = false, plus = false, space = false, alternate = false, zero = false;
    std::size_t width = 0;
    std::optional<int> precision;
    char conv = 0;
};

// The sign an integer or float conversion shows: '-', or '+' / ' ' as the flags ask.
std::string percent_sign(bool negative, const PercentSpec& spec)
{
    return negative ? "-" : spec.plus ? "+" : spec.space ? " " : "";
}

// Sign and digits in the field's width: left-aligned, zero-padded after the sign, or right-aligned.
std::string percent_number_field(const std::string& sign, const std::string& digits, const PercentSpec& spec, bool may_zero_pad)
{
    if (spec.left)
        return pad(sign + digits, spec.width, ' ', '<');
    if (spec.zero && may_zero_pad && sign.size() + digits.size() < spec.width && (check_text_size(spec.width), true))
        return sign + std::string(spec.width - sign.size() - digits.size(), '0') + digits;
    return pad(sign + digits, spec.width, ' ', '>');
}

// %s, %r, %a: the text, cut to the precision.
std::string percent_text(const Value& v, const PercentSpec& spec)
{
    std::string body = spec.conv == 's' ? to_str(v) : spec.conv == 'r' ? repr(v) : ascii_repr(v);
    if (spec.precision) {
        const std::u32string u = to_u32(body);
        if (static_cast<std::size_t>(*spec.precision) < u.size())
            body = to_utf8(std::u32string_view(u).substr(0, static_cast<std::size_t>(*spec.precision)));
    }
    return pad(body, spec.width, ' ', spec.left ? '<' : '>');
}

// %c: one character, given as itself or as its code point.
std::string percent_char(const Value& v, const PercentSpec& spec)
{
    std::string body;
    if (v.is_string() && code_point_count(v.as_string()) == 1)
        body = v.as_string();
    else if (v.is_integral())
        append_utf8(body, static_cast<char32_t>(v.as_int()));
    else
        throw RenderFailure("%c requires int or char");
    return pad(body, spec.width, ' ', spec.left ? '<' : '>');
}

// %d %i %u %x %X %o: the digits, at least `precision` of them, with sign and base prefix.
std::string percent_integer(const Value& v, const PercentSpec& spec)
{
    const char conv = spec.conv;
    const std::int64_t n = percent_int(v, conv);
    const int base = conv == 'x' || conv == 'X' ? 16 : conv == 'o' ? 8 : 10;
    std::string digits = digits_of(magnitude(n), base, conv == 'X');
    if (spec.precision)
        check_text_size(static_cast<std::uint64_t>(std::max(*spec.precision, 0)));
    if (spec.precision && digits.size() < static_cast<std::size_t>(*spec.precision))
        digits.insert(0, static_cast<std::size_t>(*spec.precision) - digits.size(), '0');
    std::string sign = percent_sign(n < 0, spec);
    if (spec.alternate && base != 10)
        sign += conv == 'x' ? "0x" : conv == 'X' ? "0X" : "0o";
    return percent_number_field(sign, digits, spec, true);
}

// %e %E %f %F %g %G: as C's printf writes the magnitude, with the sign in front.
std::string percent_float(const Value& v, const PercentSpec& spec)
{
    if (v.is_undefined())
        throw RenderFailure(v.undefined_message());
    if (!v.is_number())
        throw RenderFailure("must be real number, not " + type_name(v));
    const double f = v.as_number();
    const std::string body = c_float(std::fabs(f), spec.conv, spec.precision.value_or(6), spec.alternate);
    const std::string sign = percent_sign(std::signbit(f) && !std::isnan(f), spec);
    return percent_number_field(sign, body, spec, std::isfinite(f));
}

// One run of printf-style formatting (str % args): the format read left to right, the arguments
// taken in turn or by key.
class PercentFormatter {
public:
    PercentFormatter(const std::string& fmt, const Value& args) : m_fmt(fmt)
    {
        if (args.is_list() && args.list_kind() == ListKind::tuple) {
            m_positional = args.items();
        } else {
            m_positional.push_back(args);
            if (args.is_dict())
                m_mapping = &args.as_dict();
        }
    }

    std::string run()
    {
        std::string out;
        while (m_i < m_fmt.size()) {
            const char c = m_fmt[m_i];
            if (c != '%') {
                out.push_back(c);
                ++m_i;
                continue;
            }
            ++m_i;
            if (m_i >= m_fmt.size())
                throw RenderFailure("incomplete format");
            const std::optional<Value> keyed = read_key();
            const PercentSpec spec = read_spec();
            if (spec.conv == '%') {
                out.push_back('%');
                continue;
            }
            const Value v = keyed ? *keyed : take();
            out += convert(v, spec);
        }
        if (!m_mapping || !m_used_mapping) {
            if (m_next_arg < m_positional.size() && !(m_mapping && m_next_arg == 0))
                throw RenderFailure("not all arguments converted during string formatting");
        }
        return out;
    }

private:
    Value take()
    {
        // after a %(key)s field CPython has no positional argument left to give
        if (m_next_arg >= m_positional.size() || m_used_mapping)
            throw RenderFailure("not enough arguments for format string");
        return m_positional[m_next_arg++];
    }

    // A %(key) names a value of the mapping argument.
    std::optional<Value> read_key()
    {
        if (m_fmt[m_i] != '(')
            return std::nullopt;
        if (!m_mapping)
            throw RenderFailure("format requires a mapping");
        int depth = 1;
        std::size_t j = m_i + 1;
        while (j < m_fmt.size() && depth > 0) {
            if (m_fmt[j] == '(')
                ++depth;
            else if (m_fmt[j] == ')')
                --depth;
            ++j;
        }
        if (depth > 0)
            throw RenderFailure("incomplete format key");
        const std::string key = m_fmt.substr(m_i + 1, j - m_i - 2);
        const Value* v = m_mapping->find(key);
        if (!v)
            throw RenderFailure(py_quoted(key));
        m_used_mapping = true;
        m_i = j;
        return *v;
    }

    PercentSpec read_spec()
    {
        PercentSpec spec;
        read_flags(spec);
        read_width(spec);
        read_precision(spec);
        while (m_i < m_fmt.size() && (m_fmt[m_i] == 'h' || m_fmt[m_i] == 'l' || m_fmt[m_i] == 'L'))
            ++m_i;
        if (m_i >= m_fmt.size())
            throw RenderFailure("incomplete format");
        spec.conv = m_fmt[m_i++];
        return spec;
    }

    void read_flags(PercentSpec& spec)
    {
        for (; m_i < m_fmt.size(); ++m_i) {
            const char f = m_fmt[m_i];
            if (f == '-')
                spec.left = true;
            else if (f == '+')
                spec.plus = true;
            else if (f == ' ')
                spec.space = true;
            else if (f == '#')
                spec.alternate = true;
            else if (f == '0')
                spec.zero = true;
            else
                break;
        }
    }

    // A width in digits, or '*' for the next argument (negative: left-aligned).
    void read_width(PercentSpec& spec)
    {
        if (m_i < m_fmt.size() && m_fmt[m_i] == '*') {
            const std::int64_t w = std::clamp<std::int64_t>(require_int(take(), "* wants int"), -(1 << 30), 1 << 30);
            if (w < 0)
                spec.left = true;
            spec.width = static_cast<std::size_t>(w < 0 ? -w : w);
            ++m_i;
        } else {
            while (m_i < m_fmt.size() && m_fmt[m_i] >= '0' && m_fmt[m_i] <= '9')
                spec.width = std::min<std::size_t>(spec.width * 10 + static_cast<std::size_t>(m_fmt[m_i++] - '0'), 1u << 30);
        }
    }

    // '.' and a precision in digits, or '*' for the next argument.
    void read_precision(PercentSpec& spec)
    {
        if (m_i >= m_fmt.size() || m_fmt[m_i] != '.')
            return;
        ++m_i;
        int p = 0;
        if (m_i < m_fmt.size() && m_fmt[m_i] == '*') {
            p = static_cast<int>(std::clamp<std::int64_t>(require_int(take(), "* wants int"), -1, 1 << 28));
            ++m_i;
        } else {
            while (m_i < m_fmt.size() && m_fmt[m_i] >= '0' && m_fmt[m_i] <= '9')
                p = static_cast<int>(std::min<std::int64_t>(std::int64_t(p) * 10 + (m_fmt[m_i++] - '0'), 1 << 28));
        }
        spec.precision = p;
    }

    std::string convert(const Value& v, const PercentSpec& spec) const
    {
        switch (spec.conv) {
        case 's':
        case 'r':
        case 'a': return percent_text(v, spec);
        case 'c': return percent_char(v, spec);
        case 'd':
        case 'i':
        case 'u':
        case 'x':
        case 'X':
        case 'o': return percent_integer(v, spec);
        case 'e':
        case 'E':
        case 'f':
        case 'F':
        case 'g':
        case 'G': return percent_float(v, spec);
        default: {
            char buf[64];
            std::snprintf(buf, sizeof buf, "unsupported format character '%c' (0x%x) at index %zu", spec.conv,
                          static_cast<unsigned char>(spec.conv), m_i - 1);
            throw RenderFailure(buf);
        }
        }
    }

    const std::string& m_fmt;
    ValueList m_positional;
    const DictData* m_mapping = nullptr;
    std::size_t m_next_arg = 0;
    bool m_used_mapping = false;
    std::size_t m_i = 0; // the position in the format
};

} // namespace

std::string percent_format(Interpreter&, const std::string& fmt, const Value& args)
{
    return PercentFormatter(fmt, args).run();
}

namespace {

// A format spec of Python's mini-language: [[fill]align][sign][#][0][width][grouping][.precision][type].
struct FormatSpec {
    char32_t fill = ' ';
    char align = 0;
    char sign = '-';
    bool alternate = false;
    std::size_t width = 0;
    char grouping = 0;
    std::optional<int> precision;
    char type = 0;
};

FormatSpec parse_format_spec(const std::string& spec)
{
    FormatSpec f;
    const std::u32string u = to_u32(spec);
    std::size_t i = 0;
    auto is_align = [](char32_t c) { return c == '<' || c == '>' || c == '^' || c == '='; };
    if (u.size() >= 2 && is_align(u[1])) {
        f.fill = u[0];
        f.align = static_cast<char>(u[1]);
        i = 2;
    } else if (!u.empty() && is_align(u[0])) {
        f.align = static_cast<char>(u[0]);
        i = 1;
    }
    if (i < u.size() && (u[i] == '+' || u[i] == '-' || u[i] == ' '))
        f.sign = static_cast<char>(u[i++]);
    if (i < u.size() && u[i] == '#') {
        f.alternate = true;
        ++i;
    }
    if (i < u.size() && u[i] == '0') {
        if (!f.align) {
            f.fill = '0';
            f.align = '=';
        }
        ++i;
    }
    while (i < u.size() && u[i] >= '0' && u[i] <= '9')
        f.width = std::min<std::size_t>(f.width * 10 + (u[i++] - '0'), 1u << 30);
    if (i < u.size() && (u[i] == ',' || u[i] == '_'))
        f.grouping = static_cast<char>(u[i++]);
    if (i < u.size() && u[i] == '.') {
        ++i;
        int p = 0;
        bool any = false;
        while (i < u.size() && u[i] >= '0' && u[i] <= '9') {
            p = static_cast<int>(std::min<std::int64_t>(std::int64_t(p) * 10 + static_cast<int>(u[i++] - '0'), 1 << 28));
            any = true;
        }
        if (!any)
            throw RenderFailure("Format specifier missing precision");
        f.precision = p;
    }
    if (i < u.size())
        f.type = static_cast<char>(u[i++]);
    if (i < u.size())
        throw RenderFailure("Invalid format specifier");
    return f;
}

// Sign and body in the spec's width: '=' pads between them, the other alignments around both.
std::string align_formatted(const FormatSpec& f, const std::string& sign_part, const std::string& body, char default_align)
{
    const char a = f.align ? f.align : default_align;
    if (a == '=') {
        const std::size_t len = code_point_count(sign_part) + code_point_count(body);
        if (len < f.width) {
            check_text_size(f.width * 4);
            std::string fill;
            for (std::size_t k = 0; k < f.width - len; ++k)
                append_utf8(fill, f.fill);
            return sign_part + fill + body;
        }
        return sign_part + body;
    }
    return pad(sign_part + body, f.width, f.fill, a);
}

std::string format_string_value(const std::string& text, const FormatSpec& f)
{
    if (f.type && f.type != 's')
        throw RenderFailure(std::string("Unknown format code '") + f.type + "' for object of type 'str'");
    if (f.sign != '-' || f.align == '=')
        throw RenderFailure("Sign not allowed in string format specifier");
    std::string body = text;
    if (f.precision) {
        const std::u32string s = to_u32(body);
        if (static_cast<std::size_t>(*f.precision) < s.size())
            body = to_utf8(std::u32string_view(s).substr(0, static_cast<std::size_t>(*f.precision)));
    }
    return align_formatted(f, "", body, '<');
}

std::string format_integer_value(std::int64_t n, const FormatSpec& f)
{
    if (f.precision)
        throw RenderFailure("Precision not allowed in integer format specifier");
    if (f.type == 'c') {
        std::string body;
        append_utf8(body, static_cast<char32_t>(n));
        return align_formatted(f, "", body, '>');
    }
    const int base = f.type == 'b' ? 2 : f.type == 'o' ? 8 : (f.type == 'x' || f.type == 'X') ? 16 : 10;
    std::string digits = digits_of(magnitude(n), base, f.type == 'X');
    if (f.grouping)
        digits = group_digits(digits, f.grouping, base == 10 ? 3 : 4);
    std::string sign_part = n < 0 ? "-" : f.sign == '+' ? "+" : f.sign == ' ' ? " " : "";
    if (f.alternate && base != 10)
        sign_part += f.type == 'b' ? "0b" : f.type == 'o' ? "0o" : f.type == 'x' ? "0x" : "0X";
    return align_formatted(f, sign_part, digits, '>');
}

// A float (or an integer with a float presentation type).
std::string format_float_value(const Value& v, const FormatSpec& f)
{
    const double x = v.as_number();
    std::string body;
    const int p = f.precision.value_or(6);
    const double mag = std::fabs(x);
    switch (f.type) {
    case 'e':
    case 'E':
    case 'f':
    case 'F':
    case 'g':
    case 'G': body = c_float(mag, f.type, f.type == 'g' || f.type == 'G' ? (f.precision ? std::max(p, 1) : 6) : p, f.alternate); break;
    case '%': body = c_float(mag * 100, 'f', p, f.alternate) + "%"; break;
    case 0:
    case 'n':
        if (!f.precision) {
            body = v.is_float() ? py_float_repr(mag) : std::to_string(magnitude(v.as_int()));
        } else {
            body = c_float(mag, 'g', std::max(*f.precision, 1), f.alternate);
            if (body.find_first_of("e.ni") == std::string::npos)
                body += ".0";
        }
        break;
    default:
        throw RenderFailure(std::string("Unknown format code '") + f.type + "' for object of type '" + type_name(v) + "'");
    }
    if (f.grouping) {
        const std::size_t dot = body.find_first_of(".e%");
        body = group_digits(body.substr(0, dot), f.grouping, 3) + (dot == std::string::npos ? "" : body.substr(dot));
    }
    const bool negative = std::signbit(x) && !std::isnan(x);
    std::string sign_part = negative ? "-" : f.sign == '+' ? "+" : f.sign == ' ' ? " " : "";
    return align_formatted(f, sign_part, body, '>');
}

// format(value, spec) — Python's format-spec mini-language for str, int and float.
std::string format_value(const Value& v, const std::string& spec)
{
    if (spec.empty())
        return to_str(v);
    const FormatSpec f = parse_format_spec(spec);
    if (v.is_string())
        return format_string_value(v.as_string(), f);
    if (v.is_integral() && (f.type == 0 || std::string("bcdoxXn").find(f.type) != std::string::npos))
        return format_integer_value(v.as_int(), f);
    if (v.is_number())
        return format_float_value(v, f);
    throw RenderFailure("unsupported format string passed to " + type_name(v) + ".__format__");
}

// The end of a replacement field that starts at `open` (its matching '}', one level of nesting
// for {:{width}}).
std::size_t replacement_field_end(const std::string& fmt, std::size_t open)
{
    std::size_t j = open + 1;
    int depth = 1;
    while (j < fmt.size()) {
        if (fmt[j] == '{')
            ++depth;
        else if (fmt[j] == '}' && --depth == 0)
            break;
        ++j;
    }
    if (j >= fmt.size())
        throw RenderFailure(depth > 1 ? "unmatched '{' in format spec" : "Single '{' encountered in format string");
    return j;
}

// A replacement field split as field_name!conversion:spec.
struct ReplacementField {
    std::string name;
    char conversion = 0;
    std::string spec;
};

ReplacementField split_replacement_field(const std::string& field)
{
    ReplacementField out;
    std::size_t name_end = 0;
    while (name_end < field.size() && field[name_end] != '!' && field[name_end] != ':') {
        if (field[name_end] == '[') {
            const std::size_t close = field.find(']', name_end);
            if (close == std::string::npos)
                throw RenderFailure("expected '}' before end of string");
            name_end = close + 1;
            continue;
        }
        ++name_end;
    }
    out.name = field.substr(0, name_end);
    std::size_t k = name_end;
    if (k < field.size() && field[k] == '!') {
        if (k + 1 >= field.size())
            throw RenderFailure("end of string while looking for conversion specifier");
        out.conversion = field[k + 1];
        k += 2;
        if (k < field.size() && field[k] != ':')
            throw RenderFailure("expected ':' after conversion specifier");
    }
    if (k < field.size() && field[k] == ':')
        out.spec = field.substr(k + 1);
    return out;
}

bool all_digits(const std::string& s)
{
    return std::all_of(s.begin(), s.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
}

// The arguments a format string's fields name: by automatic numbering ({}), by index ({0}) or by
// keyword ({name}); the two kinds of numbering cannot be mixed.
class FieldArguments {
public:
    explicit FieldArguments(const CallArgs& args) : m_args(args) {}

    Value lookup(const std::string& first)
    {
        if (first.empty()) {
            if (m_used_manual)
                throw RenderFailure("cannot switch from manual field specification to automatic field numbering");
            m_used_auto = true;
            const std::int64_t index = m_auto_index++;
            if (index >= static_cast<std::int64_t>(m_args.positional.size()))
                throw RenderFailure("tuple index out of range");
            return m_args.positional[static_cast<std::size_t>(index)];
        }
        if (all_digits(first)) {
            if (m_used_auto)
                throw RenderFailure("cannot switch from automatic field numbering to manual field specification");
            m_used_manual = true;
            const std::size_t index = std::stoul(first);
            if (index >= m_args.positional.size())
                throw RenderFailure("tuple index out of range");
            return m_args.positional[index];
        }
        Value obj;
        bool found = false;
        for (const auto& [kname, kv] : m_args.keyword)
            if (kname == first) {
                obj = kv;
                found = true;
            }
        if (!found)
            throw RenderFailure(py_quoted(first));
        return obj;
    }

private:
    const CallArgs& m_args;
    std::int64_t m_auto_index = 0;
    bool m_used_auto = false, m_used_manual = false;
};

// The rest of a field name after its first part: .attribute and [key] steps from `obj`.
Value follow_field_path(Interpreter& interp, Value obj, const std::string& name, std::size_t p)
{
    while (p < name.size()) {
        if (name[p] == '.') {
            std::size_t q = p + 1;
            while (q < name.size() && name[q] != '.' && name[q] != '[')
                ++q;
            obj = interp.getattr(obj, name.substr(p + 1, q - p - 1));
            p = q;
        } else {
            const std::size_t close = name.find(']', p);
            const std::string key = name.substr(p + 1, close - p - 1);
            const bool numeric = !key.empty() && all_digits(key);
            obj = interp.getitem(obj, numeric ? Value::integer(std::stoll(key)) : Value::string(key));
            p = close + 1;
        }
    }
    return obj;
}

// !r, !s, !a
Value convert_field(Value obj, char conversion)
{
    if (conversion == 'r')
        return Value::string(repr(obj));
    if (conversion == 's')
        return Value::string(to_str(obj));
    if (conversion == 'a')
        return Value::string(ascii_repr(obj));
    if (conversion)
        throw RenderFailure(std::string("Unknown conversion specifier ") + conversion);
    return obj;
}

} // namespace

std::string brace_format(Interpreter& interp, const std::string& fmt, CallArgs& args)
{
    std::string out;
    std::size_t i = 0;
    FieldArguments arguments(args);
    while (i < fmt.size()) {
        const char c = fmt[i];
        if (c == '}') {
            if (i + 1 < fmt.size() && fmt[i + 1] == '}') {
                out.push_back('}');
                i += 2;
                continue;
            }
            throw RenderFailure("Single '}' encountered in format string");
        }
        if (c != '{') {
            out.push_back(c);
            ++i;
            continue;
        }
        if (i + 1 < fmt.size() && fmt[i + 1] == '{') {
            out.push_back('{');
            i += 2;
            continue;
        }
        const std::size_t j = replacement_field_end(fmt, i);
        ReplacementField field = split_replacement_field(fmt.substr(i + 1, j - i - 1));
        i = j + 1;
        if (field.spec.find('{') != std::string::npos)
            field.spec = brace_format(interp, field.spec, args);
        // first part of the name
        std::size_t p = 0;
        while (p < field.name.size() && field.name[p] != '.' && field.name[p] != '[')
            ++p;
        Value obj = follow_field_path(interp, arguments.lookup(field.name.substr(0, p)), field.name, p);
        obj = convert_field(std::move(obj), field.conversion);
        out += format_value(obj, field.spec);
    }
    return out;
}

// ---------------------------------------------------------------- attributes and methods

namespace {

const std::set<std::string>& str_methods()
{
    static const std::set<std::string> names = {
        "capitalize", "casefold", "center", "count", "encode", "endswith", "expandtabs", "find", "format",
        "format_map", "index", "isalnum", "isalpha", "isascii", "isdecimal", "isdigit", "isidentifier", "islower",
        "isnumeric", "isprintable", "isspace", "istitle", "isupper", "join", "ljust", "lower", "lstrip", "maketrans",
        "partition", "removeprefix", "removesuffix", "replace", "rfind", "rindex", "rjust", "rpartition", "rsplit",
        "rstrip", "split", "splitlines", "startswith", "strip", "swapcase", "title", "translate", "upper", "zfill"};
    return names;
}

std::optional<std::string> optional_chars(const Value& v, const char* method)
{
    if (v.is_none())
        return std::nullopt;
    if (!v.is_string())
        throw RenderFailure(std::string(method) + " arg must be None or str");
    return v.as_string();
}

void require_string_arg(const Value& v, const std::string& what)
{
    if (v.is_undefined())
        throw RenderFailure(v.undefined_message());
    if (!v.is_string())
        throw RenderFailure(what + " must be str, not " + type_name(v));
}

std::string fill_char(const Value& v)
{
    if (!v.is_string() || code_point_count(v.as_string()) != 1)
        throw RenderFailure("The fill character must be exactly one character long");
    return v.as_string();
}

Value string_list(std::vector<std::string> parts)
{
    ValueList items;
    items.reserve(parts.size());
    for (auto& p : parts)
        items.push_back(Value::string(std::move(p)));
    return Value::list(std::move(items));
}

bool all_chars(const std::string& s, bool (*pred)(char32_t))
{
    if (s.empty())
        return false;
    for (char32_t c : to_u32(s))
        if (!pred(c))
            return false;
    return true;
}

Value affix_test(const std::string& self, const Value& affix, const Value& start, const Value& end, bool prefix,
                 const char* method)
{
    const std::string region = code_point_range(self, start, end);
    auto check = [&](const std::string& a) {
        if (a.size() > region.size())
            return false;
        return prefix ? region.compare(0, a.size(), a) == 0 : region.compare(region.size() - a.size(), a.size(), a) == 0;
    };
    if (affix.is_string())
        return Value::boolean(check(affix.as_string()));
    if (affix.is_list() && affix.list_kind() == ListKind::tuple) {
        for (const auto& a : affix.items()) {
            if (!a.is_string())
                throw RenderFailure(std::string("tuple for ") + method + " must only contain str, not " + type_name(a));
            if (check(a.as_string()))
                return Value::boolean(true);
        }
        return Value::boolean(false);
    }
    throw RenderFailure(std::string(method) + " first arg must be str or a tuple of str, not " + type_name(affix));
}

// upper, lower, title, capitalize, swapcase, casefold
Value str_change_case(const std::string& self, const std::string& name, CallArgs& args)
{
    ArgBinder a(name, args, {});
    if (name == "upper")
        return Value::string(py_upper(self));
    if (name == "lower")
        return Value::string(py_lower(self));
    if (name == "casefold")
        return Value::string(py_replace(py_lower(self), "\xC3\x9F", "ss", -1));
    if (name == "title")
        return Value::string(py_title(self));
    if (name == "capitalize")
        return Value::string(py_capitalize(self));
    return Value::string(py_swapcase(self));
}

// split, rsplit
Value str_split(const std::string& self, const std::string& name, CallArgs& args)
{
    ArgBinder a(name, args, {{"sep", Value::none()}, {"maxsplit", Value::integer(-1)}});
    if (!a[0].is_none() && !a[0].is_string())
        throw RenderFailure("must be str or None, not " + type_name(a[0]));
    const auto sep = optional_chars(a[0], "sep");
    const std::int64_t maxsplit = require_int(a[1], "maxsplit");
    if (sep && sep->empty())
        throw RenderFailure("empty separator");
    return string_list(name == "split" ? py_split(self, sep, maxsplit) : py_rsplit(self, sep, maxsplit));
}

// find, rfind, index, rindex, count
Value str_find(const std::string& self, const std::string& name, CallArgs& args)
{
    const Value none = Value::none();
    ArgBinder a(name, args, {{"sub", std::nullopt}, {"start", none}, {"end", none}});
    require_string_arg(a[0], "must be str, not " + type_name(a[0]) + "; argument");
    const std::string region = code_point_range(self, a[1], a[2]);
    if (name == "count")
        return Value::integer(py_count(region, a[0].as_string()));
    std::int64_t at = py_find(region, a[0].as_string(), name[0] == 'r');
    if (at < 0) {
        if (name == "index" || name == "rindex")
            throw RenderFailure("substring not found");
        return Value::integer(-1);
    }
    return Value::integer(at + range_offset(self, a[1]));
}

Value str_join(const std::string& self, CallArgs& args)
{
    ArgBinder a("join", args, {{"iterable", std::nullopt}});
    if (!is_iterable(a[0]) || a[0].is_undefined()) {
        if (a[0].is_undefined())
            throw RenderFailure(a[0].undefined_message());
        throw RenderFailure("can only join an iterable");
    }
    std::string out;
    std::size_t index = 0;
    for (const auto& item : iterate(a[0])) {
        if (!item.is_string())
            throw RenderFailure("sequence item " + std::to_string(index) + ": expected str instance, " + type_name(item) +
                                " found");
        if (index)
            out += self;
        out += item.as_string();
        ++index;
    }
    return Value::string(std::move(out));
}

// center, ljust, rjust
Value str_justify(const std::string& self, const std::string& name, CallArgs& args)
{
    ArgBinder a(name, args, {{"width", std::nullopt}, {"fillchar", Value::string(" ")}});
    const std::int64_t width = require_int(a[0], "width");
    const std::string fill = fill_char(a[1]);
    const auto len = static_cast<std::int64_t>(code_point_count(self));
    if (width <= len)
        return Value::string(self);
    const std::int64_t marg = width - len;
    check_text_size(static_cast<std::uint64_t>(marg) * fill.size());
    std::int64_t left = name == "ljust" ? 0 : name == "rjust" ? marg : marg / 2 + (marg & width & 1);
    std::string out;
    for (std::int64_t k = 0; k < left; ++k)
        out += fill;
    out += self;
    for (std::int64_t k = 0; k < marg - left; ++k)
        out += fill;
    return Value::string(std::move(out));
}

Value str_zfill(const std::string& self, CallArgs& args)
{
    ArgBinder a("zfill", args, {{"width", std::nullopt}});
    const std::int64_t width = require_int(a[0], "width");
    const auto len = static_cast<std::int64_t>(code_point_count(self));
    if (width <= len)
        return Value::string(self);
    check_text_size(static_cast<std::uint64_t>(width));
    std::string out = self;
    const std::size_t at = (!out.empty() && (out[0] == '+' || out[0] == '-')) ? 1 : 0;
    out.insert(at, static_cast<std::size_t>(width - len), '0');
    return Value::string(std::move(out));
}

// partition, rpartition
Value str_partition(const std::string& self, const std::string& name, CallArgs& args)
{
    ArgBinder a(name, args, {{"sep", std::nullopt}});
    require_string_arg(a[0], "sep");
    const std::string& sep = a[0].as_string();
    if (sep.empty())
        throw RenderFailure("empty separator");
    const std::size_t at = name == "partition" ? self.find(sep) : self.rfind(sep);
    if (at == std::string::npos) {
        if (name == "partition")
            return Value::tuple({Value::string(self), Value::string(""), Value::string("")});
        return Value::tuple({Value::string(""), Value::string(""), Value::string(self)});
    }
    return Value::tuple({Value::string(self.substr(0, at)), Value::string(sep), Value::string(self.substr(at + sep.size()))});
}

// removeprefix, removesuffix
Value str_remove_affix(const std::string& self, const std::string& name, CallArgs& args)
{
    ArgBinder a(name, args, {{"affix", std::nullopt}});
    require_string_arg(a[0], name + "() argument");
    const std::string& affix = a[0].as_string();
    if (name == "removeprefix")
        return Value::string(self.rfind(affix, 0) == 0 ? self.substr(affix.size()) : self);
    if (affix.size() <= self.size() && self.compare(self.size() - affix.size(), affix.size(), affix) == 0)
        return Value::string(self.substr(0, self.size() - affix.size()));
    return Value::string(self);
}

// str.istitle(): uppercase characters only after uncased ones, lowercase only after cased ones.
bool py_istitle(const std::string& self)
{
    bool cased_seen = false, previous_cased = false;
    for (char32_t c : to_u32(self)) {
        const bool upper = simple_lower(c) != c;
        const bool lower = is_cased(c) && !upper;
        if (upper) {
            if (previous_cased)
                return false;
            previous_cased = cased_seen = true;
        } else if (lower) {
            if (!previous_cased)
                return false;
            previous_cased = cased_seen = true;
        } else {
            previous_cased = false;
        }
    }
    return cased_seen;
}

bool py_isidentifier(const std::string& self)
{
    return !self.empty() && !(self[0] >= '0' && self[0] <= '9') && std::all_of(self.begin(), self.end(), [](char ch) {
        return ch == '_' || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
               static_cast<unsigned char>(ch) >= 0x80;
    });
}

// The is...() predicates; nullopt for any other name.
std::optional<bool> str_predicate(const std::string& self, const std::string& name)
{
    if (name == "isalpha")
        return all_chars(self, [](char32_t c) { return is_alpha(c); });
    if (name == "isdigit" || name == "isdecimal" || name == "isnumeric")
        return all_chars(self, [](char32_t c) { return is_digit(c); });
    if (name == "isalnum")
        return all_chars(self, [](char32_t c) { return is_alpha(c) || is_digit(c); });
    if (name == "isspace")
        return all_chars(self, [](char32_t c) { return py_isspace(c); });
    if (name == "isascii")
        return is_ascii(self);
    if (name == "islower")
        return py_islower(self);
    if (name == "isupper")
        return py_isupper(self);
    if (name == "istitle")
        return py_istitle(self);
    if (name == "isidentifier")
        return py_isidentifier(self);
    return std::nullopt;
}

Value str_format_map(Interpreter& interp, const std::string& self, CallArgs& args)
{
    if (!args.keyword.empty())
        throw RenderFailure("format_map() takes no keyword arguments");
    if (args.positional.size() != 1)
        throw RenderFailure("format_map() takes exactly one argument (" + std::to_string(args.positional.size()) + " given)");
    CallArgs mapped;
    if (!args.positional[0].is_dict())
        throw RenderFailure("format_map() argument must be a mapping");
    for (const auto& [k, v] : args.positional[0].as_dict().entries)
        if (k.is_string())
            mapped.keyword.emplace_back(k.as_string(), v);
    return Value::string(brace_format(interp, self, mapped));
}

Value call_str_method(Interpreter& interp, const std::string& self, const std::string& name, CallArgs& args)
{
    const Value none = Value::none();
    if (name == "upper" || name == "lower" || name == "title" || name == "capitalize" || name == "swapcase" ||
        name == "casefold")
        return str_change_case(self, name, args);
    if (name == "strip" || name == "lstrip" || name == "rstrip") {
        ArgBinder a(name, args, {{"chars", none}});
        const auto chars = optional_chars(a[0], name.c_str());
        return Value::string(py_strip(self, chars, name != "rstrip", name != "lstrip"));
    }
    if (name == "split" || name == "rsplit")
        return str_split(self, name, args);
    if (name == "splitlines") {
        ArgBinder a(name, args, {{"keepends", Value::boolean(false)}});
        return string_list(py_splitlines(self, truthy(a[0])));
    }
    if (name == "startswith" || name == "endswith") {
        ArgBinder a(name, args, {{"affix", std::nullopt}, {"start", none}, {"end", none}});
        return affix_test(self, a[0], a[1], a[2], name == "startswith", name.c_str());
    }
    if (name == "replace") {
        ArgBinder a(name, args, {{"old", std::nullopt}, {"new", std::nullopt}, {"count", Value::integer(-1)}});
        require_string_arg(a[0], "replace() argument 1");
        require_string_arg(a[1], "replace() argument 2");
        return Value::string(py_replace(self, a[0].as_string(), a[1].as_string(), require_int(a[2], "count")));
    }
    if (name == "find" || name == "rfind" || name == "index" || name == "rindex" || name == "count")
        return str_find(self, name, args);
    if (name == "join")
        return str_join(self, args);
    if (name == "center" || name == "ljust" || name == "rjust")
        return str_justify(self, name, args);
    if (name == "zfill")
        return str_zfill(self, args);
    if (name == "partition" || name == "rpartition")
        return str_partition(self, name, args);
    if (name == "removeprefix" || name == "removesuffix")
        return str_remove_affix(self, name, args);
    if (const std::optional<bool> is = str_predicate(self, name))
        return Value::boolean(*is);
    if (name == "format")
        return Value::string(brace_format(interp, self, args));
    if (name == "format_map")
        return str_format_map(interp, self, args);
    throw RenderFailure("str." + name + "() is not supported in Layerwise chat templates");
}

Value dict_view(const DictData& d, ListKind kind)
{
    ValueList items;
    items.reserve(d.size());
    for (const auto& [k, v] : d.entries) {
        if (kind == ListKind::dict_keys)
            items.push_back(k);
        else if (kind == ListKind::dict_values)
            items.push_back(v);
        else
            items.push_back(Value::tuple({k, v}));
    }
    return Value::list(std::move(items), kind);
}

} // namespace

Value dict_fromkeys(CallArgs& args)
{
    ArgBinder a("fromkeys", args, {{"iterable", std::nullopt}, {"value", Value::none()}});
    if (!is_iterable(a[0]) || a[0].is_undefined())
        throw RenderFailure(py_quoted(type_name(a[0])) + " object is not iterable");
    auto d = std::make_shared<DictData>();
    for (auto& k : iterate(a[0])) {
        require_hashable(k);
        d->set(std::move(k), a[1]);
    }
    return Value::dict(std::move(d));
}

std::optional<Value> builtin_attribute(const Value& self, const std::string& name, bool& unsafe)
{
    unsafe = false;
    auto bound = [&]() { return Value::object(std::make_shared<BoundMethod>(self, name)); };
    switch (self.type()) {
    case Value::Type::string:
        if (str_methods().count(name))
            return bound();
        return std::nullopt;
    case Value::Type::dict:
        if (name == "get" || name == "items" || name == "keys" || name == "values" || name == "copy" ||
            name == "fromkeys")
            return bound();
        if (name == "clear" || name == "pop" || name == "popitem" || name == "setdefault" || name == "update") {
            unsafe = true;
            return bound();
        }
        return std::nullopt;
    case Value::Type::list:
        if (self.list_kind() == ListKind::list) {
            if (name == "count" || name == "index" || name == "copy")
                return bound();
            if (name == "append" || name == "clear" || name == "extend" || name == "insert" || name == "pop" ||
                name == "remove" || name == "reverse" || name == "sort") {
                unsafe = true;
                return bound();
            }
        } else if (self.list_kind() == ListKind::tuple && (name == "count" || name == "index")) {
            return bound();
        }
        return std::nullopt;
    case Value::Type::floating:
        if (name == "is_integer")
            return bound();
        if (name == "real")
            return self;
        if (name == "imag")
            return Value::floating(0.0);
        return std::nullopt;
    case Value::Type::integer:
    case Value::Type::boolean:
        if (name == "real" || name == "numerator")
            return Value::integer(self.as_int());
        if (name == "imag")
            return Value::integer(0);
        if (name == "denominator")
            return Value::integer(1);
        return std::nullopt;
    default: return std::nullopt;
    }
}

Value call_method(Interpreter& interp, const Value& self, const std::string& name, CallArgs& args)
{
    if (self.is_string())
        return call_str_method(interp, self.as_string(), name, args);
    if (self.is_dict()) {
        const DictData& d = self.as_dict();
        if (name == "get") {
            if (!args.keyword.empty())
                throw RenderFailure("get() takes no keyword arguments");
            ArgBinder a("get", args, {{"key", std::nullopt}, {"default", Value::none()}});
            require_hashable(a[0]);
            const Value* v = d.find(a[0]);
            return v ? *v : a[1];
        }
        if (name == "items" || name == "keys" || name == "values") {
            ArgBinder a(name, args, {});
            return dict_view(d, name == "items" ? ListKind::dict_items : name == "keys" ? ListKind::dict_keys
                                                                                       : ListKind::dict_values);
        }
        if (name == "copy") {
            ArgBinder a(name, args, {});
            return self;
        }
        if (name == "fromkeys")
            return dict_fromkeys(args);
    }
    if (self.is_list()) {
        const auto& items = self.items();
        if (name == "copy") {
            ArgBinder a(name, args, {});
            return Value::list(items, self.list_kind());
        }
        if (name == "count") {
            ArgBinder a(name, args, {{"value", std::nullopt}});
            std::int64_t n = 0;
            for (const auto& v : items)
                n += py_equal(v, a[0]) ? 1 : 0;
            return Value::integer(n);
        }
        if (name == "index") {
            ArgBinder a(name, args, {{"value", std::nullopt}, {"start", Value::integer(0)}, {"stop", Value::integer(INT64_MAX)}});
            const SliceRange r = adjust_slice(static_cast<std::int64_t>(items.size()), a[1], a[2], Value::none());
            for (std::int64_t i = r.start; i < r.start + r.count; ++i)
                if (py_equal(items[static_cast<std::size_t>(i)], a[0]))
                    return Value::integer(i);
            if (self.list_kind() == ListKind::tuple)
                throw RenderFailure("tuple.index(x): x not in tuple");
            throw RenderFailure(repr(a[0]) + " is not in list");
        }
    }
    if (self.is_float() && name == "is_integer") {
        ArgBinder a(name, args, {});
        return Value::boolean(std::isfinite(self.as_float()) && std::floor(self.as_float()) == self.as_float());
    }
    throw RenderFailure("access to attribute " + py_quoted(name) + " of " + py_quoted(type_name(self)) +
                        " object is unsafe.");
}

} // namespace layerwise::jinja
