// Running models against transformers' logits, under several device maps including disk
// offload; sampling; loading errors and cancellation.
#include "testdata.h"
#include "engine/reference_logits.h"
#include "engine/test_architecture.h"

#include "checkpoint/checkpoint.h"
#include "checkpoint/tensor_view.h"
#include "core/error.h"
#include "inspect.h"
#include "model/arch.h"
#include "plan/plan.h"
#include "plan/device_map.h"
#include "runtime/loaded_model.h"
#include "runtime/runner.h"
#include "runtime/sampling.h"
#include "runtime/session.h"
#include "text/tokenizer.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <QTemporaryDir>
#include <fstream>
#include <functional>

using namespace layerwise;
using layerwise::test::throws_with;
namespace fs = std::filesystem;
using nlohmann::json;

class TestRuntime : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void initTestCase() { at::set_num_threads(usable_cpu_count()); }
    void storiesGoldenTexts_data();
    void storiesGoldenTexts();
    void logitsMatchTransformers_data();
    void logitsMatchTransformers();
    void batchedRowsMatchTransformers_data();
    void batchedRowsMatchTransformers();
    void longropeFactorCount();
    void diskOffloadIsBitIdentical_data();
    void diskOffloadIsBitIdentical();
    void zeroCopyOnCpu();
    void samplingFilters();
    void generationStops();
    void loadErrorsAndCancel();
    void outOfMemoryIsClear();
    void registeredArchitectureRuns();
    void expertsElsewhereMatchTransformers_data();
    void expertsElsewhereMatchTransformers();
    void mxfp4ExpertsMatchTransformers();
    void mxfp4CheckpointErrors();
};

namespace {

std::unique_ptr<LoadedModel> load(const fs::path& folder, std::optional<DType> dtype, const std::string& map,
                                  const fs::path& offload = fs::temp_directory_path())
{
    LoadOptions o;
    o.dtype = dtype;
    o.device_map = parse_device_map(map);
    o.offload_folder = offload;
    return load_model(describe_model(folder.string()), o);
}

} // namespace

void TestRuntime::storiesGoldenTexts_data()
{
    QTest::addColumn<QString>("map");
    QTest::newRow("all in RAM") << R"({"": "cpu"})";
    QTest::newRow("half the layers on disk")
        << R"({"model.embed_tokens": "cpu", "model.layers.0": "cpu", "model.layers.1": "cpu", "model.layers.2": "disk", "model.layers.3": "disk", "model.layers.4": "disk", "model.norm": "cpu", "model.rotary_emb": "cpu", "lm_head": "cpu"})";
    QTest::newRow("all but the embeddings on disk") << R"({"model.embed_tokens": "cpu", "model.layers": "disk", "model.norm": "disk", "model.rotary_emb": "disk", "lm_head": "cpu"})";
}

void TestRuntime::storiesGoldenTexts()
{
    // llama2.c's own greedy outputs for this model (../shared/data/models/stories260K-llama2c).
    // "N positions filled" counts the tokens fed to the model; the token sampled at the last
    // position is printed too, so BOS + 199 fed tokens give 200 generated ones.
    QFETCH(QString, map);
    const fs::path hf = test::shared_data() / "models" / "stories260K";
    const fs::path golden = test::shared_data() / "models" / "stories260K-llama2c";
    const auto tokenizer = text::load_tokenizer(hf);
    test::TempDir offload;
    auto model = load(hf, DType::f32, map.toStdString(), offload.path());
    Runner runner(*model, 256);
    auto rstrip = [](std::string s) {
        while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
            s.pop_back();
        return s;
    };
    auto run = [&](std::vector<std::int64_t> prompt, std::int64_t positions) {
        runner.reset();
        GenerationOptions g;
        g.sampling.greedy = true;
        g.max_new_tokens = positions - static_cast<std::int64_t>(prompt.size()) + 1;
        const GenerationResult r = generate(runner, prompt, g);
        std::vector<text::TokenId> all(prompt.begin(), prompt.end());
        all.insert(all.end(), r.tokens.begin(), r.tokens.end());
        return rstrip(tokenizer->decode(all, /*skip_special_tokens=*/true));
    };
    QCOMPARE(run({1}, 200), rstrip(test::read_file(golden / "expected_greedy_bos_200.txt")));
    const auto zoo = tokenizer->encode("Zoo", true);
    QCOMPARE(zoo.front(), text::TokenId(1)); // BOS
    QCOMPARE(run(std::vector<std::int64_t>(zoo.begin(), zoo.end()), 60), rstrip(test::read_file(golden / "expected_greedy_zoo_60.txt")));
}

void TestRuntime::logitsMatchTransformers_data()
{
    QTest::addColumn<QString>("fixture");
    for (const auto& e : fs::directory_iterator(test::fixtures() / "logits"))
        QTest::newRow(e.path().stem().c_str()) << QString::fromStdString(e.path().string());
}

void TestRuntime::logitsMatchTransformers()
{
    QFETCH(QString, fixture);
    const json ref = test::read_json(fixture.toStdString());
    const DType dtype = *dtype_from_torch_name(ref["dtype"].get<std::string>());
    // float32: the same operations as transformers, to 1e-4. bfloat16: every activation is rounded
    // to 8 significant bits (relative step 2^-8), so two layers of differently fused kernels
    // differ by a few of those steps on logits of magnitude ~1: 3e-2.
    const double tolerance = dtype == DType::f32 ? 1e-4 : 3e-2;
    auto model = load(test::fixtures() / "checkpoints" / ref["checkpoint"].get<std::string>(), dtype, R"({"": "cpu"})");
    // Greedy tokens too in float32 (bfloat16 near-ties may flip).
    test::compare_logits(*model, ref, tolerance, dtype == DType::f32);
}

void TestRuntime::batchedRowsMatchTransformers_data()
{
    QTest::addColumn<QString>("fixture");
    QTest::addColumn<bool>("pooled");
    for (const auto& e : fs::directory_iterator(test::fixtures() / "logits"))
        if (e.path().stem().string().ends_with("-float32"))
            for (const bool pooled : {false, true})
                QTest::newRow((e.path().stem().string() + (pooled ? " pooled" : " separate")).c_str())
                    << QString::fromStdString(e.path().string()) << pooled;
}

void TestRuntime::batchedRowsMatchTransformers()
{
    // Sequences at different positions decoded as rows of one step (each with its own cache and
    // rotary position) give transformers' logits of each sequence alone: float32, 1e-4.
    QFETCH(QString, fixture);
    QFETCH(bool, pooled);
    const json ref = test::read_json(fixture.toStdString());
    auto model = load(test::fixtures() / "checkpoints" / ref["checkpoint"].get<std::string>(), DType::f32, R"({"": "cpu"})");
    test::compare_batched_logits(*model, ref, 1e-4, pooled);
}

void TestRuntime::expertsElsewhereMatchTransformers_data()
{
    QTest::addColumn<QString>("checkpoint");
    QTest::newRow("qwen3_moe") << "qwen3_moe";
    QTest::newRow("mixtral") << "mixtral";
    QTest::newRow("qwen2_moe") << "qwen2_moe";
    QTest::newRow("gpt_oss") << "gpt_oss"; // experts on disk are strided views of transformers' fused tensors
}

void TestRuntime::expertsElsewhereMatchTransformers()
{
    // A mixture of experts whose experts live apart from their blocks: layer 0's all on disk (views
    // of the mapped checkpoint), one expert of layer 1 on disk, the rest in RAM. The blocks run
    // with their experts where they are and give transformers' logits (float32, 1e-4).
    QFETCH(QString, checkpoint);
    const fs::path folder = test::fixtures() / "checkpoints" / checkpoint.toStdString();
    const json ref = test::read_json(test::fixtures() / "logits" / (checkpoint.toStdString() + "-float32.json"));
    ModelDescription d = describe_model(folder.string());
    DeviceMap map = move_experts(d.tree, parse_device_map(R"({"": "cpu"})"), {0}, Device::disk());
    const int expert = d.tree.experts_under(d.tree.no_split_blocks()[1])[2];
    std::size_t expert_tensors = 0; // layer 0's: three linears an expert, with biases for gpt-oss
    for (int e : d.tree.experts_under(d.tree.no_split_blocks()[0]))
        for (const auto& n : d.tree.nodes())
            if (n.name.starts_with(d.tree.nodes()[static_cast<std::size_t>(e)].name + "."))
                expert_tensors += n.tensors.size();
    map = move_module(d.tree, map, d.tree.nodes()[static_cast<std::size_t>(expert)].name, Device::disk());
    QVERIFY(std::any_of(map.begin(), map.end(), [](const auto& e) { return e.first.ends_with("layers.1.mlp.experts.2") ||
                                                                           e.first.ends_with("layers.1.block_sparse_moe.experts.2"); }));
    LoadOptions o;
    o.dtype = DType::f32;
    o.device_map = map;
    o.offload_folder = fs::temp_directory_path();
    auto model = load_model(std::move(d), o);
    QCOMPARE(model->layers[0].home, Device::cpu()); // a block lives where its attention does
    QCOMPARE(model->layers[0].disk_ranges.size(), expert_tensors);
    QVERIFY(expert_tensors >= std::size_t(3 * model->config.num_experts));
    test::compare_logits(*model, ref, 1e-4, true);
}

void TestRuntime::mxfp4ExpertsMatchTransformers()
{
    // gpt-oss's published form: expert weights as MXFP4 codes and scales (`*_blocks`, `*_scales`),
    // read per expert as ggml's MXFP4 blocks. The reference (tests/reference/make_logits.py) runs
    // transformers over the same blocks decoded by its own MXFP4 decoder.
    const fs::path folder = test::fixtures() / "mxfp4" / "gpt_oss-mxfp4";
    const json ref = test::read_json(test::fixtures() / "mxfp4" / "gpt_oss-mxfp4-float32.json");
    ModelDescription d = describe_model(folder.string());
    QVERIFY(d.tree.unused_tensors().empty());
    const Checkpoint& ck = *d.checkpoint;
    // Decoded, each expert's weight is transformers' decoding exactly (FP4 values times powers of
    // two are exact in float32): the nibbles, scales and alternating gate / up rows are in place.
    for (auto it = ref["weights_sample"].begin(); it != ref["weights_sample"].end(); ++it) {
        const TensorEntry* e = ck.find(it.key());
        QVERIFY2(e && e->gguf && e->gguf->hf_mxfp4_scales, it.key().c_str());
        const at::Tensor decoded = tensor_view(ck, *e);
        const at::Tensor expected = test::tensor_of(it.value());
        QVERIFY2(at::equal(decoded.narrow(0, 0, expected.size(0)), expected), it.key().c_str());
    }
    // Held as stored: 17 bytes per 32 weights (16 of codes, 1 of scale), never dequantized.
    const ModuleTensor* gate = d.tree.find_tensor("model.layers.0.mlp.experts.2.gate_proj.weight");
    QVERIFY(gate);
    QCOMPARE(gate->quantized_bytes, std::uint64_t(32 * 64 / 32 * 17));
    auto model = load_model(std::move(d), [] {
        LoadOptions o;
        o.dtype = DType::f32;
        o.device_map = parse_device_map(R"({"": "cpu"})");
        return o;
    }());
    // The expert linears run through the MXFP4 block kernels, which round each activation row to
    // 8 bits per 32 values (Q8_0: a step of 1/127 of a block's largest value) where transformers
    // multiplies in float32. The same rounding emulated inside transformers' experts moves this
    // model's prefill logits (largest magnitude 5.9) by 2.4e-2; 5e-2 allows that twice over, and is
    // still far below what a misplaced nibble or scale does (the weights are checked exactly above).
    test::compare_logits(*model, ref, 5e-2, true);
}

void TestRuntime::mxfp4CheckpointErrors()
{
    // A checkpoint whose MXFP4 codes lack their scales (or the reverse, or a wrong shape) is
    // refused with the tensor named, before anything loads.
    const fs::path folder = test::fixtures() / "mxfp4" / "gpt_oss-mxfp4";
    QTemporaryDir tmp;
    const fs::path bad = tmp.path().toStdString();
    fs::copy_file(folder / "config.json", bad / "config.json");
    const json header = [&] {
        std::ifstream in(folder / "model.safetensors", std::ios::binary);
        std::uint64_t n = 0;
        in.read(reinterpret_cast<char*>(&n), 8);
        std::string text(n, '\0');
        in.read(text.data(), static_cast<std::streamsize>(n));
        return json::parse(text);
    }();
    // Rewrites the safetensors header with `edit` applied, the data as it was.
    auto write_with = [&](const std::function<void(json&)>& edit) {
        json h = header;
        edit(h);
        std::ifstream in(folder / "model.safetensors", std::ios::binary);
        std::uint64_t n = 0;
        in.read(reinterpret_cast<char*>(&n), 8);
        in.seekg(static_cast<std::streamoff>(8 + n));
        const std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        std::string text = h.dump();
        text.append((8 - text.size() % 8) % 8, ' ');
        std::ofstream out(bad / "model.safetensors", std::ios::binary | std::ios::trunc);
        const std::uint64_t size = text.size();
        out.write(reinterpret_cast<const char*>(&size), 8);
        out << text << data;
    };
    // Renamed, not removed: the bytes stay covered (safetensors leaves no holes).
    auto rename = [](json& h, const std::string& from, const std::string& to) {
        h[to] = h[from];
        h.erase(from);
    };
    write_with([&](json& h) { rename(h, "model.layers.1.mlp.experts.down_proj_scales", "model.layers.1.mlp.experts.down_proj_scale"); });
    QVERIFY(throws_with<FormatError>([&] { describe_model(bad.string()); },
                                     {"model.layers.1.mlp.experts.down_proj_blocks", "scales", "missing"}));
    write_with([&](json& h) { rename(h, "model.layers.0.mlp.experts.gate_up_proj_blocks", "model.layers.0.mlp.experts.gate_up_blocks"); });
    QVERIFY(throws_with<FormatError>([&] { describe_model(bad.string()); },
                                     {"model.layers.0.mlp.experts.gate_up_proj_scales", "codes", "missing"}));
    write_with([](json& h) { h["model.layers.0.mlp.experts.down_proj_scales"]["shape"] = {4, 32, 2}; }); // same bytes
    QVERIFY(throws_with<FormatError>([&] { describe_model(bad.string()); },
                                     {"model.layers.0.mlp.experts.down_proj_scales", "[4, 32, 2]", "uint8 [4, 64, 1]"}));
}

void TestRuntime::longropeFactorCount()
{
    // A longrope config whose factors do not cover the rotated dimension pairs: refused when the
    // model is run, naming the field and the count needed.
    test::TempDir dir;
    const fs::path source = test::fixtures() / "checkpoints" / "llama-longrope";
    json config = test::read_json(source / "config.json");
    config["rope_parameters"]["long_factor"] = {1.0, 2.0};
    fs::copy_file(source / "model.safetensors", dir.path() / "model.safetensors");
    std::ofstream(dir.path() / "config.json") << config.dump();
    auto model = load(dir.path(), DType::f32, R"({"": "cpu"})");
    Runner runner(*model, 64);
    QVERIFY(throws_with<FormatError>([&] { runner.forward(at::zeros({1, 20}, at::kLong)); }, {"long_factor", "2 values", "needs 4"}));
}

void TestRuntime::diskOffloadIsBitIdentical_data()
{
    QTest::addColumn<QString>("checkpoint");
    QTest::addColumn<QString>("map");
    QTest::newRow("half the layers on disk") << "llama-f32"
                                             << R"({"model.embed_tokens": "cpu", "model.layers.0": "cpu", "model.layers.1": "disk", "model.norm": "cpu", "model.rotary_emb": "cpu", "lm_head": "cpu"})";
    QTest::newRow("all but embeddings on disk") << "gpt2"
                                                << R"({"transformer.wte": "cpu", "transformer.wpe": "disk", "transformer.h": "disk", "transformer.ln_f": "disk", "lm_head": "cpu"})";
    QTest::newRow("converted dtype on disk") << "mistral-f16" << R"({"model": "disk", "lm_head": "cpu"})";
    QTest::newRow("sharded on disk") << "qwen2-sharded" << R"({"": "disk"})";
}

void TestRuntime::diskOffloadIsBitIdentical()
{
    QFETCH(QString, checkpoint);
    QFETCH(QString, map);
    test::TempDir offload;
    const fs::path folder = test::fixtures() / "checkpoints" / checkpoint.toStdString();
    auto ram = load(folder, DType::f32, R"({"": "cpu"})");
    auto disk = load(folder, DType::f32, map.toStdString(), offload.path());
    std::vector<int> evicted;
    disk->on_layer_state = [&](int layer, LayerState s) {
        if (s == LayerState::evicted)
            evicted.push_back(layer);
    };
    Runner a(*ram, 32), b(*disk, 32);
    const at::Tensor prompt = at::tensor({1, 5, 9, 14, 2}, at::kLong).unsqueeze(0);
    QVERIFY(at::equal(a.forward(prompt, true), b.forward(prompt, true)));
    for (std::int64_t t : {7, 3, 11})
        QVERIFY(at::equal(a.forward(at::tensor({t}, at::kLong).unsqueeze(0)), b.forward(at::tensor({t}, at::kLong).unsqueeze(0))));
    QVERIFY(!evicted.empty()); // disk layers were released after use
    QCOMPARE(disk->hf_device_map().dump(), device_map_to_json(parse_device_map(map.toStdString())).dump());
}

void TestRuntime::zeroCopyOnCpu()
{
    // Same dtype on the CPU: the tensor is the mapping. Another dtype: a converted copy.
    const fs::path folder = test::fixtures() / "checkpoints" / "llama-f32";
    auto same = load(folder, DType::f32, R"({"": "cpu"})");
    const at::Tensor& w = same->layers[0]["mlp.up_proj.weight"];
    const TensorEntry* e = same->checkpoint->find("model.layers.0.mlp.up_proj.weight");
    QCOMPARE(static_cast<const void*>(w.data_ptr()),
             static_cast<const void*>(same->checkpoint->files()[e->file]->data(e->offset, e->size)));
    // ...and already in this process's page tables: the first prompt takes no page faults for it.
    QVERIFY(test::mapped_rss_bytes(folder / "model.safetensors") >= same->checkpoint->tensor_bytes());
    auto converted = load(folder, DType::bf16, R"({"": "cpu"})");
    QCOMPARE(converted->layers[0]["mlp.up_proj.weight"].scalar_type(), at::kBFloat16);
    // Tied weights are one tensor.
    auto tied = load(test::fixtures() / "checkpoints" / "llama31-tied", DType::f32, R"({"": "cpu"})");
    QCOMPARE(tied->global("lm_head.weight").data_ptr(), tied->global("model.embed_tokens.weight").data_ptr());
}

void TestRuntime::samplingFilters()
{
    // Probabilities 0.5, 0.25, 0.125, 0.0625, 0.0625 (as logits).
    const at::Tensor logits = at::log(at::tensor({0.5f, 0.25f, 0.125f, 0.0625f, 0.0625f}));
    SamplingOptions o;
    o.top_k = 2;
    at::Tensor p = sampling_distribution(logits, {}, o);
    QVERIFY(at::allclose(p, at::tensor({2.0f / 3, 1.0f / 3, 0.f, 0.f, 0.f}), 1e-5, 1e-6));
    o = {};
    o.top_p = 0.7; // 0.5 + 0.25 reaches 0.7
    p = sampling_distribution(logits, {}, o);
    QVERIFY(at::allclose(p, at::tensor({2.0f / 3, 1.0f / 3, 0.f, 0.f, 0.f}), 1e-5, 1e-6));
    o = {};
    o.min_p = 0.2; // keep p >= 0.1
    p = sampling_distribution(logits, {}, o);
    QVERIFY(at::allclose(p, at::tensor({0.5f / 0.875f, 0.25f / 0.875f, 0.125f / 0.875f, 0.f, 0.f}), 1e-5, 1e-6));
    o = {};
    o.temperature = 0.5; // squares the probabilities, renormalised
    p = sampling_distribution(logits, {}, o);
    const double z = 0.25 + 0.0625 + 0.015625 + 2 * 0.00390625;
    QVERIFY(std::abs(p[0].item<double>() - 0.25 / z) < 1e-5);
    // Repetition penalty as transformers applies it: positive logits divided, negative multiplied.
    o = {};
    o.repetition_penalty = 2.0;
    const at::Tensor raw = at::tensor({2.0f, -1.0f, 0.5f});
    const at::Tensor penalised = sampling_distribution(raw, {0, 1}, o);
    QVERIFY(at::allclose(penalised, at::softmax(at::tensor({1.0f, -2.0f, 0.5f}), 0), 1e-5, 1e-6));
    // Seeded draws repeat; greedy is the argmax.
    o = {};
    o.seed = 42;
    Sampler s1(o), s2(o);
    for (int i = 0; i < 20; ++i)
        QCOMPARE(s1.next(logits, {}), s2.next(logits, {}));
    o.greedy = true;
    QCOMPARE(Sampler(o).next(logits, {}), std::int64_t(0));
    QVERIFY(throws_with<PlanError>([] { SamplingOptions b; b.top_p = 0; Sampler s(b); }, {"top-p"}));
}

void TestRuntime::generationStops()
{
    const fs::path folder = test::fixtures() / "checkpoints" / "llama-f32";
    auto model = load(folder, DType::f32, R"({"": "cpu"})");
    const json ref = test::read_json(test::fixtures() / "logits" / "llama-f32-float32.json");
    const auto prompt = ref["prompt"].get<std::vector<std::int64_t>>();
    const auto expected = ref["tokens"].get<std::vector<std::int64_t>>();
    GenerationOptions g;
    g.sampling.greedy = true;
    g.max_new_tokens = 20;
    g.prefill_chunk = 3; // chunked prefill gives the same tokens
    Runner runner(*model, 64);
    GenerationResult r = generate(runner, prompt, g);
    QCOMPARE(r.tokens, expected);
    QCOMPARE(r.stop_reason, std::string("max_new_tokens"));
    QVERIFY(r.ttft_s > 0 && r.decode_tokens_per_s > 0);
    // An EOS id stops at its first occurrence; the callback and the stop flag stop too.
    runner.reset();
    g.eos_ids = {expected[4]};
    r = generate(runner, prompt, g);
    QCOMPARE(r.stop_reason, std::string("eos"));
    QCOMPARE(r.tokens.size(), std::size_t(5));
    runner.reset();
    g.eos_ids.clear();
    int seen = 0;
    r = generate(runner, prompt, g, [&](std::int64_t) { return ++seen < 3; });
    QCOMPARE(r.stop_reason, std::string("stopped"));
    QCOMPARE(r.tokens.size(), std::size_t(3));
    runner.reset();
    std::atomic<bool> stop{true};
    r = generate(runner, prompt, g, {}, &stop);
    QCOMPARE(r.stop_reason, std::string("stopped"));
    // A context too small for the prompt is an error, not a crash.
    Runner tiny(*model, 4);
    QVERIFY(throws_with<PlanError>([&] { generate(tiny, prompt, g); }, {"context holds 4"}));
    QVERIFY(throws_with<PlanError>([&] { generate(runner, {999}, g); }, {"outside the vocabulary"}));
}

void TestRuntime::loadErrorsAndCancel()
{
    QVERIFY(throws_with<UnsupportedError>([] { load_model(describe_model("gpt2"), LoadOptions{}); }, {"can be planned, not loaded"}));
    LoadOptions o;
    o.device_map = parse_device_map(R"({"model": "cpu"})"); // lm_head is not tied here: it needs a device
    QVERIFY(throws_with<PlanError>([&] { load_model(describe_model((test::fixtures() / "checkpoints" / "llama-f32").string()), o); },
                                   {"lm_head.weight", "no device"}));
    const fs::path folder = test::fixtures() / "checkpoints" / "gpt2";
    o.device_map = parse_device_map(R"({"": "cpu"})");
    int calls = 0;
    o.progress = [&](const Progress& p) {
        ++calls;
        return p.done < p.total / 2;
    };
    QVERIFY(throws_with<CancelledError>([&] { load_model(describe_model(folder.string()), o); }, {"cancelled"}));
    QVERIFY(calls > 2);
    // An offload folder that cannot be written: a clear error, no half-written file.
    o.progress = {};
    o.dtype = DType::bf16;
    o.device_map = parse_device_map(R"({"": "disk"})");
    o.offload_folder = "/proc/layerwise-cannot-write-here";
    QVERIFY(throws_with<IoError>([&] { load_model(describe_model(folder.string()), o); }, {"cannot create"}));
}

void TestRuntime::outOfMemoryIsClear()
{
    // A KV cache of 2^50 bytes (more than any x86-64 address space maps): LibTorch's allocator
    // refuses it, and the engine says what did not fit, where, and what to do, instead of
    // passing LibTorch's message on. (Until libsentencepiece's FLAGS_minloglevel was given room
    // of its own, core/error.cpp, this allocation failure aborted the process.)
    auto model = load(test::fixtures() / "checkpoints" / "llama-f32", DType::f32, R"({"": "cpu"})");
    const ModelConfig& c = model->config;
    const std::int64_t context = (std::int64_t(1) << 50) / (c.num_kv_heads * c.head_dim * 4);
    QString message;
    QVERIFY(throws_with<OutOfMemoryError>([&] { Runner r(*model, context); },
                                          {"KV cache of layer 0", "does not fit in the memory left on cpu",
                                           "you tried to allocate 1125899906842624 bytes", "free there now",
                                           "--max-memory", "shorter context"},
                                          &message));
    qInfo("%s", qPrintable(message));
    Runner fits(*model, 16); // and the model still runs
    QCOMPARE(fits.forward(at::tensor({1, 5}, at::kLong).unsqueeze(0)).size(-1), c.vocab_size);
}

void TestRuntime::registeredArchitectureRuns()
{
    // An architecture outside the engine's table (tests/engine/test_architecture.cpp) is read,
    // planned, loaded and run like a built-in one. Its weights and config are those of the Qwen3
    // fixture under the new model_type, so transformers' Qwen3 logits are its reference.
    const std::string type = test::register_test_architecture();
    QVERIFY(find_architecture(type));
    QVERIFY(supported_arch_list().find(type) != std::string::npos);
    QVERIFY(supported_gguf_list().find(type) == std::string::npos); // no GGUF form
    test::TempDir tmp;
    const fs::path source = test::fixtures() / "checkpoints" / "qwen3-bf16";
    fs::copy_file(source / "model.safetensors", tmp.path() / "model.safetensors");
    json config = test::read_json(source / "config.json");
    config["model_type"] = type;
    config["architectures"] = {"TestQkNormLlamaForCausalLM"};
    test::write_file(tmp.path() / "config.json", config.dump(2));

    ModelDescription d = describe_model(tmp.path().string());
    QCOMPARE(d.config.model_type, type);
    QCOMPARE(d.tree.no_split_class(), std::string("TestQkNormLlamaDecoderLayer"));
    QVERIFY(d.tree.find_tensor("model.layers.1.self_attn.k_norm.weight"));
    DeviceInfo cpu;
    cpu.id = Device::cpu();
    cpu.name = "CPU";
    cpu.total_bytes = cpu.available_bytes = std::uint64_t(1) << 34;
    cpu.bandwidth = 5e10;
    cpu.flops = 1e12;
    PlanRequest request;
    request.devices = {cpu};
    request.context = 64;
    request.weights.dtype = DType::f32;
    const Plan plan = make_plan(d.tree, d.config, request);
    QVERIFY(plan.verdict != Verdict::does_not_fit);
    QCOMPARE(plan.device_map.size(), std::size_t{1}); // everything on the CPU

    LoadOptions o;
    o.dtype = DType::f32;
    o.device_map = plan.device_map;
    o.offload_folder = tmp.path();
    auto model = load_model(std::move(d), o);
    const json ref = test::read_json(test::fixtures() / "logits" / "qwen3-bf16-float32.json");
    test::compare_logits(*model, ref, 1e-4, true); // float32: transformers' operations, to 1e-4 (logitsMatchTransformers)
}

QTEST_GUILESS_MAIN(TestRuntime)
#include "tst_runtime.moc"
