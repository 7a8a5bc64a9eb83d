// Pipelines across processes (api/remote.h): `layerwise worker` processes on 127.0.0.1 run a
// share of a model's layers for a coordinator, which must give the single-process output; a
// wrong token is refused; a worker killed mid-generation is a RemoteError naming it, within the
// timeout, and the coordinator stays usable. Also SHA-256 / HMAC-SHA256 on the standards' vectors.
#include "testdata.h"
#include "worker_process.h"

#include "api/layerwise.h"
#include "api/remote.h"
#include "remote/sha256.h"
#include "remote/stage_link.h"

#include <QProcess>
#include <nlohmann/json.hpp>
#include <QRegularExpression>
#include <QtTest>
#include <chrono>
#include <thread>

using namespace layerwise;
using layerwise::test::throws_with;
namespace fs = std::filesystem;

class TestRemote : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void sha256Vectors();
    void addresses();
    void pipelineMatchesOneProcess_data();
    void pipelineMatchesOneProcess();
    void storiesGoldenOverThreeProcesses();
    void wrongTokenIsRefused();
    void deadWorkerIsAnErrorNotAHang();
    void plannedSplitFromTheCommandLine();
    void chatOffersToPlanAgain();
    void loadingCanBeCancelledWhileAWorkerLoads();
    void batchOverAPipeline();
};

namespace {

using test::Worker;

struct Run {
    std::vector<std::int64_t> tokens;
    std::string error;
};

// Float32 on this machine's CPU, 256 positions, the layers split with `stages`.
SessionOptions pipeline_options(const fs::path& offload, const std::vector<RemoteStage>& stages, const std::string& token,
                                std::chrono::milliseconds timeout)
{
    SessionOptions o;
    o.dtype = DType::f32;
    o.device_map = parse_device_map(R"({"": "cpu"})");
    o.offload_folder = offload;
    o.context = 256;
    o.require_tokenizer = false;
    o.remote_stages = stages;
    o.remote_token = token;
    o.remote_timeout = timeout;
    return o;
}

// Greedy tokens of `model` from `prompt`, the layers split with `stages`.
Run greedy(const fs::path& model, const std::vector<std::int64_t>& prompt, std::int64_t n, const std::vector<RemoteStage>& stages,
           const std::string& token, std::chrono::milliseconds timeout = std::chrono::seconds(30))
{
    test::TempDir offload;
    const SessionOptions o = pipeline_options(offload.path(), stages, token, timeout);
    Run r;
    try {
        auto session = Session::load(Model::open(model.string()), o);
        GenerationOptions g;
        g.sampling.greedy = true;
        g.max_new_tokens = n;
        r.tokens = session->generate(prompt, g).tokens;
    } catch (const RemoteError& e) {
        r.error = e.what();
    }
    return r;
}

} // namespace

void TestRemote::sha256Vectors()
{
    // FIPS 180-4 examples and RFC 4231's HMAC-SHA256 test cases 1, 2 and 6.
    using remote::hex;
    QCOMPARE(hex(remote::sha256("")), std::string("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
    QCOMPARE(hex(remote::sha256("abc")), std::string("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
    QCOMPARE(hex(remote::sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
             std::string("248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"));
    QCOMPARE(hex(remote::sha256(std::string(1000000, 'a'))),
             std::string("cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"));
    QCOMPARE(hex(remote::hmac_sha256(std::string(20, '\x0b'), "Hi There")),
             std::string("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"));
    QCOMPARE(hex(remote::hmac_sha256("Jefe", "what do ya want for nothing?")),
             std::string("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"));
    QCOMPARE(hex(remote::hmac_sha256(std::string(131, '\xaa'), "Test Using Larger Than Block-Size Key - Hash Key First")),
             std::string("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"));
    // The same digests from data given in parts of any size (a message's header, then its payload).
    remote::Sha256 parts;
    for (std::size_t n = 0, size = 1; n < 1000000; n += size, size = size * 7 % 1000 + 1)
        parts.update(std::string(std::min<std::size_t>(size, 1000000 - n), 'a'));
    QCOMPARE(hex(parts.finish()), std::string("cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"));
    QCOMPARE(hex(remote::hmac_sha256("Jefe", {"what do ya ", "", "want for nothing?"})),
             std::string("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"));
    QVERIFY(remote::same_digest("abc", "abc"));
    QVERIFY(!remote::same_digest("abc", "abd"));
    QVERIFY(!remote::same_digest("abc", "abcd"));
}

void TestRemote::addresses()
{
    QCOMPARE(remote::parse_address("127.0.0.1:7070"), (std::pair<std::string, std::uint16_t>{"127.0.0.1", 7070}));
    QCOMPARE(remote::parse_address("[::1]:80"), (std::pair<std::string, std::uint16_t>{"::1", 80}));
    for (const char* bad : {"host", ":7070", "host:"})
        QVERIFY2(throws_with<FormatError>([&] { remote::parse_address(bad); }, {bad, "HOST:PORT"}), bad);
    for (const char* bad : {"host:70000", "host:7x"})
        QVERIFY2(throws_with<FormatError>([&] { remote::parse_address(bad); }, {bad, "port must be a number"}), bad);
    // Even stages: this machine first, then each host in order; never more stages than layers.
    const auto stages = even_stages(5, {"a:1", "b:2"});
    QCOMPARE(stages.size(), std::size_t(2));
    QCOMPARE(stages[0].first, std::int64_t(1));
    QCOMPARE(stages[0].end, std::int64_t(3));
    QCOMPARE(stages[1].first, std::int64_t(3));
    QCOMPARE(stages[1].end, std::int64_t(5));
    QVERIFY(throws_with<PlanError>([] { even_stages(2, {"a:1", "b:2"}); }, {"2 decoder layers", "fewer"}));
    // A worker needs a token; an address it cannot bind is an IoError saying so.
    std::atomic<bool> stop{true};
    QVERIFY(throws_with<FormatError>([&] { run_worker({"127.0.0.1:0", "", {}}, stop); }, {"token"}));
    QVERIFY(throws_with<IoError>([&] { run_worker({"192.0.2.1:7070", "t", {}}, stop); }, {"cannot listen on 192.0.2.1:7070"}));
    // Nobody listening: a RemoteError naming the address, not a hang.
    QVERIFY(throws_with<RemoteError>([] { describe_machine("127.0.0.1:1", "t", "host2", std::chrono::seconds(2)); },
                                     {"127.0.0.1:1", "layerwise worker"}));
}

void TestRemote::pipelineMatchesOneProcess_data()
{
    QTest::addColumn<QString>("model");
    QTest::newRow("stories260K") << QString::fromStdString((test::shared_data() / "models" / "stories260K").string());
    QTest::newRow("GGUF Q8_0 llama") << QString::fromStdString((test::fixtures() / "gguf_llamacpp" / "tiny-llama-q8_0.gguf").string());
}

void TestRemote::pipelineMatchesOneProcess()
{
    // The same greedy tokens, one process or the layers split with a worker process; the worker
    // reports its devices.
    QFETCH(QString, model);
    Worker worker("secret");
    QVERIFY(!worker.address.empty());
    const std::vector<std::int64_t> prompt{1, 40, 77, 150, 9, 230};
    const Run alone = greedy(model.toStdString(), prompt, 40, {}, "");
    QVERIFY(alone.error.empty());
    const std::int64_t layers = Model::open(model.toStdString()).config().num_layers;
    const Run split = greedy(model.toStdString(), prompt, 40, even_stages(layers, {worker.address}), "secret");
    QVERIFY2(split.error.empty(), split.error.c_str());
    QCOMPARE(split.tokens, alone.tokens);
    // Its machine as the planner sees it: this machine's CPU and disk (the same machine here), and
    // the link measured.
    const Machine m = describe_machine(worker.address, "secret", "host2");
    QCOMPARE(m.address, worker.address);
    QVERIFY(std::any_of(m.devices.begin(), m.devices.end(), [](const DeviceInfo& d) { return d.id == Device::cpu() && d.total_bytes > 0 && d.bandwidth > 0; }));
    QVERIFY(std::any_of(m.devices.begin(), m.devices.end(), [](const DeviceInfo& d) { return d.id == Device::disk(); }));
    QCOMPARE(m.link.source, std::string("measured"));
    QVERIFY(m.link.latency > 0 && m.link.latency < 1.0);
    QVERIFY(m.link.bandwidth > 1e6);
}

void TestRemote::storiesGoldenOverThreeProcesses()
{
    // llama2.c's own greedy continuation of BOS (../shared/data/models/stories260K-llama2c) with
    // the 5 layers over this process and two workers.
    const fs::path hf = test::shared_data() / "models" / "stories260K";
    Worker a("secret"), b("secret");
    QVERIFY(!a.address.empty() && !b.address.empty());
    // BOS and 199 fed tokens: 200 generated (the last position's token is printed too).
    const Run r = greedy(hf, {1}, 200, even_stages(5, {a.address, b.address}), "secret");
    QVERIFY2(r.error.empty(), r.error.c_str());
    const auto tokenizer = Model::open(hf.string()).tokenizer();
    std::vector<text::TokenId> all{1};
    all.insert(all.end(), r.tokens.begin(), r.tokens.end());
    auto rstrip = [](std::string s) {
        while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
            s.pop_back();
        return s;
    };
    QCOMPARE(rstrip(tokenizer->decode(all, true)),
             rstrip(test::read_file(test::shared_data() / "models" / "stories260K-llama2c" / "expected_greedy_bos_200.txt")));
}

void TestRemote::wrongTokenIsRefused()
{
    const fs::path hf = test::shared_data() / "models" / "stories260K";
    Worker worker("right");
    QVERIFY(!worker.address.empty());
    const Run r = greedy(hf, {1}, 5, even_stages(5, {worker.address}), "wrong");
    QVERIFY(r.error.find(worker.address) != std::string::npos);
    QVERIFY2(r.error.find("refused") != std::string::npos && r.error.find("token") != std::string::npos, r.error.c_str());
    // The worker goes on serving: the right token works at once.
    const Run ok = greedy(hf, {1}, 5, even_stages(5, {worker.address}), "right");
    QVERIFY2(ok.error.empty(), ok.error.c_str());
    QCOMPARE(ok.tokens.size(), std::size_t(5));
}

void TestRemote::deadWorkerIsAnErrorNotAHang()
{
    // The worker is killed while the coordinator generates: the next step's call fails with a
    // RemoteError naming the worker well within the timeout, and the coordinator stays usable
    // (the same model loads and runs again on this machine alone).
    const fs::path hf = test::shared_data() / "models" / "stories260K";
    auto worker = std::make_unique<Worker>("secret");
    QVERIFY(!worker->address.empty());
    const std::string address = worker->address;
    test::TempDir offload;
    const SessionOptions o = pipeline_options(offload.path(), even_stages(5, {address}), "secret", std::chrono::seconds(5));
    auto session = Session::load(Model::open(hf.string()), o);
    // This machine holds the KV cache of its own 2 layers only (of 5; 256 positions, 4 KV heads
    // of 8 dimensions, float32 keys and values): the worker keeps the other 3 layers', and says so.
    std::uint64_t kv = 0, kv_worker = 0;
    int layers = 0, layers_worker = 0;
    for (const LoadedFootprint& f : session->footprint()) {
        (f.machine.empty() ? kv : kv_worker) += f.kv_cache_bytes;
        (f.machine.empty() ? layers : layers_worker) += f.layers;
        QVERIFY(f.machine.empty() || f.machine == address);
    }
    QCOMPARE(kv, std::uint64_t(2) * 2 * 256 * 4 * 8 * 4);
    QCOMPARE(kv_worker, std::uint64_t(3) * 2 * 256 * 4 * 8 * 4);
    QCOMPARE(layers, 2);
    QCOMPARE(layers_worker, 3);
    GenerationOptions g;
    g.sampling.greedy = true;
    g.max_new_tokens = 200;
    int steps = 0;
    const auto t0 = std::chrono::steady_clock::now();
    std::string error;
    try {
        session->generate({1}, g, [&](std::int64_t) {
            if (++steps == 10)
                worker.reset(); // killed mid-generation
            return true;
        });
    } catch (const RemoteError& e) {
        error = e.what();
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    QVERIFY2(error.find(address) != std::string::npos, error.c_str());
    QVERIFY(seconds < 5.0 + 3.0);
    QCOMPARE(steps, 10);
    session.reset();
    const Run alone = greedy(hf, {1}, 5, {}, "");
    QVERIFY(alone.error.empty());
    QCOMPARE(alone.tokens.size(), std::size_t(5));
}

void TestRemote::plannedSplitFromTheCommandLine()
{
    // `layerwise generate --host`: the pipeline planner splits the layers. This machine's RAM is
    // limited to 4 MiB (and no disk), room for at most one of stories260K's blocks with their
    // activations: the worker takes the others, as the plan's map says, and the greedy tokens are
    // the single process's.
    const fs::path hf = test::shared_data() / "models" / "stories260K";
    Worker worker("secret");
    QVERIFY(!worker.address.empty());
    const Run alone = greedy(hf, {1}, 40, {}, "");
    QProcess p;
    p.start(QString::fromLocal8Bit(qgetenv("LAYERWISE_BIN")),
            {"generate", QString::fromStdString(hf.string()), "--greedy", "--max-new-tokens", "40", "--context", "256", "--json",
             "--host", QString::fromStdString(worker.address), "--token", "secret", "--max-memory", "cpu=4MiB,disk=0", "--threads", "1"});
    QVERIFY(p.waitForFinished(120000));
    const QByteArray err = p.readAllStandardError();
    QVERIFY2(p.exitCode() == 0, err.constData());
    QVERIFY2(err.contains(QByteArray("on host2 (") + worker.address.c_str() + ")"), err.constData());
    const auto j = nlohmann::json::parse(p.readAllStandardOutput().toStdString());
    QCOMPARE(j["token_ids"].get<std::vector<std::int64_t>>(), alone.tokens);
    // The footprint counts the worker's share as it reports it: its layers and their KV cache
    // (256 positions, 4 KV heads of 8 dimensions, float32 keys and values: 64 KiB a layer); this
    // machine's the others'.
    int here = 0, there = 0;
    std::uint64_t kv_there = 0;
    for (const auto& f : j["footprint"]) {
        const bool remote = f["machine"].get<std::string>() == worker.address;
        (remote ? there : here) += f["layers"].get<int>();
        if (remote)
            kv_there += f["kv_cache_bytes"].get<std::uint64_t>();
    }
    QCOMPARE(here + there, 5);
    QVERIFY(there > 0);
    QCOMPARE(kv_there, std::uint64_t(there) * 2 * 256 * 4 * 8 * 4);
    // With no room anywhere, the plan says so before anything loads.
    QProcess q;
    q.start(QString::fromLocal8Bit(qgetenv("LAYERWISE_BIN")),
            {"generate", QString::fromStdString(hf.string()), "--max-new-tokens", "4", "--context", "256", "--host",
             QString::fromStdString(worker.address), "--token", "secret", "--max-memory", "cpu=1MiB,disk=0"});
    QVERIFY(q.waitForFinished(120000));
    QVERIFY(q.exitCode() != 0);
    const QByteArray why = q.readAllStandardError();
    QVERIFY2(why.contains("does not fit") && why.contains("no split over these 2 machines fits"), why.constData());
}

void TestRemote::chatOffersToPlanAgain()
{
    // `layerwise chat --host`: the worker dies between two questions; the chat says which worker
    // failed, offers to plan again without it, and on "y" loads on this machine alone and answers
    // the question that failed.
    const fs::path hf = test::shared_data() / "models" / "stories260K";
    auto worker = std::make_unique<Worker>("secret");
    QVERIFY(!worker->address.empty());
    const QString address = QString::fromStdString(worker->address);
    QProcess chat;
    chat.setProcessChannelMode(QProcess::MergedChannels);
    chat.start(QString::fromLocal8Bit(qgetenv("LAYERWISE_BIN")),
               {"chat", QString::fromStdString(hf.string()), "--host", address, "--token", "secret", "--split", "even",
                "--max-new-tokens", "8", "--context", "256", "--remote-timeout", "5", "--threads", "1"});
    QString out;
    auto waitFor = [&](const QString& text, int count = 1) {
        const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
        while (out.count(text) < count && std::chrono::steady_clock::now() < until && chat.state() != QProcess::NotRunning) {
            chat.waitForReadyRead(200);
            out += QString::fromLocal8Bit(chat.readAll());
        }
        return out.count(text) >= count;
    };
    QVERIFY2(waitFor("> "), qPrintable(out));
    chat.write("Once upon a time\n");
    QVERIFY2(waitFor(" tokens, "), qPrintable(out));
    worker.reset(); // killed
    chat.write("The cat\n");
    QVERIFY2(waitFor("Plan again without " + address), qPrintable(out));
    QVERIFY2(out.contains("the worker at " + address), qPrintable(out));
    chat.write("y\n");
    QVERIFY2(waitFor(" tokens, ", 2), qPrintable(out));
    QVERIFY(out.contains("planning again over this machine"));
    chat.write("/quit\n");
    QVERIFY(chat.waitForFinished(30000));
    QCOMPARE(chat.exitCode(), 0);
}

void TestRemote::loadingCanBeCancelledWhileAWorkerLoads()
{
    // The workers load their stages while this machine loads its own; the progress callback is
    // still asked while their answers are awaited, and a false there cancels the load (nothing
    // stays loaded here). The worker then serves the next coordinator.
    const fs::path hf = test::shared_data() / "models" / "stories260K";
    Worker worker("secret");
    QVERIFY(!worker.address.empty());
    test::TempDir offload;
    SessionOptions o = pipeline_options(offload.path(), even_stages(5, {worker.address}), "secret", std::chrono::seconds(10));
    std::vector<std::string> items;
    o.progress = [&](const Progress& p) {
        items.push_back(p.item);
        return p.item.find(" on " + worker.address) == std::string::npos;
    };
    QVERIFY(throws_with<CancelledError>([&] { Session::load(Model::open(hf.string()), o); }, {worker.address.c_str(), "load"}));
    QVERIFY(!items.empty());
    QCOMPARE(items.back(), std::string("layers 2-4 on ") + worker.address);
    const Run again = greedy(hf, {1}, 8, even_stages(5, {worker.address}), "secret");
    QVERIFY2(again.error.empty(), again.error.c_str());
    QCOMPARE(again.tokens.size(), std::size_t(8));
}

namespace {

// Greedy answers of three prompts decoded together (Session::batch, the server's batching), the
// layers split with `stages`; over a pipeline in micro-batches or not.
std::vector<std::vector<std::int64_t>> batched(const fs::path& model, const std::vector<RemoteStage>& stages, bool micro_batches = true)
{
    test::TempDir offload;
    SessionOptions o = pipeline_options(offload.path(), stages, "secret", std::chrono::seconds(30));
    o.micro_batches = micro_batches;
    auto session = Session::load(Model::open(model.string()), o);
    const std::vector<std::vector<std::int64_t>> prompts{{1, 40, 77}, {1, 300, 9, 230, 12}, {1}};
    std::vector<std::vector<std::int64_t>> out(prompts.size());
    auto batch = session->batch(3);
    for (std::size_t i = 0; i < prompts.size(); ++i) {
        SequenceRequest r;
        r.prompt = prompts[i];
        r.options.sampling.greedy = true;
        r.options.max_new_tokens = 24 + static_cast<std::int64_t>(i) * 4;
        r.on_done = [&out, i](const GenerationResult& g) { out[i] = g.tokens; };
        batch->join(std::move(r));
    }
    while (batch->step() > 0) {
    }
    return out;
}

} // namespace

void TestRemote::batchOverAPipeline()
{
    // Several sequences decoded together (the server's batches) over a pipeline: the workers keep
    // a cache per sequence of the batch; the answers are those of the batch in one process.
    const fs::path hf = test::shared_data() / "models" / "stories260K";
    Worker worker("secret");
    QVERIFY(!worker.address.empty());
    Worker second("secret");
    QVERIFY(!second.address.empty());
    const auto alone = batched(hf, {});
    // The whole batch through each stage in turn, and in micro-batches (two stages: two micro-
    // batches of the three rows; three stages: three), which keep the machines working at once.
    QCOMPARE(batched(hf, even_stages(5, {worker.address}), false), alone);
    QCOMPARE(batched(hf, even_stages(5, {worker.address})), alone);
    QCOMPARE(batched(hf, even_stages(5, {worker.address, second.address})), alone);
    for (std::size_t i = 0; i < alone.size(); ++i)
        QCOMPARE(alone[i].size(), std::size_t(24 + i * 4));
}

QTEST_GUILESS_MAIN(TestRemote)
#include "tst_remote.moc"
