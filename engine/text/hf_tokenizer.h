#pragma once
// The Hugging Face tokenizers pipeline with a BPE model: added tokens → normalizer →
// pre-tokenizer → BPE → post-processor, and decoder for the way back. Built from a
// tokenizer.json or from the slow GPT-2 files (vocab.json + merges.txt).
#include "text/added_vocabulary.h"
#include "text/bpe.h"
#include "text/decoders.h"
#include "text/normalizers.h"
#include "text/pre_tokenizers.h"
#include "text/tokenizer.h"
#include "text/tokenizer_config.h"

namespace layerwise::text {

class HfTokenizer : public Tokenizer {
public:
    static std::unique_ptr<HfTokenizer> from_json(std::string_view json_text, const std::filesystem::path& source,
                                                  const TokenizerConfig& config);
    static std::unique_ptr<HfTokenizer> from_vocab_and_merges(const std::filesystem::path& vocab_file,
                                                              const std::filesystem::path& merges_file,
                                                              const TokenizerConfig& config);

    std::vector<TokenId> encode(std::string_view text, bool add_special_tokens = true) const override;
    std::string decode(std::span<const TokenId> ids, bool skip_special_tokens = false) const override;
    std::optional<TokenId> token_to_id(std::string_view token) const override;
    std::optional<std::string> id_to_token(TokenId id) const override;
    std::size_t vocab_size() const override;
    bool is_special(TokenId id) const override;

private:
    HfTokenizer() = default;
    void apply_config(const TokenizerConfig& config);
    void encode_text(std::string_view text, bool at_start, std::vector<TokenId>& ids) const;
    void encode_normalized(std::string_view text, bool at_start, std::vector<TokenId>& ids) const;

    std::unique_ptr<Normalizer> m_normalizer;
    std::unique_ptr<PreTokenizer> m_pre_tokenizer;
    std::unique_ptr<BpeModel> m_model;
    std::unique_ptr<Decoder> m_decoder;
    AddedVocabulary m_added;
    // The post-processor for one sequence: ids before and after it.
    std::vector<TokenId> m_prefix;
    std::vector<TokenId> m_suffix;
};

} // namespace layerwise::text
