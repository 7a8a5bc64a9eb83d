#pragma once
// JSON text as bad input: every error nlohmann::json can raise — a syntax error, a number that
// overflows (out_of_range), a value of the wrong type read later (type_error), a missing key
// (out_of_range), an iterator misuse — becomes a FormatError that names the file, where in it
// (byte, line and column for the text; the field when known) and what to do.
#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

namespace layerwise {

// Parses `text`, the content of `file` (a path or a description such as "config.json").
nlohmann::json parse_json(std::string_view text, const std::string& file);
nlohmann::ordered_json parse_ordered_json(std::string_view text, const std::string& file);

// For a parse through nlohmann directly (a callback parser): the FormatError for `e` raised while
// parsing `text`.
[[noreturn]] void throw_json_parse_error(const nlohmann::json::exception& e, std::string_view text,
                                         const std::string& file);

// For an error raised while reading values out of a parsed document of `file`; `field` names the
// part being read when the caller knows it.
[[noreturn]] void throw_json_value_error(const nlohmann::json::exception& e, const std::string& file,
                                         const std::string& field = {});

} // namespace layerwise
