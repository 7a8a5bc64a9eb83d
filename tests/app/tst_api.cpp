// The engine API as the command line and the GUI use it, built like them: this suite sees only
// the API's headers (it links layerwise_engine alone, not the engine's internals). Expected
// values come from outside the engine: llama2.c's greedy outputs, transformers' perplexity
// (tests/reference/make_quant_fixtures.py), the safetensors file's own header.
#include "api/layerwise.h"
#include "testdata.h"

#include <atomic>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

using namespace layerwise;
namespace fs = std::filesystem;

class TestApi : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void openDescribes();
    void openBadInput();
    void planAndMove();
    void sessionGeneratesGolden_data();
    void sessionGeneratesGolden();
    void footprintIsTheCheckpoint();
    void perplexityMatchesTransformers();
    void chatStreamsAndStops();
    void loadCancelledLeavesNothing();
    void presetHasNoWeights();
    void batchDecodesGoldensTogether_data();
    void batchDecodesGoldensTogether();
    void batchBadInputAndStop();
};

namespace {

fs::path stories() { return test::shared_data() / "models" / "stories260K"; }

std::string rstrip(std::string s)
{
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
        s.pop_back();
    return s;
}

DeviceMap mapOf(const std::string& json) { return parse_device_map(json); }

// The placements the golden runs use: everything in RAM, and blocks 2-4 on disk.
void addPlacementRows()
{
    QTest::addColumn<QString>("map");
    QTest::newRow("all in RAM") << R"({"": "cpu"})";
    QTest::newRow("blocks 2-4 on disk")
        << R"({"model.embed_tokens": "cpu", "model.layers.0": "cpu", "model.layers.1": "cpu", "model.layers.2": "disk", "model.layers.3": "disk", "model.layers.4": "disk", "model.norm": "cpu", "model.rotary_emb": "cpu", "lm_head": "cpu"})";
}

// Bytes of tensor data in a safetensors file: the file minus its 8-byte length and its header.
std::uint64_t safetensorsDataBytes(const fs::path& file)
{
    std::ifstream in(file, std::ios::binary);
    std::uint64_t header = 0;
    in.read(reinterpret_cast<char*>(&header), 8);
    return fs::file_size(file) - 8 - header;
}

} // namespace

void TestApi::openDescribes()
{
    const Model m = Model::open(stories().string());
    const nlohmann::json config = test::read_json(stories() / "config.json");
    QCOMPARE(m.config().num_layers, config["num_hidden_layers"].get<std::int64_t>());
    QCOMPARE(m.config().vocab_size, config["vocab_size"].get<std::int64_t>());
    QVERIFY(m.has_weights());
    QCOMPARE(m.folder(), stories());
    QCOMPARE(m.dtype(), DType::f32);
    QCOMPARE(m.saved_quantization(), std::string());
    QCOMPARE(m.eos_ids(), std::vector<std::int64_t>{config["eos_token_id"].get<std::int64_t>()});
    QCOMPARE(m.to_json()["num_layers"].get<std::int64_t>(), config["num_hidden_layers"].get<std::int64_t>());
    const auto tokenizer = m.tokenizer();
    QCOMPARE(tokenizer->encode("Zoo", true).front(), text::TokenId(1)); // BOS, as tokenizer.json says
}

void TestApi::openBadInput()
{
    QString message;
    QVERIFY(test::throws_with<IoError>([] { Model::open("/nonexistent/model-folder"); }, {"/nonexistent/model-folder"}, &message));
    QVERIFY(test::throws_with<IoError>([] { Model::open(""); }, {"no model given"}));
}

void TestApi::planAndMove()
{
    const Model m = Model::open(stories().string());
    PlanRequest r;
    DeviceInfo cpu;
    cpu.id = Device::cpu();
    cpu.total_bytes = cpu.available_bytes = std::int64_t(8) << 30;
    r.devices = apply_device_specs({cpu}, {"disk=100GB"});
    r.context = 256;
    r.weights = weight_format_for(m, "none", m.dtype());
    const Plan plan = plan_model(m, r);
    QVERIFY(plan.verdict != Verdict::does_not_fit);
    for (const Device& d : plan.layer_devices)
        QCOMPARE(d, Device::cpu());
    const auto layers = layer_bytes(m, r.weights);
    QCOMPARE(static_cast<std::int64_t>(layers.size()), m.config().num_layers);
    // Moving two blocks to disk puts exactly them there.
    const Plan moved = plan_with_layers_moved(m, r, plan, 3, 4, Device::disk());
    QCOMPARE(moved.layer_devices[3], Device::disk());
    QCOMPARE(moved.layer_devices[4], Device::disk());
    QCOMPARE(moved.layer_devices[0], Device::cpu());
    // lm_head is tied to the embeddings: moving the embeddings takes it along.
    PlanRequest custom = r;
    const Plan embed = plan_with_module_moved(m, custom, plan, "model.embed_tokens", Device::disk());
    QCOMPARE(custom.strategy, Strategy::custom);
    QCOMPARE(*device_of(embed.device_map, "model.embed_tokens.weight"), Device::disk());
    QVERIFY(test::throws_with<PlanError>([&] { plan_with_layers_moved(m, r, plan, 0, 99, Device::disk()); }, {"99"}));
}

void TestApi::sessionGeneratesGolden_data()
{
    addPlacementRows();
}

void TestApi::sessionGeneratesGolden()
{
    // llama2.c's own greedy output from BOS (../shared/data/models/stories260K-llama2c): BOS and
    // 199 fed tokens give 200 generated ones.
    QFETCH(QString, map);
    test::TempDir offload;
    SessionOptions o;
    o.device_map = mapOf(map.toStdString());
    o.offload_folder = offload.path();
    o.context = 256;
    std::vector<LayerState> seen;
    o.on_layer_state = [&](int, LayerState s) { seen.push_back(s); };
    const auto session = Session::load(Model::open(stories().string()), o);
    GenerationOptions g;
    g.sampling.greedy = true;
    g.max_new_tokens = 200;
    const GenerationResult r = session->generate({1}, g);
    std::vector<text::TokenId> all{1};
    all.insert(all.end(), r.tokens.begin(), r.tokens.end());
    const fs::path golden = test::shared_data() / "models" / "stories260K-llama2c" / "expected_greedy_bos_200.txt";
    QCOMPARE(rstrip(session->tokenizer()->decode(all, true)), rstrip(test::read_file(golden)));
    QCOMPARE(r.stop_reason, std::string("max_new_tokens"));
    QVERIFY(!seen.empty());
    const bool disk = map.contains("disk");
    QCOMPARE(std::count(seen.begin(), seen.end(), LayerState::evicted) > 0, disk);
    // The same session generates the same text again (the cache starts empty each time).
    QCOMPARE(session->generate({1}, g).tokens, r.tokens);
}

void TestApi::footprintIsTheCheckpoint()
{
    // All weights on the CPU as float32 views of the file: the footprint's weight bytes are the
    // safetensors file's tensor data (tied lm_head counted once); the KV cache is
    // 2 (k, v) x layers x kv_heads x context x head_dim x 4 bytes.
    SessionOptions o;
    o.device_map = mapOf(R"({"": "cpu"})");
    o.context = 100;
    const auto session = Session::load(Model::open(stories().string()), o);
    const auto footprint = session->footprint();
    QCOMPARE(footprint.size(), std::size_t(1));
    QCOMPARE(footprint[0].device, Device::cpu());
    QCOMPARE(footprint[0].weight_bytes, safetensorsDataBytes(stories() / "model.safetensors"));
    const nlohmann::json config = test::read_json(stories() / "config.json");
    const std::uint64_t kv = 2ull * config["num_hidden_layers"].get<std::uint64_t>() *
                             config["num_key_value_heads"].get<std::uint64_t>() * 100 * config["head_dim"].get<std::uint64_t>() * 4;
    QCOMPARE(footprint[0].kv_cache_bytes, kv);
    QCOMPARE(footprint[0].layers, 5);
    // One device for everything: transformers reports {"": "cpu"}.
    QCOMPARE(session->hf_device_map(), nlohmann::json({{"", "cpu"}}));
    QCOMPARE(session->layer_devices().size(), std::size_t(5));
}

void TestApi::perplexityMatchesTransformers()
{
    const nlohmann::json ref = test::read_json(test::fixtures() / "quant" / "perplexity.json");
    const Model m = Model::open(stories().string());
    const auto encoded = m.tokenizer()->encode(test::read_file(test::shared_data() / ref["text"].get<std::string>()), true);
    const std::vector<std::int64_t> ids(encoded.begin(), encoded.end());
    SessionOptions o;
    o.device_map = mapOf(R"({"": "cpu"})");
    o.context = ref["context"];
    const auto session = Session::load(Model::open(stories().string()), o);
    int calls = 0;
    const PerplexityResult r = session->perplexity(ids, ref["context"], ref["stride"], [&](const Progress&) { return ++calls > 0; });
    QCOMPARE(r.tokens, ref["tokens"].get<std::int64_t>());
    const double expected = ref["perplexity"];
    // float32 sums in another order than PyTorch's: a relative 1e-5 holds on every CPU tried.
    QVERIFY2(std::abs(r.perplexity - expected) / expected < 1e-5, qPrintable(QString::number(r.perplexity, 'g', 10)));
    QCOMPARE(static_cast<std::int64_t>(calls), r.windows);
    // Cancelling through the progress callback.
    QVERIFY(test::throws_with<CancelledError>([&] { session->perplexity(ids, ref["context"], ref["stride"], [](const Progress&) { return false; }); },
                              {}));
}

void TestApi::chatStreamsAndStops()
{
    SessionOptions o;
    o.device_map = mapOf(R"({"": "cpu"})");
    o.context = 256;
    const auto session = Session::load(Model::open(stories().string()), o);
    Conversation c;
    c.raw = true; // stories260K has no chat template: a raw completion of the text
    c.messages.push_back({"user", "Once upon a time"});
    GenerationOptions g;
    g.sampling.greedy = true;
    g.max_new_tokens = 20;
    std::string streamed;
    const ChatAnswer a = session->chat(c, g, [&](std::string_view piece) {
        streamed += piece;
        return true;
    });
    QCOMPARE(streamed, a.text);
    QVERIFY(!a.text.empty());
    QCOMPARE(a.context_length, std::int64_t(256));
    // The raw prompt's ids are the tokenizer's encoding of the text (with BOS).
    const auto expected = session->tokenizer()->encode("Once upon a time", true);
    QCOMPARE(session->prompt_ids(c), std::vector<std::int64_t>(expected.begin(), expected.end()));
    // The same answer from the generation API.
    const GenerationResult r = session->generate(session->prompt_ids(c), g);
    QCOMPARE(r.tokens, a.generation.tokens);
    // A raised stop flag ends the answer at once.
    std::atomic<bool> stop{true};
    session->reset();
    const ChatAnswer stopped = session->chat(c, g, {}, &stop);
    QCOMPARE(stopped.generation.stop_reason, std::string("stopped"));
    QVERIFY(stopped.generation.tokens.size() <= 1);
}

void TestApi::loadCancelledLeavesNothing()
{
    SessionOptions o;
    o.device_map = mapOf(R"({"": "cpu"})");
    o.progress = [](const Progress&) { return false; };
    QVERIFY(test::throws_with<CancelledError>([&] { Session::load(Model::open(stories().string()), o); }, {}));
    // A map that names no module of this model is refused before anything loads.
    o.progress = {};
    o.device_map = mapOf(R"({"transformer.h": "cpu"})");
    QVERIFY(test::throws_with<PlanError>([&] { Session::load(Model::open(stories().string()), o); }, {"transformer.h"}));
}

void TestApi::presetHasNoWeights()
{
    const auto presets = list_presets();
    QVERIFY(!presets.empty());
    Model m = Model::open(presets.front().name);
    QVERIFY(!m.has_weights());
    QVERIFY(m.folder().empty());
    SessionOptions o;
    QVERIFY(test::throws_with<UnsupportedError>([&] { Session::load(std::move(m), o); }, {"no weights"}));
}

void TestApi::batchDecodesGoldensTogether_data()
{
    addPlacementRows();
}

void TestApi::batchDecodesGoldensTogether()
{
    // Continuous batching against llama2.c's greedy outputs: "Zoo" (60 steps) and BOS (200)
    // decode together; a second BOS sequence joins while they run; after "Zoo" leaves, a new
    // "Zoo" takes its slot and reuses its cached prompt. Each must still give its golden text,
    // and the decoder blocks must run once per step for all rows, not once per sequence.
    QFETCH(QString, map);
    test::TempDir offload;
    SessionOptions o;
    o.device_map = mapOf(map.toStdString());
    o.offload_folder = offload.path();
    o.context = 256;
    std::atomic<int> block0_runs{0};
    o.on_layer_state = [&](int layer, LayerState s) {
        if (layer == 0 && s == LayerState::computing)
            ++block0_runs;
    };
    const auto session = Session::load(Model::open(stories().string()), o);
    const auto batch = session->batch(3);
    QCOMPARE(batch->slots(), std::size_t(3));
    QCOMPARE(batch->context_length(), std::int64_t(256));

    const auto zoo_ids = session->tokenizer()->encode("Zoo", true);
    const std::vector<std::int64_t> zoo(zoo_ids.begin(), zoo_ids.end());
    const std::string bos_golden = rstrip(test::read_file(test::shared_data() / "models" / "stories260K-llama2c" / "expected_greedy_bos_200.txt"));
    const std::string zoo_golden = rstrip(test::read_file(test::shared_data() / "models" / "stories260K-llama2c" / "expected_greedy_zoo_60.txt"));
    std::map<std::string, GenerationResult> done;
    std::map<std::string, std::size_t> streamed;
    const auto request = [&](const std::string& name, const std::vector<std::int64_t>& prompt, std::int64_t positions) {
        SequenceRequest r;
        r.prompt = prompt;
        r.options.sampling.greedy = true;
        // llama2.c's step count: every position emits a token, the prompt's are forced.
        r.options.max_new_tokens = positions - static_cast<std::int64_t>(prompt.size()) + 1;
        r.on_token = [&, name](std::int64_t) { return ++streamed[name], true; };
        r.on_done = [&, name](const GenerationResult& g) { done[name] = g; };
        return r;
    };
    const auto text = [&](const std::vector<std::int64_t>& prompt, const GenerationResult& g) {
        std::vector<text::TokenId> all(prompt.begin(), prompt.end());
        all.insert(all.end(), g.tokens.begin(), g.tokens.end());
        return rstrip(session->tokenizer()->decode(all, true));
    };
    batch->join(request("zoo", zoo, 60));
    batch->join(request("bos", {1}, 200));
    QCOMPARE(batch->free_slots(), std::size_t(1));
    int steps = 0, joins = 2;
    while (batch->step() > 0) {
        ++steps;
        if (steps == 30) {
            batch->join(request("bos late", {1}, 200));
            ++joins;
        }
        if (done.count("zoo") && !done.count("zoo again") && !streamed.count("zoo again")) {
            batch->join(request("zoo again", zoo, 60));
            ++joins;
        }
    }
    QCOMPARE(done.size(), std::size_t(4));
    QCOMPARE(QString::fromStdString(text(zoo, done["zoo"])), QString::fromStdString(zoo_golden));
    QCOMPARE(QString::fromStdString(text(zoo, done["zoo again"])), QString::fromStdString(zoo_golden));
    QCOMPARE(text({1}, done["bos"]), bos_golden);
    QCOMPARE(text({1}, done["bos late"]), bos_golden);
    std::size_t tokens = 0;
    for (const auto& [name, g] : done) {
        QCOMPARE(g.stop_reason, std::string("max_new_tokens"));
        QCOMPARE(streamed[name], g.tokens.size());
        tokens += g.tokens.size();
    }
    // Every step ran the blocks at most twice (a prefill chunk, then one decode for every row).
    QVERIFY2(block0_runs.load() <= steps + joins + 1, qPrintable(QString("%1 runs, %2 steps").arg(block0_runs.load()).arg(steps)));
    QVERIFY(static_cast<std::size_t>(block0_runs.load()) < tokens * 2 / 3);
    QCOMPARE(batch->free_slots(), std::size_t(3));
    // The footprint counts the batch's caches beside the session's own: 4 x the KV formula.
    const nlohmann::json config = test::read_json(stories() / "config.json");
    const std::uint64_t kv = 2ull * config["num_hidden_layers"].get<std::uint64_t>() *
                             config["num_key_value_heads"].get<std::uint64_t>() * 256 * config["head_dim"].get<std::uint64_t>() * 4;
    std::uint64_t held = 0;
    for (const auto& f : session->footprint())
        held += f.kv_cache_bytes;
    QCOMPARE(held, 4 * kv);
}

void TestApi::batchBadInputAndStop()
{
    SessionOptions o;
    o.device_map = mapOf(R"({"": "cpu"})");
    o.context = 64;
    const auto session = Session::load(Model::open(stories().string()), o);
    const auto batch = session->batch(1);
    SequenceRequest r;
    r.options.sampling.greedy = true;
    QVERIFY(test::throws_with<PlanError>([&] { batch->join(r); }, {"empty"}));
    r.prompt = {1, 600};
    QVERIFY(test::throws_with<PlanError>([&] { batch->join(r); }, {"600", "vocabulary"}));
    r.prompt.assign(64, 1);
    QVERIFY(test::throws_with<PlanError>([&] { batch->join(r); }, {"64 tokens", "context"}));
    QCOMPARE(batch->free_slots(), std::size_t(1));
    // A sequence fills the context and ends there; a raised stop flag ends the next one at once.
    GenerationResult result;
    r.prompt = {1};
    r.options.max_new_tokens = 1000;
    r.on_done = [&](const GenerationResult& g) { result = g; };
    batch->join(r);
    QVERIFY(test::throws_with<PlanError>([&] { batch->join(r); }, {"busy"}));
    while (batch->step() > 0) {
    }
    QCOMPARE(result.stop_reason, std::string("context_full"));
    QCOMPARE(result.tokens.size(), std::size_t(64));
    std::atomic<bool> stop{false};
    r.stop = &stop;
    batch->join(r);
    batch->step();
    stop = true;
    QCOMPARE(batch->step(), std::size_t(0));
    QCOMPARE(result.stop_reason, std::string("stopped"));
    QCOMPARE(batch->free_slots(), std::size_t(1));
}

QTEST_GUILESS_MAIN(TestApi)
#include "tst_api.moc"
