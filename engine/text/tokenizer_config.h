#pragma once
// The parts of transformers' tokenizer_config.json that change how text is tokenized:
// add_bos_token / add_eos_token, bos_token / eos_token and added_tokens_decoder.
#include "text/added_vocabulary.h"

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace layerwise::text {

struct TokenizerConfig {
    std::optional<bool> add_bos_token;
    std::optional<bool> add_eos_token;
    std::optional<std::string> bos_token; // content; absent or null in the file: nullopt
    std::optional<std::string> eos_token;
    std::vector<AddedToken> added_tokens;  // added_tokens_decoder
};

// `source` names the file in errors. Empty text gives an empty config.
TokenizerConfig parse_tokenizer_config(std::string_view json_text, const std::string& source);

// The tokenizer_config.json beside `tokenizer_file`, or an empty config when there is none.
TokenizerConfig read_tokenizer_config_beside(const std::filesystem::path& tokenizer_file);

// The whole file; IoError naming it when it cannot be read.
std::string read_text_file(const std::filesystem::path& path);

} // namespace layerwise::text
