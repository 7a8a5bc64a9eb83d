// The `layerwise` executable as a user runs it: exit codes, stdout JSON, stderr errors.
#include "testdata.h"

#include <QProcess>

namespace fs = std::filesystem;
using nlohmann::json;

class TestCli : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void defaultChatModel();
    void inspectJsonOnFixtures();
    void inspectTextOnSharedModel();
    void inspectPreset();
    void devicesJson();
    void planJson();
    void planWithCustomMap();
    void generateText();
    void chatSession();
    void benchKernels();
    void errorsGoToStderr_data();
    void errorsGoToStderr();
    void configOnlyFolder();
    void badJsonNamesFileAndPosition();

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

void TestCli::defaultChatModel()
{
    // No model named: generate uses the default chat model, here one named by the environment.
    const auto gguf = layerwise::test::fixtures() / "gguf_llamacpp" / "tiny-llama-f32.gguf";
    QProcess p;
    QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
    env.insert(QStringLiteral("LAYERWISE_DEFAULT_MODEL"), QString::fromStdString(gguf.string()));
    p.setProcessEnvironment(env);
    const QString bin = QString::fromLocal8Bit(qgetenv("LAYERWISE_BIN"));
    p.start(bin, {QStringLiteral("generate"), QStringLiteral("--ids"), QStringLiteral("1,40,77"), QStringLiteral("--greedy"),
                  QStringLiteral("--max-new-tokens"), QStringLiteral("3"), QStringLiteral("--json")});
    QVERIFY(p.waitForFinished(60000));
    QCOMPARE(p.exitCode(), 0);
    QCOMPARE(nlohmann::json::parse(p.readAllStandardOutput().toStdString())["token_ids"].size(), std::size_t(3));
    // ... and without one installed, a clear error.
    env.insert(QStringLiteral("LAYERWISE_DEFAULT_MODEL"), QStringLiteral("/nonexistent/model.gguf"));
    p.setProcessEnvironment(env);
    p.start(bin, {QStringLiteral("chat")});
    QVERIFY(p.waitForFinished(60000));
    QVERIFY(p.exitCode() != 0);
    QVERIFY2(p.readAllStandardError().contains("no default chat model installed"), "missing error message");
}

void TestCli::inspectJsonOnFixtures()
{
    for (const auto& e : fs::directory_iterator(layerwise::test::fixtures() / "checkpoints")) {
        const auto ref = layerwise::test::read_json(e.path() / "reference.json");
        const Result r = run({QStringLiteral("inspect"), QString::fromStdString(e.path().string()), QStringLiteral("--json")});
        QVERIFY2(r.code == 0, r.err.constData());
        const json j = json::parse(r.out.toStdString());
        QCOMPARE(j["architecture"].get<std::string>(), ref["class"].get<std::string>());
        QCOMPARE(j["parameters"].get<std::uint64_t>(), ref["num_parameters"].get<std::uint64_t>());
        // transformers 5 keeps an original_inv_freq copy beside each inv_freq; the 4.x references
        // (the mixtures of experts', see tst_checkpoint) have none.
        std::uint64_t footprint = ref["memory_footprint"].get<std::uint64_t>();
        // Qwen2-MoE's 4.x attention keeps an unused rotary embedding of its own (5.x has none).
        if (ref["transformers"].get<std::string>().starts_with("4."))
            for (const auto& b : ref["buffers"]) {
                const std::string name = b[0].get<std::string>();
                if (name.find(".self_attn.rotary_emb") != std::string::npos)
                    footprint -= b[1][0].get<std::uint64_t>() * 4;
                else if (name.ends_with("rotary_emb.inv_freq"))
                    footprint += b[1][0].get<std::uint64_t>() * 4;
            }
        QCOMPARE(j["bytes"]["checkpoint"].get<std::uint64_t>(), footprint);
        for (const char* k : {"float32", "bfloat16", "float16", "int8", "int4"})
            QVERIFY(j["bytes"][k].is_number_unsigned());
        QCOMPARE(j["num_layers"].get<int>(), static_cast<int>(std::count_if(
            ref["modules"].begin(), ref["modules"].end(),
            [&](const json& m) { return m[1] == ref["no_split_modules"][0]; })));
        QVERIFY(j["largest_layer_bytes"].get<std::uint64_t>() > 0);
        QCOMPARE(j["modules"]["bytes"].get<std::uint64_t>(), footprint);
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

void TestCli::devicesJson()
{
    const Result r = run({QStringLiteral("devices"), QStringLiteral("--json"), QStringLiteral("--no-probe"),
                          QStringLiteral("--device"), QStringLiteral("cuda:1=RTX-4090")});
    QVERIFY2(r.code == 0, r.err.constData());
    const json j = json::parse(r.out.toStdString());
    bool cpu = false, gpu = false, disk = false;
    for (const auto& d : j) {
        cpu = cpu || d["device"] == "cpu";
        disk = disk || d["device"] == "disk";
        if (d["device"] == "cuda:1") {
            gpu = true;
            QCOMPARE(d["total_bytes"].get<std::uint64_t>(), std::uint64_t(24) << 30);
            QVERIFY(d["hypothetical"].get<bool>());
            QCOMPARE(d["bandwidth_bytes_per_s"].get<double>(), 1008e9);
        }
        if (d["device"] == "cpu")
            QVERIFY(d["total_bytes"].get<std::uint64_t>() > 0 && d["cores"].get<int>() > 0);
    }
    QVERIFY(cpu && gpu && disk);
}

void TestCli::planJson()
{
    const Result r = run({QStringLiteral("plan"), QStringLiteral("Llama-3.1-8B"), QStringLiteral("--no-probe"),
                          QStringLiteral("--no-real-gpus"), QStringLiteral("--device"), QStringLiteral("cuda:0=RTX-4090"),
                          QStringLiteral("--device"), QStringLiteral("cpu=64GiB"), QStringLiteral("--context"),
                          QStringLiteral("8192"), QStringLiteral("--json")});
    QVERIFY2(r.code == 0, r.err.constData());
    const json j = json::parse(r.out.toStdString());
    QCOMPARE(j["verdict"].get<std::string>(), std::string("fits_on_gpu"));
    QCOMPARE(j["device_map"].dump(), std::string(R"({"":0})"));
    const json& gpu = j["devices"][0];
    for (const char* k : {"limit_bytes", "weights_bytes", "kv_cache_bytes", "activation_bytes", "overhead_bytes"})
        QVERIFY2(gpu.contains(k), k);
    QCOMPARE(gpu["kv_cache_bytes"].get<std::int64_t>(), std::int64_t(1) << 30); // 128 KiB per token x 8192
    QVERIFY(j["estimate"]["decode_tokens_per_s"].get<double>() > 10);
    QVERIFY(j["estimate"]["prefill_tokens_per_s"].get<double>() > 100);

    // accelerate's map for the same machine, and a verdict that does not fit: exit code 3.
    const Result acc = run({QStringLiteral("plan"), QStringLiteral("Llama-3.1-70B"), QStringLiteral("--no-probe"),
                            QStringLiteral("--no-real-gpus"), QStringLiteral("--device"), QStringLiteral("cuda:0=RTX-4090"),
                            QStringLiteral("--device"), QStringLiteral("cpu=64GiB"), QStringLiteral("--device"),
                            QStringLiteral("disk=10GB"), QStringLiteral("--accelerate"), QStringLiteral("--json")});
    QCOMPARE(acc.code, 3);
    const json a = json::parse(acc.out.toStdString());
    QCOMPARE(a["mode"].get<std::string>(), std::string("accelerate auto"));
    QCOMPARE(a["verdict"].get<std::string>(), std::string("does_not_fit"));
}

void TestCli::planWithCustomMap()
{
    layerwise::test::TempDir tmp;
    const auto map = tmp.path() / "map.txt";
    layerwise::test::write_file(map, "{'transformer.wte': 0, 'transformer.wpe': 0, 'transformer.h': 'cpu', 'transformer.ln_f': 0, 'lm_head': 0}");
    const Result r = run({QStringLiteral("plan"), QStringLiteral("gpt2"), QStringLiteral("--no-probe"), QStringLiteral("--no-real-gpus"),
                          QStringLiteral("--device"), QStringLiteral("cuda:0=T4"), QStringLiteral("--map"),
                          QString::fromStdString(map.string()), QStringLiteral("--json")});
    QVERIFY2(r.code == 0, r.err.constData());
    const json j = json::parse(r.out.toStdString());
    QCOMPARE(j["mode"].get<std::string>(), std::string("custom"));
    QCOMPARE(j["verdict"].get<std::string>(), std::string("fits_with_cpu_offload"));
    QCOMPARE(j["layers"].size(), std::size_t(12));
    QCOMPARE(j["layers"][0].get<std::string>(), std::string("cpu"));
    layerwise::test::write_file(map, "{'transformer.h.0.attn': 0}");
    const Result bad = run({QStringLiteral("plan"), QStringLiteral("gpt2"), QStringLiteral("--no-probe"), QStringLiteral("--map"),
                            QString::fromStdString(map.string())});
    QCOMPARE(bad.code, 1);
    QVERIFY2(bad.err.startsWith("error: the device map gives no device to"), bad.err.constData());
}

void TestCli::generateText()
{
    // The golden continuation of "Zoo" (60 positions: BOS and 3 prompt tokens, 57 generated).
    const auto shared = layerwise::test::shared_data();
    const Result r = run({QStringLiteral("generate"), QString::fromStdString((shared / "models" / "stories260K").string()),
                          QStringLiteral("--prompt"), QStringLiteral("Zoo"), QStringLiteral("--greedy"),
                          QStringLiteral("--max-new-tokens"), QStringLiteral("57"), QStringLiteral("--json")});
    QVERIFY2(r.code == 0, r.err.constData());
    const json j = json::parse(r.out.toStdString());
    std::string golden = layerwise::test::read_file(shared / "models" / "stories260K-llama2c" / "expected_greedy_zoo_60.txt");
    while (!golden.empty() && std::isspace(static_cast<unsigned char>(golden.back())))
        golden.pop_back();
    std::string text = "Zoo " + j["text"].get<std::string>();
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())))
        text.pop_back();
    QCOMPARE(text, golden);
    QCOMPARE(j["token_ids"].size(), std::size_t(57));
    QVERIFY(j["decode_tokens_per_s"].get<double>() > 0);
    QCOMPARE(j["device_map"].dump(), std::string(R"({"":"cpu"})"));
}

void TestCli::chatSession()
{
    layerwise::test::TempDir tmp;
    const auto saved = tmp.path() / "conversation.json";
    QProcess p;
    p.start(QString::fromLocal8Bit(qgetenv("LAYERWISE_BIN")),
            {QStringLiteral("chat"), QString::fromStdString((layerwise::test::shared_data() / "models" / "stories260K").string()),
             QStringLiteral("--temperature"), QStringLiteral("0"), QStringLiteral("--max-new-tokens"), QStringLiteral("12")});
    QVERIFY(p.waitForStarted());
    p.write(QByteArray("Once upon a time\n/params\n/save ") + QByteArray::fromStdString(saved.string()) + "\n/reset\n/quit\n");
    p.closeWriteChannel();
    QVERIFY(p.waitForFinished(60000));
    QCOMPARE(p.exitCode(), 0);
    const QByteArray out = p.readAllStandardOutput();
    QVERIFY2(out.contains("12 tokens, max_new_tokens") && out.contains("context ") && out.contains("temperature 0"),
             out.constData());
    QVERIFY(p.readAllStandardError().contains("ChatML")); // the model has no template: the fallback, with a warning
    const json conversation = layerwise::test::read_json(saved);
    QCOMPARE(conversation["messages"].size(), std::size_t(2));
    QCOMPARE(conversation["messages"][0]["content"].get<std::string>(), std::string("Once upon a time"));
    QCOMPARE(conversation["messages"][1]["role"].get<std::string>(), std::string("assistant"));
}

void TestCli::benchKernels()
{
    // The JSON a kernel benchmark reports (the numbers themselves belong to the benchmark).
    const Result r = run({QStringLiteral("bench"), QStringLiteral("kernels"), QStringLiteral("--shapes"), QStringLiteral("16x128"),
                          QStringLiteral("--runs"), QStringLiteral("1"), QStringLiteral("--oracle-runs"), QStringLiteral("1"),
                          QStringLiteral("--levels"), QStringLiteral("scalar,automatic"), QStringLiteral("--rows"), QStringLiteral("2")});
    QVERIFY2(r.code == 0, r.err.constData());
    const json j = json::parse(r.out.toStdString());
    QCOMPARE(j["benchmark"].get<std::string>(), std::string("kernels"));
    QVERIFY(j["memory_read_gb_per_s"].get<double>() > 0);
    QCOMPARE(j["results"].size(), std::size_t(10)); // 5 kernels x 2 levels
    for (const json& e : j["results"]) {
        QCOMPARE(e["shape"].dump(), std::string("[16,128]"));
        for (const char* k : {"median_ms", "gb_per_s", "fraction_of_memory_bandwidth", "oracle_median_ms", "speedup_vs_oracle"})
            QVERIFY2(e[k].get<double>() > 0, k);
    }
    QCOMPARE(j["results"][0]["kernel"].get<std::string>(), std::string("gptq-4bit-g128"));
    // qweight 16 x 16 int32, qzeros 1 x 2 int32, scales 1 x 16 float16, g_idx 128 int32.
    QCOMPARE(j["results"][0]["weight_bytes"].get<std::int64_t>(), std::int64_t(1024 + 8 + 32 + 512));
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
    QTest::newRow("bad limit") << QStringList{QStringLiteral("plan"), QStringLiteral("gpt2"), QStringLiteral("--no-probe"),
                                              QStringLiteral("--max-memory"), QStringLiteral("cpu=20XB")}
                               << "error: max memory for cpu: memory size '20XB' is not in a valid format";
    QTest::newRow("bad device") << QStringList{QStringLiteral("plan"), QStringLiteral("gpt2"), QStringLiteral("--no-probe"),
                                               QStringLiteral("--device"), QStringLiteral("cuda:0=RTX-9999")}
                                << "error: --device cuda:0=RTX-9999: 'RTX-9999' is neither a size";
    QTest::newRow("limit for a missing GPU") << QStringList{QStringLiteral("plan"), QStringLiteral("gpt2"), QStringLiteral("--no-probe"),
                                                            QStringLiteral("--no-real-gpus"), QStringLiteral("--max-memory"),
                                                            QStringLiteral("3=1GB")}
                                             << "error: max memory names cuda:3, which this machine does not have";
    QTest::newRow("bench shape") << QStringList{QStringLiteral("bench"), QStringLiteral("kernels"), QStringLiteral("--shapes"),
                                                QStringLiteral("4096")}
                                 << "error: --shapes takes OUTxIN pairs such as 4096x4096, not '4096'";
    QTest::newRow("bench shape size") << QStringList{QStringLiteral("bench"), QStringLiteral("kernels"), QStringLiteral("--shapes"),
                                                     QStringLiteral("4096x100")}
                                      << "error: --shapes 4096x100: OUT must be a multiple of 8 and IN of 128";
    QTest::newRow("bench level") << QStringList{QStringLiteral("bench"), QStringLiteral("kernels"), QStringLiteral("--levels"),
                                                QStringLiteral("avx9")}
                                 << "error: --levels: 'avx9' is not a level";
    QTest::newRow("bench peer without a model") << QStringList{QStringLiteral("bench"), QStringLiteral("peer"),
                                                               QStringLiteral("/nonexistent/model.gguf")}
                                                << "error: bench peer: '/nonexistent/model.gguf' does not exist";
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

void TestCli::configOnlyFolder()
{
    // A model not downloaded yet: a folder holding only its config.json is described and planned
    // from it, as the config.json given as a file is, and the output says no weights are present.
    layerwise::test::TempDir tmp;
    const auto config = layerwise::test::fixtures() / "checkpoints" / "llama-f32" / "config.json";
    std::filesystem::copy_file(config, tmp.path() / "config.json");
    const QString folder = QString::fromStdString(tmp.path().string());
    const Result text = run({QStringLiteral("inspect"), folder});
    QVERIFY2(text.code == 0, text.err.constData());
    QVERIFY2(text.out.contains("no weights present"), text.out.constData());
    QVERIFY2(text.err.contains("holds config.json but no weights"), text.err.constData());
    const QStringList planArgs{QStringLiteral("--no-probe"), QStringLiteral("--no-real-gpus"), QStringLiteral("--device"),
                               QStringLiteral("cpu=8GiB"), QStringLiteral("--device"), QStringLiteral("disk=100GB"),
                               QStringLiteral("--json")};
    const Result fromFolder = run(QStringList{QStringLiteral("plan"), folder} + planArgs);
    const Result fromFile = run(QStringList{QStringLiteral("plan"), QString::fromStdString(config.string())} + planArgs);
    QVERIFY2(fromFolder.code == 0, fromFolder.err.constData());
    QVERIFY2(fromFile.code == 0, fromFile.err.constData());
    json a = json::parse(fromFolder.out.toStdString()), b = json::parse(fromFile.out.toStdString());
    QCOMPARE(a["weights_present"].get<bool>(), false);
    QCOMPARE(b["weights_present"].get<bool>(), false);
    a.erase("model");
    b.erase("model");
    QCOMPARE(a.dump(), b.dump());
    const Result planText = run({QStringLiteral("plan"), folder, QStringLiteral("--no-probe"), QStringLiteral("--no-real-gpus")});
    QVERIFY2(planText.out.contains("weights   none present: planned from"), planText.out.constData());
}

void TestCli::badJsonNamesFileAndPosition()
{
    // A number that overflows made nlohmann throw out_of_range, which reached the last-resort
    // handler without the file's name; now it is a bad-input error naming the file and place.
    layerwise::test::TempDir tmp;
    layerwise::test::write_file(tmp.path() / "config.json",
                                "{\n  \"model_type\": \"llama\",\n  \"rms_norm_eps\": 1111111E1111111111111111\n}\n");
    const Result r = run({QStringLiteral("inspect"), QString::fromStdString(tmp.path().string())});
    QCOMPARE(r.code, 1);
    const QString err = QString::fromUtf8(r.err);
    QVERIFY2(err.contains(QString::fromStdString((tmp.path() / "config.json").string())), r.err.constData());
    QVERIFY2(err.contains(QStringLiteral("the number '1111111E1111111111111111' is out of range at byte 45 (line 3, column 19)")),
             r.err.constData());
    QVERIFY2(!err.contains(QStringLiteral("[json.exception")), r.err.constData());
}

QTEST_GUILESS_MAIN(TestCli)
#include "tst_cli.moc"
