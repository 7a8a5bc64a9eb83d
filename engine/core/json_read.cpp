#include "core/json_read.h"

#include "core/error.h"

namespace layerwise {

namespace {

// Finds where a parse failed: nlohmann reports the byte of a syntax error in the exception, but
// an overflowing number (out_of_range 406) only through the SAX interface.
struct ErrorLocator : nlohmann::json_sax<nlohmann::json> {
    std::size_t position = 0;
    std::string token;
    bool found = false;
    bool null() override { return true; }
    bool boolean(bool) override { return true; }
    bool number_integer(number_integer_t) override { return true; }
    bool number_unsigned(number_unsigned_t) override { return true; }
    bool number_float(number_float_t, const string_t&) override { return true; }
    bool string(string_t&) override { return true; }
    bool binary(binary_t&) override { return true; }
    bool start_object(std::size_t) override { return true; }
    bool key(string_t&) override { return true; }
    bool end_object() override { return true; }
    bool start_array(std::size_t) override { return true; }
    bool end_array() override { return true; }
    bool parse_error(std::size_t pos, const std::string& last_token, const nlohmann::detail::exception&) override
    {
        position = pos;
        token = last_token;
        found = true;
        return false;
    }
};

// nlohmann's message without its "[json.exception.type_error.302] " prefix.
std::string plain_message(const nlohmann::json::exception& e)
{
    std::string m = e.what();
    if (m.rfind("[json.exception.", 0) == 0) {
        const auto close = m.find("] ");
        if (close != std::string::npos)
            m = m.substr(close + 2);
    }
    return m;
}

// `at`: a 0-based byte offset into the text.
std::string place(std::string_view text, std::size_t at)
{
    at = std::min(at, text.size());
    std::size_t line = 1, column = 1;
    for (std::size_t i = 0; i < at; ++i) {
        if (text[i] == '\n') {
            ++line;
            column = 1;
        } else {
            ++column;
        }
    }
    return "byte " + std::to_string(at) + " (line " + std::to_string(line) + ", column " + std::to_string(column) + ")";
}

} // namespace

void throw_json_parse_error(const nlohmann::json::exception& e, std::string_view text, const std::string& file)
{
    ErrorLocator locator;
    try {
        nlohmann::json::sax_parse(text, &locator);
    } catch (const nlohmann::json::exception&) {
    }
    // nlohmann counts the characters read, the failing one included (a number: up to its last digit).
    std::size_t at = locator.found && locator.position > 0 ? locator.position - 1 : 0;
    if (const auto* pe = dynamic_cast<const nlohmann::json::parse_error*>(&e))
        at = pe->byte > 0 ? pe->byte - 1 : 0;
    std::string what;
    if (dynamic_cast<const nlohmann::json::out_of_range*>(&e) && locator.found) {
        what = "the number '" + locator.token + "' is out of range";
        at = locator.position >= locator.token.size() ? locator.position - locator.token.size() : 0;
    } else {
        // "parse error at line 2, column 3: syntax error ...": the place is given below.
        std::string m = plain_message(e);
        if (m.rfind("parse error at line ", 0) == 0 && m.find(": ") != std::string::npos)
            m = m.substr(m.find(": ") + 2);
        what = "not valid JSON: " + m;
    }
    throw FormatError(file + ": " + what + " at " + place(text, at) +
                      "; the file is truncated or damaged — restore or download it again");
}

void throw_json_value_error(const nlohmann::json::exception& e, const std::string& file, const std::string& field)
{
    throw FormatError(file + ": " + (field.empty() ? std::string("a value") : "field '" + field + "'") +
                      " is not what it should be (" + plain_message(e) +
                      "); the file is damaged or not of the kind expected");
}

nlohmann::json parse_json(std::string_view text, const std::string& file)
{
    try {
        return nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
        throw_json_parse_error(e, text, file);
    }
}

nlohmann::ordered_json parse_ordered_json(std::string_view text, const std::string& file)
{
    try {
        return nlohmann::ordered_json::parse(text);
    } catch (const nlohmann::json::exception& e) {
        throw_json_parse_error(e, text, file);
    }
}

} // namespace layerwise
