// The `layerwise` executable as a user runs it: exit codes, stdout JSON, stderr errors.
#include "testdata.h"

#include <QProcess>

namespace fs = std::filesystem;
using nlohmann::json;

class TestCli : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void inspectJsonOnFixtures();
    void inspectTextOnSharedModel();
    void inspectPreset();
    void errorsGoToStderr_data();
    void errorsGoToStderr();

private:
    struct Result {
        int code;
        QByteArray out, err;
    };
    Result run(const QStringList& args)
    {
        QProcess p;
        p.start(QString::fromLocal8Bit(qgetenv("LAYERWISE_BIN")), args);
        if (!p.waitForFinished(60000))
            qFatal("layerwise did not finish");
        return {p.exitStatus() == QProcess::NormalExit ? p.exitCode() : -1, p.readAllStandardOutput(),
                p.readAllStandardError()};
    }
};

void TestCli::inspectJsonOnFixtures()
{
    for (const auto& e : fs::directory_iterator(layerwise::test::fixtures() / "checkpoints")) {
        const auto ref = layerwise::test::read_json(e.path() / "reference.json");
        const Result r = run({QStringLiteral("inspect"), QString::fromStdString(e.path().string()), QStringLiteral("--json")});
        QVERIFY2(r.code == 0, r.err.constData());
        const json j = json::parse(r.out.toStdString());
        QCOMPARE(j["architecture"].get<std::string>(), ref["class"].get<std::string>());
        QCOMPARE(j["parameters"].get<std::uint64_t>(), ref["num_parameters"].get<std::uint64_t>());
        QCOMPARE(j["bytes"]["checkpoint"].get<std::uint64_t>(), ref["memory_footprint"].get<std::uint64_t>());
        for (const char* k : {"float32", "bfloat16", "float16", "int8", "int4"})
            QVERIFY(j["bytes"][k].is_number_unsigned());
        QCOMPARE(j["num_layers"].get<int>(), static_cast<int>(std::count_if(
            ref["modules"].begin(), ref["modules"].end(),
            [&](const json& m) { return m[1] == ref["no_split_modules"][0]; })));
        QVERIFY(j["largest_layer_bytes"].get<std::uint64_t>() > 0);
        QCOMPARE(j["modules"]["bytes"].get<std::uint64_t>(), ref["memory_footprint"].get<std::uint64_t>());
        QVERIFY(j["modules"]["children"].size() >= 2);
        QCOMPARE(j["checkpoint"]["files"].size(), std::size_t(std::count_if(
            ref["files"].begin(), ref["files"].end(), [](const json& f) {
                const auto s = f.get<std::string>();
                return s.ends_with(".safetensors") || s.ends_with(".bin");
            })));
    }
}

void TestCli::inspectTextOnSharedModel()
{
    const auto model = layerwise::test::shared_data() / "models" / "stories260K";
    const Result r = run({QStringLiteral("inspect"), QString::fromStdString(model.string())});
    QCOMPARE(r.code, 0);
    QVERIFY(r.out.contains("parameters    260,032"));
    QVERIFY(r.out.contains("tied          lm_head.weight = model.embed_tokens.weight"));
    QVERIFY(r.out.contains("5 x LlamaDecoderLayer"));
}

void TestCli::inspectPreset()
{
    const Result r = run({QStringLiteral("inspect"), QStringLiteral("Llama-3.1-405B"), QStringLiteral("--json")});
    QCOMPARE(r.code, 0);
    const json j = json::parse(r.out.toStdString());
    QCOMPARE(j["parameters"].get<std::uint64_t>(), std::uint64_t(405853388800)); // transformers on the meta device
    QCOMPARE(j["kind"].get<std::string>(), std::string("preset"));
    QVERIFY(j["checkpoint"].is_null());
    const Result list = run({QStringLiteral("inspect"), QStringLiteral("--presets")});
    QVERIFY(list.out.contains("Qwen3-8B"));
}

void TestCli::errorsGoToStderr_data()
{
    QTest::addColumn<QStringList>("args");
    QTest::addColumn<QString>("needle");
    QTest::newRow("missing") << QStringList{QStringLiteral("inspect"), QStringLiteral("/nonexistent/model")}
                             << "error: /nonexistent/model does not exist";
    QTest::newRow("folder without config")
        << QStringList{QStringLiteral("inspect"),
                       QString::fromStdString((layerwise::test::fixtures() / "formats").string())}
        << "error:";
    QTest::newRow("bad dtype") << QStringList{QStringLiteral("inspect"), QStringLiteral("gpt2"), QStringLiteral("--dtype"),
                                              QStringLiteral("int3")}
                               << "error: --dtype 'int3'";
}

void TestCli::errorsGoToStderr()
{
    QFETCH(QStringList, args);
    QFETCH(QString, needle);
    const Result r = run(args);
    QVERIFY(r.code != 0);
    QVERIFY(r.out.isEmpty());
    QVERIFY2(r.err.startsWith(needle.toUtf8()), r.err.constData());
}

QTEST_GUILESS_MAIN(TestCli)
#include "tst_cli.moc"
