#pragma once
// UTF-8 and Unicode helpers for the tokenizers: validation, code point iteration, Rust-style
// lossy conversion (what HF's decoders produce), the White_Space property, and the NFC/NFD
// normalizations with HF tokenizers' Unicode tables.
#include <cstddef>
#include <string>
#include <string_view>

namespace layerwise::text {

// The UTF-8 replacement character U+FFFD.
inline constexpr std::string_view replacement_character = "\xEF\xBF\xBD";

// Byte offset of the first byte that does not start a valid UTF-8 sequence, or npos when `s`
// is entirely valid (no surrogates, no overlongs, nothing above U+10FFFF).
std::size_t find_invalid_utf8(std::string_view s);

// The code point starting at `pos` in valid UTF-8; advances `pos` past it.
char32_t next_code_point(std::string_view s, std::size_t& pos);

// Number of bytes of the UTF-8 sequence whose first byte is `lead` (1 for a stray byte).
std::size_t utf8_sequence_length(unsigned char lead);

void append_utf8(std::string& out, char32_t c);

// Arbitrary bytes as valid UTF-8: every maximal invalid subsequence becomes one U+FFFD, as
// Rust's String::from_utf8_lossy does.
std::string utf8_lossy(std::string_view bytes);

// Unicode's White_Space property (Rust's char::is_whitespace).
bool is_white_space(char32_t c);

// Unicode canonical normalizations. Input must be valid UTF-8.
std::string normalize_nfd(std::string_view s);
std::string normalize_nfc(std::string_view s);

// The value of a hexadecimal digit (0-9, a-f, A-F), -1 for any other character.
inline int hex_digit_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

} // namespace layerwise::text
