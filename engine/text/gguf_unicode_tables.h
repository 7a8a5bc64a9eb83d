#pragma once
// llama.cpp's Unicode classes beyond PCRE2's (Unicode 14): the code points its data puts in
// \p{L}, \p{N}, \p{M}, \p{P} and \p{S} that Unicode 14 does not (its white space is Unicode's
// White_Space, as PCRE2 sees it after adapt_pattern). Generated from llama.cpp itself by
// tests/reference/make_gguf_vocab_fixtures.py --unicode-tables (gguf_unicode_tables.cpp).
#include "text/unicode_tables.h"

namespace layerwise::text::gguf_tables {

extern const tables::CodePointRange extra_L[];
extern const std::size_t extra_L_count;
extern const tables::CodePointRange extra_N[];
extern const std::size_t extra_N_count;
extern const tables::CodePointRange extra_M[];
extern const std::size_t extra_M_count;
extern const tables::CodePointRange extra_P[];
extern const std::size_t extra_P_count;
extern const tables::CodePointRange extra_S[];
extern const std::size_t extra_S_count;

} // namespace layerwise::text::gguf_tables
