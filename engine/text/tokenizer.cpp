#include "text/tokenizer.h"

#include "core/error.h"
#include "text/gguf_tokenizer.h"
#include "text/hf_tokenizer.h"
#include "text/sentencepiece_tokenizer.h"
#include "text/tokenizer_config.h"
#include "text/unicode.h"

namespace layerwise::text {

namespace fs = std::filesystem;

std::vector<std::string> Tokenizer::tokens(std::span<const TokenId> ids) const
{
    std::vector<std::string> out;
    out.reserve(ids.size());
    for (TokenId id : ids)
        out.push_back(id_to_token(id).value_or(""));
    return out;
}

std::unique_ptr<Tokenizer> tokenizer_from_json(std::string_view json_text, const fs::path& source, std::string_view config_json)
{
    const TokenizerConfig config = parse_tokenizer_config(config_json, (source.parent_path() / "tokenizer_config.json").string());
    return HfTokenizer::from_json(json_text, source, config);
}

std::unique_ptr<Tokenizer> load_tokenizer(const fs::path& path)
{
    std::error_code ec;
    if (!fs::exists(path, ec))
        throw IoError(path.string() + " does not exist: give a model folder or a tokenizer.json, vocab.json or "
                                      "tokenizer.model");
    // A .gguf file, or a folder whose only tokenizer source is one .gguf file.
    if (const auto gguf_file = gguf_file_for(path);
        gguf_file && (!fs::is_directory(path, ec) || !fs::exists(path / "tokenizer.model", ec)))
        return tokenizer_from_gguf_file(*gguf_file);
    fs::path file = path;
    if (fs::is_directory(path, ec)) {
        if (fs::is_regular_file(path / "tokenizer.json", ec))
            file = path / "tokenizer.json";
        else if (fs::is_regular_file(path / "vocab.json", ec) && fs::is_regular_file(path / "merges.txt", ec))
            file = path / "vocab.json";
        else if (fs::is_regular_file(path / "tokenizer.model", ec))
            file = path / "tokenizer.model";
        else
            throw IoError(path.string() + " has no tokenizer: expected tokenizer.json, vocab.json + merges.txt, or "
                                          "tokenizer.model");
    }
    const TokenizerConfig config = read_tokenizer_config_beside(file);
    const std::string name = file.filename().string();
    const std::string extension = file.extension().string();
    if (extension == ".model")
        return std::make_unique<SentencePieceTokenizer>(file, config);
    if (name == "vocab.json" || name == "merges.txt") {
        const fs::path vocab = file.parent_path() / "vocab.json";
        const fs::path merges = file.parent_path() / "merges.txt";
        if (!fs::is_regular_file(vocab, ec) || !fs::is_regular_file(merges, ec))
            throw IoError(file.string() + ": vocab.json and merges.txt must sit side by side; one is missing");
        return HfTokenizer::from_vocab_and_merges(vocab, merges, config);
    }
    if (extension == ".json")
        return HfTokenizer::from_json(read_text_file(file), file, config);
    throw UnsupportedError(file.string() + ": not a tokenizer file Layerwise knows (tokenizer.json, vocab.json + "
                                           "merges.txt, tokenizer.model)");
}

IncrementalDecoder::IncrementalDecoder(const Tokenizer& tokenizer, bool skip_special_tokens, TextCallback on_text)
    : m_tokenizer(tokenizer), m_skip_special(skip_special_tokens), m_on_text(std::move(on_text))
{
}

std::string IncrementalDecoder::emit(std::string text)
{
    if (!text.empty() && m_on_text)
        m_on_text(text);
    return text;
}

std::string IncrementalDecoder::push(TokenId id)
{
    m_ids.push_back(id);
    const std::string text = m_tokenizer.decode(m_ids, m_skip_special);
    // Wait while the text ends in a replacement character: the next byte token may complete it.
    const bool incomplete = text.size() >= replacement_character.size() &&
                            std::string_view(text).substr(text.size() - replacement_character.size()) == replacement_character;
    if (text.size() <= m_context_text.size() || incomplete)
        return {};
    // The context's text is normally a prefix; when a decoder rewrote it, emit from where they differ.
    std::size_t common = 0;
    while (common < m_context_text.size() && text[common] == m_context_text[common])
        ++common;
    std::string fresh = text.substr(common);
    // The ids just emitted become the context for the next ones (so leading-space rules see them).
    m_ids.erase(m_ids.begin(), m_ids.begin() + static_cast<std::ptrdiff_t>(m_context));
    m_context = m_ids.size();
    m_context_text = m_tokenizer.decode(m_ids, m_skip_special);
    return emit(std::move(fresh));
}

std::string IncrementalDecoder::flush()
{
    std::string fresh;
    if (m_ids.size() > m_context) {
        const std::string text = m_tokenizer.decode(m_ids, m_skip_special);
        std::size_t common = 0;
        while (common < m_context_text.size() && common < text.size() && text[common] == m_context_text[common])
            ++common;
        fresh = text.substr(common);
    }
    m_ids.clear();
    m_context = 0;
    m_context_text.clear();
    return emit(std::move(fresh));
}

} // namespace layerwise::text
