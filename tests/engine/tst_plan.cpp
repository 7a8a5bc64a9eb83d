// The planner: accelerate parity over thousands of recorded cases, device-map I/O and
// validation, moving layers, and bad limits.
#include "testdata.h"

#include "core/bytes.h"
#include "core/error.h"
#include "model/config.h"
#include "model/module_tree.h"
#include "model/presets.h"
#include "plan/accelerate_planner.h"
#include "plan/device_map.h"
#include "plan/plan.h"

#include <map>
#include <nlohmann/json.hpp>

using namespace layerwise;
using layerwise::test::throws_with;
using nlohmann::json;

class TestPlan : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void accelerateParity();
    void maxMemoryParsing();
    void deviceMapRoundTrip();
    void deviceMapValidation_data();
    void deviceMapValidation();
    void moveLayers();
};

namespace {

ModuleTree tree_for(const std::string& model_type, const json& config, DType dtype)
{
    json c = config;
    c["model_type"] = model_type;
    return ModuleTree::from_config(parse_model_config(c.dump(), "fixture"), dtype);
}

ModuleTree tiny_llama()
{
    return tree_for("llama", json{{"hidden_size", 16}, {"intermediate_size", 32}, {"num_hidden_layers", 4},
                                  {"num_attention_heads", 4}, {"vocab_size", 96}, {"tie_word_embeddings", true}},
                    DType::f32);
}

std::string map_text(const std::map<std::string, std::string>& m)
{
    std::string s;
    for (const auto& [k, v] : m)
        s += k + "=" + v + " ";
    return s;
}

} // namespace

// tests/reference/make_device_maps.py: what from_pretrained(device_map=strategy, max_memory=table,
// dtype=dtype) computes, over every architecture, dtype, strategy and kind of table. The request
// goes through make_plan as `layerwise plan --accelerate` builds it, on a machine with 8 GPUs and
// plenty of RAM: devices left out of the table must get nothing, as in transformers.
void TestPlan::accelerateParity()
{
    const json ref = test::read_json(test::fixtures() / "device_maps.json");
    struct Model {
        ModelConfig config;
        ModuleTree tree;
    };
    std::map<std::string, Model> models;
    for (auto it = ref["models"].begin(); it != ref["models"].end(); ++it) {
        json c = it.value()["config"];
        c["model_type"] = it.value()["model_type"];
        const ModelConfig config = parse_model_config(c.dump(), "fixture");
        const DType own = *dtype_from_torch_name(it.value()["dtype"].get<std::string>());
        models.emplace(it.key(), Model{config, ModuleTree::from_config(config, own)});
    }
    std::vector<DeviceInfo> machine;
    for (int g = 0; g < 8; ++g) {
        DeviceInfo d;
        d.id = Device::gpu(g);
        d.name = "GPU";
        d.total_bytes = d.available_bytes = std::uint64_t(1) << 40;
        d.bandwidth = 1e12;
        d.link_bandwidth = 25e9;
        d.flops = 1e14;
        machine.push_back(d);
    }
    DeviceInfo cpu;
    cpu.id = Device::cpu();
    cpu.name = "CPU";
    cpu.total_bytes = cpu.available_bytes = std::uint64_t(1) << 40;
    cpu.bandwidth = 5e10;
    cpu.flops = 1e12;
    machine.push_back(cpu);
    DeviceInfo disk;
    disk.id = Device::disk();
    disk.name = "disk";
    disk.total_bytes = disk.available_bytes = std::uint64_t(1) << 42;
    disk.bandwidth = 2e9;
    machine.push_back(disk);

    int checked = 0, refused = 0;
    for (const json& c : ref["cases"]) {
        const Model& model = models.at(c[0].get<std::string>());
        PlanRequest r;
        r.devices = machine;
        r.accelerate = true;
        r.strategy = parse_strategy(c[2].get<std::string>());
        r.weights.dtype = c[1].is_null() ? model.tree.dtype() : *dtype_from_torch_name(c[1].get<std::string>());
        for (const json& kv : c[3]) {
            MemoryLimit l;
            l.device = kv[0].is_number() ? Device::gpu(kv[0].get<int>()) : parse_device(kv[0].get<std::string>());
            l.bytes = kv[1].is_number() ? kv[1].get<std::int64_t>() : parse_size(kv[1].get<std::string>());
            r.max_memory.push_back(l);
        }
        const json& expected = c[4];
        if (expected.is_string()) {
            // transformers raised: the planner must refuse the same request.
            bool threw = false;
            try {
                make_plan(model.tree, model.config, r);
            } catch (const PlanError&) {
                threw = true;
            }
            if (!threw)
                QFAIL(("planned what transformers refuses: " + c.dump()).c_str());
            ++refused;
            ++checked;
            continue;
        }
        const Plan plan = make_plan(model.tree, model.config, r);
        std::map<std::string, std::string> a, b;
        for (const auto& [k, d] : plan.device_map)
            a[k] = d.map_key();
        for (const json& kv : expected)
            b[kv[0].get<std::string>()] = kv[1].is_number() ? std::to_string(kv[1].get<int>()) : kv[1].get<std::string>();
        if (a != b)
            QFAIL(("case " + c.dump() + "\nours: " + map_text(a) + "\ntransformers: " + map_text(b)).c_str());
        ++checked;
    }
    QCOMPARE(checked, static_cast<int>(ref["cases"].size()));
    QVERIFY(checked >= 1000);
    qInfo("%d of %d from_pretrained device maps reproduced exactly (%d of them refusals)", checked,
          static_cast<int>(ref["cases"].size()), refused);
}

void TestPlan::maxMemoryParsing()
{
    const MaxMemory mm = parse_max_memory("cpu=64GB,cuda:1=10GiB, 0=500MiB;disk=1000");
    QCOMPARE(mm.size(), std::size_t(4));
    const MaxMemory o = ordered(mm);
    QCOMPARE(o[0].device, Device::gpu(0));
    QCOMPARE(o[0].bytes, std::int64_t(500) << 20);
    QCOMPARE(o[1].device, Device::gpu(1));
    QCOMPARE(o[2].device, Device::cpu());
    QCOMPARE(o[2].bytes, std::int64_t(64000000000));
    QCOMPARE(o[3].bytes, std::int64_t(1000));
    QVERIFY(throws_with<PlanError>([] { parse_max_memory("0=20XB"); }, {"cuda:0", "'20XB' is not in a valid format"}));
    QVERIFY(throws_with<PlanError>([] { parse_max_memory("0=-1GB"); }, {"'-1GB' is not in a valid format"}));
    QVERIFY(throws_with<PlanError>([] { parse_max_memory("0="); }, {"'' is not in a valid format"}));
    QVERIFY(throws_with<PlanError>([] { parse_max_memory("mps=1GB"); }, {"unknown device 'mps'"}));
    QVERIFY(throws_with<PlanError>([] { parse_max_memory("0=1GB,cuda:0=2GB"); }, {"names cuda:0 twice"}));
    QVERIFY(throws_with<PlanError>([] { parse_max_memory("20GiB"); }, {"needs the form DEVICE=SIZE"}));
}

void TestPlan::deviceMapRoundTrip()
{
    const DeviceMap m = parse_device_map("{'model.embed_tokens': 0, 'model.layers.0': 'cuda:1', 'lm_head': 'cpu', 'model.norm': 'disk'}");
    QCOMPARE(m.size(), std::size_t(4));
    QCOMPARE(m[1].second, Device::gpu(1));
    const json j = device_map_to_json(m);
    QCOMPARE(j["model.layers.0"].get<int>(), 1);
    QCOMPARE(j["lm_head"].get<std::string>(), std::string("cpu"));
    const DeviceMap old = parse_device_map("OrderedDict([('model', 0), ('lm_head', 'cpu')])");
    QCOMPARE(old.size(), std::size_t(2));
    QCOMPARE(old[1].second, Device::cpu());
}

void TestPlan::deviceMapValidation_data()
{
    QTest::addColumn<QString>("map");
    QTest::addColumn<QString>("needle");
    QTest::newRow("unknown key") << R"({"": 0, "model.layerz": 1})" << "'model.layerz' matches no module";
    QTest::newRow("overlap") << R"({"": 0, "model.layers.0": 1})" << "both place model.layers.0";
    QTest::newRow("uncovered") << R"({"model.embed_tokens": 0, "model.layers": 0, "model.norm": 0})"
                               << "gives no device to 'model.rotary_emb";
    QTest::newRow("split block") << R"({"model.embed_tokens": 0, "model.layers.0.self_attn": 0, "model.layers.0.mlp": 1,
        "model.layers.0.input_layernorm": 0, "model.layers.0.post_attention_layernorm": 0, "model.layers.1": 0,
        "model.layers.2": 0, "model.layers.3": 0, "model.norm": 0, "model.rotary_emb": 0, "lm_head": 0})"
                                 << "splits model.layers.0 (LlamaDecoderLayer) across 2 devices";
    QTest::newRow("bad device") << R"({"": "tpu"})" << "unknown device 'tpu'";
    QTest::newRow("not a map") << "[1, 2]" << "must be an object";
    QTest::newRow("garbage") << "{model: 0" << "neither JSON nor a Python dict";
    QTest::newRow("empty") << "{}" << "the device map is empty";
}

void TestPlan::deviceMapValidation()
{
    QFETCH(QString, map);
    QFETCH(QString, needle);
    const ModuleTree tree = tiny_llama();
    const std::string m = map.toStdString(), n = needle.toStdString();
    QVERIFY(throws_with<PlanError>([&] { validate_device_map(tree, parse_device_map(m)); }, {n.c_str()}));
    // A good map of the same model passes.
    validate_device_map(tree, parse_device_map(R"({"model": 0, "lm_head": 0})"));
    validate_device_map(tree, parse_device_map(R"({"": "cpu"})"));
}

void TestPlan::moveLayers()
{
    const ModuleTree tree = tiny_llama();
    const DeviceMap all_gpu = parse_device_map(R"({"": 0})");
    DeviceMap m = move_layers(tree, all_gpu, 2, 3, Device::cpu());
    validate_device_map(tree, m);
    QCOMPARE(*device_of(m, "model.layers.1.mlp.up_proj.weight"), Device::gpu(0));
    QCOMPARE(*device_of(m, "model.layers.2.mlp.up_proj.weight"), Device::cpu());
    QCOMPARE(*device_of(m, "model.layers.3.self_attn.q_proj.weight"), Device::cpu());
    QCOMPARE(*device_of(m, "model.norm.weight"), Device::gpu(0));
    // Moving them back collapses the map to one key again.
    m = move_layers(tree, m, 2, 3, Device::gpu(0));
    QCOMPARE(m.size(), std::size_t(1));
    QCOMPARE(m[0].first, std::string(""));
    // A module that is not a layer, and refusals.
    m = move_module(tree, all_gpu, "model.embed_tokens", Device::disk());
    QCOMPARE(*device_of(m, "model.embed_tokens.weight"), Device::disk());
    QCOMPARE(*device_of(m, "model.layers.0.mlp.up_proj.weight"), Device::gpu(0));
    QVERIFY(throws_with<PlanError>([&] { move_layers(tree, all_gpu, 3, 9, Device::cpu()); }, {"layers 3..9 do not exist", "0..3"}));
    QVERIFY(throws_with<PlanError>([&] { move_module(tree, all_gpu, "model.layers.1.mlp", Device::cpu()); },
                                   {"part of model.layers.1 (LlamaDecoderLayer)", "move the whole block"}));
}

QTEST_GUILESS_MAIN(TestPlan)
#include "tst_plan.moc"
