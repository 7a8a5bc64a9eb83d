#pragma once
// tokenizer.model through the sentencepiece library (the oracle Debian's spm_encode uses).
// Control and unknown pieces written in the text (<s>, </s>, <unk>) are matched as special
// tokens first, as HF's LlamaTokenizer does; each run of text between them is encoded by
// sentencepiece (which adds its dummy-prefix space to each run). add_bos_token (default
// true) and add_eos_token (default false) come from tokenizer_config.json when present.
#include "text/added_vocabulary.h"
#include "text/tokenizer.h"
#include "text/tokenizer_config.h"

#include <memory>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace layerwise::text {

class SentencePieceTokenizer : public Tokenizer {
public:
    SentencePieceTokenizer(const std::filesystem::path& model_file, const TokenizerConfig& config);
    ~SentencePieceTokenizer() override;

    std::vector<TokenId> encode(std::string_view text, bool add_special_tokens = true) const override;
    std::string decode(std::span<const TokenId> ids, bool skip_special_tokens = false) const override;
    std::optional<TokenId> token_to_id(std::string_view token) const override;
    std::optional<std::string> id_to_token(TokenId id) const override;
    std::size_t vocab_size() const override;
    bool is_special(TokenId id) const override;

private:
    std::unique_ptr<sentencepiece::SentencePieceProcessor> m_processor;
    AddedVocabulary m_specials;
    bool m_add_bos = true;
    bool m_add_eos = false;
};

} // namespace layerwise::text
