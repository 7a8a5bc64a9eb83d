// GPTQ checkpoints against AutoGPTQ 0.7.1 (tests/reference/make_gptq_fixtures.py): the packer
// byte for byte, the unpacker and dequantization bit for bit, the quantize config as AutoGPTQ
// writes and finds it, and a tiny GPTQ llama's logits against transformers under several
// device maps; every class of bad GPTQ input.
#include "testdata.h"
#include "engine/fixture_tensors.h"

#include "checkpoint/safetensors_writer.h"
#include "checkpoint/tensor_view.h"
#include "core/error.h"
#include "inspect.h"
#include "plan/device_map.h"
#include "plan/weight_format.h"
#include "quant/gptq_config.h"
#include "quant/gptq_pack.h"
#include "quant/quant_linear.h"
#include "runtime/loaded_model.h"
#include "runtime/perplexity.h"
#include "runtime/runner.h"
#include "engine/reference_logits.h"
#include "text/tokenizer.h"

#include <ATen/ATen.h>
#include <QCryptographicHash>
#include <QProcess>
#include <cstring>
#include <unistd.h>
#include <nlohmann/json.hpp>

using namespace layerwise;
namespace fs = std::filesystem;
using json = nlohmann::json;

class TestGptq : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void initTestCase();
    void packMatchesAutoGptq_data();
    void packMatchesAutoGptq();
    void rtnPackMatchesAutoGptq_data();
    void rtnPackMatchesAutoGptq();
    void configRoundTrip();
    void configLookup();
    void badConfig_data();
    void badConfig();
    void logitsMatchTransformers_data();
    void logitsMatchTransformers();
    void staysQuantizedUnderEveryMap();
    void perplexityMatchesTransformers();
    void savedSizesAreLoadedSizes_data();
    void savedSizesAreLoadedSizes();
    void badCheckpoint();
    void commandLine();

private:
    json m_pack;
};

namespace {

at::Tensor bytes_tensor(const json& b64, at::ScalarType dtype) { return test::tensor_from_base64(b64.get<std::string>(), dtype); }

std::string sha256(const at::Tensor& t)
{
    const at::Tensor c = t.contiguous();
    const QByteArray bytes(static_cast<const char*>(c.data_ptr()), static_cast<qsizetype>(c.numel() * c.element_size()));
    return QCryptographicHash::hash(bytes, QCryptographicHash::Sha256).toHex().toStdString();
}

// The generated cases of make_gptq_fixtures.py (same formulas).
constexpr std::int64_t kIn = 256, kOut = 64;

at::Tensor codes_of(int bits)
{
    const at::Tensor o = at::arange(kOut, at::kLong).view({-1, 1});
    const at::Tensor i = at::arange(kIn, at::kLong).view({1, -1});
    return (o * 131 + i * 71 + (o * i).remainder(17)).remainder(std::int64_t{1} << bits).to(at::kInt);
}

at::Tensor g_idx_of(int group, bool act_order)
{
    const std::int64_t g = group == -1 ? kIn : group;
    const at::Tensor i = at::arange(kIn, at::kLong);
    const at::Tensor position = act_order ? (i * 37 + 11).remainder(kIn) : i;
    return at::floor_divide(position, g).to(at::kInt);
}

at::Tensor zeros_of(int bits, std::int64_t groups)
{
    const at::Tensor g = at::arange(groups, at::kLong).view({-1, 1});
    const at::Tensor o = at::arange(kOut, at::kLong).view({1, -1});
    return ((g * 29 + o * 13).remainder((std::int64_t{1} << bits) - 1) + 1).to(at::kInt);
}

at::Tensor scales_of(std::int64_t groups)
{
    const at::Tensor g = at::arange(groups, at::kLong).view({-1, 1});
    const at::Tensor o = at::arange(kOut, at::kLong).view({1, -1});
    return ((g * 7 + o * 3).remainder(61) + 1).to(at::kFloat) / 1024;
}

fs::path gptq_llama() { return test::fixtures() / "quant" / "llama-gptq-4bit-32g"; }

// A copy of the tiny GPTQ llama in a temporary folder, for tests that break it.
struct TempCopy {
    fs::path dir;
    explicit TempCopy(const std::string& tag)
    {
        dir = fs::temp_directory_path() / ("layerwise-gptq-" + tag + "-" + std::to_string(::getpid()));
        fs::remove_all(dir);
        fs::create_directories(dir);
        for (const auto& e : fs::directory_iterator(gptq_llama()))
            fs::copy_file(e.path(), dir / e.path().filename());
    }
    ~TempCopy() { fs::remove_all(dir); }
};

template <typename E, typename F>
void expect_error(F&& f, const std::string& needle)
{
    try {
        f();
    } catch (const E& e) {
        const std::string what = e.what();
        QVERIFY2(what.find(needle) != std::string::npos, ("message lacks '" + needle + "': " + what).c_str());
        return;
    } catch (const std::exception& e) {
        QFAIL((std::string("wrong exception type: ") + e.what()).c_str());
    }
    QFAIL(("no error; expected one mentioning '" + needle + "'").c_str());
}

const char* const kAllCpu = R"({"": "cpu"})";
const char* const kLayer1OnDisk =
    R"({"model.embed_tokens": "cpu", "model.layers.0": "cpu", "model.layers.1": "disk", "model.norm": "cpu", "model.rotary_emb": "cpu", "lm_head": "cpu"})";
const char* const kAllOnDisk =
    R"({"model.embed_tokens": "disk", "model.layers": "disk", "model.norm": "disk", "model.rotary_emb": "cpu", "lm_head": "disk"})";
const char* const kGpu = R"({"model.embed_tokens": "cpu", "model.layers.0": 0, "model.layers.1": "cpu", "model.norm": 0, "model.rotary_emb": 0, "lm_head": 0})";

std::unique_ptr<LoadedModel> load(const fs::path& folder, const std::string& map, const GptqSource& source = {},
                                  const QuantOptions& quant = {})
{
    LoadOptions o;
    o.dtype = DType::f32;
    o.quant = quant;
    o.device_map = parse_device_map(map);
    o.offload_folder = fs::temp_directory_path();
    return load_model(describe_model(folder.string(), std::nullopt, {}, source), o);
}

// A copy of the GPTQ llama's weights with `change` applied (return true: handled, written or dropped).
void rewrite_weights(const fs::path& dir, const std::function<bool(const TensorEntry&, std::vector<TensorToWrite>&)>& change)
{
    const fs::path file = dir / "gptq_model-4bit-32g.safetensors";
    const auto ck = Checkpoint::open(gptq_llama() / "gptq_model-4bit-32g.safetensors");
    std::vector<TensorToWrite> writes;
    for (const auto& e : ck->tensors()) {
        if (change(e, writes))
            continue;
        TensorToWrite w{e.name, e.dtype, e.shape, {}};
        const TensorEntry* entry = &e;
        const Checkpoint* source = ck.get();
        w.fill = [source, entry](std::byte* out) {
            const at::Tensor t = tensor_view(*source, *entry).contiguous();
            std::memcpy(out, t.data_ptr(), static_cast<std::size_t>(t.numel()) * t.element_size());
        };
        writes.push_back(std::move(w));
    }
    fs::remove(file);
    write_safetensors(file, writes);
}

} // namespace

void TestGptq::initTestCase()
{
    m_pack = test::read_json(test::fixtures() / "quant" / "gptq_pack.json");
    QCOMPARE(m_pack["cases"].size(), std::size_t{24});
}

void TestGptq::packMatchesAutoGptq_data()
{
    QTest::addColumn<int>("index");
    for (std::size_t i = 0; i < m_pack["cases"].size(); ++i) {
        const json& c = m_pack["cases"][i];
        const std::string name = std::to_string(c["bits"].get<int>()) + "bit group " + std::to_string(c["group_size"].get<int>()) +
                                 (c["act_order"].get<bool>() ? " act-order" : "");
        QTest::newRow(name.c_str()) << static_cast<int>(i);
    }
}

void TestGptq::packMatchesAutoGptq()
{
    QFETCH(int, index);
    const json& c = m_pack["cases"][static_cast<std::size_t>(index)];
    const int bits = c["bits"], group = c["group_size"];
    const bool act = c["act_order"];
    const std::int64_t groups = group == -1 ? 1 : kIn / group;
    const at::Tensor codes = codes_of(bits), g_idx = g_idx_of(group, act);
    const at::Tensor zeros = zeros_of(bits, groups), scales = scales_of(groups);

    const GptqPacked p = gptq_pack(codes, scales, zeros, g_idx, bits);
    QCOMPARE(p.qweight.sizes().vec(), c["qweight_shape"].get<std::vector<std::int64_t>>());
    QCOMPARE(p.qweight.scalar_type(), at::kInt);
    QCOMPARE(sha256(p.qweight), c["qweight_sha256"].get<std::string>());
    QCOMPARE(p.qzeros.sizes().vec(), c["qzeros_shape"].get<std::vector<std::int64_t>>());
    QVERIFY(at::equal(p.qzeros.reshape(-1), bytes_tensor(c["qzeros"], at::kInt)));
    QCOMPARE(p.scales.scalar_type(), at::kHalf);
    QCOMPARE(sha256(p.scales), c["scales_sha256"].get<std::string>());
    QCOMPARE(sha256(p.g_idx), c["g_idx_sha256"].get<std::string>());

    // Unpacking recovers the codes and zero points; dequantization equals AutoGPTQ's.
    QVERIFY(at::equal(gptq_unpack_codes(p.qweight, bits), codes));
    QVERIFY(at::equal(gptq_unpack_zeros(p.qzeros, bits), zeros));
    QCOMPARE(sha256(gptq_dequantize(p, bits, at::kHalf).contiguous()), c["dequantized_f16_sha256"].get<std::string>());
    QCOMPARE(sha256(gptq_dequantize(p, bits, at::kFloat).contiguous()), c["dequantized_f32_sha256"].get<std::string>());
    if (!act) { // without act-order a missing g_idx (older checkpoints) means the same
        GptqPacked no_g = p;
        no_g.g_idx = at::Tensor();
        QCOMPARE(sha256(gptq_dequantize(no_g, bits, at::kFloat).contiguous()), c["dequantized_f32_sha256"].get<std::string>());
    }
}

void TestGptq::rtnPackMatchesAutoGptq_data()
{
    QTest::addColumn<int>("index");
    for (std::size_t i = 0; i < m_pack["rtn"].size(); ++i) {
        const json& c = m_pack["rtn"][i];
        const std::string name = std::to_string(c["bits"].get<int>()) + "bit" + (c["act_order"].get<bool>() ? " act-order" : "");
        QTest::newRow(name.c_str()) << static_cast<int>(i);
    }
}

void TestGptq::rtnPackMatchesAutoGptq()
{
    QFETCH(int, index);
    const json& c = m_pack["rtn"][static_cast<std::size_t>(index)];
    const int bits = c["bits"];
    const auto shape = c["shape"].get<std::vector<std::int64_t>>();
    const at::Tensor w = bytes_tensor(c["weight_f16"], at::kHalf).reshape(shape);
    const at::Tensor scales = bytes_tensor(c["scales_f32"], at::kFloat).reshape({-1, shape[0]});
    const at::Tensor zeros = bytes_tensor(c["zeros_i32"], at::kInt).reshape({-1, shape[0]});
    const at::Tensor g_idx = bytes_tensor(c["g_idx_i32"], at::kInt);
    const at::Tensor codes = gptq_rtn_codes(w, scales, zeros, g_idx, bits);
    const GptqPacked p = gptq_pack(codes, scales, zeros, g_idx, bits);
    QVERIFY(at::equal(p.qweight.reshape(-1), bytes_tensor(c["qweight"], at::kInt)));
    QVERIFY(at::equal(p.qzeros.reshape(-1), bytes_tensor(c["qzeros"], at::kInt)));
    QVERIFY(at::equal(p.scales.reshape(-1), bytes_tensor(c["scales_f16"], at::kHalf)));
}

void TestGptq::configRoundTrip()
{
    // quantize_config.json as AutoGPTQ's save_quantized wrote it, byte for byte.
    const std::string saved = test::read_file(gptq_llama() / "quantize_config.json");
    const GptqConfig c = parse_gptq_config(json::parse(saved), "quantize_config.json");
    QCOMPARE(c.bits, 4);
    QCOMPARE(c.group_size, 32);
    QVERIFY(c.desc_act);
    QVERIFY(!c.sym);
    QCOMPARE(gptq_quantize_config_text(c), saved);
    QCOMPARE(gptq_default_basename(c), std::string("gptq_model-4bit-32g"));
    // config.json's quantization_config holds the same object (keys sorted by transformers).
    const json config = test::read_json(gptq_llama() / "config.json");
    QCOMPARE(json::parse(gptq_config_json(c).dump()), config["quantization_config"]);
    // AutoGPTQ's synonyms and defaults.
    const GptqConfig awq_names = parse_gptq_config(json{{"w_bit", 3}, {"q_group_size", 64}}, "x");
    QCOMPARE(awq_names.bits, 3);
    QCOMPARE(awq_names.group_size, 64);
    QVERIFY(awq_names.desc_act);
    const GptqConfig defaults = parse_gptq_config(json::object(), "x");
    QCOMPARE(defaults.bits, 4);
    QCOMPARE(defaults.group_size, -1);
    QCOMPARE(gptq_default_basename(defaults), std::string("gptq_model-4bit--1g"));
}

void TestGptq::configLookup()
{
    // quantize_config.json first; without it, quant_config.json; then config.json.
    TempCopy t("lookup");
    fs::path from;
    auto c = find_gptq_config(t.dir, {}, &from);
    QVERIFY(c);
    QCOMPARE(from.filename().string(), std::string("quantize_config.json"));
    auto ck = find_gptq_checkpoint(t.dir);
    QVERIFY(ck);
    QCOMPARE(ck->weights.filename().string(), std::string("gptq_model-4bit-32g.safetensors"));

    json other = test::read_json(t.dir / "quantize_config.json");
    other["bits"] = 8;
    test::write_file(t.dir / "quant_config.json", other.dump());
    fs::remove(t.dir / "quantize_config.json");
    c = find_gptq_config(t.dir, {}, &from);
    QCOMPARE(from.filename().string(), std::string("quant_config.json"));
    QCOMPARE(c->bits, 8);
    fs::remove(t.dir / "quant_config.json");
    c = find_gptq_config(t.dir, {}, &from);
    QCOMPARE(from.filename().string(), std::string("config.json"));
    QCOMPARE(c->bits, 4);

    // Weights under another name: found through model_file_base_name or an explicit basename.
    fs::rename(t.dir / "gptq_model-4bit-32g.safetensors", t.dir / "weights-q4.safetensors");
    expect_error<FormatError>([&] { find_gptq_checkpoint(t.dir); }, "gptq_model-4bit-32g.safetensors");
    ck = find_gptq_checkpoint(t.dir, GptqSource{std::nullopt, std::string("weights-q4")});
    QCOMPARE(ck->weights.filename().string(), std::string("weights-q4.safetensors"));
    json named = test::read_json(t.dir / "config.json")["quantization_config"];
    named["model_file_base_name"] = "weights-q4";
    test::write_file(t.dir / "quantize_config.json", named.dump());
    ck = find_gptq_checkpoint(t.dir);
    QCOMPARE(ck->weights.filename().string(), std::string("weights-q4.safetensors"));
    // "model" is AutoGPTQ's second guess.
    fs::remove(t.dir / "quantize_config.json");
    fs::rename(t.dir / "weights-q4.safetensors", t.dir / "model.safetensors");
    ck = find_gptq_checkpoint(t.dir);
    QCOMPARE(ck->weights.filename().string(), std::string("model.safetensors"));
    // An explicit config file elsewhere overrides the folder's.
    const fs::path explicit_config = t.dir / "elsewhere.json";
    json eight = named;
    eight["bits"] = 8;
    eight.erase("model_file_base_name");
    test::write_file(explicit_config, eight.dump());
    c = find_gptq_config(t.dir, GptqSource{explicit_config, std::nullopt});
    QCOMPARE(c->bits, 8);

    // A plain model folder is not GPTQ.
    QVERIFY(!find_gptq_config(test::fixtures() / "checkpoints" / "llama-f32"));
    QVERIFY(!find_gptq_config(test::fixtures() / "quant" / "llama-quant-int8"));
}

void TestGptq::badConfig_data()
{
    QTest::addColumn<QString>("config");
    QTest::addColumn<QString>("kind");
    QTest::addColumn<QString>("needle");
    QTest::newRow("bits 5") << R"({"bits": 5, "group_size": 128})" << "format" << "'bits' is 5";
    QTest::newRow("bits a string") << R"({"bits": "4"})" << "format" << "'bits' has the wrong type";
    QTest::newRow("group 0") << R"({"bits": 4, "group_size": 0})" << "format" << "'group_size' is 0";
    QTest::newRow("group -2") << R"({"bits": 4, "group_size": -2})" << "format" << "'group_size' is -2";
    QTest::newRow("damp 1") << R"({"bits": 4, "damp_percent": 1.0})" << "format" << "'damp_percent'";
    QTest::newRow("desc_act a number") << R"({"bits": 4, "desc_act": 1})" << "format" << "'desc_act' has the wrong type";
    QTest::newRow("not an object") << R"([4])" << "format" << "not a JSON object";
    QTest::newRow("awq method") << R"({"bits": 4, "quant_method": "awq"})" << "unsupported" << "'awq'";
    QTest::newRow("awq gemm") << R"({"w_bit": 4, "version": "GEMM"})" << "unsupported" << "AWQ";
    QTest::newRow("marlin") << R"({"bits": 4, "is_marlin_format": true})" << "unsupported" << "Marlin";
    QTest::newRow("gptq_v2") << R"({"bits": 4, "checkpoint_format": "gptq_v2"})" << "unsupported" << "gptq_v2";
    QTest::newRow("basename a path") << R"({"bits": 4, "model_file_base_name": "../x"})" << "format" << "model_file_base_name";
}

void TestGptq::badConfig()
{
    QFETCH(QString, config);
    QFETCH(QString, kind);
    QFETCH(QString, needle);
    const json j = json::parse(config.toStdString());
    if (kind == "format")
        expect_error<FormatError>([&] { parse_gptq_config(j, "quantize_config.json"); }, needle.toStdString());
    else
        expect_error<UnsupportedError>([&] { parse_gptq_config(j, "quantize_config.json"); }, needle.toStdString());
    // The file name is in the message too, and a folder with that file fails the same way.
    expect_error<Error>([&] { parse_gptq_config(j, "quantize_config.json"); }, "quantize_config.json");
    TempCopy t("bad");
    test::write_file(t.dir / "quantize_config.json", config.toStdString());
    expect_error<Error>([&] { find_gptq_checkpoint(t.dir); }, (t.dir / "quantize_config.json").string());
}

void TestGptq::logitsMatchTransformers_data()
{
    QTest::addColumn<QString>("map");
    QTest::newRow("all on the CPU") << kAllCpu;
    QTest::newRow("layer 1 on disk") << kLayer1OnDisk;
    QTest::newRow("everything on disk") << kAllOnDisk;
    QTest::newRow("GPU + CPU offload") << kGpu;
}

void TestGptq::logitsMatchTransformers()
{
    QFETCH(QString, map);
    if (map == kGpu && !at::hasCUDA())
        QSKIP("no CUDA device");
    auto model = load(gptq_llama(), map.toStdString());
    QCOMPARE(model->quant.method, QuantMethod::gptq);
    const json ref = test::read_json(test::fixtures() / "quant" / "gptq_logits.json");
    test::compare_logits(*model, ref, map == kGpu ? 1e-3 : 1e-4);
}

void TestGptq::staysQuantizedUnderEveryMap()
{
    for (const char* map : {kAllCpu, kLayer1OnDisk, kAllOnDisk}) {
        auto model = load(gptq_llama(), map);
        const Checkpoint& ck = *model->checkpoint;
        QCOMPARE(ck.files().front()->path().filename().string(), std::string("gptq_model-4bit-32g.safetensors"));
        if (model->offload) // float16 norms/embeddings on disk are converted; GPTQ tensors never are
            for (const auto& e : model->offload->tensors())
                QVERIFY2(e.name.find(".layers.") == std::string::npos || e.name.ends_with("norm.weight"), e.name.c_str());
        for (std::size_t l = 0; l < model->layers.size(); ++l) {
            const LayerWeights& w = model->layers[l];
            QCOMPARE(w.quant.size(), std::size_t{7});
            const QuantInfo* q = w.find_quant("self_attn.q_proj");
            QVERIFY(q);
            QCOMPARE(q->method, QuantMethod::gptq);
            QCOMPARE(q->bits, 4);
            QCOMPARE(q->group_size, 32);
            QVERIFY(q->desc_act);
            QVERIFY(!w.find("self_attn.q_proj.weight"));
            for (const char* suffix : {"qweight", "qzeros", "scales", "g_idx"}) {
                const std::string local = std::string("mlp.down_proj.") + suffix;
                const at::Tensor& t = w[local];
                // Zero-copy: the tensor is the mapping of the checkpoint file.
                const TensorEntry* e = ck.find("model.layers." + std::to_string(l) + "." + local);
                QVERIFY(e);
                QCOMPARE(t.data_ptr(), tensor_view(ck, *e).data_ptr());
            }
            QCOMPARE(w["mlp.down_proj.qweight"].scalar_type(), at::kInt);
            QCOMPARE(w["mlp.down_proj.scales"].scalar_type(), at::kHalf);
        }
    }
}

void TestGptq::perplexityMatchesTransformers()
{
    const json ref = test::read_json(test::fixtures() / "quant" / "gptq_perplexity.json");
    const auto tokenizer = text::load_tokenizer(gptq_llama());
    const auto encoded = tokenizer->encode(test::read_file(test::shared_data() / ref["text"].get<std::string>()), true);
    const std::vector<std::int64_t> ids(encoded.begin(), encoded.end());
    QCOMPARE(static_cast<std::int64_t>(ids.size()), ref["sequence_tokens"].get<std::int64_t>());
    auto model = load(gptq_llama(), kLayer1OnDisk);
    const std::int64_t context = ref["context"], stride = ref["stride"];
    Runner runner(*model, context);
    const PerplexityResult r = evaluate_perplexity(runner, ids, context, stride);
    QCOMPARE(r.tokens, ref["tokens"].get<std::int64_t>());
    const double expected = ref["perplexity"];
    QVERIFY2(std::abs(r.perplexity - expected) / expected < 1e-5, qPrintable(QString::number(r.perplexity, 'g', 10)));
}

void TestGptq::savedSizesAreLoadedSizes_data()
{
    QTest::addColumn<QString>("folder");
    QTest::newRow("gptq 4-bit") << "llama-gptq-4bit-32g";
    QTest::newRow("bitsandbytes nf4-dq") << "llama-quant-nf4-dq";
    QTest::newRow("bitsandbytes int8") << "llama-quant-int8";
}

void TestGptq::savedSizesAreLoadedSizes()
{
    // A checkpoint saved quantized: inspect and the planner count the bytes it holds, which are
    // the bytes the loaded decoder layers hold.
    QFETCH(QString, folder);
    auto model = load(test::fixtures() / "quant" / folder.toStdString(), kAllCpu);
    const WeightFormat plain = parse_weight_format("none", DType::f32);
    std::uint64_t planned = 0, loaded = 0;
    for (const auto& n : model->tree.nodes())
        for (const auto& t : n.tensors)
            if (t.full_name.find(".layers.") != std::string::npos)
                planned += tensor_bytes(model->tree, t, plain);
    for (const auto& l : model->layers)
        for (const auto& [k, t] : l.tensors)
            loaded += static_cast<std::uint64_t>(t.numel()) * t.element_size();
    QCOMPARE(planned, loaded);
    // Stored bytes of the tree's checkpoint tensors: every tensor of the checkpoint but
    // bitsandbytes' metadata (quant_state JSON, weight_format) and a saved copy of a tied weight.
    std::uint64_t saved = 0;
    for (const auto& e : model->checkpoint->tensors())
        if (e.name.find(".quant_state.") == std::string::npos && !e.name.ends_with(".weight_format"))
            saved += e.size;
    for (const auto& [tied, source] : model->tree.tied())
        if (const TensorEntry* e = model->checkpoint->find(tied))
            saved -= e->size;
    std::uint64_t tree = 0;
    for (const auto& n : model->tree.nodes())
        for (const auto& t : n.tensors)
            if (t.checkpoint_entry)
                tree += model->tree.tensor_bytes(t, SizeRule::stored());
    QCOMPARE(tree, saved);
}

void TestGptq::badCheckpoint()
{
    const std::string target = "model.layers.1.mlp.up_proj";
    {
        // qweight of the wrong shape: one packed row short.
        TempCopy t("qweight");
        rewrite_weights(t.dir, [&](const TensorEntry& e, std::vector<TensorToWrite>& writes) {
            if (e.name != target + ".qweight")
                return false;
            writes.push_back({e.name, e.dtype, {e.shape[0] - 1, e.shape[1]}, [](std::byte* out) { std::memset(out, 0, 7 * 128 * 4); }});
            return true;
        });
        expect_error<FormatError>([&] { load(t.dir, kAllCpu); }, target + ".weight");
    }
    {
        // scales with the wrong number of groups
        TempCopy t("scales");
        rewrite_weights(t.dir, [&](const TensorEntry& e, std::vector<TensorToWrite>& writes) {
            if (e.name != target + ".scales")
                return false;
            writes.push_back({e.name, e.dtype, {1, e.shape[1]}, [](std::byte* out) { std::memset(out, 0, 128 * 2); }});
            return true;
        });
        expect_error<FormatError>([&] { load(t.dir, kAllCpu); }, "'scales' is Half [1, 128], expected float16 [2, 128]");
    }
    {
        // a missing qzeros
        TempCopy t("qzeros");
        rewrite_weights(t.dir, [&](const TensorEntry& e, std::vector<TensorToWrite>&) { return e.name == target + ".qzeros"; });
        expect_error<FormatError>([&] { load(t.dir, kAllCpu); }, "lacks its tensor 'qzeros'");
    }
    {
        // g_idx naming a group that does not exist
        TempCopy t("gidx");
        rewrite_weights(t.dir, [&](const TensorEntry& e, std::vector<TensorToWrite>& writes) {
            if (e.name != target + ".g_idx")
                return false;
            writes.push_back({e.name, e.dtype, e.shape, [](std::byte* out) {
                                  std::memset(out, 0, 64 * 4);
                                  const std::int32_t bad = 5;
                                  std::memcpy(out + 12, &bad, 4);
                              }});
            return true;
        });
        expect_error<FormatError>([&] { load(t.dir, kAllCpu); }, "g_idx holds group 5 but there are 2 groups");
    }
    {
        // The config says 8 bits: the packed tensors cannot be that.
        TempCopy t("bits");
        json q = test::read_json(t.dir / "quantize_config.json");
        q["bits"] = 8;
        q["model_file_base_name"] = "gptq_model-4bit-32g";
        test::write_file(t.dir / "quantize_config.json", q.dump());
        expect_error<FormatError>([&] { load(t.dir, kAllCpu); }, "config.json implies");
    }
    {
        // The config says groups of 64: the scales have groups of 32.
        TempCopy t("group");
        json q = test::read_json(t.dir / "quantize_config.json");
        q["group_size"] = 64;
        q["model_file_base_name"] = "gptq_model-4bit-32g";
        test::write_file(t.dir / "quantize_config.json", q.dump());
        expect_error<FormatError>([&] { load(t.dir, kAllCpu); }, "group size 64");
    }
    {
        // GPTQ tensors but no GPTQ config anywhere.
        TempCopy t("noconfig");
        fs::remove(t.dir / "quantize_config.json");
        json c = test::read_json(t.dir / "config.json");
        c.erase("quantization_config");
        test::write_file(t.dir / "config.json", c.dump());
        fs::rename(t.dir / "gptq_model-4bit-32g.safetensors", t.dir / "model.safetensors");
        expect_error<FormatError>([&] { load(t.dir, kAllCpu); }, "no GPTQ config");
    }
    {
        // A basename naming no file; a config file that does not exist.
        TempCopy t("basename");
        expect_error<FormatError>([&] { load(t.dir, kAllCpu, GptqSource{std::nullopt, std::string("nope")}); },
                                  "nope.safetensors");
        expect_error<IoError>([&] { load(t.dir, kAllCpu, GptqSource{t.dir / "missing.json", std::nullopt}); }, "missing.json");
        fs::remove(t.dir / "gptq_model-4bit-32g.safetensors");
        expect_error<FormatError>([&] { load(t.dir, kAllCpu); }, "none of its weights files exists");
    }
    // Re-quantizing a GPTQ checkpoint is refused.
    QuantOptions nf4;
    nf4.method = QuantMethod::nf4;
    expect_error<UnsupportedError>([&] { load(gptq_llama(), kAllCpu, {}, nf4); }, "gptq");
}

void TestGptq::commandLine()
{
    const QString bin = qEnvironmentVariable("LAYERWISE_BIN");
    const QString folder = QString::fromStdString(gptq_llama().string());
    auto run = [&](const QStringList& args) {
        QProcess p;
        p.start(bin, args);
        p.waitForFinished(120000);
        if (p.exitCode() != 0)
            qWarning("%s", p.readAllStandardError().constData());
        [&] { QCOMPARE(p.exitCode(), 0); }();
        return p.readAllStandardOutput();
    };
    const json inspected = json::parse(run({"inspect", folder, "--json"}).toStdString());
    QCOMPARE(inspected["gptq"]["config"]["bits"].get<int>(), 4);
    QCOMPARE(inspected["gptq"]["weights"].get<std::string>(), std::string("gptq_model-4bit-32g.safetensors"));
    QVERIFY(inspected["unused_tensors"].empty());
    QVERIFY(run({"inspect", folder}).contains("GPTQ 4-bit, groups of 32, act-order"));

    const json ref = test::read_json(test::fixtures() / "quant" / "gptq_logits.json");
    QStringList ids;
    for (const auto& id : ref["prompt"])
        ids << QString::number(id.get<int>());
    const json gen = json::parse(run({"generate", folder, "--ids", ids.join(','), "--greedy", "--dtype", "float32",
                                      "--max-new-tokens", "6", "--device-map", "sequential", "--json"})
                                     .toStdString());
    QCOMPARE(gen["token_ids"], ref["tokens"]);

    // plan sizes the checkpoint as it is stored: the quantized linears' bytes, not dense ones.
    const json plan = json::parse(run({"plan", folder, "--dtype", "float32", "--json"}).toStdString());
    QCOMPARE(plan["weights"].get<std::string>(), std::string("gptq-4bit-32g"));
    std::int64_t planned = 0;
    for (const auto& d : plan["devices"])
        planned += d["weights_bytes"].get<std::int64_t>();
    const ModelDescription d = describe_model(gptq_llama().string(), DType::f32);
    QCOMPARE(planned, static_cast<std::int64_t>(d.tree.module_bytes(0, SizeRule::as_loaded(DType::f32))));
    const auto dense = ModuleTree::from_config(d.config, DType::f32).module_bytes(0, SizeRule::as_loaded(DType::f32));
    QVERIFY2(static_cast<std::uint64_t>(planned) < dense / 2, qPrintable(QString::number(planned)));

    // eval: transformers' perplexity of the dequantized model.
    const json ppl = test::read_json(test::fixtures() / "quant" / "gptq_perplexity.json");
    const QString text = QString::fromStdString((test::shared_data() / ppl["text"].get<std::string>()).string());
    const json ev = json::parse(run({"eval", folder, "--perplexity", text, "--context", "64", "--stride", "32", "--dtype",
                                     "float32", "--device-map", "sequential"})
                                    .toStdString());
    QCOMPARE(ev["quantization"].get<std::string>(), std::string("gptq-4bit-32g"));
    const double expected = ppl["perplexity"];
    QVERIFY(std::abs(ev["perplexity"].get<double>() - expected) / expected < 1e-5);

    // Files saved by another tool: weights under another name, the config elsewhere.
    TempCopy t("cli");
    fs::rename(t.dir / "gptq_model-4bit-32g.safetensors", t.dir / "q4.safetensors");
    fs::rename(t.dir / "quantize_config.json", t.dir / "gptq.json");
    json c = test::read_json(t.dir / "config.json");
    c.erase("quantization_config");
    test::write_file(t.dir / "config.json", c.dump());
    const QString copy = QString::fromStdString(t.dir.string());
    QProcess refused;
    refused.start(bin, {"inspect", copy, "--gptq-basename", "q4"});
    refused.waitForFinished(120000);
    QVERIFY(refused.exitCode() != 0);
    QVERIFY2(refused.readAllStandardError().contains("no GPTQ config"), "inspect without the GPTQ config");
    const QString config = QString::fromStdString((t.dir / "gptq.json").string());
    const json found = json::parse(run({"inspect", copy, "--gptq-config", config, "--gptq-basename", "q4", "--json"}).toStdString());
    QCOMPARE(found["gptq"]["weights"].get<std::string>(), std::string("q4.safetensors"));
    const json gen2 = json::parse(run({"generate", copy, "--gptq-config", config, "--gptq-basename", "q4", "--ids", ids.join(','),
                                       "--greedy", "--dtype", "float32", "--max-new-tokens", "6", "--json"})
                                      .toStdString());
    QCOMPARE(gen2["token_ids"], ref["tokens"]);
}

QTEST_GUILESS_MAIN(TestGptq)
#include "tst_gptq.moc"
