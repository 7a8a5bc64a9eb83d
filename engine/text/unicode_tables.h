#pragma once
// Unicode data for the NFC/NFD normalizers, generated from HF tokenizers' own normalizers by
// tests/reference/make_tokenizer_fixtures.py --unicode-tables (engine/text/unicode_tables.cpp),
// and the regex classes of HF's Oniguruma where its Unicode is newer than PCRE2's.
// Every array is sorted by code point (compositions: by first, then second).
#include <cstddef>
#include <cstdint>

namespace layerwise::text::tables {

struct Decomposition {
    char32_t code;
    std::uint16_t offset; // into decomposition_chars
    std::uint8_t length;
};

struct CombiningClassRange {
    char32_t first;
    char32_t last;
    std::uint8_t combining_class;
};

struct Composition {
    char32_t first;
    char32_t second;
    char32_t composite;
};

struct CodePointRange {
    char32_t first;
    char32_t last;
};

extern const char32_t decomposition_chars[];
extern const Decomposition decompositions[];
extern const std::size_t decomposition_count;
extern const CombiningClassRange combining_classes[];
extern const std::size_t combining_class_count;
extern const Composition compositions[];
extern const std::size_t composition_count;

// Letters and numbers HF's regex engine (Oniguruma, a newer Unicode) has in \p{L} / \p{N}
// beyond Unicode 14, the version of PCRE2 10.40-10.42.
extern const CodePointRange regex_letter_extra[];
extern const std::size_t regex_letter_extra_count;
extern const CodePointRange regex_number_extra[];
extern const std::size_t regex_number_extra_count;

} // namespace layerwise::text::tables
