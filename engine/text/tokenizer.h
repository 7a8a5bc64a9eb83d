#pragma once
// Tokenizers that give exactly the ids and text of Hugging Face's:
//   - tokenizer.json with a BPE model: byte-level (GPT-2, Llama-3, Qwen2/3) and
//     SentencePiece-style with byte fallback (Llama-2, Mistral), with the normalizers,
//     pre-tokenizers, post-processors and decoders those files use, and added/special tokens;
//   - vocab.json + merges.txt (HF's slow GPT-2 files);
//   - tokenizer.model through the sentencepiece library.
// add_bos_token / add_eos_token in a tokenizer_config.json beside the file override the
// post-processor, as transformers does. Decoding can stream (IncrementalDecoder).
//
// Thread safety: a Tokenizer is immutable after loading; encode/decode may run concurrently.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace layerwise::text {

using TokenId = std::int32_t;

class Tokenizer {
public:
    virtual ~Tokenizer() = default;

    // Token ids of `text` (valid UTF-8, else FormatError). With add_special_tokens the
    // post-processor's tokens (BOS/EOS) are added, as HF's encode(text, add_special_tokens).
    virtual std::vector<TokenId> encode(std::string_view text, bool add_special_tokens = true) const = 0;

    // The text of `ids`, as HF's decode(ids, skip_special_tokens). Unknown ids are skipped.
    virtual std::string decode(std::span<const TokenId> ids, bool skip_special_tokens = false) const = 0;

    virtual std::optional<TokenId> token_to_id(std::string_view token) const = 0;
    // The token string of `id` (as in the vocabulary, e.g. "Ġthe" or "▁the"); nullopt if unknown.
    virtual std::optional<std::string> id_to_token(TokenId id) const = 0;
    // One past the largest id, added tokens included.
    virtual std::size_t vocab_size() const = 0;
    virtual bool is_special(TokenId id) const = 0;

    std::optional<TokenId> bos_id() const { return m_bos; }
    std::optional<TokenId> eos_id() const { return m_eos; }
    // The file the tokenizer was read from.
    const std::filesystem::path& source() const { return m_source; }
    // "tokenizer.json BPE (byte-level)", "tokenizer.model (SentencePiece)"...
    const std::string& kind() const { return m_kind; }

    std::vector<std::string> tokens(std::span<const TokenId> ids) const;

protected:
    std::filesystem::path m_source;
    std::string m_kind;
    std::optional<TokenId> m_bos;
    std::optional<TokenId> m_eos;
};

// Loads a tokenizer from a model folder (tokenizer.json, else vocab.json + merges.txt, else
// tokenizer.model) or from one of those files. A tokenizer_config.json in the same folder is
// read for add_bos_token / add_eos_token / bos_token / eos_token / added_tokens_decoder.
// Throws IoError (missing or unreadable), FormatError (malformed: names the file and field)
// or UnsupportedError (a kind of tokenizer Layerwise does not handle).
std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& path);

// A tokenizer.json given as text; `source` names it in errors; `config_json` is the text of a
// tokenizer_config.json or empty.
std::unique_ptr<Tokenizer> tokenizer_from_json(std::string_view json_text, const std::filesystem::path& source,
                                               std::string_view config_json = {});

// Streams decoded text token by token. Text is emitted only once it can no longer change:
// never half a UTF-8 character (a multi-byte character split over byte tokens waits for its
// last byte), and leading-space rules are applied as for the whole sequence, so the pieces
// concatenate to decode(all ids). The tokenizer must outlive the decoder.
class IncrementalDecoder {
public:
    using TextCallback = std::function<void(std::string_view text)>;

    explicit IncrementalDecoder(const Tokenizer& tokenizer, bool skip_special_tokens = false, TextCallback on_text = {});

    // Feeds one id; returns the text it completes (often empty) and passes non-empty text to
    // the callback.
    std::string push(TokenId id);
    // Emits whatever is pending (an incomplete character becomes U+FFFD) and starts afresh.
    std::string flush();

private:
    std::string emit(std::string text);

    const Tokenizer& m_tokenizer;
    bool m_skip_special;
    TextCallback m_on_text;
    std::vector<TokenId> m_ids;   // context ids (already emitted) followed by pending ones
    std::size_t m_context = 0;    // how many of m_ids are context
    std::string m_context_text;   // decode of the context ids
};

} // namespace layerwise::text
