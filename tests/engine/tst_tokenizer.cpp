// Tokenizers against upstream references: llama.cpp's GPT-2 and Llama-2 vectors (shared data),
// HF tokenizers' ids and decodes for Qwen3, Mistral and stories260K (tests/reference/
// make_tokenizer_fixtures.py), transformers' add_bos/add_eos handling; streaming decode;
// bad files; speed.
#include "testdata.h"

#include "core/error.h"
#include "text/harmony.h"
#include "text/tokenizer.h"
#include "text/unicode.h"

#include <chrono>
#include <map>
#include <random>

using namespace layerwise;
using namespace layerwise::text;
using layerwise::test::throws_with;

namespace {

// Tokenizers are loaded once per run (Qwen3's tokenizer.json is 11 MB).
const Tokenizer& shared_tokenizer(const std::string& relative)
{
    static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
    auto& slot = cache[relative];
    if (!slot)
        slot = load_tokenizer(test::shared_data() / relative);
    return *slot;
}

std::vector<TokenId> ids_of(const nlohmann::json& j) { return j.get<std::vector<TokenId>>(); }

QString show(const std::vector<TokenId>& ids)
{
    QStringList parts;
    for (TokenId id : ids)
        parts << QString::number(id);
    return parts.join(' ');
}

struct Vectors {
    std::vector<std::string> inputs;
    std::vector<std::vector<TokenId>> outputs;
};

// llama.cpp's format: inputs separated by "\n__ggml_vocab_test__\n", one line of ids per input.
Vectors read_vectors(const std::filesystem::path& folder)
{
    Vectors v;
    const std::string inp = test::read_file(folder / "vectors.inp");
    const std::string separator = "\n__ggml_vocab_test__\n";
    for (std::size_t begin = 0; begin < inp.size();) {
        std::size_t end = inp.find(separator, begin);
        if (end == std::string::npos)
            end = inp.size();
        v.inputs.push_back(inp.substr(begin, end - begin));
        begin = end + separator.size();
    }
    const std::string out = test::read_file(folder / "vectors.out");
    std::istringstream lines(out);
    std::string line;
    while (v.outputs.size() < v.inputs.size() && std::getline(lines, line)) {
        std::istringstream numbers(line);
        std::vector<TokenId> ids;
        for (TokenId id; numbers >> id;)
            ids.push_back(id);
        v.outputs.push_back(ids);
    }
    return v;
}

bool ends_with_replacement(const std::string& s)
{
    return s.size() >= 3 && s.compare(s.size() - 3, 3, std::string(replacement_character)) == 0;
}

// Streams `ids` through an IncrementalDecoder; checks the pieces and returns their concatenation.
std::string stream_decode(const Tokenizer& tok, const std::vector<TokenId>& ids, bool skip, bool* clean)
{
    std::string streamed, via_callback;
    IncrementalDecoder decoder(tok, skip, [&](std::string_view piece) { via_callback += piece; });
    *clean = true;
    for (TokenId id : ids) {
        const std::string piece = decoder.push(id);
        // Never a partial character: each piece is valid UTF-8 and does not end in U+FFFD.
        if (find_invalid_utf8(piece) != std::string::npos || ends_with_replacement(piece))
            *clean = false;
        streamed += piece;
    }
    streamed += decoder.flush();
    if (streamed != via_callback)
        *clean = false;
    return streamed;
}

// Deterministic English-like text: Zipf-distributed words from a fixed lexicon, punctuation,
// capitals, numbers, line breaks.
std::string english_like_text(std::size_t bytes)
{
    std::mt19937 rng(1234);
    const char* common[] = {"the", "of", "and", "to", "a", "in", "is", "it", "that", "was", "for", "on", "are",
                            "with", "as", "I", "his", "they", "be", "at", "one", "have", "this", "from", "or",
                            "had", "by", "not", "word", "but", "what", "some", "we", "can", "out", "other",
                            "were", "all", "there", "when", "up", "use", "your", "how", "said", "an", "each",
                            "she", "which", "do", "their", "time", "if", "will", "way", "about", "many", "then",
                            "them", "write", "would", "like", "so", "these", "her", "long", "make", "thing"};
    std::vector<std::string> lexicon(common, common + std::size(common));
    std::uniform_int_distribution<int> letter(0, 25), length(3, 11);
    while (lexicon.size() < 8000) {
        std::string w;
        for (int i = length(rng); i > 0; --i)
            w += static_cast<char>('a' + letter(rng));
        lexicon.push_back(w);
    }
    std::vector<double> weights;
    for (std::size_t i = 0; i < lexicon.size(); ++i)
        weights.push_back(1.0 / static_cast<double>(i + 1));
    std::discrete_distribution<std::size_t> pick(weights.begin(), weights.end());
    std::uniform_int_distribution<int> roll(0, 99);
    std::string text;
    bool sentence_start = true;
    while (text.size() < bytes) {
        std::string w = lexicon[pick(rng)];
        if (sentence_start)
            w[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(w[0])));
        text += w;
        sentence_start = false;
        const int r = roll(rng);
        if (r < 8) {
            text += ". ";
            sentence_start = true;
        } else if (r < 13) {
            text += ", ";
        } else if (r < 14) {
            text += " " + std::to_string(roll(rng) * 37) + " ";
        } else if (r < 15) {
            text += ".\n\n";
            sentence_start = true;
        } else {
            text += ' ';
        }
    }
    return text;
}

} // namespace

class TestTokenizer : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void gpt2Vectors();
    void llama2SentencePieceVectors();
    void hfEncode_data();
    void hfEncode();
    void hfDecodeOnly();
    void streamingNeverSplitsCharacters();
    void addedTokenFlags();
    void harmonyAnswers();
    void pipelineVariants();
    void configOverrides();
    void vocabularyLookups();
    void unicodeHelpers();
    void rejectsBadFiles();
    void rejectsBadText();
    void encodingSpeed();
};

void TestTokenizer::gpt2Vectors()
{
    const auto folder = test::shared_data() / "tokenizers" / "gpt2";
    const Vectors v = read_vectors(folder);
    QCOMPARE(v.inputs.size(), std::size_t(46));
    QCOMPARE(v.outputs.size(), std::size_t(46));
    const Tokenizer& tok = shared_tokenizer("tokenizers/gpt2");
    QVERIFY(tok.kind().find("vocab.json") != std::string::npos);
    int passed = 0;
    for (std::size_t i = 0; i < v.inputs.size(); ++i) {
        const auto ids = tok.encode(v.inputs[i], false);
        if (ids != v.outputs[i])
            qWarning("case %zu: got %s, expected %s", i, qPrintable(show(ids)), qPrintable(show(v.outputs[i])));
        else
            ++passed;
        // Byte-level BPE round-trips exactly.
        QCOMPARE(tok.decode(ids), v.inputs[i]);
    }
    qInfo("GPT-2 vectors: %d/%zu exact", passed, v.inputs.size());
    QCOMPARE(passed, 46);
}

void TestTokenizer::llama2SentencePieceVectors()
{
    const auto folder = test::shared_data() / "tokenizers" / "llama2-spm";
    const Vectors v = read_vectors(folder);
    QCOMPARE(v.inputs.size(), std::size_t(46));
    const Tokenizer& tok = shared_tokenizer("tokenizers/llama2-spm/tokenizer.model");
    QCOMPARE(tok.vocab_size(), std::size_t(32000));
    QCOMPARE(tok.bos_id(), std::optional<TokenId>(1));
    int passed = 0;
    for (std::size_t i = 0; i < v.inputs.size(); ++i) {
        const auto ids = tok.encode(v.inputs[i], false);
        if (ids != v.outputs[i])
            qWarning("case %zu: got %s, expected %s", i, qPrintable(show(ids)), qPrintable(show(v.outputs[i])));
        else
            ++passed;
        // With special tokens: BOS (LlamaTokenizer's default) and nothing else.
        auto with_bos = v.outputs[i];
        with_bos.insert(with_bos.begin(), 1);
        QCOMPARE(tok.encode(v.inputs[i], true), with_bos);
    }
    qInfo("Llama-2 SentencePiece vectors: %d/%zu exact", passed, v.inputs.size());
    QCOMPARE(passed, 46);
    QCOMPARE(tok.decode(std::vector<TokenId>{1, 15043, 3186, 2}, true), std::string("Hello world"));
    QCOMPARE(tok.decode(std::vector<TokenId>{1, 15043, 3186, 2}, false), std::string("<s>Hello world</s>"));
}

void TestTokenizer::hfEncode_data()
{
    QTest::addColumn<int>("index");
    const auto ref = test::read_json(test::fixtures() / "tokenizers" / "encode_decode.json");
    const auto& cases = ref["cases"];
    for (std::size_t i = 0; i < cases.size(); ++i) {
        const std::string text = cases[i]["text"];
        const std::string label = cases[i]["tokenizer"].get<std::string>() + " #" + std::to_string(i) + " " +
                                  QString::fromStdString(text).left(20).simplified().toStdString();
        QTest::newRow(label.c_str()) << static_cast<int>(i);
    }
}

void TestTokenizer::hfEncode()
{
    QFETCH(int, index);
    static const auto ref = test::read_json(test::fixtures() / "tokenizers" / "encode_decode.json");
    const auto& c = ref["cases"][static_cast<std::size_t>(index)];
    const Tokenizer& tok = shared_tokenizer(ref["tokenizers"][c["tokenizer"].get<std::string>()]);
    const std::string text = c["text"];
    const auto expected = ids_of(c["ids"]);
    const auto ids = tok.encode(text, true);
    QCOMPARE(show(ids), show(expected));
    QCOMPARE(show(tok.encode(text, false)), show(ids_of(c["ids_no_special"])));
    QCOMPARE(tok.decode(expected, false), c["decoded"].get<std::string>());
    QCOMPARE(tok.decode(expected, true), c["decoded_skip"].get<std::string>());
}

void TestTokenizer::hfDecodeOnly()
{
    const auto ref = test::read_json(test::fixtures() / "tokenizers" / "encode_decode.json");
    QVERIFY(ref["decode_only"].size() >= 20);
    for (const auto& c : ref["decode_only"]) {
        const Tokenizer& tok = shared_tokenizer(ref["tokenizers"][c["tokenizer"].get<std::string>()]);
        const auto ids = ids_of(c["ids"]);
        QCOMPARE(tok.decode(ids, false), c["decoded"].get<std::string>());
        QCOMPARE(tok.decode(ids, true), c["decoded_skip"].get<std::string>());
    }
}

void TestTokenizer::streamingNeverSplitsCharacters()
{
    const auto ref = test::read_json(test::fixtures() / "tokenizers" / "encode_decode.json");
    int streamed_cases = 0;
    for (const auto& c : ref["cases"]) {
        const Tokenizer& tok = shared_tokenizer(ref["tokenizers"][c["tokenizer"].get<std::string>()]);
        const auto ids = ids_of(c["ids"]);
        for (bool skip : {false, true}) {
            const std::string expected = c[skip ? "decoded_skip" : "decoded"];
            bool clean = false;
            const std::string streamed = stream_decode(tok, ids, skip, &clean);
            QVERIFY2(clean, c["text"].get<std::string>().c_str());
            QCOMPARE(streamed, expected);
            ++streamed_cases;
        }
    }
    QVERIFY(streamed_cases > 300);

    // A three-byte character spread over three byte-level tokens: nothing until the last byte.
    const Tokenizer& qwen = shared_tokenizer("tokenizers/qwen3/tokenizer.json");
    IncrementalDecoder d(qwen);
    QCOMPARE(d.push(*qwen.token_to_id("\xC3\xA4")), std::string()); // byte E4
    QCOMPARE(d.push(*qwen.token_to_id("\xC2\xBD")), std::string()); // byte BD
    QCOMPARE(d.push(*qwen.token_to_id("\xC5\x82")), std::string("\xE4\xBD\xA0")); // byte A0: 你
    // The same through Mistral's <0x..> byte-fallback tokens.
    const Tokenizer& mistral = shared_tokenizer("tokenizers/mistral-v0.1/tokenizer.json");
    IncrementalDecoder m(mistral);
    QCOMPARE(m.push(*mistral.token_to_id("<0xE4>")), std::string());
    QCOMPARE(m.push(*mistral.token_to_id("<0xBD>")), std::string());
    QCOMPARE(m.push(*mistral.token_to_id("<0xA0>")), std::string("\xE4\xBD\xA0"));
    QCOMPARE(m.push(*mistral.token_to_id("\xE2\x96\x81world")), std::string(" world"));
    // A dangling partial character is flushed as U+FFFD at the end.
    QCOMPARE(m.push(*mistral.token_to_id("<0xE4>")), std::string());
    QCOMPARE(m.flush(), std::string(replacement_character));
}

void TestTokenizer::addedTokenFlags()
{
    // stories260K's tokenizer.json with the added tokens HF serialized (lstrip, rstrip,
    // single_word, normalized), built in a temporary folder: the shared file is not copied.
    const auto ref = test::read_json(test::fixtures() / "tokenizers" / "added_token_flags.json");
    auto j = test::read_json(test::shared_data() / ref["base"].get<std::string>());
    j["added_tokens"] = ref["added_tokens"];
    test::TempDir dir;
    const auto file = dir.path() / "tokenizer.json";
    test::write_file(file, j.dump());
    const auto tok = load_tokenizer(file);
    QVERIFY(ref["cases"].size() >= 15);
    for (const auto& c : ref["cases"]) {
        const std::string text = c["text"];
        const auto expected = ids_of(c["ids"]);
        QVERIFY2(tok->encode(text) == expected, (text + ": " + show(tok->encode(text)).toStdString() + " != " +
                                                 show(expected).toStdString())
                                                    .c_str());
        QCOMPARE(tok->decode(expected, false), c["decoded"].get<std::string>());
        QCOMPARE(tok->decode(expected, true), c["decoded_skip"].get<std::string>());
    }
}

void TestTokenizer::harmonyAnswers()
{
    // gpt-oss's answers (several messages, each a channel's): the reader follows the ids HF gives
    // and the incremental decoder's pieces, and splits the analysis channel (reasoning) from the
    // final one (the answer), as the harmony format defines them (make_harmony_fixture.py).
    const auto ref = test::read_json(test::fixtures() / "tokenizers" / "harmony.json");
    auto j = test::read_json(test::shared_data() / ref["base"].get<std::string>());
    for (const auto& t : ref["added_tokens"])
        j["added_tokens"].push_back(t);
    test::TempDir dir;
    const auto file = dir.path() / "tokenizer.json";
    test::write_file(file, j.dump());
    const auto tok = load_tokenizer(file);
    const auto ids = harmony_ids(*tok);
    QVERIFY(ids);
    QVERIFY(!harmony_ids(*load_tokenizer(test::shared_data() / ref["base"].get<std::string>()))); // Qwen3 itself: not harmony
    QCOMPARE(ref["cases"].size(), std::size_t(5));
    for (const auto& c : ref["cases"]) {
        const auto expected = ids_of(c["ids"]);
        QCOMPARE(tok->encode(c["text"].get<std::string>(), false), expected);
        HarmonyReader reader(*ids);
        IncrementalDecoder decoder(*tok, /*skip_special_tokens=*/true);
        std::string reasoning, answer, other;
        for (TokenId id : expected) {
            const std::string piece = decoder.push(id);
            const HarmonyReader::Part part = reader.push(id, piece);
            (part == HarmonyReader::Part::reasoning ? reasoning : part == HarmonyReader::Part::answer ? answer : other) += piece;
        }
        QCOMPARE(reasoning, c["reasoning"].get<std::string>());
        QCOMPARE(answer, c["answer"].get<std::string>());
        QCOMPARE(reader.done(), c["done"].get<bool>());
        QCOMPARE(reader.channel(), c["last_channel"].get<std::string>());
    }
}

void TestTokenizer::pipelineVariants()
{
    // Normalizers, pre-tokenizers, decoders and post-processors the shared files do not use,
    // each a patch of a shared tokenizer.json that HF encoded (make_tokenizer_fixtures.py).
    const auto ref = test::read_json(test::fixtures() / "tokenizers" / "variants.json");
    QVERIFY(ref.size() >= 12);
    std::map<std::string, nlohmann::json> bases;
    int checked = 0;
    for (auto it = ref.begin(); it != ref.end(); ++it) {
        const auto& variant = it.value();
        const std::string base = variant["base"];
        if (!bases.count(base))
            bases[base] = test::read_json(test::shared_data() / base);
        nlohmann::json j = bases[base];
        for (auto p = variant["patch"].begin(); p != variant["patch"].end(); ++p) {
            nlohmann::json* target = &j;
            std::string key = p.key();
            for (std::size_t dot; (dot = key.find('.')) != std::string::npos; key = key.substr(dot + 1))
                target = &(*target)[key.substr(0, dot)];
            (*target)[key] = p.value();
        }
        const auto tok = tokenizer_from_json(j.dump(), it.key() + "/tokenizer.json");
        for (const auto& c : variant["cases"]) {
            const std::string text = c["text"];
            const std::string where = it.key() + ": '" + text + "'";
            QVERIFY2(show(tok->encode(text)) == show(ids_of(c["ids"])),
                     qPrintable(QString::fromStdString(where) + " got " + show(tok->encode(text)) + " expected " +
                                show(ids_of(c["ids"]))));
            QVERIFY2(tok->decode(ids_of(c["ids"]), false) == c["decoded"].get<std::string>(),
                     (where + " decodes to '" + tok->decode(ids_of(c["ids"]), false) + "'").c_str());
            QVERIFY2(tok->decode(ids_of(c["ids"]), true) == c["decoded_skip"].get<std::string>(), where.c_str());
            ++checked;
        }
    }
    qInfo("pipeline variants: %d cases exact", checked);
}

void TestTokenizer::configOverrides()
{
    // tokenizer_config.json's add_bos_token / add_eos_token, as transformers' update_post_processor.
    const auto ref = test::read_json(test::fixtures() / "tokenizers" / "config_overrides.json");
    const std::string json = test::read_file(test::shared_data() / ref["tokenizer"].get<std::string>());
    for (const auto& c : ref["cases"]) {
        nlohmann::json config = {{"add_bos_token", c["add_bos_token"]},
                                 {"add_eos_token", c["add_eos_token"]},
                                 {"bos_token", "<s>"},
                                 {"eos_token", {{"content", "</s>"}, {"special", true}}}};
        const auto tok = tokenizer_from_json(json, "mistral/tokenizer.json", config.dump());
        QCOMPARE(show(tok->encode(c["text"].get<std::string>())), show(ids_of(c["ids"])));
        QCOMPARE(tok->bos_id(), std::optional<TokenId>(1));
        QCOMPARE(tok->eos_id(), std::optional<TokenId>(2));
    }
    // A model folder: stories260K's config says add_bos_token, and the loader reads it.
    const auto stories = load_tokenizer(test::shared_data() / "models" / "stories260K");
    QCOMPARE(stories->encode("").size(), std::size_t(1));
    QCOMPARE(stories->bos_id(), std::optional<TokenId>(1));
}

void TestTokenizer::vocabularyLookups()
{
    const Tokenizer& qwen = shared_tokenizer("tokenizers/qwen3/tokenizer.json");
    QCOMPARE(qwen.vocab_size(), std::size_t(151669));
    QCOMPARE(qwen.token_to_id("<|im_start|>"), std::optional<TokenId>(151644));
    QCOMPARE(qwen.id_to_token(151645), std::optional<std::string>("<|im_end|>"));
    QVERIFY(qwen.is_special(151645));
    QVERIFY(!qwen.is_special(151667)); // <think> is added but not special
    QCOMPARE(qwen.eos_id(), std::optional<TokenId>(151645));
    QVERIFY(!qwen.bos_id());
    QVERIFY(!qwen.token_to_id("no such token at all"));
    QVERIFY(!qwen.id_to_token(-1));
    QVERIFY(!qwen.id_to_token(10000000));
    const std::vector<TokenId> hello = qwen.encode("Hello world");
    QCOMPARE(qwen.tokens(hello), (std::vector<std::string>{"Hello", "\xC4\xA0world"}));
    QVERIFY(qwen.kind().find("byte-level") != std::string::npos);
    const Tokenizer& mistral = shared_tokenizer("tokenizers/mistral-v0.1/tokenizer.json");
    QVERIFY(mistral.kind().find("byte fallback") != std::string::npos);
    QCOMPARE(mistral.vocab_size(), std::size_t(32000));
}

void TestTokenizer::unicodeHelpers()
{
    // Rust's from_utf8_lossy: one U+FFFD per maximal invalid subsequence.
    const std::string r(replacement_character);
    QCOMPARE(utf8_lossy("a\xE4\xBD"), "a" + r);
    QCOMPARE(utf8_lossy("\xE4\xBD\xE4\xBD\xA0"), r + "\xE4\xBD\xA0");
    QCOMPARE(utf8_lossy("\xF0\x9F\x98"), r);
    QCOMPARE(utf8_lossy("\xC0\xAF"), r + r); // overlong: both bytes invalid
    QCOMPARE(utf8_lossy("\xED\xA0\x80"), r + r + r); // a surrogate
    QCOMPARE(utf8_lossy("\xFF" "a"), r + "a");
    QCOMPARE(find_invalid_utf8("ok \xE4\xBD\xA0"), std::string::npos);
    QCOMPARE(find_invalid_utf8("ok \xE4"), std::size_t(3));
    // NFC/NFD with HF's tables: composition, singletons, reordering, Hangul.
    QCOMPARE(normalize_nfc("e\xCC\x81"), std::string("\xC3\xA9"));
    QCOMPARE(normalize_nfd("\xC3\xA9"), std::string("e\xCC\x81"));
    QCOMPARE(normalize_nfc("\xE2\x84\xAB"), std::string("\xC3\x85")); // U+212B ANGSTROM SIGN → Å
    QCOMPARE(normalize_nfc("\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8"), std::string("\xEA\xB0\x81")); // 각
    QCOMPARE(normalize_nfd("\xEA\xB0\x81"), std::string("\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8"));
    QCOMPARE(normalize_nfc("q\xCC\x87\xCC\xA3"), std::string("q\xCC\xA3\xCC\x87")); // dot below sorts first
    QCOMPARE(normalize_nfc("\xE4\xBD\xA0 ok"), std::string("\xE4\xBD\xA0 ok"));
}

void TestTokenizer::rejectsBadFiles()
{
    test::TempDir dir;
    const auto write = [&](const std::string& name, const std::string& content) {
        test::write_file(dir.path() / name, content);
        return dir.path() / name;
    };
    // An unknown model type.
    auto f = write("unigram.json", R"({"model": {"type": "Unigram", "vocab": [["a", 0.0]]}})");
    QVERIFY(throws_with<UnsupportedError>([&] { load_tokenizer(f); }, {"unigram.json", "model.type", "Unigram", "BPE"}));
    // An unknown normalizer, pre-tokenizer, decoder.
    const std::string bpe = R"("model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]})";
    f = write("norm.json", "{" + bpe + R"(, "normalizer": {"type": "Lowercase"}})");
    QVERIFY(throws_with<UnsupportedError>([&] { load_tokenizer(f); }, {"norm.json", "normalizer.type", "Lowercase"}));
    f = write("pre.json", "{" + bpe + R"(, "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Punctuation"}]}})");
    QVERIFY(throws_with<UnsupportedError>([&] { load_tokenizer(f); }, {"pre.json", "pre_tokenizer.pretokenizers[0].type", "Punctuation"}));
    f = write("dec.json", "{" + bpe + R"(, "decoder": {"type": "WordPiece"}})");
    QVERIFY(throws_with<UnsupportedError>([&] { load_tokenizer(f); }, {"dec.json", "decoder.type", "WordPiece"}));
    // A well-formed file that works.
    f = write("ok.json", "{" + bpe + "}");
    QCOMPARE(load_tokenizer(f)->encode("abba"), (std::vector<TokenId>{2, 1, 0})); // no pre-tokenizer: one word
    // A merge naming a token that is not in the vocabulary; a merge without a space.
    f = write("merge.json", R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a b"]}})");
    QVERIFY(throws_with<FormatError>([&] { load_tokenizer(f); }, {"merge.json", "merge 0", "'ab'", "not in the vocabulary"}));
    f = write("merge2.json", R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a"]}})");
    QVERIFY(throws_with<FormatError>([&] { load_tokenizer(f); }, {"merge2.json", "model.merges[0]"}));
    // Wrong types, a missing model, a regex PCRE2 rejects, a template naming an undefined token.
    f = write("types.json", R"({"model": {"type": "BPE", "vocab": {"a": "zero"}, "merges": []}})");
    QVERIFY(throws_with<FormatError>([&] { load_tokenizer(f); }, {"types.json", "model.vocab[\"a\"]", "integer"}));
    f = write("nomodel.json", R"({"normalizer": null})");
    QVERIFY(throws_with<FormatError>([&] { load_tokenizer(f); }, {"nomodel.json", "'model' is missing"}));
    f = write("regex.json", "{" + bpe + R"(, "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(unclosed"}, "behavior": "Isolated"}})");
    QVERIFY(throws_with<FormatError>([&] { load_tokenizer(f); }, {"regex.json", "pre_tokenizer.pattern", "(unclosed"}));
    f = write("template.json", "{" + bpe + R"(, "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}], "special_tokens": {}}})");
    QVERIFY(throws_with<FormatError>([&] { load_tokenizer(f); }, {"template.json", "post_processor.single[0]", "<s>"}));
    // A truncated tokenizer.json (the first 3000 bytes of a real one).
    const std::string real = test::read_file(test::shared_data() / "models" / "stories260K" / "tokenizer.json");
    f = write("tokenizer.json", real.substr(0, 3000));
    QVERIFY(throws_with<FormatError>([&] { load_tokenizer(f); }, {"tokenizer.json", "not valid JSON", "truncated"}));
    // A malformed merges.txt line, with its line number.
    test::TempDir gpt;
    test::write_file(gpt.path() / "vocab.json", R"({"a": 0, "b": 1, "ab": 2, "c": 3})");
    test::write_file(gpt.path() / "merges.txt", "#version: 0.2\na b\nab c d\n");
    QVERIFY(throws_with<FormatError>([&] { load_tokenizer(gpt.path()); }, {"merges.txt", "line 3", "ab c d"}));
    test::write_file(gpt.path() / "merges.txt", "#version: 0.2\na b\n");
    QCOMPARE(load_tokenizer(gpt.path())->encode("abab c"), (std::vector<TokenId>{2, 2, 3})); // "Ġ" is not in this vocabulary
    // A tokenizer.model that is not one; a folder without a tokenizer; a missing path; a broken config.
    f = write("tokenizer.model", "this is not a protobuf");
    QVERIFY(throws_with<FormatError>([&] { load_tokenizer(f); }, {"tokenizer.model", "SentencePiece"}));
    test::TempDir empty;
    QVERIFY(throws_with<IoError>([&] { load_tokenizer(empty.path()); }, {"has no tokenizer"}));
    QVERIFY(throws_with<IoError>([&] { load_tokenizer(empty.path() / "nothing"); }, {"does not exist"}));
    test::TempDir configured;
    test::write_file(configured.path() / "tokenizer.json", "{" + bpe + "}");
    test::write_file(configured.path() / "tokenizer_config.json", R"({"add_bos_token": "yes"})");
    QVERIFY(throws_with<FormatError>([&] { load_tokenizer(configured.path()); }, {"tokenizer_config.json", "add_bos_token"}));
}

void TestTokenizer::rejectsBadText()
{
    const Tokenizer& qwen = shared_tokenizer("tokenizers/qwen3/tokenizer.json");
    QVERIFY(throws_with<FormatError>([&] { qwen.encode("ok \xFF then"); }, {"not valid UTF-8", "byte 3"}));
    const Tokenizer& spm = shared_tokenizer("tokenizers/llama2-spm/tokenizer.model");
    QVERIFY(throws_with<FormatError>([&] { spm.encode("\xC3"); }, {"not valid UTF-8"}));
    // Unknown ids are skipped when decoding, as HF does.
    QCOMPARE(qwen.decode(std::vector<TokenId>{-5, 9707, 99999999}), std::string("Hello"));
}

void TestTokenizer::encodingSpeed()
{
    const std::string text = english_like_text(1 << 20);
    const Tokenizer& qwen = shared_tokenizer("tokenizers/qwen3/tokenizer.json");
    const Tokenizer& gpt2 = shared_tokenizer("tokenizers/gpt2");
    // Mistral has no pre-tokenizer: the whole text is one BPE word.
    const Tokenizer& mistral = shared_tokenizer("tokenizers/mistral-v0.1/tokenizer.json");
    for (const Tokenizer* tok : {&qwen, &gpt2, &mistral}) {
        std::vector<double> rates;
        std::size_t count = 0;
        for (int run = 0; run < 3; ++run) {
            const auto t0 = std::chrono::steady_clock::now();
            count = tok->encode(text, false).size();
            const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            rates.push_back(static_cast<double>(text.size()) / 1e6 / s);
        }
        std::sort(rates.begin(), rates.end());
        qInfo("%s: %.1f MB/s (median of 3, %zu tokens for %zu bytes)", tok->kind().c_str(), rates[1], count, text.size());
        QVERIFY2(rates[1] >= 5.0, "encoding must reach 5 MB/s on one thread");
        QCOMPARE(tok->decode(tok->encode(text, false)), text);
    }
}

QTEST_GUILESS_MAIN(TestTokenizer)
#include "tst_tokenizer.moc"
