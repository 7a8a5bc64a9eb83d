#include "text/gguf_tokenizer.h"

#include "checkpoint/gguf.h"
#include "core/error.h"
#include "text/bpe.h"
#include "text/gguf_unicode_tables.h"
#include "text/json_fields.h"
#include "text/pre_tokenizers.h"
#include "text/unicode.h"

#include <algorithm>
#include <iterator>
#include <cstdio>
#include <cstring>
#include <queue>

namespace layerwise::text {

namespace fs = std::filesystem;

namespace {

// The pre-tokenizer regexes llama.cpp applies for each tokenizer.ggml.pre, one after the other
// (each splits the pieces of the previous one, keeping matches and the text between them).
const char* const gpt2_regex = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
const char* const llama3_regex =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* const qwen2_regex =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* const qwen35_regex =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// A pattern written with \p{L}, \p{N}, \p{M}, \p{P}, \p{S} rewritten to llama.cpp's classes: PCRE2's
// subcategories (which adapt_pattern leaves alone) plus what llama.cpp's newer Unicode adds.
std::string llama_classes(std::string_view pattern)
{
    const auto items = [](char c) {
        const tables::CodePointRange* extra = nullptr;
        std::size_t count = 0;
        std::string out;
        switch (c) {
        case 'L': out = "\\p{Lu}\\p{Ll}\\p{Lt}\\p{Lm}\\p{Lo}"; extra = gguf_tables::extra_L; count = gguf_tables::extra_L_count; break;
        case 'N': out = "\\p{Nd}\\p{Nl}\\p{No}"; extra = gguf_tables::extra_N; count = gguf_tables::extra_N_count; break;
        case 'M': out = "\\p{Mn}\\p{Mc}\\p{Me}"; extra = gguf_tables::extra_M; count = gguf_tables::extra_M_count; break;
        case 'P': out = "\\p{Pc}\\p{Pd}\\p{Ps}\\p{Pe}\\p{Pi}\\p{Pf}\\p{Po}"; extra = gguf_tables::extra_P; count = gguf_tables::extra_P_count; break;
        default: out = "\\p{Sm}\\p{Sc}\\p{Sk}\\p{So}"; extra = gguf_tables::extra_S; count = gguf_tables::extra_S_count; break;
        }
        char buffer[40];
        for (std::size_t i = 0; i < count; ++i) {
            std::snprintf(buffer, sizeof buffer, "\\x{%X}-\\x{%X}", static_cast<unsigned>(extra[i].first),
                          static_cast<unsigned>(extra[i].last));
            out += buffer;
        }
        return out;
    };
    std::string out;
    bool in_class = false;
    for (std::size_t i = 0; i < pattern.size(); ++i) {
        const char c = pattern[i];
        if (c == '\\' && i + 4 < pattern.size() && pattern.compare(i + 1, 2, "p{") == 0 && pattern[i + 4] == '}' &&
            std::string_view("LNMPS").find(pattern[i + 3]) != std::string_view::npos) {
            out += in_class ? items(pattern[i + 3]) : "[" + items(pattern[i + 3]) + "]";
            i += 4;
            continue;
        }
        if (c == '\\' && i + 1 < pattern.size()) {
            out.append(pattern.substr(i, 2));
            ++i;
            continue;
        }
        if (c == '[')
            in_class = true;
        else if (c == ']')
            in_class = false;
        out += c;
    }
    return out;
}

struct PreFlavour {
    std::vector<std::string> regexes;
    bool clean_spaces = true;
    bool ignore_merges = false;
    bool add_bos = false;
    bool no_bos = false;
};

bool one_of(const std::string& value, std::initializer_list<const char*> names)
{
    return std::any_of(names.begin(), names.end(), [&](const char* n) { return value == n; });
}

std::optional<PreFlavour> pre_flavour(const std::string& pre)
{
    PreFlavour f;
    if (pre.empty() || pre == "default") {
        f.regexes = {R"([\p{P}\$\+<=>\^~\|]+)", gpt2_regex, R"(\p{N}+)", "[0-9][0-9][0-9]"};
    } else if (one_of(pre, {"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2",
                            "jina-v5-nano"})) {
        f.regexes = {llama3_regex};
        f.ignore_merges = true;
        f.add_bos = true;
    } else if (one_of(pre, {"dbrx", "smaug-bpe"})) {
        f.regexes = {llama3_regex};
    } else if (pre == "chatglm-bpe") {
        f.regexes = {llama3_regex};
        f.no_bos = true;
    } else if (one_of(pre, {"glm4", "glm5"})) {
        f.regexes = {llama3_regex};
        f.no_bos = true;
        f.ignore_merges = true;
    } else if (pre == "falcon") {
        f.regexes = {R"([\p{P}\$\+<=>\^~\|`]+)", gpt2_regex, "[0-9][0-9][0-9]"};
    } else if (one_of(pre, {"starcoder", "refact", "codeshell", "exaone", "minerva-7b", "mellum2"})) {
        f.regexes = {R"(\p{N})", gpt2_regex};
    } else if (one_of(pre, {"smollm", "command-r"})) {
        f.regexes = {R"(\p{N})", gpt2_regex};
        f.clean_spaces = false;
    } else if (one_of(pre, {"gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de", "a.x-4.0",
                            "mellum", "modern-bert", "mpt", "olmo", "jais", "exaone4"})) {
        f.regexes = {gpt2_regex};
    } else if (one_of(pre, {"trillion", "granite-docling"})) {
        f.regexes = {gpt2_regex};
        f.clean_spaces = false;
    } else if (pre == "stablelm2") {
        f.regexes = {qwen2_regex};
    } else if (one_of(pre, {"qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "hunyuan", "solar-open", "grok-2"})) {
        f.regexes = {qwen2_regex};
        f.clean_spaces = false;
    } else if (pre == "qwen35") {
        f.regexes = {qwen35_regex};
        f.clean_spaces = false;
    } else {
        return std::nullopt;
    }
    return f;
}

const char* const supported_pres =
    "default, llama3, llama-v3, llama-bpe, falcon3, falcon-h1, pixtral, midm-2.0, lfm2, jina-v5-nano, dbrx, smaug-bpe, "
    "chatglm-bpe, glm4, glm5, falcon, starcoder, refact, codeshell, exaone, minerva-7b, mellum2, smollm, command-r, "
    "gpt-2, phi-2, jina-es, jina-de, gigachat, jina-v2-es, jina-v2-de, a.x-4.0, mellum, modern-bert, mpt, olmo, jais, "
    "exaone4, trillion, granite-docling, stablelm2, qwen2, deepseek-r1-qwen, kormo, f2llmv2, hunyuan, solar-open, "
    "grok-2, qwen35";

// Token texts llama.cpp treats as control tokens whatever their type says (end-of-generation
// and fill-in-the-middle markers).
const char* const eog_texts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>", "<end_of_turn>",
    "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]", "<|end_of_text|>",
    "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>", "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>",
    "[e~[",
};
struct FimKind {
    const char* key;
    std::vector<const char*> texts;
};
const FimKind fim_kinds[] = {
    {"tokenizer.ggml.fim_pre_token_id",
     {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "begin\xEF\xBD\x9C>", "<PRE>",
      "\xE2\x96\x81<PRE>", "<|code_prefix|>", "<|prefix|>"}},
    {"tokenizer.ggml.fim_suf_token_id",
     {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<\xEF\xBD\x9C" "fim\xE2\x96\x81hole\xEF\xBD\x9C>", "<SUF>",
      "\xE2\x96\x81<SUF>", "<|code_suffix|>", "<|suffix|>"}},
    {"tokenizer.ggml.fim_mid_token_id",
     {"<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "end\xEF\xBD\x9C>", "<MID>",
      "\xE2\x96\x81<MID>", "<|code_middle|>", "<|middle|>"}},
    {"tokenizer.ggml.fim_pad_token_id", {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"}},
    {"tokenizer.ggml.fim_rep_token_id", {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"}},
    {"tokenizer.ggml.fim_sep_token_id", {"<|file_sep|>"}},
};
// Tokens llama.cpp always renders (user-defined), whatever their type.
const char* const rendered_texts[] = {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"};

std::uint32_t attr_of_type(std::int64_t type)
{
    switch (type) {
    case 1: return gguf_attr_normal;
    case 2: return gguf_attr_unknown;
    case 3: return gguf_attr_control;
    case 4: return gguf_attr_user_defined;
    case 5: return gguf_attr_unused;
    case 6: return gguf_attr_byte;
    default: return gguf_attr_undefined;
    }
}

void replace_all(std::string& s, std::string_view from, std::string_view to)
{
    std::string out;
    out.reserve(s.size());
    std::size_t pos = 0;
    for (std::size_t at; (at = s.find(from, pos)) != std::string::npos; pos = at + from.size())
        (out.append(s, pos, at - pos)) += to;
    out.append(s, pos, std::string::npos);
    s.swap(out);
}

const std::string_view space_marker = "\xE2\x96\x81"; // ▁

// llama.cpp's clean-up of a detokenized text (clean_spaces): " ?", " !", " .", " ," lose the
// space, " ' " becomes "'", and " 's", " 'm", " 're", " 've" lose the space. Done in place on
// the text as llama.cpp does, reading characters the earlier passes may have rewritten.
void clean_up_spaces(std::string& s)
{
    char* text = s.data();
    std::size_t total = s.size();

    std::size_t n = total;
    total = n ? 1 : 0;
    for (std::size_t i = 1; i < n; ++i) {
        const char x = text[i];
        if (text[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ','))
            --total;
        text[total++] = x;
    }

    n = total;
    total = n ? 1 : 0;
    for (std::size_t i = 1; i < n; ++i) {
        const char x = text[i];
        if (x == '\'' && i + 1 < n && text[i - 1] == ' ' && text[i + 1] == ' ') {
            --total;
            text[++i] = '\0';
        }
        text[total++] = x;
    }

    n = total;
    total = n ? 1 : 0;
    for (std::size_t i = 1; i < n; ++i) {
        const char x = text[i];
        if (text[i - 1] == ' ' && x == '\'' && i + 1 < n) {
            const char x1 = text[i + 1];
            if (x1 == 's' || x1 == 'm')
                --total;
            else if (i + 2 < n && ((x1 == 'r' && text[i + 2] == 'e') || (x1 == 'v' && text[i + 2] == 'e')))
                --total;
        }
        text[total++] = x;
    }
    s.resize(total);
}

std::string to_lower_ascii(std::string s)
{
    for (char& c : s)
        if (c >= 'A' && c <= 'Z')
            c = static_cast<char>(c - 'A' + 'a');
    return s;
}

[[noreturn]] void damaged(const std::string& file, const std::string& what)
{
    throw FormatError(file + ": " + what + "; the GGUF file's tokenizer is damaged — convert the model again");
}

// True for a SentencePiece-style vocabulary ("llama"), false for byte-level BPE ("gpt2").
bool is_spm_model(const gguf::Metadata& md, const std::string& file)
{
    const auto model = md.get_string("tokenizer.ggml.model");
    if (!model)
        throw FormatError(file + ": the metadata has no tokenizer.ggml.model, so the file carries no tokenizer; "
                                 "give the model's folder with tokenizer.json instead");
    if (*model == "llama")
        return true;
    if (*model != "gpt2")
        throw UnsupportedError(file + ": tokenizer.ggml.model '" + *model +
                               "' is a kind of tokenizer Layerwise does not read from GGUF files (supported: gpt2, "
                               "llama); give the model's folder with tokenizer.json instead");
    return false;
}

// The vocabulary and its ids; an empty token is named as llama.cpp names it.
template <typename Ids>
void read_vocabulary(const gguf::Metadata& md, const std::string& file, std::vector<std::string>& tokens, Ids& ids)
{
    auto read = md.get_strings("tokenizer.ggml.tokens");
    if (!read)
        damaged(file, "the metadata has no tokenizer.ggml.tokens (the vocabulary)");
    const std::size_t n = read->size();
    if (n == 0)
        damaged(file, "tokenizer.ggml.tokens is empty");
    if (n >= static_cast<std::size_t>(INT32_MAX))
        damaged(file, "tokenizer.ggml.tokens has too many tokens (" + std::to_string(n) + ")");
    tokens = std::move(*read);
    ids.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
        std::string& word = tokens[i];
        if (word.empty())
            word = "[EMPTY_" + std::to_string(i) + "]"; // as llama.cpp names it
        if (find_invalid_utf8(word) != std::string::npos)
            damaged(file, "tokenizer.ggml.tokens[" + std::to_string(i) + "] is not valid UTF-8");
        const auto [it, inserted] = ids.emplace(word, static_cast<TokenId>(i));
        if (!inserted)
            damaged(file, "tokenizer.ggml.tokens has '" + word + "' twice (ids " + std::to_string(it->second) + " and " +
                              std::to_string(i) + ")");
    }
}

// Each token's score (0 where the file has none).
std::vector<float> read_scores(const gguf::Metadata& md, const std::string& file, std::size_t n)
{
    std::vector<float> out(n, 0.0f);
    if (const auto scores = md.get_floats("tokenizer.ggml.scores")) {
        if (scores->size() != n)
            damaged(file, "tokenizer.ggml.scores has " + std::to_string(scores->size()) + " entries but tokenizer.ggml.tokens has " +
                              std::to_string(n));
        for (std::size_t i = 0; i < n; ++i)
            out[i] = static_cast<float>((*scores)[i]);
    }
    return out;
}

// Each token's attributes from its type (normal where the file has none).
std::vector<std::uint32_t> read_attributes(const gguf::Metadata& md, const std::string& file, std::size_t n)
{
    std::vector<std::uint32_t> out(n, gguf_attr_normal);
    if (const auto types = md.get_ints("tokenizer.ggml.token_type")) {
        if (types->size() != n)
            damaged(file, "tokenizer.ggml.token_type has " + std::to_string(types->size()) +
                              " entries but tokenizer.ggml.tokens has " + std::to_string(n));
        for (std::size_t i = 0; i < n; ++i)
            out[i] = attr_of_type((*types)[i]);
    }
    return out;
}

// A special token's id from the metadata; the fallback where the key is absent or out of range
// (and nothing where the fallback is out of range too), as llama.cpp reads it.
std::optional<TokenId> special_id(const gguf::Metadata& md, const char* key, std::optional<TokenId> fallback, std::size_t n)
{
    if (fallback && (*fallback < 0 || static_cast<std::size_t>(*fallback) >= n))
        fallback = std::nullopt;
    const auto v = md.get_int(key);
    if (!v || *v < 0 || static_cast<std::uint64_t>(*v) >= n)
        return fallback;
    return static_cast<TokenId>(*v);
}

// Attributes llama.cpp adjusts by token text: end-of-generation and fill-in-the-middle markers
// become control tokens, a few others are always rendered.
template <typename Ids>
void adjust_attributes_by_text(const gguf::Metadata& md, const Ids& ids, std::vector<std::uint32_t>& attrs)
{
    const auto promote = [&](const char* text) {
        const auto it = ids.find(text);
        if (it != ids.end())
            attrs[static_cast<std::size_t>(it->second)] |= gguf_attr_control;
    };
    for (const FimKind& kind : fim_kinds)
        if (!md.find(kind.key))
            for (const char* text : kind.texts)
                promote(text);
    for (const char* text : eog_texts)
        promote(text);
    for (const char* text : rendered_texts) {
        const auto it = ids.find(text);
        if (it != ids.end())
            attrs[static_cast<std::size_t>(it->second)] = gguf_attr_user_defined;
    }
}

// The tokens matched in the text as special: control, user-defined and unknown ones, longest first.
std::vector<TokenId> special_tokens_longest_first(const std::vector<std::string>& tokens, const std::vector<std::uint32_t>& attrs)
{
    std::vector<TokenId> out;
    for (std::size_t i = 0; i < tokens.size(); ++i)
        if (attrs[i] & (gguf_attr_control | gguf_attr_user_defined | gguf_attr_unknown))
            out.push_back(static_cast<TokenId>(i));
    std::stable_sort(out.begin(), out.end(), [&](TokenId a, TokenId b) {
        return tokens[static_cast<std::size_t>(a)].size() > tokens[static_cast<std::size_t>(b)].size();
    });
    return out;
}

// Phi-3 models strip white space after their special tokens (llama.cpp keys this on the name).
template <typename Ids>
void strip_after_phi3_specials(const gguf::Metadata& md, const Ids& ids, const std::vector<TokenId>& special,
                               std::vector<std::uint32_t>& attrs)
{
    const std::string name = to_lower_ascii(md.get_string("general.name").value_or(""));
    if (name.find("phi-3") == std::string::npos && name.find("phi3") == std::string::npos)
        return;
    for (TokenId id : special)
        attrs[static_cast<std::size_t>(id)] |= gguf_attr_rstrip;
    const auto set = [&](const char* text, bool on) {
        const auto it = ids.find(text);
        if (it == ids.end())
            return;
        auto& a = attrs[static_cast<std::size_t>(it->second)];
        a = on ? (a | gguf_attr_rstrip) : (a & ~static_cast<std::uint32_t>(gguf_attr_rstrip));
    };
    set("</s>", true);
    for (const char* text : {"<unk>", "<s>", "<|endoftext|>"})
        set(text, false);
}

// A BPE vocabulary's merges as pairs; a repeated merge keeps its first rank.
std::vector<std::pair<std::string, std::string>> read_merges(const gguf::Metadata& md, const std::string& file)
{
    const auto merges = md.get_strings("tokenizer.ggml.merges");
    if (!merges)
        damaged(file, "the metadata has no tokenizer.ggml.merges, which a gpt2 (BPE) tokenizer needs");
    std::vector<std::pair<std::string, std::string>> pairs;
    pairs.reserve(merges->size());
    std::unordered_map<std::string, bool> seen;
    seen.reserve(merges->size());
    for (std::size_t i = 0; i < merges->size(); ++i) {
        const std::string& m = (*merges)[i];
        const std::size_t space = m.size() > 1 ? m.find(' ', 1) : std::string::npos;
        if (space == std::string::npos)
            damaged(file, "tokenizer.ggml.merges[" + std::to_string(i) + "] ('" + m + "') is not two tokens separated by a space");
        // A repeated merge keeps its first rank, as llama.cpp's rank table does.
        if (!seen.emplace(m, true).second)
            continue;
        pairs.emplace_back(m.substr(0, space), m.substr(space + 1));
    }
    return pairs;
}

// The pre-tokenizer of a byte-level BPE flavour, as a tokenizer.json would describe it.
nlohmann::json byte_level_pre_tokenizer(const PreFlavour& flavour)
{
    nlohmann::json stages = nlohmann::json::array();
    for (const std::string& regex : flavour.regexes)
        stages.push_back({{"type", "Split"}, {"pattern", {{"Regex", llama_classes(regex)}}}, {"behavior", "Isolated"}, {"invert", false}});
    stages.push_back({{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}});
    return {{"type", "Sequence"}, {"pretokenizers", stages}};
}

// Characters that form a token alone and never follow a different character inside one (sorted,
// unique): a SentencePiece vocabulary never merges across them.
std::vector<char32_t> spm_boundaries(const std::vector<std::string>& tokens)
{
    std::vector<char32_t> single, joined; // one-character tokens; characters after a different one
    for (const std::string& token : tokens) {
        std::size_t pos = 0;
        char32_t previous = 0;
        std::size_t count = 0;
        while (pos < token.size()) {
            const char32_t c = next_code_point(token, pos);
            if (count++ > 0 && c != previous)
                joined.push_back(c);
            previous = c;
        }
        if (count == 1)
            single.push_back(previous);
    }
    std::sort(single.begin(), single.end());
    std::sort(joined.begin(), joined.end());
    std::vector<char32_t> out;
    std::set_difference(single.begin(), single.end(), joined.begin(), joined.end(), std::back_inserter(out));
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

} // namespace

GgufTokenizer::GgufTokenizer() = default;
GgufTokenizer::~GgufTokenizer() = default;

std::unique_ptr<GgufTokenizer> GgufTokenizer::from_metadata(const gguf::Metadata& md, const fs::path& source)
{
    const std::string file = source.string();
    std::unique_ptr<GgufTokenizer> t(new GgufTokenizer);
    t->m_source = source;
    t->m_spm = is_spm_model(md, file);
    read_vocabulary(md, file, t->m_tokens, t->m_ids);
    const std::size_t n = t->m_tokens.size();
    t->m_scores = read_scores(md, file, n);
    t->m_attrs = read_attributes(md, file, n);

    // Special ids: llama.cpp's defaults, then the metadata's (ignored when out of range, as there).
    std::optional<TokenId> bos, eos;
    PreFlavour flavour;
    if (t->m_spm) {
        bos = 1;
        eos = 2;
        t->m_add_bos = true;
        t->m_add_space_prefix = true;
        t->m_clean_spaces = false;
    } else {
        bos = 11;
        eos = 11;
        t->m_pre = md.get_string("tokenizer.ggml.pre").value_or("");
        const auto f = pre_flavour(t->m_pre);
        if (!f)
            throw UnsupportedError(file + ": tokenizer.ggml.pre '" + t->m_pre +
                                   "' is a pre-tokenizer Layerwise does not know (supported: " + supported_pres +
                                   "); give the model's folder with tokenizer.json instead");
        flavour = *f;
        if (flavour.no_bos)
            bos.reset();
        t->m_add_bos = flavour.add_bos;
        t->m_clean_spaces = flavour.clean_spaces;
    }
    t->m_bos = special_id(md, "tokenizer.ggml.bos_token_id", bos, n);
    t->m_eos = special_id(md, "tokenizer.ggml.eos_token_id", eos, n);
    t->m_add_space_prefix = md.get_bool("tokenizer.ggml.add_space_prefix").value_or(t->m_add_space_prefix);
    t->m_add_bos = md.get_bool("tokenizer.ggml.add_bos_token").value_or(t->m_add_bos);
    t->m_add_eos = md.get_bool("tokenizer.ggml.add_eos_token").value_or(t->m_add_eos);
    if (t->m_add_bos && !t->m_bos)
        damaged(file, "tokenizer.ggml.add_bos_token is true but the vocabulary has no BOS token");
    if (t->m_add_eos && !t->m_eos)
        damaged(file, "tokenizer.ggml.add_eos_token is true but the vocabulary has no EOS token");

    adjust_attributes_by_text(md, t->m_ids, t->m_attrs);
    t->m_special_tokens = special_tokens_longest_first(t->m_tokens, t->m_attrs);
    strip_after_phi3_specials(md, t->m_ids, t->m_special_tokens, t->m_attrs);

    if (!t->m_spm) {
        BpeOptions options;
        options.ignore_merges = flavour.ignore_merges;
        t->m_bpe = std::make_unique<BpeModel>(t->m_tokens, read_merges(md, file), options, file + ": tokenizer.ggml.merges");
        const nlohmann::json pre = byte_level_pre_tokenizer(flavour);
        t->m_pre_tokenizer = make_pre_tokenizer(JsonField(file, "tokenizer.ggml.pre", pre));
        t->m_kind = "GGUF BPE (byte-level, pre-tokenizer '" + (t->m_pre.empty() ? std::string("default") : t->m_pre) + "')";
    } else {
        t->m_kind = "GGUF SentencePiece BPE (scores, byte fallback)";
        t->m_spm_boundaries = spm_boundaries(t->m_tokens);
    }

    // Each token's text as llama.cpp's token_to_piece(special = true) gives it.
    t->m_pieces.resize(n);
    for (std::size_t i = 0; i < n; ++i)
        t->m_pieces[i] = t->piece(static_cast<TokenId>(i));
    return t;
}

std::string GgufTokenizer::piece(TokenId id) const
{
    const std::string& text = m_tokens[static_cast<std::size_t>(id)];
    const std::uint32_t attr = m_attrs[static_cast<std::size_t>(id)];
    if (attr & (gguf_attr_control | gguf_attr_unknown | gguf_attr_user_defined))
        return text;
    if (attr & gguf_attr_normal) {
        std::string out;
        if (m_spm) {
            out = text;
            replace_all(out, space_marker, " ");
            return out;
        }
        // Byte-level characters back to bytes; a character outside the alphabet is shown as
        // llama.cpp shows it.
        for (std::size_t pos = 0; pos < text.size();) {
            const std::size_t begin = pos;
            const int byte = byte_level_byte(next_code_point(text, pos));
            if (byte >= 0) {
                out += static_cast<char>(byte);
                continue;
            }
            out += "[UNK_BYTE_0x";
            for (std::size_t k = begin; k < pos; ++k) {
                char hex[3];
                std::snprintf(hex, sizeof hex, "%02x", static_cast<unsigned char>(text[k]));
                out += hex;
            }
            out += text + "]";
        }
        return out;
    }
    if (attr & gguf_attr_byte) {
        // "<0xAB>": the two hex digits (strtol's reading of them).
        const std::string hex = text.size() >= 5 ? text.substr(3, 2) : std::string();
        return std::string(1, static_cast<char>(std::strtol(hex.c_str(), nullptr, 16)));
    }
    return {};
}

std::uint32_t GgufTokenizer::attributes(TokenId id) const
{
    if (id < 0 || static_cast<std::size_t>(id) >= m_attrs.size())
        return gguf_attr_undefined;
    return m_attrs[static_cast<std::size_t>(id)];
}

bool GgufTokenizer::is_special(TokenId id) const { return attributes(id) & (gguf_attr_control | gguf_attr_unknown); }

std::optional<TokenId> GgufTokenizer::token_to_id(std::string_view token) const
{
    const auto it = m_ids.find(token);
    if (it == m_ids.end())
        return std::nullopt;
    return it->second;
}

std::optional<std::string> GgufTokenizer::id_to_token(TokenId id) const
{
    if (id < 0 || static_cast<std::size_t>(id) >= m_tokens.size())
        return std::nullopt;
    return m_tokens[static_cast<std::size_t>(id)];
}

void GgufTokenizer::partition(std::string_view text, bool parse_special, std::vector<Fragment>& out) const
{
    out.clear();
    if (text.empty())
        return;
    out.push_back({0, text.size(), -1});
    std::vector<Fragment> next;
    const auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; };
    for (TokenId id : m_special_tokens) {
        const std::uint32_t attr = m_attrs[static_cast<std::size_t>(id)];
        if (!parse_special && (attr & (gguf_attr_control | gguf_attr_unknown)))
            continue; // user-defined tokens are matched even then
        const std::string& token = m_tokens[static_cast<std::size_t>(id)];
        bool found = false;
        for (const Fragment& f : out)
            if (f.token < 0 && text.substr(f.begin, f.length).find(token) != std::string_view::npos) {
                found = true;
                break;
            }
        if (!found)
            continue;
        next.clear();
        for (const Fragment& f : out) {
            if (f.token >= 0) {
                next.push_back(f);
                continue;
            }
            std::size_t begin = f.begin;
            std::size_t end = f.begin + f.length;
            while (begin < end) {
                const std::size_t at = text.substr(0, end).find(token, begin);
                if (at == std::string_view::npos) {
                    next.push_back({begin, end - begin, -1});
                    break;
                }
                std::size_t left_end = at;
                if (attr & gguf_attr_lstrip)
                    while (left_end > begin && is_space(text[left_end - 1]))
                        --left_end;
                if (left_end > begin)
                    next.push_back({begin, left_end - begin, -1});
                next.push_back({at, token.size(), id});
                begin = at + token.size();
                if (attr & gguf_attr_rstrip)
                    while (begin < end && is_space(text[begin]))
                        ++begin;
            }
        }
        out.swap(next);
    }
}

std::vector<TokenId> GgufTokenizer::encode(std::string_view text, bool add_special_tokens) const
{
    return encode(text, add_special_tokens, true);
}

std::vector<TokenId> GgufTokenizer::encode(std::string_view text, bool add_special_tokens, bool parse_special) const
{
    if (const std::size_t bad = find_invalid_utf8(text); bad != std::string_view::npos)
        throw FormatError("the text to tokenize is not valid UTF-8 (byte " + std::to_string(bad) +
                          "); convert it to UTF-8 first");
    std::vector<Fragment> fragments;
    partition(text, parse_special, fragments);
    std::vector<TokenId> ids;
    ids.reserve(text.size() / 3 + 4);
    if (add_special_tokens && m_add_bos)
        ids.push_back(*m_bos);
    if (m_spm) {
        bool previous_special = true; // the first text gets the space prefix, BOS or not
        std::string piece_text;
        for (const Fragment& f : fragments) {
            if (f.token >= 0) {
                ids.push_back(f.token);
                previous_special = true;
                continue;
            }
            piece_text.clear();
            if (m_add_space_prefix && previous_special)
                piece_text += ' ';
            piece_text.append(text.substr(f.begin, f.length));
            replace_all(piece_text, " ", space_marker);
            encode_spm(piece_text, ids);
            previous_special = false;
        }
    } else {
        for (const Fragment& f : fragments) {
            if (f.token >= 0) {
                ids.push_back(f.token);
                continue;
            }
            m_pre_tokenizer->split(text.substr(f.begin, f.length), f.begin == 0,
                                   [&](std::string_view word, bool) { m_bpe->tokenize(word, ids); });
        }
    }
    if (add_special_tokens && m_add_eos)
        ids.push_back(*m_eos);
    return ids;
}

TokenId GgufTokenizer::byte_token(unsigned char byte) const
{
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", byte);
    auto it = m_ids.find(name);
    if (it == m_ids.end())
        it = m_ids.find(std::string(1, static_cast<char>(byte)));
    if (it == m_ids.end())
        throw FormatError(m_source.string() + ": the text needs the byte token " + name +
                          ", which the vocabulary lacks; the tokenizer cannot encode this text");
    return it->second;
}

void GgufTokenizer::encode_spm(std::string_view text, std::vector<TokenId>& out) const
{
    constexpr std::size_t cache_max_word = 256;
    constexpr std::size_t cache_capacity = 100000;
    const auto word = [&](std::string_view w) {
        if (w.size() > cache_max_word) {
            encode_spm_word(w, out);
            return;
        }
        {
            std::lock_guard lock(m_cache_mutex);
            const auto it = m_cache.find(w);
            if (it != m_cache.end()) {
                out.insert(out.end(), it->second.begin(), it->second.end());
                return;
            }
        }
        const std::size_t first = out.size();
        encode_spm_word(w, out);
        std::lock_guard lock(m_cache_mutex);
        if (m_cache.size() >= cache_capacity)
            m_cache.clear();
        m_cache.emplace(std::string(w), std::vector<TokenId>(out.begin() + static_cast<std::ptrdiff_t>(first), out.end()));
    };
    // Valid UTF-8 (encode() checked it): cut before each boundary character that follows a different one.
    std::size_t start = 0;
    char32_t previous = 0;
    for (std::size_t pos = 0; pos < text.size();) {
        const std::size_t at = pos;
        const char32_t c = next_code_point(text, pos);
        if (at > start && c != previous &&
            std::binary_search(m_spm_boundaries.begin(), m_spm_boundaries.end(), c)) {
            word(text.substr(start, at - start));
            start = at;
        }
        previous = c;
    }
    if (start < text.size())
        word(text.substr(start));
}

void GgufTokenizer::encode_spm_word(std::string_view text, std::vector<TokenId>& out) const
{
    // SentencePiece BPE as llama.cpp runs it: start from characters, repeatedly join the adjacent
    // pair whose joined text is a token with the best score (ties: leftmost), then emit each
    // symbol's token, or its bytes.
    struct Symbol {
        std::int32_t prev;
        std::int32_t next;
        std::size_t begin;
        std::size_t length;
    };
    struct Bigram {
        std::int32_t left;
        std::int32_t right;
        float score;
        std::size_t length;
        bool operator<(const Bigram& o) const { return score < o.score || (score == o.score && left > o.left); }
    };
    std::vector<Symbol> symbols;
    symbols.reserve(text.size());
    for (std::size_t pos = 0; pos < text.size();) {
        const std::size_t length = std::min(utf8_sequence_length(static_cast<unsigned char>(text[pos])), text.size() - pos);
        const auto index = static_cast<std::int32_t>(symbols.size());
        symbols.push_back({index - 1, pos + length == text.size() ? -1 : index + 1, pos, length});
        pos += length;
    }
    std::priority_queue<Bigram> queue;
    const auto try_add = [&](std::int32_t left, std::int32_t right) {
        if (left < 0 || right < 0)
            return;
        const Symbol& l = symbols[static_cast<std::size_t>(left)];
        const Symbol& r = symbols[static_cast<std::size_t>(right)];
        const std::string_view joined = text.substr(l.begin, l.length + r.length);
        const auto it = m_ids.find(joined);
        if (it == m_ids.end())
            return;
        queue.push({left, right, m_scores[static_cast<std::size_t>(it->second)], joined.size()});
    };
    for (std::size_t i = 1; i < symbols.size(); ++i)
        try_add(static_cast<std::int32_t>(i - 1), static_cast<std::int32_t>(i));
    while (!queue.empty()) {
        const Bigram b = queue.top();
        queue.pop();
        Symbol& left = symbols[static_cast<std::size_t>(b.left)];
        Symbol& right = symbols[static_cast<std::size_t>(b.right)];
        if (left.length == 0 || right.length == 0 || left.length + right.length != b.length)
            continue; // stale
        left.length += right.length;
        right.length = 0;
        left.next = right.next;
        if (right.next >= 0)
            symbols[static_cast<std::size_t>(right.next)].prev = b.left;
        try_add(left.prev, b.left);
        try_add(b.left, left.next);
    }
    if (symbols.empty())
        return;
    for (std::int32_t i = 0; i != -1; i = symbols[static_cast<std::size_t>(i)].next) {
        const Symbol& s = symbols[static_cast<std::size_t>(i)];
        const std::string_view joined = text.substr(s.begin, s.length);
        const auto it = m_ids.find(joined);
        if (it != m_ids.end()) {
            out.push_back(it->second);
            continue;
        }
        for (char c : joined)
            out.push_back(byte_token(static_cast<unsigned char>(c)));
    }
}

std::string GgufTokenizer::decode(std::span<const TokenId> ids, bool skip_special_tokens) const
{
    std::string out;
    bool remove_space = m_add_space_prefix;
    for (TokenId id : ids) {
        if (id < 0 || static_cast<std::size_t>(id) >= m_tokens.size())
            continue;
        const std::string& p = m_pieces[static_cast<std::size_t>(id)];
        const bool hidden = skip_special_tokens && (m_attrs[static_cast<std::size_t>(id)] & (gguf_attr_control | gguf_attr_unknown));
        if (!hidden)
            out.append(p, remove_space && !p.empty() && p[0] == ' ' ? 1 : 0, std::string::npos);
        remove_space = false;
    }
    if (m_clean_spaces)
        clean_up_spaces(out);
    return out;
}

std::unique_ptr<Tokenizer> tokenizer_from_gguf(const gguf::Metadata& metadata, const fs::path& source)
{
    return GgufTokenizer::from_metadata(metadata, source);
}

std::optional<fs::path> gguf_file_for(const fs::path& path)
{
    std::error_code ec;
    if (!fs::is_directory(path, ec))
        return path.extension() == ".gguf" ? std::optional<fs::path>(path) : std::nullopt;
    if (fs::exists(path / "tokenizer.json", ec))
        return std::nullopt;
    std::optional<fs::path> found;
    for (const auto& entry : fs::directory_iterator(path, ec)) {
        if (entry.path().extension() != ".gguf" || !entry.is_regular_file(ec))
            continue;
        if (found)
            return std::nullopt; // several: the caller cannot guess which
        found = entry.path();
    }
    return found;
}

} // namespace layerwise::text

namespace layerwise {

ChatTemplate chat_template_from_gguf(const gguf::Metadata& md, const std::filesystem::path& source, const std::string& name,
                                     const Logger& log)
{
    const std::string key = name.empty() ? std::string("tokenizer.chat_template") : "tokenizer.chat_template." + name;
    const auto source_text = md.get_string(key);
    ChatTemplate result;
    if (!source_text) {
        if (!name.empty())
            throw FormatError(source.string() + " has no chat template named '" + name + "' (no " + key + " in its metadata)");
        result = ChatTemplate::parse(std::string(chatml_fallback_template()));
        result.m_fallback = true;
        result.origin = "ChatML fallback";
        log.warning(source.string() + " has no chat template; using the ChatML fallback "
                                      "(<|im_start|>role ... <|im_end|>), which may not match how the model was trained");
    } else {
        try {
            result = ChatTemplate::parse(*source_text);
        } catch (const ChatTemplateError& e) {
            throw ChatTemplateError(e.kind(), e.line(), e.reason() + " (in " + source.string() + ": " + key + ")");
        }
        result.origin = source.string() + ": " + key;
    }
    // The special tokens the template sees, as the vocabulary names them.
    const auto tokens = md.get_strings("tokenizer.ggml.tokens");
    const auto token_text = [&](const char* id_key) -> std::optional<std::string> {
        const auto id = md.get_int(id_key);
        if (!tokens || !id || *id < 0 || static_cast<std::size_t>(*id) >= tokens->size())
            return std::nullopt;
        return (*tokens)[static_cast<std::size_t>(*id)];
    };
    const std::pair<const char*, const char*> names[] = {{"bos_token", "tokenizer.ggml.bos_token_id"},
                                                         {"eos_token", "tokenizer.ggml.eos_token_id"},
                                                         {"unk_token", "tokenizer.ggml.unknown_token_id"},
                                                         {"pad_token", "tokenizer.ggml.padding_token_id"}};
    for (const auto& [variable, id_key] : names)
        if (const auto text = token_text(id_key))
            result.special_tokens[variable] = *text;
    return result;
}

} // namespace layerwise
