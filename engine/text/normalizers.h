#pragma once
// tokenizer.json "normalizer": Sequence, NFC, NFD, Prepend, Replace (string or regex), Strip.
#include "text/json_fields.h"

#include <memory>
#include <string>

namespace layerwise::text {

class Normalizer {
public:
    virtual ~Normalizer() = default;
    // Normalizes `text` in place (valid UTF-8 in, valid UTF-8 out).
    virtual void normalize(std::string& text) const = 0;
};

// Null JSON gives nullptr. Unknown types throw UnsupportedError naming the field.
std::unique_ptr<Normalizer> make_normalizer(const JsonField& field);

} // namespace layerwise::text
