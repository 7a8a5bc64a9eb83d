#pragma once
// Python `str` semantics over UTF-8 bytes, for the chat-template interpreter.
// Jinja templates run on Python strings: lengths, indices and slices count code
// points, `strip()`/`split()` know Unicode whitespace, `repr()` quotes and escapes
// the way CPython does. These helpers reproduce that so rendered output is
// byte-identical to jinja2's.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace layerwise::jinja {

// ---- UTF-8 ----
// Whether `text` is well-formed UTF-8 (no surrogates, no overlongs).
bool utf8_valid(std::string_view text);
bool is_ascii(std::string_view text);
void append_utf8(std::string& out, char32_t cp);
std::u32string to_u32(std::string_view text);
std::string to_utf8(std::u32string_view text);
// Number of code points.
std::size_t code_point_count(std::string_view text);

// ---- character classes (Python's str.isspace, a case table for common scripts) ----
bool py_isspace(char32_t c);
// Cased letters with an upper/lower pair in the built-in table (ASCII, Latin-1,
// Latin Extended-A, Greek, Cyrillic, fullwidth Latin).
char32_t simple_upper(char32_t c);
char32_t simple_lower(char32_t c);
bool is_cased(char32_t c);
bool is_alpha(char32_t c);
bool is_digit(char32_t c);

// ---- str methods ----
std::string py_upper(std::string_view s);
std::string py_lower(std::string_view s);
std::string py_title(std::string_view s);      // str.title()
std::string py_capitalize(std::string_view s); // str.capitalize()
std::string py_swapcase(std::string_view s);
// str.strip / lstrip / rstrip; `chars` absent = whitespace.
std::string py_strip(std::string_view s, const std::optional<std::string>& chars, bool left, bool right);
// str.split / rsplit; `sep` absent = runs of whitespace. maxsplit < 0 = no limit.
// Throws std::invalid_argument("empty separator") for an empty separator.
std::vector<std::string> py_split(std::string_view s, const std::optional<std::string>& sep, std::int64_t maxsplit);
std::vector<std::string> py_rsplit(std::string_view s, const std::optional<std::string>& sep, std::int64_t maxsplit);
std::vector<std::string> py_splitlines(std::string_view s, bool keepends);
// str.replace; count < 0 = all. An empty `old` inserts `repl` around every code point.
std::string py_replace(std::string_view s, std::string_view old, std::string_view repl, std::int64_t count);
// str.find / rfind in code points; -1 when absent. start/end are code-point indices (already clamped).
std::int64_t py_find(std::string_view s, std::string_view sub, bool reverse);
std::int64_t py_count(std::string_view s, std::string_view sub);
bool py_islower(std::string_view s);
bool py_isupper(std::string_view s);

// ---- repr / number formatting ----
// repr(str): quotes and escapes like CPython.
std::string py_repr_string(std::string_view s);
// repr(float) / str(float): shortest round-trip digits, CPython's layout (1e+16, 0.0001, 1.0, nan, inf).
std::string py_float_repr(double v);
// A JSON string literal as json.dumps writes it (ensure_ascii escapes non-ASCII as \uXXXX).
std::string json_quote(std::string_view s, bool ensure_ascii);

} // namespace layerwise::jinja
