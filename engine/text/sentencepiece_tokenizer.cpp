#include "text/sentencepiece_tokenizer.h"

#include "core/error.h"
#include "text/unicode.h"

#include <sentencepiece_processor.h>

namespace layerwise::text {

SentencePieceTokenizer::SentencePieceTokenizer(const std::filesystem::path& model_file, const TokenizerConfig& config)
    : m_processor(std::make_unique<sentencepiece::SentencePieceProcessor>())
{
    m_source = model_file;
    m_kind = "tokenizer.model (SentencePiece)";
    const std::string bytes = read_text_file(model_file);
    const auto status = m_processor->LoadFromSerializedProto(bytes);
    if (!status.ok())
        throw FormatError(model_file.string() + ": not a SentencePiece model (" + status.ToString() +
                          "); the file is damaged or of another kind");
    if (m_processor->GetPieceSize() <= 0)
        throw FormatError(model_file.string() + ": the SentencePiece model has no pieces");

    for (int id = 0; id < m_processor->GetPieceSize(); ++id)
        if (m_processor->IsControl(id) || m_processor->IsUnknown(id))
            m_specials.add(literal_special_token(id, m_processor->IdToPiece(id)));
    for (const AddedToken& a : config.added_tokens)
        if (!m_specials.by_id(a.id) && a.id < m_processor->GetPieceSize())
            m_specials.add(a);
    m_specials.build();

    if (m_processor->bos_id() >= 0)
        m_bos = m_processor->bos_id();
    if (m_processor->eos_id() >= 0)
        m_eos = m_processor->eos_id();
    if (config.bos_token)
        m_bos = token_to_id(*config.bos_token);
    if (config.eos_token)
        m_eos = token_to_id(*config.eos_token);
    m_add_bos = config.add_bos_token.value_or(true) && m_bos;
    m_add_eos = config.add_eos_token.value_or(false) && m_eos;
}

SentencePieceTokenizer::~SentencePieceTokenizer() = default;

std::vector<TokenId> SentencePieceTokenizer::encode(std::string_view text, bool add_special_tokens) const
{
    if (const std::size_t bad = find_invalid_utf8(text); bad != std::string_view::npos)
        throw FormatError("the text to tokenize is not valid UTF-8 (byte " + std::to_string(bad) +
                          "); convert it to UTF-8 first");
    std::vector<TokenId> ids;
    if (add_special_tokens && m_add_bos)
        ids.push_back(*m_bos);
    std::vector<AddedVocabulary::Segment> segments;
    m_specials.split(text, false, segments);
    std::vector<int> piece_ids;
    for (const auto& s : segments) {
        if (s.id >= 0) {
            ids.push_back(s.id);
            continue;
        }
        const auto status = m_processor->Encode(text.substr(s.begin, s.end - s.begin), &piece_ids);
        if (!status.ok())
            throw FormatError(m_source.string() + ": sentencepiece could not encode the text (" + status.ToString() + ")");
        ids.insert(ids.end(), piece_ids.begin(), piece_ids.end());
    }
    if (add_special_tokens && m_add_eos)
        ids.push_back(*m_eos);
    return ids;
}

std::string SentencePieceTokenizer::decode(std::span<const TokenId> ids, bool skip_special_tokens) const
{
    std::string out;
    std::vector<int> run;
    const auto flush = [&] {
        if (run.empty())
            return;
        std::string text;
        const auto status = m_processor->Decode(run, &text);
        if (!status.ok())
            throw FormatError(m_source.string() + ": sentencepiece could not decode (" + status.ToString() + ")");
        out += text;
        run.clear();
    };
    for (TokenId id : ids) {
        if (id < 0 || id >= m_processor->GetPieceSize())
            continue;
        if (const AddedToken* special = m_specials.by_id(id)) {
            flush();
            if (!(skip_special_tokens && special->special))
                out += special->text;
            continue;
        }
        run.push_back(id);
    }
    flush();
    return out;
}

std::optional<TokenId> SentencePieceTokenizer::token_to_id(std::string_view token) const
{
    const int id = m_processor->PieceToId(token);
    // PieceToId answers unk_id for anything it does not know.
    if (id < 0 || (m_processor->IsUnknown(id) && m_processor->IdToPiece(id) != token))
        return std::nullopt;
    return id;
}

std::optional<std::string> SentencePieceTokenizer::id_to_token(TokenId id) const
{
    if (id < 0 || id >= m_processor->GetPieceSize())
        return std::nullopt;
    return m_processor->IdToPiece(id);
}

std::size_t SentencePieceTokenizer::vocab_size() const { return static_cast<std::size_t>(m_processor->GetPieceSize()); }

bool SentencePieceTokenizer::is_special(TokenId id) const
{
    const AddedToken* a = m_specials.by_id(id);
    return a && a->special;
}

} // namespace layerwise::text
