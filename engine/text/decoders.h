#pragma once
// tokenizer.json "decoder": ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip, Sequence.
// Like HF's decode_chain, each decoder maps the list of token strings to a new list; the
// decoded text is the concatenation of the final list.
#include "text/json_fields.h"

#include <memory>
#include <string>
#include <vector>

namespace layerwise::text {

class Decoder {
public:
    virtual ~Decoder() = default;
    virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
};

// Null JSON gives nullptr (HF then joins the tokens with spaces). Unknown types throw
// UnsupportedError naming the field.
std::unique_ptr<Decoder> make_decoder(const JsonField& field);

// The byte-level decoder alone (vocab.json + merges.txt).
std::unique_ptr<Decoder> make_byte_level_decoder();

} // namespace layerwise::text
