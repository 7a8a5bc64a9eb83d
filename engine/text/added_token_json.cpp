#include "text/added_token_json.h"

namespace layerwise::text {

AddedToken read_added_token_fields(const JsonField& entry, TokenId id)
{
    AddedToken t;
    t.id = id;
    t.content = entry["content"].string();
    t.single_word = entry.boolean_or("single_word", false);
    t.lstrip = entry.boolean_or("lstrip", false);
    t.rstrip = entry.boolean_or("rstrip", false);
    t.special = entry.boolean_or("special", false);
    t.normalized = entry.boolean_or("normalized", !t.special);
    return t;
}

} // namespace layerwise::text
