#pragma once
// tokenizer.json "pre_tokenizer": ByteLevel, Split, Metaspace, Digits, Whitespace,
// WhitespaceSplit and Sequence. A pre-tokenizer cuts a piece of normalized text into the words
// the model sees, passing each to a sink (no copies where nothing changes).
#include "text/json_fields.h"

#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace layerwise::text {

// A non-owning reference to a callable (valid while the callable lives).
template <typename Signature>
class FunctionRef;

template <typename R, typename... Args>
class FunctionRef<R(Args...)> {
public:
    template <typename F, typename = std::enable_if_t<!std::is_same_v<std::decay_t<F>, FunctionRef>>>
    FunctionRef(F&& f) // NOLINT: implicit by design
        : m_object(const_cast<void*>(static_cast<const void*>(&f))),
          m_call([](void* o, Args... args) -> R { return (*static_cast<std::remove_reference_t<F>*>(o))(std::forward<Args>(args)...); })
    {
    }
    R operator()(Args... args) const { return m_call(m_object, std::forward<Args>(args)...); }

private:
    void* m_object;
    R (*m_call)(void*, Args...);
};

// `at_start`: the piece begins at offset 0 of the original text (Metaspace's "first" scheme).
using PieceSink = FunctionRef<void(std::string_view piece, bool at_start)>;

class PreTokenizer {
public:
    virtual ~PreTokenizer() = default;
    virtual void split(std::string_view piece, bool at_start, PieceSink sink) const = 0;
};

// Null JSON gives nullptr. Unknown types throw UnsupportedError naming the field.
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const JsonField& field);

// GPT-2's byte-level pre-tokenizer (the one vocab.json + merges.txt imply).
std::unique_ptr<PreTokenizer> make_byte_level_pre_tokenizer(bool add_prefix_space, bool use_regex);

// A Metaspace pre-tokenizer's or decoder's prepend scheme ("always", "first" or "never") as HF
// reads it: prepend_scheme, else "always"; add_prefix_space=false demands "never".
std::string metaspace_prepend_scheme(const JsonField& field);

// The byte-level alphabet: the character (as UTF-8) that stands for byte `b`, and back
// (-1 for a character outside the alphabet).
const std::string& byte_level_char(unsigned char b);
int byte_level_byte(char32_t c);

} // namespace layerwise::text
