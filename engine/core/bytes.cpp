#include "core/bytes.h"

#include "core/error.h"

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>

namespace layerwise {
namespace {

std::string upper(std::string_view s)
{
    std::string out(s);
    for (char& c : out)
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return out;
}

[[noreturn]] void bad_size(std::string_view text)
{
    throw FormatError("memory size '" + std::string(text) +
                      "' is not in a valid format; use an integer for bytes, or a number with a unit "
                      "(like '5.0GB', '20GiB', '500MiB'; lowercase 'b' means bits)");
}

// Python's float(): optional surrounding whitespace, sign, decimal or exponent form.
double parse_python_float(std::string_view s, std::string_view whole)
{
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())))
        s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
        s.remove_suffix(1);
    if (!s.empty() && s.front() == '+')
        s.remove_prefix(1);
    double value = 0;
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
    if (s.empty() || ec != std::errc() || ptr != s.data() + s.size() || !std::isfinite(value))
        bad_size(whole);
    return value;
}

} // namespace

std::int64_t parse_size(std::string_view text)
{
    const std::string up = upper(text);
    auto ends = [&](std::string_view suffix) {
        return up.size() >= suffix.size() && up.compare(up.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    auto number = [&](std::size_t suffix_len) {
        return parse_python_float(text.substr(0, text.size() - suffix_len), text);
    };
    // accelerate converts with int(float(x) * unit): truncation toward zero.
    auto scaled = [&](std::size_t suffix_len, double unit) {
        double v = number(suffix_len) * unit;
        if (v >= 9.2e18 || v <= -9.2e18)
            bad_size(text);
        return static_cast<std::int64_t>(v);
    };
    std::int64_t size = -1;
    if (ends("GIB"))
        size = scaled(3, 1073741824.0);
    else if (ends("MIB"))
        size = scaled(3, 1048576.0);
    else if (ends("KIB"))
        size = scaled(3, 1024.0);
    else if (ends("GB") || ends("MB") || ends("KB")) {
        const double unit = ends("GB") ? 1e9 : ends("MB") ? 1e6 : 1e3;
        std::int64_t v = scaled(2, unit);
        // Python floor division; sizes are checked non-negative below anyway.
        size = (!text.empty() && text.back() == 'b') ? (v >= 0 ? v / 8 : -((-v + 7) / 8)) : v;
    } else {
        // accelerate accepts only real integers here; a numeric string is an integer too.
        std::string_view s = text;
        while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())))
            s.remove_prefix(1);
        while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
            s.remove_suffix(1);
        std::int64_t v = 0;
        auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        if (s.empty() || ec != std::errc() || ptr != s.data() + s.size())
            bad_size(text);
        size = v;
    }
    if (size < 0)
        bad_size(text);
    return size;
}

std::string format_bytes(std::uint64_t bytes)
{
    static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    if (bytes < 1024)
        return std::to_string(bytes) + " B";
    double v = static_cast<double>(bytes);
    int unit = 0;
    while (v >= 1024.0 && unit < 5) {
        v /= 1024.0;
        ++unit;
    }
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.2f %s", v, units[unit]);
    return buf;
}

std::string format_count(std::uint64_t count)
{
    std::string digits = std::to_string(count);
    std::string out;
    for (std::size_t i = 0; i < digits.size(); ++i) {
        if (i > 0 && (digits.size() - i) % 3 == 0)
            out += ',';
        out += digits[i];
    }
    return out;
}

} // namespace layerwise
