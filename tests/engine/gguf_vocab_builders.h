#pragma once
// The GGUF tokenizer metadata that tests/reference/make_gguf_vocab_fixtures.py wrote into the
// vocab-only GGUF files it gave llama.cpp, rebuilt here at test time from the files it was
// made of (the shared Llama-2 tokenizer.model and Qwen3 tokenizer.json, and the installed
// SmolLM2 GGUF), so that no copy of those vocabularies lives in the repository. The recipe is
// the script's, step for step; a difference would show as a mismatch against llama.cpp's ids.
#include "testdata.h"

#include "checkpoint/gguf.h"
#include "core/mapped_file.h"

#include <nlohmann/json.hpp>
#include <sentencepiece_processor.h>

#include <map>
#include <set>

namespace layerwise::test::gguf_vocab {

// llama.cpp's token types (gguf-py's TokenType).
enum TokenType : std::int64_t { normal = 1, unknown = 2, control = 3, user_defined = 4, unused = 5, byte = 6 };

inline gguf::Value text(const std::string& s)
{
    gguf::Value v;
    v.type = gguf::ValueType::string;
    v.data = s;
    return v;
}

inline gguf::Value u32(std::uint64_t n)
{
    gguf::Value v;
    v.type = gguf::ValueType::u32;
    v.data = n;
    return v;
}

inline gguf::Value boolean(bool b)
{
    gguf::Value v;
    v.type = gguf::ValueType::boolean;
    v.data = b;
    return v;
}

inline gguf::Value array_of(gguf::ValueType element_type, gguf::Array items)
{
    gguf::Value v;
    v.type = gguf::ValueType::array;
    v.element_type = element_type;
    v.data = std::move(items);
    return v;
}

inline gguf::Value strings(const std::vector<std::string>& items)
{
    gguf::Array a;
    a.reserve(items.size());
    for (const std::string& s : items)
        a.push_back(text(s));
    return array_of(gguf::ValueType::string, std::move(a));
}

inline gguf::Value int32s(const std::vector<std::int64_t>& items)
{
    gguf::Array a;
    a.reserve(items.size());
    for (std::int64_t n : items) {
        gguf::Value v;
        v.type = gguf::ValueType::i32;
        v.data = n;
        a.push_back(std::move(v));
    }
    return array_of(gguf::ValueType::i32, std::move(a));
}

inline gguf::Value float32s(const std::vector<float>& items)
{
    gguf::Array a;
    a.reserve(items.size());
    for (float f : items) {
        gguf::Value v;
        v.type = gguf::ValueType::f32;
        v.data = static_cast<double>(f);
        a.push_back(std::move(v));
    }
    return array_of(gguf::ValueType::f32, std::move(a));
}

// The script's write_spm_gguf: llama.cpp's converter for SentencePiece models
// (_set_vocab_sentencepiece) plus two user-defined tokens.
inline std::vector<gguf::KeyValue> llama2_spm()
{
    const std::filesystem::path model = shared_data() / "tokenizers/llama2-spm/tokenizer.model";
    sentencepiece::SentencePieceProcessor sp;
    const auto status = sp.Load(model.string());
    if (!status.ok())
        throw std::runtime_error("cannot load " + model.string() + ": " + status.ToString());
    std::vector<std::string> tokens;
    std::vector<float> scores;
    std::vector<std::int64_t> types;
    for (int i = 0; i < sp.GetPieceSize(); ++i) {
        std::int64_t type = normal;
        if (sp.IsUnknown(i))
            type = unknown;
        else if (sp.IsControl(i))
            type = control;
        else if (sp.IsUnused(i))
            type = unused;
        else if (sp.IsByte(i))
            type = byte;
        tokens.push_back(sp.IdToPiece(i));
        scores.push_back(sp.GetScore(i));
        types.push_back(type);
    }
    for (const char* extra : {"[USER]", "[/USER]"}) {
        tokens.push_back(extra);
        scores.push_back(-1000.0f);
        types.push_back(user_defined);
    }
    return {
        {"general.architecture", text("llama")},
        {"tokenizer.ggml.model", text("llama")},
        {"tokenizer.ggml.pre", text("default")},
        {"tokenizer.ggml.tokens", strings(tokens)},
        {"tokenizer.ggml.scores", float32s(scores)},
        {"tokenizer.ggml.token_type", int32s(types)},
        {"tokenizer.ggml.bos_token_id", u32(1)},
        {"tokenizer.ggml.eos_token_id", u32(2)},
        {"tokenizer.ggml.unknown_token_id", u32(0)},
        {"tokenizer.ggml.add_bos_token", boolean(true)},
        {"tokenizer.ggml.add_eos_token", boolean(false)},
    };
}

struct SmallBpe {
    std::vector<std::string> tokens, merges;
    std::vector<std::int64_t> types;
};

// The script's small_bpe_vocab: Qwen3's byte alphabet (its first 256 ids), the tokens its
// first 3000 merges make, then a few control and user-defined tokens.
inline const SmallBpe& small_bpe()
{
    static const SmallBpe vocab = [] {
        const nlohmann::json tok = read_json(shared_data() / "tokenizers/qwen3/tokenizer.json");
        SmallBpe out;
        std::map<std::int64_t, std::string> by_id;
        for (auto it = tok["model"]["vocab"].begin(); it != tok["model"]["vocab"].end(); ++it)
            if (it.value().get<std::int64_t>() < 256)
                by_id[it.value().get<std::int64_t>()] = it.key();
        std::set<std::string> have;
        for (const auto& [id, token] : by_id) {
            out.tokens.push_back(token);
            have.insert(token);
        }
        const nlohmann::json& merges = tok["model"]["merges"];
        for (std::size_t i = 0; i < 3000 && i < merges.size(); ++i) {
            const nlohmann::json& m = merges[i];
            const std::string a = m.is_string() ? m.get<std::string>().substr(0, m.get<std::string>().find(' '))
                                                : m[0].get<std::string>();
            const std::string b = m.is_string() ? m.get<std::string>().substr(m.get<std::string>().find(' ') + 1)
                                                : m[1].get<std::string>();
            out.merges.push_back(a + " " + b);
            if (have.insert(a + b).second)
                out.tokens.push_back(a + b);
        }
        out.types.assign(out.tokens.size(), normal);
        const std::pair<const char*, TokenType> specials[] = {
            {"<|endoftext|>", control},       {"<|im_start|>", control}, {"<|im_end|>", control},
            {"<|begin_of_text|>", control},   {"<|end_of_text|>", control},
            {"<think>", user_defined},        {"</think>", user_defined},
        };
        for (const auto& [token, type] : specials) {
            out.tokens.push_back(token);
            out.types.push_back(type);
        }
        return out;
    }();
    return vocab;
}

inline std::uint64_t index_of(const std::vector<std::string>& tokens, const std::string& token)
{
    return static_cast<std::uint64_t>(std::find(tokens.begin(), tokens.end(), token) - tokens.begin());
}

// The script's write_bpe_gguf for one of the small byte-level files.
inline std::vector<gguf::KeyValue> small_bpe_file(const std::string& pre, const std::string& bos, const std::string& eos,
                                                  std::optional<bool> add_bos)
{
    const SmallBpe& v = small_bpe();
    std::vector<gguf::KeyValue> entries = {
        {"general.architecture", text("llama")},
        {"tokenizer.ggml.model", text("gpt2")},
        {"tokenizer.ggml.pre", text(pre)},
        {"tokenizer.ggml.tokens", strings(v.tokens)},
        {"tokenizer.ggml.token_type", int32s(v.types)},
        {"tokenizer.ggml.merges", strings(v.merges)},
        {"tokenizer.ggml.bos_token_id", u32(index_of(v.tokens, bos))},
        {"tokenizer.ggml.eos_token_id", u32(index_of(v.tokens, eos))},
    };
    if (add_bos)
        entries.push_back({"tokenizer.ggml.add_bos_token", boolean(*add_bos)});
    return entries;
}

// The tokenizer keys (and general.architecture) of the installed SmolLM2 GGUF.
inline std::vector<gguf::KeyValue> smollm2()
{
    const std::filesystem::path path = default_chat_model();
    if (path.empty())
        throw std::runtime_error("the default chat model is not installed (LAYERWISE_VENV/default_model.txt): "
                                 "run packaging/setup.sh");
    const MappedFile file(path);
    const gguf::File header = gguf::read_header(file, path.string());
    std::vector<gguf::KeyValue> out;
    for (const gguf::KeyValue& kv : header.metadata.entries())
        if (kv.key.rfind("tokenizer.", 0) == 0 || kv.key == "general.architecture")
            out.push_back(kv);
    return out;
}

// The metadata of the GGUF the script called `name`.
inline std::vector<gguf::KeyValue> build(const std::string& name)
{
    if (name == "smollm2")
        return smollm2();
    if (name == "llama2_spm")
        return llama2_spm();
    struct Small {
        const char *name, *pre, *bos, *eos;
        std::optional<bool> add_bos;
    };
    static const Small small[] = {
        {"qwen2_small", "qwen2", "<|endoftext|>", "<|im_end|>", std::nullopt},
        {"llama3_small", "llama-bpe", "<|begin_of_text|>", "<|end_of_text|>", std::nullopt},
        {"default_small", "default", "<|endoftext|>", "<|im_end|>", true},
        {"gpt2_small", "gpt-2", "<|endoftext|>", "<|im_end|>", std::nullopt},
        {"qwen35_small", "qwen35", "<|endoftext|>", "<|im_end|>", std::nullopt},
        {"falcon_small", "falcon", "<|endoftext|>", "<|im_end|>", std::nullopt},
    };
    for (const Small& s : small)
        if (name == s.name)
            return small_bpe_file(s.pre, s.bos, s.eos, s.add_bos);
    throw std::runtime_error("no GGUF vocabulary named " + name);
}

} // namespace layerwise::test::gguf_vocab
