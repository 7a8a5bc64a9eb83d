// Every JSON file Layerwise reads, fed every kind of error nlohmann::json raises: a syntax error
// (parse_error), a number that overflows a double (out_of_range 406, which nlohmann reports
// without a position), and valid JSON holding a value of the wrong type (type_error). Each must
// come out as a FormatError naming the file and, for the text, the byte, line and column — never
// as a bare nlohmann exception for the CLI's last-resort handler.
#include "testdata.h"

#include "checkpoint/safetensors.h"
#include "checkpoint/sharded_index.h"
#include "core/error.h"
#include "core/json_read.h"
#include "model/config.h"
#include "quant/gptq_config.h"
#include "model/quant_config.h"
#include "runtime/session.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"
#include "text/tokenizer_config.h"

#include <functional>

using namespace layerwise;
using layerwise::test::throws_with;

class TestBadJson : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void positions();
    void everyParser_data();
    void everyParser();
};

namespace {

const char* const overflow = "1111111E1111111111111111";

} // namespace

void TestBadJson::positions()
{
    // The overflowing number: nlohmann gives no position; the helper finds it (line 3, column 9).
    QString m;
    QVERIFY(throws_with<FormatError>([] { parse_json("{\n \"a\": 1,\n \"b\":   1111111E1111111111111111}", "f.json"); },
                                     {"f.json", "the number '1111111E1111111111111111' is out of range", "byte 19",
                                      "line 3, column 9"},
                                     &m));
    // A syntax error: the byte nlohmann names, as a line and column too.
    QVERIFY(throws_with<FormatError>([] { parse_json("[1,\n2,,]", "g.json"); },
                                     {"g.json", "not valid JSON", "byte 6", "line 2, column 3"}));
    QVERIFY(throws_with<FormatError>([] { parse_ordered_json("", "empty.json"); }, {"empty.json", "not valid JSON"}));
    QVERIFY(throws_with<FormatError>([] { parse_json("-1111111E1111111111111111", "n.json"); },
                                     {"n.json", "is out of range at byte 0 (line 1, column 1)"}));
    // A value of the wrong type, read after parsing.
    QVERIFY(throws_with<FormatError>(
        [] {
            const auto j = parse_json(R"({"n": "x"})", "h.json");
            try {
                (void)j.at("n").get<int>();
            } catch (const nlohmann::json::exception& e) {
                throw_json_value_error(e, "h.json", "n");
            }
        },
        {"h.json", "field 'n'", "type must be number, but is string"}));
}

void TestBadJson::everyParser_data()
{
    QTest::addColumn<QString>("parser");
    QTest::addColumn<QString>("document");
    QTest::addColumn<QString>("needle");
    // Documents: @ is replaced by a number that overflows, a syntax error is a truncation.
    const std::vector<std::pair<const char*, const char*>> docs = {
        {"config", R"({"model_type": "llama", "hidden_size": 16, "rms_norm_eps": @})"},
        {"index", R"({"metadata": {"total_size": @}, "weight_map": {"a": "x.safetensors"}})"},
        {"safetensors", R"({"a": {"dtype": "F32", "shape": [@], "data_offsets": [0, 4]}})"},
        {"tokenizer", R"({"model": {"type": "BPE", "dropout": @, "vocab": {"a": 0}, "merges": []}})"},
        {"tokenizer_config", R"({"add_bos_token": true, "model_max_length": @})"},
        {"chat_template", R"({"chat_template": "{{ 1 }}", "model_max_length": @})"},
        {"generation_config", R"({"eos_token_id": 2, "temperature": @})"},
        {"quant_state", R"({"quant_type": "nf4", "blocksize": @, "dtype": "float32", "shape": [2, 64]})"},
        {"gptq_config", R"({"bits": 4, "group_size": 128, "damp_percent": @})"},
    };
    for (const auto& [parser, doc] : docs) {
        std::string overflowed = doc;
        overflowed.replace(overflowed.find('@'), 1, overflow);
        QTest::newRow((std::string(parser) + " overflow").c_str())
            << QString::fromLatin1(parser) << QString::fromStdString(overflowed) << QStringLiteral("is out of range at byte");
        std::string truncated = doc;
        truncated = truncated.substr(0, truncated.find('@')) + "1,";
        QTest::newRow((std::string(parser) + " truncated").c_str())
            << QString::fromLatin1(parser) << QString::fromStdString(truncated) << QStringLiteral("not valid JSON");
    }
    // Valid JSON with values of the wrong type where a parser reads them without a check.
    QTest::newRow("quant_state type") << "quant_state" << R"({"quant_type": "nf4", "blocksize": "64", "dtype": "float32", "shape": [2, 64]})"
                                      << "type must be number";
    QTest::newRow("quantization_config type") << "quantization_config" << R"({"quant_method": 5})" << "not supported";
    QTest::newRow("quantization_config field") << "quantization_config" << R"({"quant_method": "bitsandbytes", "load_in_8bit": "yes"})"
                                               << "field 'quantization_config'";
    QTest::newRow("tokenizer type") << "tokenizer" << R"({"model": {"type": "BPE", "vocab": {"a": "zero"}, "merges": []}})"
                                    << "must be an integer";
}

void TestBadJson::everyParser()
{
    QFETCH(QString, parser);
    QFETCH(QString, document);
    QFETCH(QString, needle);
    const std::string doc = document.toStdString();
    const std::string p = parser.toStdString();
    test::TempDir tmp;
    std::string file;
    std::function<void()> run;
    if (p == "config") {
        file = "config.json";
        run = [&] { parse_model_config(doc, file); };
    } else if (p == "index") {
        file = "model.safetensors.index.json";
        run = [&] { parse_sharded_index(doc, file); };
    } else if (p == "safetensors") {
        file = "model.safetensors";
        run = [&] { parse_safetensors_header(doc, 8 + doc.size() + 4, file); };
    } else if (p == "tokenizer") {
        file = "tokenizer.json";
        run = [&] { text::tokenizer_from_json(doc, file); };
    } else if (p == "tokenizer_config") {
        file = "tokenizer_config.json";
        run = [&] { text::parse_tokenizer_config(doc, file); };
    } else if (p == "chat_template") {
        file = (tmp.path() / "tokenizer_config.json").string();
        test::write_file(file, doc);
        run = [&] { load_chat_template(tmp.path()); };
    } else if (p == "generation_config") {
        file = (tmp.path() / "generation_config.json").string();
        test::write_file(file, doc);
        run = [&] { eos_token_ids(tmp.path(), ModelConfig{}); };
    } else if (p == "quant_state") {
        file = "model.layers.0.mlp.up_proj.weight.quant_state";
        run = [&] { parse_bnb_quant_state(doc, file); };
    } else if (p == "quantization_config") {
        file = "config.json";
        run = [&] { parse_bnb_quantization_config(nlohmann::json::parse(doc), file); };
    } else if (p == "gptq_config") {
        file = (tmp.path() / "quantize_config.json").string();
        test::write_file(file, doc);
        test::write_file(tmp.path() / "config.json", R"({"model_type": "llama"})");
        run = [&] { find_gptq_config(tmp.path()); };
    } else {
        QFAIL("unknown parser");
    }
    QString message;
    QVERIFY(throws_with<Error>(run, {file.c_str(), needle.toUtf8().constData()}, &message));
    QVERIFY2(!message.contains(QStringLiteral("[json.exception")), qPrintable(message));
}

QTEST_GUILESS_MAIN(TestBadJson)
#include "tst_bad_json.moc"
