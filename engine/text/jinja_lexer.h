#pragma once
// Splits a template into tokens exactly as jinja2's lexer does with the settings
// transformers uses (trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False):
// newline normalisation, `{%-`/`-%}` stripping, `+` opt-outs, raw blocks, comments,
// and the line numbers jinja2 assigns to each token.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace layerwise::jinja {

enum class Tok : std::uint8_t {
    data,
    variable_begin,
    variable_end,
    block_begin,
    block_end,
    name,
    string,
    integer,
    floating,
    // operators
    add, sub, div, floordiv, mul, mod, pow, tilde,
    lbracket, rbracket, lparen, rparen, lbrace, rbrace,
    eq, ne, gt, gteq, lt, lteq, assign, dot, colon, pipe, comma, semicolon,
    eof,
};

struct Token {
    Tok type = Tok::eof;
    int line = 1;
    std::string text; // data, name, string value (unescaped), operator spelling
    std::int64_t integer = 0;
    double floating = 0;
};

// jinja2's describe_token: the name itself for names, a phrase for the rest.
std::string describe(const Token& token);
std::string describe(Tok type);

// Throws ChatTemplateError(syntax) for lexical errors (unexpected char, missing end of comment...).
std::vector<Token> tokenize(std::string_view source);

} // namespace layerwise::jinja
