#include "text/tokenizer_config.h"

#include "core/error.h"
#include "core/json_read.h"
#include "text/added_token_json.h"
#include "text/json_fields.h"

#include <fstream>
#include <sstream>

namespace layerwise::text {

namespace {

// A token field: "text", {"content": "text", ...} or null.
std::optional<std::string> token_content(const JsonField& root, const char* key)
{
    if (!root.has(key))
        return std::nullopt;
    const JsonField f = root[key];
    if (f.value().is_object())
        return f["content"].string();
    return f.string();
}

} // namespace

std::string read_text_file(const std::filesystem::path& path)
{
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw IoError("cannot open " + path.string() + ": check that the file exists and is readable");
    std::ostringstream s;
    s << in.rdbuf();
    if (in.bad())
        throw IoError("cannot read " + path.string());
    return s.str();
}

TokenizerConfig parse_tokenizer_config(std::string_view json_text, const std::string& source)
{
    TokenizerConfig config;
    if (json_text.empty())
        return config;
    const nlohmann::json j = parse_json(json_text, source);
    try {
        const JsonField root(source, "", j);
        root.require_object();
        if (root.has("add_bos_token"))
            config.add_bos_token = root["add_bos_token"].boolean();
        if (root.has("add_eos_token"))
            config.add_eos_token = root["add_eos_token"].boolean();
        config.bos_token = token_content(root, "bos_token");
        config.eos_token = token_content(root, "eos_token");
        if (root.has("added_tokens_decoder")) {
            const JsonField decoder = root["added_tokens_decoder"];
            decoder.require_object();
            for (auto it = decoder.value().begin(); it != decoder.value().end(); ++it) {
                const JsonField entry(source, "added_tokens_decoder." + it.key(), it.value());
                entry.require_object();
                TokenId id = 0;
                try {
                    std::size_t used = 0;
                    const long key = std::stol(it.key(), &used);
                    if (used != it.key().size() || key < 0 || key > INT32_MAX)
                        throw std::invalid_argument("range");
                    id = static_cast<TokenId>(key);
                } catch (const std::exception&) {
                    entry.fail("has a key that is not a token id");
                }
                AddedToken t = read_added_token_fields(entry, id);
                config.added_tokens.push_back(std::move(t));
            }
        }
    } catch (const nlohmann::json::exception& e) {
        throw_json_value_error(e, source);
    }
    return config;
}

TokenizerConfig read_tokenizer_config_beside(const std::filesystem::path& tokenizer_file)
{
    const auto path = tokenizer_file.parent_path() / "tokenizer_config.json";
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec))
        return {};
    return parse_tokenizer_config(read_text_file(path), path.string());
}

} // namespace layerwise::text
