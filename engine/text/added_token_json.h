#pragma once
// One added token's fields as tokenizer.json (`added_tokens[i]`) and tokenizer_config.json
// (`added_tokens_decoder["<id>"]`) both write them: content, single_word, lstrip, rstrip,
// special, normalized (default: not special). The id comes from where each file keeps it.
#include "text/added_vocabulary.h"
#include "text/json_fields.h"

namespace layerwise::text {

AddedToken read_added_token_fields(const JsonField& entry, TokenId id);

} // namespace layerwise::text
