// jinja2's built-in filters and tests (jinja2/filters.py, jinja2/tests.py) with the
// tojson transformers registers, and the environment's globals.
#include "text/jinja_builtins.h"
#include "text/jinja_eval.h"
#include "text/jinja_strings.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <ctime>
#include <functional>
#include <map>

namespace layerwise::jinja {

namespace {

using FilterFn = Value (*)(Interpreter&, const Value&, CallArgs&);
using TestFn = bool (*)(Interpreter&, const Value&, CallArgs&);

std::string py_quoted(const std::string& s) { return py_repr_string(s); }

const Value& none_value()
{
    static const Value v = Value::none();
    return v;
}

Value generator(ValueList items) { return Value::object(std::make_shared<IteratorObject>(std::move(items), "generator")); }

[[noreturn]] void not_supported(const std::string& what)
{
    throw RenderFailure("the " + what + " filter is not supported in Layerwise chat templates");
}

// Values a Python filter receives: iterating an Undefined yields nothing, a
// non-iterable raises.
ValueList iterate_input(const Value& v)
{
    if (!is_iterable(v))
        throw RenderFailure(py_quoted(type_name(v)) + " object is not iterable");
    return iterate(v);
}

Value ignore_case(const Value& v) { return v.is_string() ? Value::string(py_lower(v.as_string())) : v; }

// jinja2's make_attrgetter: "a.b.0" walks items (digits as ints).
std::vector<Value> attribute_parts(const Value& attribute)
{
    std::vector<Value> parts;
    if (attribute.is_none())
        return parts;
    if (attribute.is_string()) {
        const std::string& s = attribute.as_string();
        std::size_t start = 0;
        while (true) {
            const std::size_t dot = s.find('.', start);
            const std::string part = s.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
            const bool digits = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
            parts.push_back(digits ? Value::integer(std::stoll(part)) : Value::string(part));
            if (dot == std::string::npos)
                break;
            start = dot + 1;
        }
        return parts;
    }
    parts.push_back(attribute);
    return parts;
}

struct AttrGetter {
    std::vector<Value> parts;
    bool lower = false;
    std::optional<Value> fallback;

    Value operator()(Interpreter& interp, Value item) const
    {
        for (const auto& part : parts) {
            item = interp.getitem(item, part);
            if (fallback && item.is_undefined())
                item = *fallback;
        }
        return lower ? ignore_case(item) : item;
    }
};

// make_multi_attrgetter for sort(attribute="a,b"): a list of keys.
struct MultiAttrGetter {
    std::vector<AttrGetter> getters;
    bool single = true;

    Value operator()(Interpreter& interp, const Value& item) const
    {
        ValueList keys;
        for (const auto& g : getters)
            keys.push_back(g(interp, item));
        return Value::list(std::move(keys));
    }
};

MultiAttrGetter multi_getter(const Value& attribute, bool lower)
{
    MultiAttrGetter m;
    if (attribute.is_string()) {
        const std::string& s = attribute.as_string();
        std::size_t start = 0;
        while (true) {
            const std::size_t comma = s.find(',', start);
            AttrGetter g{attribute_parts(Value::string(s.substr(start, comma == std::string::npos ? std::string::npos : comma - start))), lower, std::nullopt};
            m.getters.push_back(std::move(g));
            if (comma == std::string::npos)
                break;
            start = comma + 1;
        }
    } else {
        m.getters.push_back(AttrGetter{attribute_parts(attribute), lower, std::nullopt});
    }
    return m;
}

bool less_than(const Value& a, const Value& b) { return py_compare(a, b, "<") < 0; }

std::string html_escape(const std::string& s)
{
    std::string out;
    out.reserve(s.size());
    for (char c : s) {
        switch (c) {
        case '&': out += "&amp;"; break;
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '"': out += "&#34;"; break;
        case '\'': out += "&#39;"; break;
        default: out.push_back(c);
        }
    }
    return out;
}

std::string html_unescape(const std::string& s)
{
    static const std::map<std::string, std::string> named = {
        {"amp", "&"}, {"lt", "<"}, {"gt", ">"}, {"quot", "\""}, {"apos", "'"}, {"nbsp", "\xC2\xA0"},
        {"raquo", "\xC2\xBB"}, {"laquo", "\xC2\xAB"}, {"copy", "\xC2\xA9"}, {"reg", "\xC2\xAE"}};
    std::string out;
    std::size_t i = 0;
    while (i < s.size()) {
        if (s[i] != '&') {
            out.push_back(s[i++]);
            continue;
        }
        const std::size_t semi = s.find(';', i);
        if (semi == std::string::npos || semi - i > 12) {
            out.push_back(s[i++]);
            continue;
        }
        const std::string body = s.substr(i + 1, semi - i - 1);
        if (!body.empty() && body[0] == '#') {
            const bool hex = body.size() > 1 && (body[1] == 'x' || body[1] == 'X');
            const std::string digits = body.substr(hex ? 2 : 1);
            char* end = nullptr;
            const unsigned long cp = std::strtoul(digits.c_str(), &end, hex ? 16 : 10);
            if (!digits.empty() && end && *end == 0 && cp <= 0x10FFFF) {
                append_utf8(out, static_cast<char32_t>(cp));
                i = semi + 1;
                continue;
            }
        } else if (const auto it = named.find(body); it != named.end()) {
            out += it->second;
            i = semi + 1;
            continue;
        }
        out.push_back(s[i++]);
    }
    return out;
}

// Python's float(str): optional whitespace, sign, digits with single underscores, inf/nan.
std::optional<double> parse_float(const std::string& text)
{
    const std::string s = py_strip(text, std::nullopt, true, true);
    std::string clean;
    std::size_t i = 0;
    if (i < s.size() && (s[i] == '+' || s[i] == '-'))
        clean.push_back(s[i++]);
    std::string rest = py_lower(s.substr(i));
    if (rest == "inf" || rest == "infinity" || rest == "nan")
        return std::strtod((clean + rest).c_str(), nullptr);
    bool digits = false, dot = false, exp = false;
    char prev = 0;
    for (; i < s.size(); ++i) {
        const char c = s[i];
        if (c >= '0' && c <= '9') {
            clean.push_back(c);
            digits = true;
        } else if (c == '_') {
            if (!(prev >= '0' && prev <= '9') || i + 1 >= s.size() || !(s[i + 1] >= '0' && s[i + 1] <= '9'))
                return std::nullopt;
        } else if (c == '.' && !dot && !exp) {
            clean.push_back(c);
            dot = true;
        } else if ((c == 'e' || c == 'E') && digits && !exp) {
            clean.push_back('e');
            exp = true;
            if (i + 1 < s.size() && (s[i + 1] == '+' || s[i + 1] == '-'))
                clean.push_back(s[++i]);
            if (i + 1 >= s.size())
                return std::nullopt;
        } else {
            return std::nullopt;
        }
        prev = c;
    }
    if (!digits)
        return std::nullopt;
    return std::strtod(clean.c_str(), nullptr);
}

// Python's int(str, base).
std::optional<std::int64_t> parse_int(const std::string& text, std::int64_t base)
{
    const std::string s = py_strip(text, std::nullopt, true, true);
    std::size_t i = 0;
    bool negative = false;
    if (i < s.size() && (s[i] == '+' || s[i] == '-'))
        negative = s[i++] == '-';
    auto has_prefix = [&](char p) {
        return i + 1 < s.size() && s[i] == '0' && (s[i + 1] | 0x20) == p;
    };
    if (base == 0) {
        if (has_prefix('x'))
            base = 16;
        else if (has_prefix('o'))
            base = 8;
        else if (has_prefix('b'))
            base = 2;
        else
            base = 10;
        if (base != 10)
            i += 2;
    } else if ((base == 16 && has_prefix('x')) || (base == 8 && has_prefix('o')) || (base == 2 && has_prefix('b'))) {
        i += 2;
    }
    if (base < 2 || base > 36)
        throw RenderFailure("int() base must be >= 2 and <= 36, or 0");
    if (i >= s.size())
        return std::nullopt;
    std::int64_t value = 0;
    bool any = false;
    char prev = '_';
    for (; i < s.size(); ++i) {
        const char c = s[i];
        if (c == '_') {
            if (prev == '_')
                return std::nullopt;
            prev = c;
            continue;
        }
        int d = -1;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')
            d = (c | 0x20) - 'a' + 10;
        if (d < 0 || d >= base)
            return std::nullopt;
        if (__builtin_mul_overflow(value, base, &value) || __builtin_add_overflow(value, d, &value))
            return std::nullopt;
        any = true;
        prev = c;
    }
    if (!any || prev == '_')
        return std::nullopt;
    return negative ? -value : value;
}

double python_round(double x, std::int64_t digits)
{
    if (!std::isfinite(x))
        return x;
    // CPython: beyond 323 digits the value is returned as is, below -308 it rounds to zero
    if (digits > 323)
        return x;
    if (digits < -308)
        return 0.0 * x;
    if (digits >= 0) {
        char buf[1024];
        std::snprintf(buf, sizeof buf, "%.*f", static_cast<int>(digits), x);
        return std::strtod(buf, nullptr);
    }
    const double scale = std::pow(10.0, static_cast<double>(-digits));
    return std::nearbyint(x / scale) * scale;
}

// ---------------------------------------------------------------- filters

Value f_abs(Interpreter&, const Value& v, CallArgs& args)
{
    ArgBinder a("abs", args, {});
    if (v.is_integral()) {
        if (v.as_int() == INT64_MIN)
            throw RenderFailure("integer result does not fit in 64 bits (Layerwise chat templates use 64-bit integers)");
        return Value::integer(v.as_int() < 0 ? -v.as_int() : v.as_int());
    }
    if (v.is_float())
        return Value::floating(std::fabs(v.as_float()));
    throw RenderFailure("bad operand type for abs(): " + py_quoted(type_name(v)));
}

Value f_attr(Interpreter& interp, const Value& v, CallArgs& args)
{
    ArgBinder a("do_attr", args, {{"name", std::nullopt}});
    if (!a[0].is_string())
        throw RenderFailure("attribute name must be string");
    const std::string& name = a[0].as_string();
    bool exists = false;
    if (v.is_object()) {
        exists = v.as_object().attribute(name).has_value();
    } else if (!v.is_undefined()) {
        bool unsafe = false;
        exists = builtin_attribute(v, name, unsafe).has_value();
    }
    if (!exists)
        return Value::undefined(py_quoted(object_type_repr(v)) + " has no attribute " + py_quoted(name));
    return interp.getattr(v, name);
}

Value f_batch(Interpreter&, const Value& v, CallArgs& args)
{
    ArgBinder a("do_batch", args, {{"linecount", std::nullopt}, {"fill_with", none_value()}});
    const std::int64_t count = require_int(a[0], "linecount");
    ValueList batches, current;
    for (auto& item : iterate_input(v)) {
        if (static_cast<std::int64_t>(current.size()) == count) {
            batches.push_back(Value::list(std::move(current)));
            current.clear();
        }
        current.push_back(std::move(item));
    }
    if (!current.empty()) {
        if (!a[1].is_none())
            while (static_cast<std::int64_t>(current.size()) < count)
                current.push_back(a[1]);
        batches.push_back(Value::list(std::move(current)));
    }
    return generator(std::move(batches));
}

Value f_capitalize(Interpreter&, const Value& v, CallArgs& args)
{
    ArgBinder a("do_capitalize", args, {});
    return Value::string(py_capitalize(to_str(v)));
}

Value f_center(Interpreter& interp, const Value& v, CallArgs& args)
{
    ArgBinder a("do_center", args, {{"width", Value::integer(80)}});
    CallArgs inner;
    inner.positional.push_back(a[0]);
    return call_method(interp, Value::string(to_str(v)), "center", inner);
}

Value f_length(Interpreter&, const Value& v, CallArgs& args)
{
    ArgBinder a("len", args, {});
    return Value::integer(length(v));
}

Value f_default(Interpreter&, const Value& v, CallArgs& args)
{
    ArgBinder a("do_default", args, {{"default_value", Value::string("")}, {"boolean", Value::boolean(false)}});
    if (v.is_undefined() || (truthy(a[1]) && !truthy(v)))
        return a[0];
    return v;
}

Value f_dictsort(Interpreter&, const Value& v, CallArgs& args)
{
    ArgBinder a("do_dictsort", args, {{"case_sensitive", Value::boolean(false)}, {"by", Value::string("key")}, {"reverse", Value::boolean(false)}});
    std::size_t pos;
    if (a[1].is_string() && a[1].as_string() == "key")
        pos = 0;
    else if (a[1].is_string() && a[1].as_string() == "value")
        pos = 1;
    else
        throw RenderFailure("You can only sort by either \"key\" or \"value\"");
    if (!v.is_dict())
        throw RenderFailure(py_quoted(type_name(v)) + " object has no attribute 'items'");
    ValueList pairs;
    for (const auto& [k, val] : v.as_dict().entries)
        pairs.push_back(Value::tuple({k, val}));
    const bool lower = !truthy(a[0]);
    auto key = [&](const Value& p) { return lower ? ignore_case(p.items()[pos]) : p.items()[pos]; };
    const bool reverse = truthy(a[2]);
    std::stable_sort(pairs.begin(), pairs.end(), [&](const Value& x, const Value& y) {
        return reverse ? less_than(key(y), key(x)) : less_than(key(x), key(y));
    });
    return Value::list(std::move(pairs));
}

Value f_escape(Interpreter&, const Value& v, CallArgs& args)
{
    ArgBinder a("escape", args, {});
    return Value::string(html_escape(to_str(v)));
}

Value f_filesizeformat(Interpreter&, const Value& v, CallArgs& args)
{
    ArgBinder a("do_filesizeformat", args, {{"binary", Value::boolean(false)}});
    double bytes;
    if (v.is_number())
        bytes = v.as_number();
    else if (v.is_string() && parse_float(v.as_string()))
        bytes = *parse_float(v.as_string());
    else
        throw RenderFailure("could not convert " + type_name(v) + " to float");
    const bool binary = truthy(a[0]);
    const double base = binary ? 1024 : 1000;
    static const char* dec[] = {"kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"};
    static const char* bin[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"};
    if (bytes == 1)
        return Value::string("1 Byte");
    if (bytes < base)
        return Value::string(std::to_string(static_cast<std::int64_t>(bytes)) + " Bytes");
    double unit = base;
    const char* prefix = "";
    for (int i = 0; i < 8; ++i) {
        unit = std::pow(base, i + 2);
        prefix = binary ? bin[i] : dec[i];
        if (bytes < unit)
            break;
    }
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.1f %s", base * bytes / unit, prefix);
    return Value::string(buf);
}

Value f_first(Interpreter&, const Value& v, CallArgs& args)
{
    ArgBinder a("do_first", args, {});
    const ValueList items = iterate_input(v);
    if (items.empty())
        return Value::undefined("No first item, sequence was empty.");
    return items.front();
}

Value f_float(Interpreter&, const Value& v, CallArgs& args)
{
    ArgBinder a("do_float", args, {{"default", Value::floating(0.0)}});
    if (v.is_undefined())
        throw RenderFailure(v.undefined_message());
    if (v.is_number())
        return Value::floating(v.as_number());
    if (v.is_string())
        if (auto f = parse_float(v.as_string()))
            return Value::floating(*f);
    return a[0];
}

Value f_format(Interpreter& interp, const Value& v, CallArgs& args)
{
    if (!args.positional.empty() && !args.keyword.empty())
        throw RenderFailure("can't handle positional and keyword arguments at the same time");
    Value fmt_args;
    if (!args.keyword.empty()) {
        auto d = std::make_shared<DictData>();
        for (auto& [k, val] : args.keyword)
            d->set(Value::string(k), val);
        fmt_args = Value::dict(std::move(d));
    } else {
        fmt_args = Value::tuple(args.positional);
    }
    return Value::string(percent_format(interp, to_str(v), fmt_args));
}

Value f_groupby(Interpreter& interp, const Value& v, CallArgs& args)
{
    ArgBinder a("do_groupby", args, {{"attribute", std::nullopt}, {"default", none_value()}, {"case_sensitive", Value::boolean(false)}});
    const bool lower = !truthy(a[2]);
    std::optional<Value> fallback;
    if (!a[1].is_none())
        fallback = a[1];
    AttrGetter key{attribute_parts(a[0]), lower, fallback};
    AttrGetter output{attribute_parts(a[0]), false, fallback};
    ValueList items = iterate_input(v);
    std::vector<std::pair<Value, Value>> keyed;
    for (auto& item : items)
        keyed.emplace_back(key(interp, item), item);
    std::stable_sort(keyed.begin(), keyed.end(), [](const auto& x, const auto& y) { return less_than(x.first, y.first); });
    ValueList groups;
    std::size_t i = 0;
    while (i < keyed.size()) {
        std::size_t j = i;
        ValueList members;
        while (j < keyed.size() && py_equal(keyed[j].first, keyed[i].first))
            members.push_back(keyed[j++].second);
        Value grouper = lower ? output(interp, members.front()) : keyed[i].first;
        groups.push_back(Value::tuple({grouper, Value::list(std::move(members))}));
        i = j;
    }
    return Value::list(std::move(groups));
}

Value f_indent(Interpreter&, const Value& v, CallArgs& args)
{
    ArgBinder a("do_indent", args, {{"width", Value::integer(4)}, {"first", Value::boolean(false)}, {"blank", Value::boolean(false)}});
    std::string indention;
    if (a[0].is_string())
        indention = a[0].as_string();
    else
        indention = std::string(static_cast<std::size_t>(std::max<std::int64_t>(0, require_int(a[0], "width"))), ' ');
    if (!v.is_string())
        throw RenderFailure("unsupported operand type(s) for +=: " + py_quoted(type_name(v)) + " and 'str'");
    const std::string s = v.as_string() + "\n";
    const std::vector<std::string> lines = py_splitlines(s, false);
    std::string rv;
    if (truthy(a[2])) {
        for (std::size_t i = 0; i < lines.size(); ++i) {
            if (i)
                rv += "\n" + indention;
            rv += lines[i];
        }
    } else {
        rv = lines.empty() ? "" : lines[0];
        if (lines.size() > 1) {
            rv += "\n";
            for (std::size_t i = 1; i < lines.size(); ++i) {
                if (i > 1)
                    rv += "\n";
                rv += lines[i].empty() ? lines[i] : indention + lines[i];
            }
        }
    }
    if (truthy(a[1]))
        rv = indention + rv;
    return Value::string(std::move(rv));
}

Value f_int(Interpreter&, const Value& v, CallArgs& args)
{
    ArgBinder a("do_int", args, {{"default", Value::integer(0)}, {"base", Value::integer(10)}});
    if (v.is_undefined())
        throw RenderFailure(v.undefined_message());
    if (v.is_integral())
        return Value::integer(v.as_int());
    if (v.is_float()) {
        const double f = v.as_float();
        if (!std::isfinite(f) || std::fabs(f) >= 9.2e18)
            return a[0];
        return Value::integer(static_cast<std::int64_t>(std::trunc(f)));
    }
    if (v.is_string()) {
        if (auto i = parse_int(v.as_string(), require_int(a[1], "base")))
            return Value::integer(*i);
        if (auto f = parse_float(v.as_string()))
            if (std::isfinite(*f) && std::fabs(*f) < 9.2e18)
                return Value::integer(static_cast<std::int64_t>(std::trunc(*f)));
    }
    return a[0];
}

Value f_join(Interpreter& interp, const Value& v, CallArgs& args)
{
    ArgBinder a("do_join", args, {{"d", Value::string("")}, {"attribute", none_value()}});
    ValueList items = iterate_input(v);
    const std::string sep = to_str(a[0]);
    const AttrGetter getter{attribute_parts(a[1]), false, std::nullopt};
    std::string out;
    for (std::size_t i = 0; i < items.size(); ++i) {
        if (i)
            out += sep;
        out += to_str(a[1].is_none() ? items[i] : getter(interp, items[i]));
    }
    return Value::string(std::move(out));
}

Value f_last(Interpreter&, const Value& v, CallArgs& args)
{
    ArgBinder a("do_last", args, {});
    if (v.is_object() && !v.as_object().length())
        throw RenderFailure(py_quoted(type_name(v)) + " object is not reversible");
    const ValueList items = iterate_input(v);
    if (items.empty())
        return Value::undefined("No last item, sequence was empty.");
    return items.back();
}

Value f_list(Interpreter&, const Value& v, CallArgs& args)
{
    ArgBinder a("do_list", args, {});
    return Value::list(iterate_input(v));
}

Value f_lower(Interpreter&, const Value& v, CallArgs& args)
{
    ArgBinder a("do_lower", args, {});
    return Value::string(py_lower(to_str(v)));
}

Value f_upper(Interpreter&, const Value& v, CallArgs& args)
{
    ArgBinder a("do_upper", args, {});
    return Value::string(py_upper(to_str(v)));
}

Value f_items(Interpreter&, const Value& v, CallArgs& args)
{
    ArgBinder a("do_items", args, {});
    if (v.is_undefined())
        return generator({});
    if (!v.is_dict())
        throw RenderFailure("Can only get item pairs from a mapping.");
    ValueList pairs;
    for (const auto& [k, val] : v.as_dict().entries)
        pairs.push_back(Value::tuple({k, val}));
    return generator(std::move(pairs));
}

Value f_map(Interpreter& interp, const Value& v, CallArgs& args)
{
    if (!truthy(v))
        return generator({});
    ValueList out;
    bool by_attribute = false;
    for (const auto& [k, val] : args.keyword)
        by_attribute |= k == "attribute";
    if (args.positional.empty() && by_attribute) {
        Value attribute, fallback = Value::none();
        for (const auto& [k, val] : args.keyword) {
            if (k == "attribute")
                attribute = val;
            else if (k == "default")
                fallback = val;
            else
                throw RenderFailure("Unexpected keyword argument " + py_quoted(k));
        }
        std::optional<Value> fb;
        if (!fallback.is_none())
            fb = fallback;
        const AttrGetter getter{attribute_parts(attribute), false, fb};
        for (const auto& item : iterate_input(v))
            out.push_back(getter(interp, item));
        return generator(std::move(out));
    }
    if (args.positional.empty())
        throw RenderFailure("map requires a filter argument");
    const std::string name = to_str(args.positional.front());
    for (const auto& item : iterate_input(v)) {
        CallArgs inner;
        inner.positional.assign(args.positional.begin() + 1, args.positional.end());
        inner.keyword = args.keyword;
        out.push_back(interp.filter(name, item, inner));
    }
    return generator(std::move(out));
}

Value min_or_max(Interpreter& interp, const Value& v, CallArgs& args, bool want_max, const char* fn)
{
    ArgBinder a(fn, args, {{"case_sensitive", Value::boolean(false)}, {"attribute", none_value()}});
    const ValueList items = iterate_input(v);
    if (items.empty())
        return Value::undefined("No aggregated item, sequence was empty.");
    const AttrGetter key{attribute_parts(a[1]), !truthy(a[0]), std::nullopt};
    std::size_t best = 0;
    Value best_key = key(interp, items[0]);
    for (std::size_t i = 1; i < items.size(); ++i) {
        Value k = key(interp, items[i]);
        // Python's max() asks item > best, min() item < best
        if (want_max ? py_compare(k, best_key, ">") > 0 : py_compare(k, best_key, "<") < 0) {
            best = i;
            best_key = std::move(k);
        }
    }
    return items[best];
}

Value f_min(Interpreter& interp, const Value& v, CallArgs& args) { return min_or_max(interp, v, args, false, "do_min"); }
Value f_max(Interpreter& interp, const Value& v, CallArgs& args) { return min_or_max(interp, v, args, true, "do_max"); }

Value f_pprint(Interpreter&, const Value& v, CallArgs& args)
{
    ArgBinder a("do_pprint", args, {});
    return Value::string(repr(v));
}

Value select_or_reject(Interpreter& interp, const Value& v, CallArgs& args, bool select, bool lookup_attr)
{
    if (!truthy(v))
        return generator({});
    std::size_t off = 0;
    std::optional<AttrGetter> getter;
    if (lookup_attr) {
        if (args.positional.empty())
            throw RenderFailure("Missing parameter for attribute name");
        getter = AttrGetter{attribute_parts(args.positional[0]), false, std::nullopt};
        off = 1;
    }
    std::optional<std::string> test_name;
    ValueList test_args;
    if (args.positional.size() > off) {
        test_name = to_str(args.positional[off]);
        test_args.assign(args.positional.begin() + static_cast<std::ptrdiff_t>(off) + 1, args.positional.end());
    }
    ValueList out;
    for (const auto& item : iterate_input(v)) {
        const Value subject = getter ? (*getter)(interp, item) : item;
        bool ok;
        if (test_name) {
            CallArgs inner;
            inner.positional = test_args;
            inner.keyword = args.keyword;
            ok = interp.test(*test_name, subject, inner);
        } else {
            ok = truthy(subject);
        }
        if (ok == select)
            out.push_back(item);
    }
    return generator(std::move(out));
}

Value f_select(Interpreter& i, const Value& v, CallArgs& a) { return select_or_reject(i, v, a, true, false); }
Value f_reject(Interpreter& i, const Value& v, CallArgs& a) { return select_or_reject(i, v, a, false, false); }
Value f_selectattr(Interpreter& i, const Value& v, CallArgs& a) { return select_or_reject(i, v, a, true, true); }
Value f_rejectattr(Interpreter& i, const Value& v, CallArgs& a) { return select_or_reject(i, v, a, false, true); }

Value f_replace(Interpreter&, const Value& v, CallArgs& args)
{
    ArgBinder a("do_replace", args, {{"old", std::nullopt}, {"new", std::nullopt}, {"count", none_value()}});
    const std::int64_t count = a[2].is_none() ? -1 : require_int(a[2], "count");
    return Value::string(py_replace(to_str(v), to_str(a[0]), to_str(a[1]), count));
}

Value f_reverse(Interpreter&, const Value& v, CallArgs& args)
{
    ArgBinder a("do_reverse", args, {});
    if (v.is_string()) {
        std::u32string u = to_u32(v.as_string());
        std::reverse(u.begin(), u.end());
        return Value::string(to_utf8(u));
    }
    if (v.is_list() || v.is_dict() || v.is_undefined()) {
        ValueList items = iterate(v);
        std::reverse(items.begin(), items.end());
        const char* type = v.is_dict() ? "dict_reversekeyiterator"
                           : (v.is_list() && v.list_kind() == ListKind::list) ? "list_reverseiterator"
                                                                              : "reversed";
        return Value::object(std::make_shared<IteratorObject>(std::move(items), type));
    }
    if (!is_iterable(v))
        throw RenderFailure("argument must be iterable");
    ValueList items = iterate(v);
    std::reverse(items.begin(), items.end());
    return Value::list(std::move(items));
}

Value f_round(Interpreter&, const Value& v, CallArgs& args)
{
    ArgBinder a("do_round", args, {{"precision", Value::integer(0)}, {"method", Value::string("common")}});
    const std::string method = to_str(a[1]);
    if (method != "common" && method != "ceil" && method != "floor")
        throw RenderFailure("method must be common, ceil or floor");
    const std::int64_t precision = require_int(a[0], "precision");
    if (!v.is_number())
        throw RenderFailure("type " + type_name(v) + " doesn't define __round__ method");
    if (method == "common") {
        if (v.is_integral()) {
            if (precision >= 0)
                return Value::integer(v.as_int());
            std::int64_t scale = 1;
            for (std::int64_t i = 0; i < -precision && scale < INT64_MAX / 10; ++i)
                scale *= 10;
            const std::int64_t x = v.as_int();
            std::int64_t q = x / scale, r = x % scale;
            if (r < 0) {
                r += scale;
                --q;
            }
            if (r > scale - r || (r == scale - r && (q & 1)))
                ++q;
            std::int64_t rounded;
            if (__builtin_mul_overflow(q, scale, &rounded))
                throw RenderFailure("integer result does not fit in 64 bits (Layerwise chat templates use 64-bit integers)");
            return Value::integer(rounded);
        }
        return Value::floating(python_round(v.as_float(), precision));
    }
    const double scale = std::pow(10.0, static_cast<double>(precision));
    const double x = v.as_number() * scale;
    return Value::floating((method == "ceil" ? std::ceil(x) : std::floor(x)) / scale);
}

Value f_safe(Interpreter&, const Value& v, CallArgs& args)
{
    ArgBinder a("do_mark_safe", args, {});
    return Value::string(to_str(v));
}

Value f_slice(Interpreter&, const Value& v, CallArgs& args)
{
    ArgBinder a("do_slice", args, {{"slices", std::nullopt}, {"fill_with", none_value()}});
    const ValueList seq = iterate_input(v);
    const std::int64_t slices = require_int(a[0], "slices");
    if (slices == 0)
        throw RenderFailure("integer division or modulo by zero");
    const auto length = static_cast<std::int64_t>(seq.size());
    const std::int64_t per = length / slices;
    const std::int64_t extra = length % slices;
    std::int64_t offset = 0;
    ValueList out;
    for (std::int64_t n = 0; n < slices; ++n) {
        const std::int64_t start = offset + n * per;
        if (n < extra)
            ++offset;
        const std::int64_t end = offset + (n + 1) * per;
        ValueList part;
        for (std::int64_t i = std::max<std::int64_t>(start, 0); i < end && i < length; ++i)
            part.push_back(seq[static_cast<std::size_t>(i)]);
        if (!a[1].is_none() && n >= extra)
            part.push_back(a[1]);
        out.push_back(Value::list(std::move(part)));
    }
    return generator(std::move(out));
}

Value f_sort(Interpreter& interp, const Value& v, CallArgs& args)
{
    ArgBinder a("do_sort", args, {{"reverse", Value::boolean(false)}, {"case_sensitive", Value::boolean(false)}, {"attribute", none_value()}});
    ValueList items = iterate_input(v);
    const bool lower = !truthy(a[1]);
    std::vector<std::pair<Value, Value>> keyed;
    keyed.reserve(items.size());
    if (a[2].is_none()) {
        for (auto& item : items)
            keyed.emplace_back(lower ? ignore_case(item) : item, item);
    } else {
        const MultiAttrGetter getter = multi_getter(a[2], lower);
        for (auto& item : items)
            keyed.emplace_back(getter(interp, item), item);
    }
    // a descending stable sort keeps equal items in their original order, as Python's sorted(reverse=True)
    const bool reverse = truthy(a[0]);
    std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& x, const auto& y) {
        return reverse ? less_than(y.first, x.first) : less_than(x.first, y.first);
    });
    ValueList out;
    for (auto& [k, item] : keyed)
        out.push_back(std::move(item));
    return Value::list(std::move(out));
}

Value f_string(Interpreter&, const Value& v, CallArgs& args)
{
    ArgBinder a("soft_str", args, {});
    return Value::string(to_str(v));
}

Value f_striptags(Interpreter&, const Value& v, CallArgs& args)
{
    ArgBinder a("do_striptags", args, {});
    std::string value = to_str(v);
    std::string joined;
    std::size_t pos = 0;
    bool any = false;
    while (true) {
        const std::size_t start = value.find('<', pos);
        if (start == std::string::npos)
            break;
        std::size_t end;
        if (value.compare(start, 4, "<!--") == 0) {
            end = value.find("-->", start + 4);
            if (end == std::string::npos)
                break;
            end += 3;
        } else {
            end = value.find('>', start);
            if (end == std::string::npos)
                break;
            end += 1;
        }
        joined += value.substr(pos, start - pos);
        pos = end;
        any = true;
    }
    if (any && pos > 0) {
        joined += value.substr(pos);
        value = joined;
    }
    const auto words = py_split(value, std::nullopt, -1);
    std::string collapsed;
    for (std::size_t i = 0; i < words.size(); ++i) {
        if (i)
            collapsed.push_back(' ');
        collapsed += words[i];
    }
    return Value::string(html_unescape(collapsed));
}

Value f_sum(Interpreter& interp, const Value& v, CallArgs& args)
{
    ArgBinder a("do_sum", args, {{"attribute", none_value()}, {"start", Value::integer(0)}});
    Value total = a[1];
    if (total.is_string())
        throw RenderFailure("sum() can't sum strings [use ''.join(seq) instead]");
    const AttrGetter getter{attribute_parts(a[0]), false, std::nullopt};
    for (const auto& item : iterate_input(v))
        total = arithmetic(interp, ArithOp::add, total, a[0].is_none() ? item : getter(interp, item));
    return total;
}

Value f_title(Interpreter&, const Value& v, CallArgs& args)
{
    ArgBinder a("do_title", args, {});
    // jinja2 splits at runs of [-\s({\[<] and capitalises each piece.
    const std::u32string u = to_u32(to_str(v));
    auto is_sep = [](char32_t c) { return c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || py_isspace(c); };
    std::string out;
    std::size_t i = 0;
    while (i < u.size()) {
        std::size_t j = i;
        const bool sep = is_sep(u[i]);
        while (j < u.size() && is_sep(u[j]) == sep)
            ++j;
        const std::u32string_view piece(u.data() + i, j - i);
        if (sep) {
            out += to_utf8(piece);
        } else {
            out += py_upper(to_utf8(piece.substr(0, 1)));
            out += py_lower(to_utf8(piece.substr(1)));
        }
        i = j;
    }
    return Value::string(std::move(out));
}

Value f_trim(Interpreter&, const Value& v, CallArgs& args)
{
    ArgBinder a("do_trim", args, {{"chars", none_value()}});
    std::optional<std::string> chars;
    if (!a[0].is_none()) {
        if (!a[0].is_string())
            throw RenderFailure("strip arg must be None or str");
        chars = a[0].as_string();
    }
    return Value::string(py_strip(to_str(v), chars, true, true));
}

Value f_truncate(Interpreter&, const Value& v, CallArgs& args)
{
    ArgBinder a("do_truncate", args, {{"length", Value::integer(255)}, {"killwords", Value::boolean(false)}, {"end", Value::string("...")}, {"leeway", none_value()}});
    const std::int64_t length = require_int(a[0], "length");
    const std::string end = to_str(a[2]);
    const auto end_len = static_cast<std::int64_t>(code_point_count(end));
    const std::int64_t leeway = a[3].is_none() ? 5 : require_int(a[3], "leeway");
    if (length < end_len)
        throw RenderFailure("expected length >= " + std::to_string(end_len) + ", got " + std::to_string(length));
    if (leeway < 0)
        throw RenderFailure("expected leeway >= 0, got " + std::to_string(leeway));
    if (!v.is_string())
        throw RenderFailure("object of type " + py_quoted(type_name(v)) + " has no len()");
    const std::u32string s = to_u32(v.as_string());
    if (static_cast<std::int64_t>(s.size()) <= length + leeway)
        return v;
    const std::u32string head = s.substr(0, static_cast<std::size_t>(length - end_len));
    if (truthy(a[1]))
        return Value::string(to_utf8(head) + end);
    const std::size_t space = head.rfind(U' ');
    return Value::string(to_utf8(space == std::u32string::npos ? head : head.substr(0, space)) + end);
}

Value f_unique(Interpreter& interp, const Value& v, CallArgs& args)
{
    ArgBinder a("do_unique", args, {{"case_sensitive", Value::boolean(false)}, {"attribute", none_value()}});
    const AttrGetter getter{attribute_parts(a[1]), !truthy(a[0]), std::nullopt};
    ValueList seen, out;
    for (const auto& item : iterate_input(v)) {
        const Value key = getter(interp, item);
        require_hashable(key);
        if (std::none_of(seen.begin(), seen.end(), [&](const Value& s) { return py_equal(s, key); })) {
            seen.push_back(key);
            out.push_back(item);
        }
    }
    return generator(std::move(out));
}

std::string url_quote(const std::string& s, bool for_qs)
{
    static const char* hex = "0123456789ABCDEF";
    std::string out;
    for (char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        const bool safe = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                          c == '.' || c == '-' || c == '~' || (c == '/' && !for_qs);
        if (safe) {
            out.push_back(ch);
        } else if (c == ' ' && for_qs) {
            out.push_back('+');
        } else {
            out.push_back('%');
            out.push_back(hex[c >> 4]);
            out.push_back(hex[c & 15]);
        }
    }
    return out;
}

Value f_urlencode(Interpreter&, const Value& v, CallArgs& args)
{
    ArgBinder a("do_urlencode", args, {});
    if (v.is_string() || !is_iterable(v))
        return Value::string(url_quote(to_str(v), false));
    ValueList pairs;
    if (v.is_dict())
        for (const auto& [k, val] : v.as_dict().entries)
            pairs.push_back(Value::tuple({k, val}));
    else
        pairs = iterate(v);
    std::string out;
    for (std::size_t i = 0; i < pairs.size(); ++i) {
        const ValueList kv = iterate(pairs[i]);
        if (kv.size() != 2)
            throw RenderFailure("urlencode expects (key, value) pairs");
        if (i)
            out.push_back('&');
        out += url_quote(to_str(kv[0]), true) + "=" + url_quote(to_str(kv[1]), true);
    }
    return Value::string(std::move(out));
}

Value f_wordcount(Interpreter&, const Value& v, CallArgs& args)
{
    ArgBinder a("do_wordcount", args, {});
    std::int64_t n = 0;
    bool in_word = false;
    for (char32_t c : to_u32(to_str(v))) {
        const bool w = is_alpha(c) || is_digit(c) || c == '_' || (c >= 0x80 && !py_isspace(c) && c != 0xA0);
        if (w && !in_word)
            ++n;
        in_word = w;
    }
    return Value::integer(n);
}

Value f_tojson(Interpreter&, const Value& v, CallArgs& args)
{
    // transformers' tojson: json.dumps(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)
    ArgBinder a("tojson", args, {{"ensure_ascii", Value::boolean(false)}, {"indent", none_value()}, {"separators", none_value()}, {"sort_keys", Value::boolean(false)}});
    JsonDumpOptions o;
    o.ensure_ascii = truthy(a[0]);
    if (a[1].is_string())
        o.indent = a[1].as_string();
    else if (a[1].is_integral())
        o.indent = std::string(static_cast<std::size_t>(std::max<std::int64_t>(0, a[1].as_int())), ' ');
    else if (!a[1].is_none())
        throw RenderFailure("indent must be an int or a string, not " + type_name(a[1]));
    if (o.indent)
        o.item_separator = ",";
    if (!a[2].is_none()) {
        const ValueList seps = iterate(a[2]);
        if (seps.size() != 2 || !seps[0].is_string() || !seps[1].is_string())
            throw RenderFailure("separators must be an (item_separator, key_separator) pair of strings");
        o.item_separator = seps[0].as_string();
        o.key_separator = seps[1].as_string();
    }
    o.sort_keys = truthy(a[3]);
    return Value::string(dump_json(v, o));
}

Value f_unsupported_random(Interpreter&, const Value&, CallArgs&) { not_supported("random"); }
Value f_unsupported_urlize(Interpreter&, const Value&, CallArgs&) { not_supported("urlize"); }
Value f_unsupported_wordwrap(Interpreter&, const Value&, CallArgs&) { not_supported("wordwrap"); }
Value f_unsupported_xmlattr(Interpreter&, const Value&, CallArgs&) { not_supported("xmlattr"); }

const std::map<std::string, FilterFn, std::less<>>& filter_table()
{
    static const std::map<std::string, FilterFn, std::less<>> table = {
        {"abs", f_abs}, {"attr", f_attr}, {"batch", f_batch}, {"capitalize", f_capitalize}, {"center", f_center},
        {"count", f_length}, {"d", f_default}, {"default", f_default}, {"dictsort", f_dictsort}, {"e", f_escape},
        {"escape", f_escape}, {"filesizeformat", f_filesizeformat}, {"first", f_first}, {"float", f_float},
        {"forceescape", f_escape}, {"format", f_format}, {"groupby", f_groupby}, {"indent", f_indent}, {"int", f_int},
        {"join", f_join}, {"last", f_last}, {"length", f_length}, {"list", f_list}, {"lower", f_lower},
        {"items", f_items}, {"map", f_map}, {"min", f_min}, {"max", f_max}, {"pprint", f_pprint},
        {"random", f_unsupported_random}, {"reject", f_reject}, {"rejectattr", f_rejectattr}, {"replace", f_replace},
        {"reverse", f_reverse}, {"round", f_round}, {"safe", f_safe}, {"select", f_select},
        {"selectattr", f_selectattr}, {"slice", f_slice}, {"sort", f_sort}, {"string", f_string},
        {"striptags", f_striptags}, {"sum", f_sum}, {"title", f_title}, {"trim", f_trim}, {"truncate", f_truncate},
        {"unique", f_unique}, {"upper", f_upper}, {"urlencode", f_urlencode}, {"urlize", f_unsupported_urlize},
        {"wordcount", f_wordcount}, {"wordwrap", f_unsupported_wordwrap}, {"xmlattr", f_unsupported_xmlattr},
        {"tojson", f_tojson},
    };
    return table;
}

// ---------------------------------------------------------------- tests

const Value& test_arg(CallArgs& args, const char* test)
{
    if (args.positional.empty()) {
        if (!args.keyword.empty())
            return args.keyword.front().second;
        throw RenderFailure(std::string(test) + "() missing 1 required positional argument");
    }
    return args.positional.front();
}

bool t_odd(Interpreter& i, const Value& v, CallArgs&) { return py_equal(arithmetic(i, ArithOp::mod, v, Value::integer(2)), Value::integer(1)); }
bool t_even(Interpreter& i, const Value& v, CallArgs&) { return py_equal(arithmetic(i, ArithOp::mod, v, Value::integer(2)), Value::integer(0)); }
bool t_divisibleby(Interpreter& i, const Value& v, CallArgs& a)
{
    return py_equal(arithmetic(i, ArithOp::mod, v, test_arg(a, "test_divisibleby")), Value::integer(0));
}
bool t_defined(Interpreter&, const Value& v, CallArgs&) { return !v.is_undefined(); }
bool t_undefined(Interpreter&, const Value& v, CallArgs&) { return v.is_undefined(); }
bool t_filter(Interpreter&, const Value& v, CallArgs&) { return v.is_string() && is_jinja_filter(v.as_string()); }
bool t_test(Interpreter&, const Value& v, CallArgs&) { return v.is_string() && is_jinja_test(v.as_string()); }
bool t_none(Interpreter&, const Value& v, CallArgs&) { return v.is_none(); }
bool t_boolean(Interpreter&, const Value& v, CallArgs&) { return v.is_bool(); }
bool t_false(Interpreter&, const Value& v, CallArgs&) { return v.is_bool() && !v.as_bool(); }
bool t_true(Interpreter&, const Value& v, CallArgs&) { return v.is_bool() && v.as_bool(); }
bool t_integer(Interpreter&, const Value& v, CallArgs&) { return v.is_int(); }
bool t_float(Interpreter&, const Value& v, CallArgs&) { return v.is_float(); }
bool t_lower(Interpreter&, const Value& v, CallArgs&) { return py_islower(to_str(v)); }
bool t_upper(Interpreter&, const Value& v, CallArgs&) { return py_isupper(to_str(v)); }
bool t_string(Interpreter&, const Value& v, CallArgs&) { return v.is_string(); }
bool t_mapping(Interpreter&, const Value& v, CallArgs&) { return v.is_dict(); }
bool t_number(Interpreter&, const Value& v, CallArgs&) { return v.is_number(); }
bool t_sequence(Interpreter&, const Value& v, CallArgs&)
{
    return v.is_undefined() || v.is_string() || v.is_sequence_list() || v.is_dict();
}
bool t_iterable(Interpreter&, const Value& v, CallArgs&) { return is_iterable(v); }
bool t_callable(Interpreter&, const Value& v, CallArgs&)
{
    return v.is_undefined() || (v.is_object() && v.as_object().is_callable());
}
bool t_sameas(Interpreter&, const Value& v, CallArgs& a)
{
    const Value& other = test_arg(a, "test_sameas");
    if (v.type() != other.type())
        return false;
    switch (v.type()) {
    case Value::Type::none: return true;
    case Value::Type::boolean: return v.as_bool() == other.as_bool();
    case Value::Type::integer: return v.as_int() == other.as_int() && v.as_int() >= -5 && v.as_int() <= 256;
    case Value::Type::floating: return false;
    default: return v.identity() == other.identity();
    }
}
bool t_escaped(Interpreter&, const Value&, CallArgs&) { return false; }
bool t_in(Interpreter&, const Value& v, CallArgs& a) { return python_contains(test_arg(a, "test_in"), v); }
bool t_eq(Interpreter&, const Value& v, CallArgs& a) { return py_equal(v, test_arg(a, "eq")); }
bool t_ne(Interpreter&, const Value& v, CallArgs& a) { return !py_equal(v, test_arg(a, "ne")); }
bool t_gt(Interpreter&, const Value& v, CallArgs& a) { return py_compare(v, test_arg(a, "gt"), ">") > 0; }
bool t_ge(Interpreter&, const Value& v, CallArgs& a) { return py_compare(v, test_arg(a, "ge"), ">=") >= 0; }
bool t_lt(Interpreter&, const Value& v, CallArgs& a) { return py_compare(v, test_arg(a, "lt"), "<") < 0; }
bool t_le(Interpreter&, const Value& v, CallArgs& a) { return py_compare(v, test_arg(a, "le"), "<=") <= 0; }

const std::map<std::string, TestFn, std::less<>>& test_table()
{
    static const std::map<std::string, TestFn, std::less<>> table = {
        {"odd", t_odd}, {"even", t_even}, {"divisibleby", t_divisibleby}, {"defined", t_defined},
        {"undefined", t_undefined}, {"filter", t_filter}, {"test", t_test}, {"none", t_none}, {"boolean", t_boolean},
        {"false", t_false}, {"true", t_true}, {"integer", t_integer}, {"float", t_float}, {"lower", t_lower},
        {"upper", t_upper}, {"string", t_string}, {"mapping", t_mapping}, {"number", t_number},
        {"sequence", t_sequence}, {"iterable", t_iterable}, {"callable", t_callable}, {"sameas", t_sameas},
        {"escaped", t_escaped}, {"in", t_in}, {"==", t_eq}, {"eq", t_eq}, {"equalto", t_eq}, {"!=", t_ne},
        {"ne", t_ne}, {">", t_gt}, {"gt", t_gt}, {"greaterthan", t_gt}, {"ge", t_ge}, {">=", t_ge}, {"<", t_lt},
        {"lt", t_lt}, {"lessthan", t_lt}, {"<=", t_le}, {"le", t_le},
    };
    return table;
}

// ---------------------------------------------------------------- globals

class CyclerObject : public Object, public std::enable_shared_from_this<CyclerObject> {
public:
    explicit CyclerObject(ValueList items) : m_items(std::move(items))
    {
        m_nesting = nesting_of(m_items) + 1;
        check_nesting(m_nesting);
    }
    std::string type_name() const override { return "Cycler"; }
    std::string module_name() const override { return "jinja2.utils"; }
    std::optional<Value> attribute(const std::string& name) override
    {
        if (name == "items")
            return Value::tuple(m_items);
        if (name == "pos")
            return Value::integer(static_cast<std::int64_t>(m_pos));
        if (name == "current")
            return m_items[m_pos];
        if (name == "next" || name == "reset") {
            auto self = shared_from_this();
            const bool is_next = name == "next";
            return Value::object(std::make_shared<NativeFunction>(
                name,
                [self, is_next](Interpreter&, CallArgs& args) -> Value {
                    ArgBinder a(is_next ? "next" : "reset", args, {});
                    if (!is_next) {
                        self->m_pos = 0;
                        return Value::none();
                    }
                    Value rv = self->m_items[self->m_pos];
                    self->m_pos = (self->m_pos + 1) % self->m_items.size();
                    return rv;
                },
                "method", m_nesting + 1));
        }
        return std::nullopt;
    }

private:
    ValueList m_items;
    std::size_t m_pos = 0;
};

class JoinerObject : public Object {
public:
    explicit JoinerObject(Value sep) : m_sep(std::move(sep))
    {
        m_nesting = nesting_of(m_sep) + 1;
        check_nesting(m_nesting);
    }
    std::string type_name() const override { return "Joiner"; }
    std::string module_name() const override { return "jinja2.utils"; }
    bool is_callable() const override { return true; }
    Value call(Interpreter&, CallArgs& args) override
    {
        ArgBinder a("__call__", args, {});
        if (!m_used) {
            m_used = true;
            return Value::string("");
        }
        return m_sep;
    }
    std::optional<Value> attribute(const std::string& name) override
    {
        if (name == "sep")
            return m_sep;
        if (name == "used")
            return Value::boolean(m_used);
        return std::nullopt;
    }

private:
    Value m_sep;
    bool m_used = false;
};

void fill_dict_from(DictData& d, CallArgs& args, const char* fn)
{
    if (args.positional.size() > 1)
        throw RenderFailure(std::string(fn) + " expected at most 1 argument, got " + std::to_string(args.positional.size()));
    if (!args.positional.empty()) {
        const Value& src = args.positional[0];
        if (src.is_dict()) {
            for (const auto& [k, v] : src.as_dict().entries)
                d.set(k, v);
        } else {
            if (!is_iterable(src) || src.is_undefined())
                throw RenderFailure(py_quoted(type_name(src)) + " object is not iterable");
            std::size_t index = 0;
            for (const auto& pair : iterate(src)) {
                if (!is_iterable(pair) || pair.is_undefined())
                    throw RenderFailure("cannot convert dictionary update sequence element #" + std::to_string(index) +
                                        " to a sequence");
                const ValueList kv = iterate(pair);
                if (kv.size() != 2)
                    throw RenderFailure("dictionary update sequence element #" + std::to_string(index) +
                                        " has length " + std::to_string(kv.size()) + "; 2 is required");
                require_hashable(kv[0]);
                d.set(kv[0], kv[1]);
                ++index;
            }
        }
    }
    for (const auto& [k, v] : args.keyword)
        d.set(Value::string(k), v);
}

// transformers' TemplateDict: dict(...) and dict.fromkeys(...).
class TemplateDictObject : public Object {
public:
    std::string type_name() const override { return "TemplateDict"; }
    std::string module_name() const override { return "transformers.utils.chat_template_utils"; }
    bool is_callable() const override { return true; }
    Value call(Interpreter&, CallArgs& args) override
    {
        auto d = std::make_shared<DictData>();
        fill_dict_from(*d, args, "dict");
        return Value::dict(std::move(d));
    }
    std::optional<Value> attribute(const std::string& name) override
    {
        if (name == "fromkeys")
            return Value::object(std::make_shared<NativeFunction>(
                "fromkeys", [](Interpreter&, CallArgs& args) { return dict_fromkeys(args); }, "method"));
        return std::nullopt;
    }
};

Value g_range(Interpreter&, CallArgs& args)
{
    if (!args.keyword.empty())
        throw RenderFailure("range() takes no keyword arguments");
    const auto n = args.positional.size();
    if (n == 0)
        throw RenderFailure("range expected at least 1 argument, got 0");
    if (n > 3)
        throw RenderFailure("range expected at most 3 arguments, got " + std::to_string(n));
    std::int64_t start = 0, stop, step = 1;
    auto as_int = [](const Value& v) {
        if (auto i = to_index(v))
            return *i;
        throw RenderFailure(py_quoted(type_name(v)) + " object cannot be interpreted as an integer");
    };
    if (n == 1) {
        stop = as_int(args.positional[0]);
    } else {
        start = as_int(args.positional[0]);
        stop = as_int(args.positional[1]);
        if (n == 3)
            step = as_int(args.positional[2]);
    }
    if (step == 0)
        throw RenderFailure("range() arg 3 must not be zero");
    __int128 count = 0;
    if (step > 0 && start < stop)
        count = (static_cast<__int128>(stop) - start - 1) / step + 1;
    else if (step < 0 && start > stop)
        count = (static_cast<__int128>(start) - stop - 1) / -static_cast<__int128>(step) + 1;
    if (count > 100000)
        throw RenderFailure("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
    ValueList items;
    items.reserve(static_cast<std::size_t>(count));
    for (std::int64_t i = 0; i < static_cast<std::int64_t>(count); ++i)
        items.push_back(Value::integer(start + i * step));
    return Value::list(std::move(items));
}

Value g_namespace(Interpreter& interp, CallArgs& args)
{
    auto ns = std::make_shared<NamespaceObject>();
    interp.track(ns);
    DictData attrs;
    fill_dict_from(attrs, args, "dict");
    for (const auto& [k, v] : attrs.entries) {
        if (k.is_string())
            ns->set(k.as_string(), v);
        else
            ns->attrs.set(k, v);
    }
    return Value::object(ns);
}

Value g_cycler(Interpreter&, CallArgs& args)
{
    if (!args.keyword.empty())
        throw RenderFailure("Cycler.__init__() got an unexpected keyword argument " + py_quoted(args.keyword.front().first));
    if (args.positional.empty())
        throw RenderFailure("at least one item has to be provided");
    return Value::object(std::make_shared<CyclerObject>(args.positional));
}

Value g_joiner(Interpreter&, CallArgs& args)
{
    ArgBinder a("Joiner.__init__", args, {{"sep", Value::string(", ")}});
    return Value::object(std::make_shared<JoinerObject>(a[0]));
}

Value g_raise_exception(Interpreter&, CallArgs& args)
{
    ArgBinder a("raise_exception", args, {{"message", std::nullopt}});
    throw TemplateRaised(to_str(a[0]));
}

Value g_strftime_now(Interpreter&, CallArgs& args)
{
    ArgBinder a("strftime_now", args, {{"format", std::nullopt}});
    if (!a[0].is_string())
        throw RenderFailure("strftime() argument 1 must be str, not " + type_name(a[0]));
    const std::string& fmt = a[0].as_string();
    if (fmt.empty())
        return Value::string("");
    const std::time_t now = std::time(nullptr);
    std::tm local{};
    localtime_r(&now, &local);
    std::vector<char> buf(fmt.size() * 8 + 256);
    std::size_t n = std::strftime(buf.data(), buf.size(), fmt.c_str(), &local);
    if (n == 0 && !fmt.empty()) {
        buf.resize(fmt.size() * 64 + 4096);
        n = std::strftime(buf.data(), buf.size(), fmt.c_str(), &local);
    }
    return Value::string(std::string(buf.data(), n));
}

Value g_lipsum(Interpreter&, CallArgs&)
{
    throw RenderFailure("lipsum() (random text) is not supported in Layerwise chat templates");
}

} // namespace

bool is_jinja_filter(std::string_view name) { return filter_table().count(name) > 0; }
bool is_jinja_test(std::string_view name) { return test_table().count(name) > 0; }

Value apply_filter(Interpreter& interp, const std::string& name, const Value& input, CallArgs& args)
{
    const auto& table = filter_table();
    const auto it = table.find(name);
    if (it == table.end())
        throw RenderFailure("No filter named " + py_quoted(name) + ".");
    return it->second(interp, input, args);
}

bool apply_test(Interpreter& interp, const std::string& name, const Value& input, CallArgs& args)
{
    const auto& table = test_table();
    const auto it = table.find(name);
    if (it == table.end())
        throw RenderFailure("No test named " + py_quoted(name) + ".");
    return it->second(interp, input, args);
}

void install_globals(DictData& globals)
{
    auto fn = [&](const char* name, NativeFunction::Fn f) {
        globals.set(Value::string(name), Value::object(std::make_shared<NativeFunction>(name, std::move(f))));
    };
    fn("range", g_range);
    fn("namespace", g_namespace);
    fn("cycler", g_cycler);
    fn("joiner", g_joiner);
    fn("lipsum", g_lipsum);
    fn("raise_exception", g_raise_exception);
    fn("strftime_now", g_strftime_now);
    globals.set(Value::string("dict"), Value::object(std::make_shared<TemplateDictObject>()));
}

} // namespace layerwise::jinja
