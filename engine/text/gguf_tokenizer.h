#pragma once
// The tokenizer and chat template a GGUF file (llama.cpp's format) carries in its metadata,
// giving exactly llama.cpp's token ids and text:
//   - tokenizer.ggml.model "gpt2": byte-level BPE with tokenizer.ggml.merges, pre-tokenized by
//     the regexes llama.cpp ties to tokenizer.ggml.pre (default, llama3/llama-bpe, qwen2,
//     qwen35, smollm/starcoder, gpt-2, falcon, stablelm2, dbrx, chatglm... others are refused
//     with UnsupportedError naming the value);
//   - tokenizer.ggml.model "llama": SentencePiece BPE merging the best-scored pair first
//     (tokenizer.ggml.scores), with byte fallback (<0xAB> tokens) and the space prefix.
// Control (type 3), unknown (2) and user-defined (4) tokens are matched as whole tokens in the
// text the way llama.cpp does it (longest token first, each everywhere); with parse_special
// off only user-defined tokens are. decode() is llama.cpp's llama_detokenize (remove_special
// off, unparse_special = !skip_special_tokens), including its clean-up of spaces.
//
// Errors: a missing tokenizer.ggml.tokens or merges, arrays whose lengths disagree, a merge
// naming an unknown token, duplicate tokens: FormatError; an unknown tokenizer.ggml.model or
// tokenizer.ggml.pre: UnsupportedError naming the value.
#include "core/log.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace layerwise::gguf {
class Metadata;
}

namespace layerwise::text {

class BpeModel;
class PreTokenizer;

// llama.cpp's token attributes (a bit set).
enum GgufTokenAttr : std::uint32_t {
    gguf_attr_undefined = 0,
    gguf_attr_unknown = 1 << 0,
    gguf_attr_unused = 1 << 1,
    gguf_attr_normal = 1 << 2,
    gguf_attr_control = 1 << 3,
    gguf_attr_user_defined = 1 << 4,
    gguf_attr_byte = 1 << 5,
    gguf_attr_lstrip = 1 << 7,
    gguf_attr_rstrip = 1 << 8,
};

class GgufTokenizer : public Tokenizer {
public:
    // `source` names the file in errors and is what source() returns.
    static std::unique_ptr<GgufTokenizer> from_metadata(const gguf::Metadata& metadata, const std::filesystem::path& source);
    ~GgufTokenizer() override;

    // Special tokens in the text are parsed (llama.cpp's parse_special = true).
    std::vector<TokenId> encode(std::string_view text, bool add_special_tokens = true) const override;
    // llama.cpp's llama_tokenize(text, add_special, parse_special).
    std::vector<TokenId> encode(std::string_view text, bool add_special_tokens, bool parse_special) const;
    std::string decode(std::span<const TokenId> ids, bool skip_special_tokens = false) const override;
    std::optional<TokenId> token_to_id(std::string_view token) const override;
    std::optional<std::string> id_to_token(TokenId id) const override;
    std::size_t vocab_size() const override { return m_tokens.size(); }
    // Control and unknown tokens (what decode hides when skipping special tokens).
    bool is_special(TokenId id) const override;

    std::uint32_t attributes(TokenId id) const;
    bool adds_bos() const { return m_add_bos; }
    bool adds_eos() const { return m_add_eos; }
    const std::string& pre() const { return m_pre; }

private:
    GgufTokenizer();
    struct Fragment {
        std::size_t begin;
        std::size_t length;
        TokenId token; // -1: text
    };
    void partition(std::string_view text, bool parse_special, std::vector<Fragment>& out) const;
    void encode_spm(std::string_view text, std::vector<TokenId>& out) const;
    void encode_spm_word(std::string_view word, std::vector<TokenId>& out) const;
    TokenId byte_token(unsigned char byte) const;
    std::string piece(TokenId id) const;

    bool m_spm = false;
    std::string m_pre;
    std::vector<std::string> m_tokens;
    std::vector<float> m_scores;
    std::vector<std::uint32_t> m_attrs;
    struct StringHash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
    };
    std::unordered_map<std::string, TokenId, StringHash, std::equal_to<>> m_ids;
    // SentencePiece: characters no token joins to a different preceding character; the text is
    // cut before them and the parts (cached) merged separately, with the same result.
    std::vector<char32_t> m_spm_boundaries; // sorted
    mutable std::mutex m_cache_mutex;
    mutable std::unordered_map<std::string, std::vector<TokenId>, StringHash, std::equal_to<>> m_cache;
    std::vector<std::string> m_pieces;      // each token's text as decoded with special tokens shown
    std::vector<TokenId> m_special_tokens;  // matched in the text: longest first
    std::unique_ptr<BpeModel> m_bpe;
    std::unique_ptr<PreTokenizer> m_pre_tokenizer;
    bool m_add_bos = false;
    bool m_add_eos = false;
    bool m_add_space_prefix = false;
    bool m_clean_spaces = false;
};

std::unique_ptr<Tokenizer> tokenizer_from_gguf(const gguf::Metadata& metadata, const std::filesystem::path& source);

// The .gguf file to read a folder's tokenizer from: the folder's only .gguf file when it has no
// tokenizer.json (nullopt otherwise), or `path` itself when it names a .gguf file.
std::optional<std::filesystem::path> gguf_file_for(const std::filesystem::path& path);

// The tokenizer and chat template of a .gguf file, read with gguf::parse (gguf_text_files.cpp).
std::unique_ptr<Tokenizer> tokenizer_from_gguf_file(const std::filesystem::path& file);

} // namespace layerwise::text

namespace layerwise {

// tokenizer.chat_template (or tokenizer.chat_template.<name> when `name` is given) as a
// ChatTemplate whose special tokens (bos_token, eos_token, unk_token, pad_token) are the texts
// of the ids the metadata names; without a template: the ChatML fallback, is_fallback() true
// and a warning on `log`. Throws ChatTemplateError for a template that does not parse.
ChatTemplate chat_template_from_gguf(const gguf::Metadata& metadata, const std::filesystem::path& source,
                                     const std::string& name = {}, const Logger& log = {});

ChatTemplate chat_template_from_gguf_file(const std::filesystem::path& file, const std::string& name = {},
                                          const Logger& log = {});

} // namespace layerwise
