// Tokenizers and chat templates from GGUF metadata against llama.cpp itself (llama-cpp-python's
// llama_tokenize / llama_detokenize) and jinja2, from tests/reference/make_gguf_vocab_fixtures.py
// (the vocabularies are rebuilt here from their sources by gguf_vocab_builders.h):
// the real SmolLM2 GGUF (gpt2, pre smollm), a SentencePiece GGUF written from Llama-2's
// tokenizer.model, and small byte-level GGUFs with the qwen2, qwen35, llama-bpe, default, gpt-2 and
// falcon pre-tokenizers; llama_detokenize of random id sequences. Also llama.cpp's own Llama-2
// vectors, streaming decode and bad metadata.
#include "testdata.h"
#include "gguf_vocab_builders.h"

#include "checkpoint/gguf.h"
#include "core/error.h"
#include "text/gguf_tokenizer.h"
#include "text/tokenizer.h"

#include <chrono>
#include <map>

using namespace layerwise;
using namespace layerwise::text;
using layerwise::test::throws_with;

namespace {

const std::vector<gguf::KeyValue>& fixture_entries(const std::string& name)
{
    static std::map<std::string, std::vector<gguf::KeyValue>> cache;
    auto& slot = cache[name];
    if (slot.empty())
        slot = test::gguf_vocab::build(name);
    return slot;
}

gguf::Metadata fixture_metadata(const std::string& name) { return gguf::Metadata(fixture_entries(name), name + ".gguf"); }

const GgufTokenizer& fixture_tokenizer(const std::string& name)
{
    static std::map<std::string, std::unique_ptr<GgufTokenizer>> cache;
    auto& slot = cache[name];
    if (!slot)
        slot = GgufTokenizer::from_metadata(fixture_metadata(name), name + ".gguf");
    return *slot;
}

const nlohmann::json& cases()
{
    static const nlohmann::json j = test::read_json(test::fixtures() / "gguf_vocab" / "cases.json");
    return j;
}

QString show(const std::vector<TokenId>& ids)
{
    QStringList parts;
    for (TokenId id : ids)
        parts << QString::number(id);
    return parts.join(' ');
}

std::string to_hex(std::string_view bytes)
{
    static const char* digits = "0123456789abcdef";
    std::string out;
    for (unsigned char c : bytes) {
        out += digits[c >> 4];
        out += digits[c & 15];
    }
    return out;
}

// Metadata with one key replaced (or removed when `value` is nullopt).
gguf::Metadata with_key(const std::string& fixture, const std::string& key, std::optional<gguf::Value> value)
{
    std::vector<gguf::KeyValue> entries = fixture_entries(fixture);
    bool replaced = false;
    for (auto it = entries.begin(); it != entries.end(); ++it)
        if (it->key == key) {
            if (value)
                it->value = *value;
            else
                entries.erase(it);
            replaced = true;
            break;
        }
    if (!replaced && value)
        entries.push_back({key, *value});
    return gguf::Metadata(std::move(entries), fixture + ".gguf");
}

gguf::Value string_value(const std::string& s)
{
    gguf::Value v;
    v.type = gguf::ValueType::string;
    v.data = s;
    return v;
}

} // namespace

class TestGgufTokenizer : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void encode_matches_llama_cpp_data();
    void encode_matches_llama_cpp();
    void decode_matches_llama_cpp_data();
    void decode_matches_llama_cpp();
    void decode_random_ids_like_llama_cpp();
    void llama2_vectors_of_llama_cpp();
    void properties();
    void streaming_decode();
    void chat_template_matches_jinja2();
    void chat_template_fallback();
    void unknown_model();
    void unknown_pre();
    void scores_length_mismatch();
    void token_types_length_mismatch();
    void merge_with_unknown_token();
    void missing_tokens();
    void missing_merges();
    void duplicate_token();
    void wrong_value_type();
    void gguf_file_for_folders();
    void encoding_speed();
};

void TestGgufTokenizer::encode_matches_llama_cpp_data()
{
    QTest::addColumn<int>("index");
    int i = 0;
    for (const auto& c : cases()["cases"]) {
        const std::string tag = c["gguf"].get<std::string>() + " #" + std::to_string(i) + " " +
                                c["text"].get<std::string>().substr(0, 24);
        QTest::newRow(tag.c_str()) << i++;
    }
}

void TestGgufTokenizer::encode_matches_llama_cpp()
{
    QFETCH(int, index);
    const nlohmann::json& c = cases()["cases"][static_cast<std::size_t>(index)];
    const GgufTokenizer& t = fixture_tokenizer(c["gguf"].get<std::string>());
    const std::string text = c["text"].get<std::string>();
    for (const auto& [key, add, special] : {std::tuple{"ids", true, true}, std::tuple{"ids_plain", true, false},
                                            std::tuple{"ids_no_bos", false, true}, std::tuple{"ids_no_bos_plain", false, false}}) {
        const auto expected = c[key].get<std::vector<TokenId>>();
        const auto got = t.encode(text, add, special);
        if (got != expected)
            qWarning("%s (add_special %d, parse_special %d)", key, add, special);
        QCOMPARE(show(got), show(expected));
    }
    // The Tokenizer interface parses special tokens.
    QCOMPARE(show(static_cast<const Tokenizer&>(t).encode(text, true)), show(c["ids"].get<std::vector<TokenId>>()));
}

void TestGgufTokenizer::decode_matches_llama_cpp_data() { encode_matches_llama_cpp_data(); }

void TestGgufTokenizer::decode_matches_llama_cpp()
{
    QFETCH(int, index);
    const nlohmann::json& c = cases()["cases"][static_cast<std::size_t>(index)];
    const GgufTokenizer& t = fixture_tokenizer(c["gguf"].get<std::string>());
    const auto ids = c["ids"].get<std::vector<TokenId>>();
    QCOMPARE(QString::fromStdString(to_hex(t.decode(ids, false))), QString::fromStdString(c["decoded_hex"].get<std::string>()));
    QCOMPARE(QString::fromStdString(to_hex(t.decode(ids, true))), QString::fromStdString(c["decoded_skip_hex"].get<std::string>()));
}

void TestGgufTokenizer::decode_random_ids_like_llama_cpp()
{
    std::size_t count = 0;
    for (const auto& c : cases()["decode_only"]) {
        const GgufTokenizer& t = fixture_tokenizer(c["gguf"].get<std::string>());
        const auto ids = c["ids"].get<std::vector<TokenId>>();
        QCOMPARE(QString::fromStdString(to_hex(t.decode(ids, false))), QString::fromStdString(c["decoded_hex"].get<std::string>()));
        QCOMPARE(QString::fromStdString(to_hex(t.decode(ids, true))), QString::fromStdString(c["decoded_skip_hex"].get<std::string>()));
        ++count;
    }
    QCOMPARE(count, std::size_t{160});
}

void TestGgufTokenizer::llama2_vectors_of_llama_cpp()
{
    // llama.cpp's test-tokenizer-0 vectors for Llama-2 (ids without BOS).
    const auto folder = test::shared_data() / "tokenizers" / "llama2-spm";
    const std::string inp = test::read_file(folder / "vectors.inp");
    const std::string separator = "\n__ggml_vocab_test__\n";
    std::vector<std::string> inputs;
    for (std::size_t begin = 0; begin < inp.size();) {
        std::size_t end = inp.find(separator, begin);
        if (end == std::string::npos)
            end = inp.size();
        inputs.push_back(inp.substr(begin, end - begin));
        begin = end + separator.size();
    }
    std::istringstream lines(test::read_file(folder / "vectors.out"));
    const GgufTokenizer& t = fixture_tokenizer("llama2_spm");
    std::string line;
    std::size_t i = 0;
    for (; std::getline(lines, line) && i < inputs.size(); ++i) {
        std::vector<TokenId> expected;
        std::istringstream numbers(line);
        for (TokenId id; numbers >> id;)
            expected.push_back(id);
        QCOMPARE(show(t.encode(inputs[i], false, false)), show(expected));
    }
    QVERIFY(i > 10);
}

void TestGgufTokenizer::properties()
{
    const GgufTokenizer& smol = fixture_tokenizer("smollm2");
    QCOMPARE(smol.vocab_size(), std::size_t{49152});
    QCOMPARE(smol.bos_id().value_or(-1), 1);
    QCOMPARE(smol.eos_id().value_or(-1), 2);
    QVERIFY(!smol.adds_bos());
    QCOMPARE(smol.token_to_id("<|im_start|>").value_or(-1), 1);
    QCOMPARE(smol.id_to_token(1).value_or(""), std::string("<|im_start|>"));
    QVERIFY(smol.is_special(2));
    QVERIFY(!smol.is_special(100));
    QVERIFY(smol.kind().find("smollm") != std::string::npos);
    const GgufTokenizer& spm = fixture_tokenizer("llama2_spm");
    QVERIFY(spm.adds_bos());
    QCOMPARE(spm.bos_id().value_or(-1), 1);
    QVERIFY(spm.attributes(spm.token_to_id("[USER]").value()) & gguf_attr_user_defined);
}

void TestGgufTokenizer::streaming_decode()
{
    for (const char* name : {"smollm2", "llama2_spm", "qwen2_small"}) {
        const GgufTokenizer& t = fixture_tokenizer(name);
        for (const auto& c : cases()["cases"]) {
            if (c["gguf"] != name)
                continue;
            const auto ids = c["ids"].get<std::vector<TokenId>>();
            for (bool skip : {false, true}) {
                std::string streamed;
                IncrementalDecoder decoder(t, skip, [&](std::string_view piece) { streamed += piece; });
                for (TokenId id : ids)
                    decoder.push(id);
                decoder.flush();
                // These vocabularies do not clean up spaces, so the pieces add up to the whole text.
                QCOMPARE(QString::fromStdString(to_hex(streamed)), QString::fromStdString(to_hex(t.decode(ids, skip))));
            }
        }
    }
}

void TestGgufTokenizer::chat_template_matches_jinja2()
{
    const nlohmann::json& chat = cases()["chat"];
    const ChatTemplate tmpl = chat_template_from_gguf(fixture_metadata("smollm2"), "smollm2.gguf");
    QVERIFY(!tmpl.is_fallback());
    for (auto it = chat["special_tokens"].begin(); it != chat["special_tokens"].end(); ++it)
        QCOMPARE(QString::fromStdString(tmpl.special_tokens.at(it.key())), QString::fromStdString(it.value().get<std::string>()));
    ChatRequest request;
    request.messages = nlohmann::ordered_json::parse(chat["messages"].dump());
    request.add_generation_prompt = true;
    QCOMPARE(QString::fromStdString(tmpl.apply(request)), QString::fromStdString(chat["rendered"].get<std::string>()));
}

void TestGgufTokenizer::chat_template_fallback()
{
    std::vector<std::string> warnings;
    const Logger log([&](LogLevel, const std::string& m) { warnings.push_back(m); });
    const ChatTemplate tmpl = chat_template_from_gguf(fixture_metadata("qwen2_small"), "qwen2_small.gguf", {}, log);
    QVERIFY(tmpl.is_fallback());
    QCOMPARE(warnings.size(), std::size_t{1});
    QCOMPARE(QString::fromStdString(tmpl.special_tokens.at("eos_token")), QString("<|im_end|>"));
    QVERIFY(throws_with<FormatError>([&] { chat_template_from_gguf(fixture_metadata("smollm2"), "smollm2.gguf", "tool_use"); },
                                     {"smollm2.gguf", "tool_use"}));
}

void TestGgufTokenizer::unknown_model()
{
    QVERIFY(throws_with<UnsupportedError>(
        [&] { GgufTokenizer::from_metadata(with_key("qwen2_small", "tokenizer.ggml.model", string_value("t5")), "x.gguf"); },
        {"x.gguf", "tokenizer.ggml.model", "'t5'"}));
}

void TestGgufTokenizer::unknown_pre()
{
    QVERIFY(throws_with<UnsupportedError>(
        [&] { GgufTokenizer::from_metadata(with_key("qwen2_small", "tokenizer.ggml.pre", string_value("deepseek-llm")), "x.gguf"); },
        {"x.gguf", "tokenizer.ggml.pre", "'deepseek-llm'", "qwen2"}));
}

void TestGgufTokenizer::scores_length_mismatch()
{
    gguf::Value scores = *fixture_metadata("llama2_spm").find("tokenizer.ggml.scores");
    std::get<gguf::Array>(scores.data).pop_back();
    QVERIFY(throws_with<FormatError>(
        [&] { GgufTokenizer::from_metadata(with_key("llama2_spm", "tokenizer.ggml.scores", scores), "x.gguf"); },
        {"x.gguf", "tokenizer.ggml.scores", "32001", "32002"}));
}

void TestGgufTokenizer::token_types_length_mismatch()
{
    gguf::Value types = *fixture_metadata("qwen2_small").find("tokenizer.ggml.token_type");
    std::get<gguf::Array>(types.data).push_back(std::get<gguf::Array>(types.data).back());
    QVERIFY(throws_with<FormatError>(
        [&] { GgufTokenizer::from_metadata(with_key("qwen2_small", "tokenizer.ggml.token_type", types), "x.gguf"); },
        {"x.gguf", "tokenizer.ggml.token_type"}));
}

void TestGgufTokenizer::merge_with_unknown_token()
{
    gguf::Value merges = *fixture_metadata("qwen2_small").find("tokenizer.ggml.merges");
    std::get<gguf::Array>(merges.data)[5] = string_value("Ġzzqq xy");
    QVERIFY(throws_with<FormatError>(
        [&] { GgufTokenizer::from_metadata(with_key("qwen2_small", "tokenizer.ggml.merges", merges), "x.gguf"); },
        {"x.gguf", "tokenizer.ggml.merges", "merge 5", "Ġzzqq"}));
    std::get<gguf::Array>(merges.data)[5] = string_value("nospace");
    QVERIFY(throws_with<FormatError>(
        [&] { GgufTokenizer::from_metadata(with_key("qwen2_small", "tokenizer.ggml.merges", merges), "x.gguf"); },
        {"x.gguf", "tokenizer.ggml.merges[5]", "nospace"}));
}

void TestGgufTokenizer::missing_tokens()
{
    QVERIFY(throws_with<FormatError>(
        [&] { GgufTokenizer::from_metadata(with_key("llama2_spm", "tokenizer.ggml.tokens", std::nullopt), "x.gguf"); },
        {"x.gguf", "tokenizer.ggml.tokens"}));
    QVERIFY(throws_with<FormatError>(
        [&] { GgufTokenizer::from_metadata(with_key("llama2_spm", "tokenizer.ggml.model", std::nullopt), "x.gguf"); },
        {"x.gguf", "tokenizer.ggml.model"}));
}

void TestGgufTokenizer::missing_merges()
{
    QVERIFY(throws_with<FormatError>(
        [&] { GgufTokenizer::from_metadata(with_key("qwen2_small", "tokenizer.ggml.merges", std::nullopt), "x.gguf"); },
        {"x.gguf", "tokenizer.ggml.merges"}));
}

void TestGgufTokenizer::duplicate_token()
{
    gguf::Value tokens = *fixture_metadata("qwen2_small").find("tokenizer.ggml.tokens");
    auto& a = std::get<gguf::Array>(tokens.data);
    a[300] = a[299];
    QVERIFY(throws_with<FormatError>(
        [&] { GgufTokenizer::from_metadata(with_key("qwen2_small", "tokenizer.ggml.tokens", tokens), "x.gguf"); },
        {"x.gguf", "twice", "299", "300"}));
}

void TestGgufTokenizer::wrong_value_type()
{
    gguf::Value number;
    number.type = gguf::ValueType::u32;
    number.data = std::uint64_t{7};
    QVERIFY(throws_with<FormatError>(
        [&] { GgufTokenizer::from_metadata(with_key("qwen2_small", "tokenizer.ggml.pre", number), "x.gguf"); },
        {"tokenizer.ggml.pre", "uint32", "string"}));
}

void TestGgufTokenizer::gguf_file_for_folders()
{
    test::TempDir dir;
    QVERIFY(!gguf_file_for(dir.path()));
    test::write_file(dir.path() / "model.gguf", "GGUF");
    QCOMPARE(QString::fromStdString(gguf_file_for(dir.path()).value_or("").string()),
             QString::fromStdString((dir.path() / "model.gguf").string()));
    test::write_file(dir.path() / "other.gguf", "GGUF");
    QVERIFY(!gguf_file_for(dir.path())); // two: ambiguous
    QCOMPARE(QString::fromStdString(gguf_file_for(dir.path() / "other.gguf").value_or("").string()),
             QString::fromStdString((dir.path() / "other.gguf").string()));
    std::filesystem::remove(dir.path() / "other.gguf");
    test::write_file(dir.path() / "tokenizer.json", "{}");
    QVERIFY(!gguf_file_for(dir.path())); // tokenizer.json wins
}


// 1 MB of the corpus (or the file LAYERWISE_BENCH_TEXT names, for tests/bench/gguf_tokenizer_bench.py),
// encoded without special-token parsing by each vocabulary; prints MB/s and a hash of the ids.
void TestGgufTokenizer::encoding_speed()
{
    std::string text;
    if (const QByteArray file = qgetenv("LAYERWISE_BENCH_TEXT"); !file.isEmpty()) {
        text = test::read_file(file.toStdString());
    } else {
        std::vector<std::string> texts;
        for (const auto& c : cases()["cases"])
            if (c["gguf"] == "smollm2")
                texts.push_back(c["text"].get<std::string>());
        for (std::size_t i = 0; text.size() < (1u << 20); ++i)
            (text += texts[i % texts.size()]) += "\n";
    }
    for (const char* name : {"smollm2", "llama2_spm", "qwen2_small", "llama3_small"}) {
        const GgufTokenizer& t = fixture_tokenizer(name);
        std::vector<double> rates;
        std::vector<TokenId> ids;
        for (int run = 0; run < 5; ++run) {
            const auto t0 = std::chrono::steady_clock::now();
            ids = t.encode(text, false, false);
            const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            rates.push_back(static_cast<double>(text.size()) / 1e6 / s);
        }
        std::sort(rates.begin(), rates.end());
        std::uint64_t hash = 1469598103934665603ull; // FNV-1a over the ids as decimal text
        for (TokenId id : ids)
            for (char c : std::to_string(id) + ",")
                hash = (hash ^ static_cast<unsigned char>(c)) * 1099511628211ull;
        qInfo("bench {\"gguf\": \"%s\", \"bytes\": %zu, \"tokens\": %zu, \"mb_per_s\": %.2f, \"ids_fnv1a\": \"%016llx\"}",
              name, text.size(), ids.size(), rates[2], static_cast<unsigned long long>(hash));
        QVERIFY2(rates[2] >= 2.0, "encoding must reach 2 MB/s on one thread");
    }
}

QTEST_GUILESS_MAIN(TestGgufTokenizer)
#include "tst_gguf_tokenizer.moc"
