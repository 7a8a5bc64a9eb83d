#include "text/hf_tokenizer.h"
#include "text/added_token_json.h"

#include "core/error.h"
#include "core/json_read.h"
#include "text/unicode.h"

#include <algorithm>
#include <climits>

namespace layerwise::text {

namespace {

// vocab: {"token": id, ...} → tokens indexed by id.
std::vector<std::string> read_vocab(const JsonField& vocab)
{
    vocab.require_object();
    std::vector<std::string> tokens;
    std::int64_t largest = -1;
    for (auto it = vocab.value().begin(); it != vocab.value().end(); ++it)
        if (it.value().is_number_integer())
            largest = std::max<std::int64_t>(largest, it.value().get<std::int64_t>());
    if (largest >= INT32_MAX)
        vocab.fail("has an id too large (" + std::to_string(largest) + ")");
    tokens.resize(static_cast<std::size_t>(largest + 1));
    for (auto it = vocab.value().begin(); it != vocab.value().end(); ++it) {
        const JsonField entry(vocab.file(), vocab.path() + "[\"" + it.key() + "\"]", it.value());
        const std::int64_t id = entry.integer();
        if (id < 0)
            entry.fail("is a negative id");
        if (it.key().empty())
            entry.fail("is an empty token");
        if (find_invalid_utf8(it.key()) != std::string::npos)
            entry.fail("is not valid UTF-8");
        std::string& slot = tokens[static_cast<std::size_t>(id)];
        if (slot.empty()) // two tokens with one id: the first wins
            slot = it.key();
    }
    return tokens;
}

std::vector<std::pair<std::string, std::string>> read_merges(const JsonField& merges)
{
    merges.require_array();
    std::vector<std::pair<std::string, std::string>> out;
    out.reserve(merges.value().size());
    for (std::size_t i = 0; i < merges.value().size(); ++i) {
        const JsonField m = merges.at(i);
        if (m.value().is_string()) {
            const std::string& line = m.value().get_ref<const std::string&>();
            const std::size_t space = line.find(' ');
            if (space == std::string::npos)
                m.fail("must be two tokens separated by a space, not '" + line + "'");
            out.emplace_back(line.substr(0, space), line.substr(space + 1));
        } else if (m.value().is_array() && m.value().size() == 2) {
            out.emplace_back(m.at(0).string(), m.at(1).string());
        } else {
            m.fail("must be \"left right\" or [\"left\", \"right\"]");
        }
    }
    return out;
}

std::optional<std::string> optional_string(const JsonField& parent, const char* key)
{
    if (!parent.has(key))
        return std::nullopt;
    return parent[key].string();
}

struct PostProcessor {
    std::vector<TokenId> prefix;
    std::vector<TokenId> suffix;
};

PostProcessor make_post_processor(const JsonField& field)
{
    PostProcessor p;
    if (field.value().is_null())
        return p;
    field.require_object();
    const std::string type = field["type"].string();
    if (type == "ByteLevel")
        return p; // offsets only
    if (type == "TemplateProcessing") {
        const JsonField single = field["single"];
        single.require_array();
        const JsonField specials = field["special_tokens"];
        specials.require_object();
        bool seen_sequence = false;
        for (std::size_t i = 0; i < single.value().size(); ++i) {
            const JsonField item = single.at(i);
            item.require_object();
            if (item.has("Sequence")) {
                if (seen_sequence)
                    item.fail("repeats the sequence");
                seen_sequence = true;
                continue;
            }
            const std::string name = item["SpecialToken"]["id"].string();
            if (!specials.has(name.c_str()))
                item.fail("names the special token '" + name + "', which special_tokens does not define");
            const JsonField ids = specials[name.c_str()]["ids"];
            ids.require_array();
            auto& target = seen_sequence ? p.suffix : p.prefix;
            for (std::size_t k = 0; k < ids.value().size(); ++k) {
                const std::int64_t id = ids.at(k).integer();
                if (id < 0 || id >= INT32_MAX)
                    ids.at(k).fail("is not a token id");
                target.push_back(static_cast<TokenId>(id));
            }
        }
        if (!seen_sequence)
            single.fail("has no Sequence item");
        return p;
    }
    if (type == "BertProcessing" || type == "RobertaProcessing") {
        const auto id_of = [&](const char* key) {
            const JsonField pair = field[key];
            pair.require_array();
            const std::int64_t id = pair.at(1).integer();
            if (id < 0 || id >= INT32_MAX)
                pair.fail("has no valid token id");
            return static_cast<TokenId>(id);
        };
        p.prefix.push_back(id_of("cls"));
        p.suffix.push_back(id_of("sep"));
        return p;
    }
    if (type == "Sequence") {
        const JsonField list = field["processors"];
        list.require_array();
        for (std::size_t i = 0; i < list.value().size(); ++i) {
            PostProcessor inner = make_post_processor(list.at(i));
            p.prefix.insert(p.prefix.begin(), inner.prefix.begin(), inner.prefix.end());
            p.suffix.insert(p.suffix.end(), inner.suffix.begin(), inner.suffix.end());
        }
        return p;
    }
    field["type"].unsupported("'" + type + "'", "TemplateProcessing, ByteLevel, BertProcessing, RobertaProcessing, Sequence");
}

AddedToken read_added_token(const JsonField& entry)
{
    entry.require_object();
    const std::int64_t id = entry["id"].integer();
    if (id < 0 || id >= INT32_MAX)
        entry["id"].fail("is not a token id");
    return read_added_token_fields(entry, static_cast<TokenId>(id));
}

} // namespace

std::unique_ptr<HfTokenizer> HfTokenizer::from_json(std::string_view json_text, const std::filesystem::path& source,
                                                    const TokenizerConfig& config)
{
    const std::string file = source.string();
    const nlohmann::json j = parse_json(json_text, file);
    try {
        const JsonField root(file, "", j);
        root.require_object();
        std::unique_ptr<HfTokenizer> t(new HfTokenizer);
        t->m_source = source;

        const JsonField model = root["model"];
        model.require_object();
        std::string type;
        if (model.has("type"))
            type = model["type"].string();
        else if (model.has("merges"))
            type = "BPE"; // files from old versions of tokenizers carry no type
        else
            model.fail("has no \"type\"");
        if (type != "BPE")
            model["type"].unsupported("'" + type + "'", "BPE");
        if (model.has("dropout")) {
            const JsonField dropout = model["dropout"];
            if (!dropout.value().is_number())
                dropout.fail("must be a number or null");
            if (dropout.value().get<double>() > 0.0)
                dropout.unsupported(std::to_string(dropout.value().get<double>()) + " (random merges at encoding time)",
                                    "null or 0");
        }
        BpeOptions options;
        options.unk_token = optional_string(model, "unk_token");
        options.continuing_subword_prefix = optional_string(model, "continuing_subword_prefix").value_or("");
        options.end_of_word_suffix = optional_string(model, "end_of_word_suffix").value_or("");
        options.fuse_unk = model.boolean_or("fuse_unk", false);
        options.byte_fallback = model.boolean_or("byte_fallback", false);
        options.ignore_merges = model.boolean_or("ignore_merges", false);
        std::vector<std::pair<std::string, std::string>> merges;
        if (model.has("merges"))
            merges = read_merges(model["merges"]);
        t->m_model = std::make_unique<BpeModel>(read_vocab(model["vocab"]), merges, std::move(options), file + ": model");

        t->m_normalizer = root.has("normalizer") ? make_normalizer(root["normalizer"]) : nullptr;
        t->m_pre_tokenizer = root.has("pre_tokenizer") ? make_pre_tokenizer(root["pre_tokenizer"]) : nullptr;
        t->m_decoder = root.has("decoder") ? make_decoder(root["decoder"]) : nullptr;
        if (root.has("post_processor")) {
            PostProcessor p = make_post_processor(root["post_processor"]);
            t->m_prefix = std::move(p.prefix);
            t->m_suffix = std::move(p.suffix);
        }
        if (root.has("added_tokens")) {
            const JsonField added = root["added_tokens"];
            added.require_array();
            for (std::size_t i = 0; i < added.value().size(); ++i)
                t->m_added.add(read_added_token(added.at(i)));
        }
        t->m_kind = "tokenizer.json BPE";
        if (root.has("decoder") && root["decoder"].value().dump().find("\"ByteLevel\"") != std::string::npos)
            t->m_kind += " (byte-level)";
        else if (t->m_model->token_to_id("<0x00>"))
            t->m_kind += " (SentencePiece-style, byte fallback)";
        t->apply_config(config);
        return t;
    } catch (const nlohmann::json::exception& e) {
        throw_json_value_error(e, file); // a value read without a type check
    }
}

std::unique_ptr<HfTokenizer> HfTokenizer::from_vocab_and_merges(const std::filesystem::path& vocab_file,
                                                                const std::filesystem::path& merges_file,
                                                                const TokenizerConfig& config)
{
    const std::string vocab_name = vocab_file.string();
    const nlohmann::json vocab_json = parse_json(read_text_file(vocab_file), vocab_name);
    std::vector<std::string> tokens;
    try {
        tokens = read_vocab(JsonField(vocab_name, "(vocabulary)", vocab_json));
    } catch (const nlohmann::json::exception& e) {
        throw_json_value_error(e, vocab_name);
    }

    // merges.txt as HF reads it: "#version" lines skipped, every other line exactly "left right".
    const std::string merges_name = merges_file.string();
    const std::string text = read_text_file(merges_file);
    std::vector<std::pair<std::string, std::string>> merges;
    std::size_t line_number = 0;
    for (std::size_t begin = 0; begin < text.size();) {
        std::size_t end = text.find('\n', begin);
        if (end == std::string::npos)
            end = text.size();
        std::string_view line(text.data() + begin, end - begin);
        begin = end + 1;
        ++line_number;
        if (!line.empty() && line.back() == '\r')
            line.remove_suffix(1);
        if (line.rfind("#version", 0) == 0)
            continue;
        const std::size_t space = line.find(' ');
        if (space == std::string_view::npos || line.find(' ', space + 1) != std::string_view::npos)
            throw FormatError(merges_name + ": line " + std::to_string(line_number) +
                              " must be two tokens separated by one space, not '" + std::string(line.substr(0, 80)) +
                              "'; the file is damaged or not a merges.txt");
        merges.emplace_back(std::string(line.substr(0, space)), std::string(line.substr(space + 1)));
    }

    std::unique_ptr<HfTokenizer> t(new HfTokenizer);
    t->m_source = vocab_file;
    t->m_kind = "vocab.json + merges.txt BPE (byte-level)";
    t->m_model = std::make_unique<BpeModel>(std::move(tokens), merges, BpeOptions{}, merges_name);
    t->m_pre_tokenizer = make_byte_level_pre_tokenizer(false, true);
    t->m_decoder = make_byte_level_decoder();
    // GPT-2's one special token, which the slow tokenizer registers as bos/eos/unk.
    if (config.added_tokens.empty())
        if (const auto id = t->m_model->token_to_id("<|endoftext|>"))
            t->m_added.add(literal_special_token(*id, "<|endoftext|>"));
    t->apply_config(config);
    return t;
}

void HfTokenizer::apply_config(const TokenizerConfig& config)
{
    for (const AddedToken& a : config.added_tokens)
        if (!m_added.by_id(a.id))
            m_added.add(a);
    if (m_normalizer)
        m_added.build([&](std::string& text) { m_normalizer->normalize(text); });
    else
        m_added.build();

    const auto id_of = [&](const std::optional<std::string>& token) -> std::optional<TokenId> {
        if (!token)
            return std::nullopt;
        return token_to_id(*token);
    };
    m_bos = id_of(config.bos_token);
    m_eos = id_of(config.eos_token);
    if (!m_bos && m_prefix.size() == 1)
        m_bos = m_prefix.front();
    if (!m_eos && m_suffix.size() == 1)
        m_eos = m_suffix.front();

    // transformers rebuilds the template from add_bos_token / add_eos_token (a missing token
    // means the flag is off); a flag the config leaves out keeps what the template does.
    if (config.add_bos_token || config.add_eos_token) {
        const bool had_bos = m_bos && m_prefix == std::vector<TokenId>{*m_bos};
        const bool had_eos = m_eos && m_suffix == std::vector<TokenId>{*m_eos};
        const bool add_bos = config.add_bos_token.value_or(had_bos) && m_bos;
        const bool add_eos = config.add_eos_token.value_or(had_eos) && m_eos;
        m_prefix.clear();
        m_suffix.clear();
        if (add_bos)
            m_prefix.push_back(*m_bos);
        if (add_eos)
            m_suffix.push_back(*m_eos);
    }
}

std::vector<TokenId> HfTokenizer::encode(std::string_view text, bool add_special_tokens) const
{
    if (const std::size_t bad = find_invalid_utf8(text); bad != std::string_view::npos)
        throw FormatError("the text to tokenize is not valid UTF-8 (byte " + std::to_string(bad) +
                          "); convert it to UTF-8 first");
    std::vector<TokenId> ids;
    ids.reserve(text.size() / 3 + 4);
    if (add_special_tokens)
        ids = m_prefix;
    std::vector<AddedVocabulary::Segment> segments;
    m_added.split(text, false, segments);
    for (const auto& s : segments) {
        if (s.id >= 0)
            ids.push_back(s.id);
        else
            encode_text(text.substr(s.begin, s.end - s.begin), s.begin == 0, ids);
    }
    if (add_special_tokens)
        ids.insert(ids.end(), m_suffix.begin(), m_suffix.end());
    return ids;
}

void HfTokenizer::encode_text(std::string_view text, bool at_start, std::vector<TokenId>& ids) const
{
    std::string normalized;
    if (m_normalizer) {
        normalized.assign(text);
        m_normalizer->normalize(normalized);
        text = normalized;
    }
    if (!m_added.has_tokens(true)) {
        encode_normalized(text, at_start, ids);
        return;
    }
    std::vector<AddedVocabulary::Segment> segments;
    m_added.split(text, true, segments);
    for (const auto& s : segments) {
        if (s.id >= 0)
            ids.push_back(s.id);
        else
            encode_normalized(text.substr(s.begin, s.end - s.begin), at_start && s.begin == 0, ids);
    }
}

void HfTokenizer::encode_normalized(std::string_view text, bool at_start, std::vector<TokenId>& ids) const
{
    if (text.empty())
        return;
    if (!m_pre_tokenizer) {
        m_model->tokenize(text, ids);
        return;
    }
    m_pre_tokenizer->split(text, at_start, [&](std::string_view word, bool) { m_model->tokenize(word, ids); });
}

std::string HfTokenizer::decode(std::span<const TokenId> ids, bool skip_special_tokens) const
{
    std::vector<std::string> tokens;
    tokens.reserve(ids.size());
    for (TokenId id : ids) {
        if (const AddedToken* a = m_added.by_id(id)) {
            if (!(skip_special_tokens && a->special))
                tokens.push_back(a->text);
            continue;
        }
        const std::string& t = m_model->id_to_token(id);
        if (!t.empty())
            tokens.push_back(t);
    }
    if (!m_decoder) {
        std::string out;
        for (std::size_t i = 0; i < tokens.size(); ++i)
            (out += i ? " " : "") += tokens[i];
        return out;
    }
    m_decoder->decode_chain(tokens);
    std::string out;
    for (const std::string& t : tokens)
        out += t;
    return out;
}

std::optional<TokenId> HfTokenizer::token_to_id(std::string_view token) const
{
    if (const AddedToken* a = m_added.by_content(token))
        return a->id;
    return m_model->token_to_id(token);
}

std::optional<std::string> HfTokenizer::id_to_token(TokenId id) const
{
    if (const AddedToken* a = m_added.by_id(id))
        return a->text;
    const std::string& t = m_model->id_to_token(id);
    if (t.empty())
        return std::nullopt;
    return t;
}

std::size_t HfTokenizer::vocab_size() const
{
    std::size_t size = m_model->size();
    for (const AddedToken& a : m_added.tokens())
        size = std::max(size, static_cast<std::size_t>(a.id) + 1);
    return size;
}

bool HfTokenizer::is_special(TokenId id) const
{
    const AddedToken* a = m_added.by_id(id);
    return a && a->special;
}

} // namespace layerwise::text
