// Checkpoint reading and model description against references: transformers' own
// facts about the fixture checkpoints and presets, torch's values for every dtype,
// and the llama2.c original of the shared stories260K model.
#include "testdata.h"

#include "checkpoint/checkpoint.h"
#include "checkpoint/tensor_view.h"
#include "core/error.h"
#include "inspect.h"
#include "model/presets.h"

#include <ATen/ATen.h>
#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <sys/wait.h>
#include <unistd.h>

using namespace layerwise;
using layerwise::test::throws_with;
namespace fs = std::filesystem;
using nlohmann::json;

class TestCheckpoint : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void safetensorsEveryDtype();
    void torchBinEveryDtype();
    void torchBinRefusesCode();
    void fixturesMatchTransformers_data();
    void fixturesMatchTransformers();
    void presetsMatchTransformers();
    void storiesMatchesLlama2c();
    void headersOnlyNeverTouchData();
    void badFiles();
    void badFolders();
    void permissionDenied();
};

namespace {

void compare_values(const at::Tensor& t, const json& ref, const std::string& name)
{
    QCOMPARE(std::string(c10::toString(t.scalar_type())).size() > 0, true);
    const auto shape = ref["shape"].get<std::vector<std::int64_t>>();
    QCOMPARE(t.sizes().vec(), shape);
    const auto values = ref["values"].get<std::vector<double>>();
    const at::Tensor flat = t.scalar_type() == at::kUInt64 ? t.to(at::kDouble).flatten() : t.to(at::kDouble).flatten();
    QCOMPARE(static_cast<std::size_t>(flat.numel()), values.size());
    for (std::size_t i = 0; i < values.size(); ++i)
        QVERIFY2(flat[static_cast<std::int64_t>(i)].item<double>() == values[i], name.c_str());
}

std::string torch_dtype_name(const at::Tensor& t)
{
    std::string s = c10::toString(t.scalar_type());
    static const std::map<std::string, std::string> names{
        {"Double", "float64"}, {"Float", "float32"}, {"Half", "float16"}, {"BFloat16", "bfloat16"},
        {"Float8_e4m3fn", "float8_e4m3fn"}, {"Float8_e5m2", "float8_e5m2"}, {"Long", "int64"}, {"Int", "int32"},
        {"Short", "int16"}, {"Char", "int8"}, {"Byte", "uint8"}, {"UInt16", "uint16"}, {"UInt32", "uint32"},
        {"UInt64", "uint64"}, {"Bool", "bool"}};
    return names.count(s) ? names.at(s) : s;
}

fs::path copy_fixture(const std::string& name, const fs::path& into)
{
    const fs::path dst = into / name;
    fs::copy(test::fixtures() / "checkpoints" / name, dst, fs::copy_options::recursive);
    return dst;
}

} // namespace

void TestCheckpoint::safetensorsEveryDtype()
{
    const auto ref = test::read_json(test::fixtures() / "formats" / "all_dtypes.json");
    auto ck = Checkpoint::open(test::fixtures() / "formats" / "all_dtypes.safetensors");
    QCOMPARE(ck->tensors().size(), ref.size());
    QCOMPARE(ck->metadata().at("origin"), std::string("make_format_fixtures.py"));
    const auto& file = *ck->files().front();
    for (const auto& e : ck->tensors()) {
        const at::Tensor t = tensor_view(*ck, e);
        QCOMPARE(torch_dtype_name(t), ref[e.name]["dtype"].get<std::string>());
        compare_values(t, ref[e.name], e.name);
        // Zero-copy: the tensor's storage is the mapping itself.
        if (t.numel() > 0)
            QCOMPARE(static_cast<const void*>(t.data_ptr()), static_cast<const void*>(file.data(e.offset, e.size)));
    }
}

void TestCheckpoint::torchBinEveryDtype()
{
    const auto ref = test::read_json(test::fixtures() / "formats" / "all_dtypes_bin.json");
    auto ck = Checkpoint::open(test::fixtures() / "formats" / "all_dtypes.bin");
    QCOMPARE(ck->format(), CheckpointFormat::torch_bin);
    QCOMPARE(ck->tensors().size(), ref.size());
    for (const auto& e : ck->tensors()) {
        const at::Tensor t = tensor_view(*ck, e);
        QCOMPARE(torch_dtype_name(t), ref[e.name]["dtype"].get<std::string>());
        compare_values(t, ref[e.name], e.name);
    }
    QVERIFY(!ck->find("transposed")->strides.empty()); // a strided view of a shared storage
}

void TestCheckpoint::torchBinRefusesCode()
{
    QVERIFY(throws_with<FormatError>([] { Checkpoint::open(test::fixtures() / "formats" / "code_execution.bin"); },
                                     {"code_execution.bin", "system", "never runs code"}));
}

void TestCheckpoint::fixturesMatchTransformers_data()
{
    QTest::addColumn<QString>("name");
    for (const auto& e : fs::directory_iterator(test::fixtures() / "checkpoints"))
        QTest::newRow(e.path().filename().c_str()) << QString::fromStdString(e.path().filename().string());
}

void TestCheckpoint::fixturesMatchTransformers()
{
    QFETCH(QString, name);
    const fs::path folder = test::fixtures() / "checkpoints" / name.toStdString();
    const auto ref = test::read_json(folder / "reference.json");
    const ModelDescription d = describe_model(folder.string());
    const ModuleTree& tree = d.tree;

    // Mixture-of-experts references come from transformers 4.x, whose modules are those the
    // checkpoints hold (one per expert; 5.x fuses them). 4.x has no original_inv_freq buffer, and
    // Qwen2-MoE's attention there keeps a rotary embedding of its own that nothing reads (5.x has
    // none): float32 inv_freq buffers, never in checkpoints.
    const bool v4 = ref["transformers"].get<std::string>().starts_with("4.");
    auto v4_lacks = [&](const ModuleTensor& t) { return v4 && t.name == "original_inv_freq"; };
    auto v4_legacy = [&](const std::string& name) { return v4 && name.find(".self_attn.rotary_emb") != std::string::npos; };
    std::uint64_t v4_absent_bytes = 0;
    for (const auto& n : tree.nodes())
        for (const auto& t : n.tensors)
            if (v4_lacks(t))
                v4_absent_bytes += tree.tensor_bytes(t, SizeRule::stored());
    // The legacy buffers' bytes under a module (all of them for ""), float32 at most `bytes` each.
    auto legacy_bytes = [&](const std::string& module, std::uint64_t bytes) {
        std::uint64_t sum = 0;
        for (const auto& b : ref["buffers"])
            if (v4_legacy(b[0].get<std::string>()) && (module.empty() || b[0].get<std::string>().starts_with(module + ".")))
                sum += b[1][0].get<std::uint64_t>() * std::min<std::uint64_t>(bytes, 4);
        return sum;
    };

    QCOMPARE(d.config.architecture, ref["class"].get<std::string>());
    QCOMPARE(tree.num_parameters(), ref["num_parameters"].get<std::uint64_t>());
    QCOMPARE(tree.module_bytes(0, SizeRule::stored()) - v4_absent_bytes, ref["memory_footprint"].get<std::uint64_t>() - legacy_bytes("", 4));
    QCOMPARE(std::string(torch_name(tree.dtype())), ref["dtype_auto"].get<std::string>());
    QCOMPARE(tree.no_split_class(), ref["no_split_modules"][0].get<std::string>());

    // gpt-oss: transformers holds a layer's experts in four parameters of mlp.experts (gate_up_proj
    // [experts, hidden, 2 * intermediate], gate and up columns alternating; its bias; down_proj
    // [experts, intermediate, hidden]; its bias), where Layerwise gives each expert its own modules.
    // Ours are folded into that form below: no modules under mlp.experts, the four parameters.
    const bool fused_experts = ref["class"] == "GptOssForCausalLM";
    auto inside_expert = [&](const std::string& name) { return fused_experts && name.find(".mlp.experts.") != std::string::npos; };

    // Modules: same names, classes and order as named_modules().
    std::vector<std::pair<std::string, std::string>> modules;
    for (std::size_t i = 1; i < tree.nodes().size(); ++i)
        if (!inside_expert(tree.nodes()[i].name))
            modules.emplace_back(tree.nodes()[i].name, tree.nodes()[i].class_name);
    std::vector<std::pair<std::string, std::string>> ref_modules;
    for (const auto& m : ref["modules"])
        if (!v4_legacy(m[0].get<std::string>()))
            ref_modules.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
    QCOMPARE(modules, ref_modules);

    // Parameters (tied weights once) and buffers, in named_parameters() / named_buffers() order.
    json params = json::array(), buffers = json::array();
    for (const auto& n : tree.nodes())
        for (const auto& t : n.tensors) {
            if (t.buffer) {
                if (!v4_lacks(t))
                    buffers.push_back({t.full_name, t.shape, torch_name(t.dtype), t.persistent});
            } else if (inside_expert(t.full_name)) {
                // Expert 0's gate_proj and down_proj stand for their fused parameters.
                const std::string experts = t.full_name.substr(0, t.full_name.find(".mlp.experts.") + 12);
                const std::string local = t.full_name.substr(experts.size() + 1);
                const std::int64_t e = d.config.num_experts;
                if (local == "0.gate_proj.weight")
                    params.push_back({experts + ".gate_up_proj", {e, t.shape[1], 2 * t.shape[0]}, torch_name(t.dtype)});
                else if (local == "0.gate_proj.bias")
                    params.push_back({experts + ".gate_up_proj_bias", {e, 2 * t.shape[0]}, torch_name(t.dtype)});
                else if (local == "0.down_proj.weight")
                    params.push_back({experts + ".down_proj", {e, t.shape[1], t.shape[0]}, torch_name(t.dtype)});
                else if (local == "0.down_proj.bias")
                    params.push_back({experts + ".down_proj_bias", {e, t.shape[0]}, torch_name(t.dtype)});
            } else if (t.tied_to.empty())
                params.push_back({t.full_name, t.shape, torch_name(t.dtype)});
        }
    QCOMPARE(params.dump(), ref["parameters"].dump());
    json ref_buffers = json::array();
    for (const auto& b : ref["buffers"])
        if (!v4_legacy(b[0].get<std::string>()))
            ref_buffers.push_back(b);
    QCOMPARE(buffers.dump(), ref_buffers.dump());

    // accelerate's compute_module_sizes for every dtype, at every recorded module and tensor.
    const auto bytes = tree.all_module_bytes(SizeRule::accelerate(DType::f32)); // warm-up of the API
    QCOMPARE(bytes.size(), tree.nodes().size());
    for (auto it = ref["module_sizes"].begin(); it != ref["module_sizes"].end(); ++it) {
        const DType target = *dtype_from_torch_name(it.key());
        const SizeRule rule = SizeRule::accelerate(target);
        const auto sizes = tree.all_module_bytes(rule);
        for (auto s = it.value().begin(); s != it.value().end(); ++s) {
            const int node = tree.find(s.key());
            std::uint64_t ours = 0;
            if (node >= 0) {
                ours = sizes[static_cast<std::size_t>(node)];
                for (const auto& n : tree.nodes())
                    for (const auto& t : n.tensors)
                        if (v4_lacks(t) && (s.key().empty() || t.full_name.starts_with(s.key() + ".")))
                            ours -= tree.tensor_bytes(t, rule);
            } else if (const ModuleTensor* t = tree.find_tensor(s.key()))
                ours = tree.tensor_bytes(*t, rule);
            else
                QFAIL(("no module or tensor " + s.key()).c_str());
            const std::uint64_t expected = s.value().get<std::uint64_t>() - legacy_bytes(s.key(), static_cast<std::uint64_t>(dtype_bits(target) / 8));
            QVERIFY2(ours == expected, (it.key() + " " + s.key()).c_str());
        }
    }

    // From config.json alone (the weights never opened) the skeleton is the same.
    const ModelDescription c = describe_model((folder / "config.json").string());
    QVERIFY(!c.checkpoint);
    QCOMPARE(c.tree.num_parameters(), tree.num_parameters());
    QCOMPARE(c.tree.nodes().size(), tree.nodes().size());
}

void TestCheckpoint::presetsMatchTransformers()
{
    const auto ref = test::read_json(test::fixtures() / "presets_reference.json");
    const auto presets = list_presets();
    QCOMPARE(presets.size(), ref.size());
    for (const auto& p : presets) {
        const ModelDescription d = describe_model(p.name, DType::bf16);
        const json& r = ref.at(p.name);
        QVERIFY2(d.tree.num_parameters() == r["num_parameters"].get<std::uint64_t>(), p.name.c_str());
        // transformers builds a config's model unquantized; gpt-oss's published experts are MXFP4
        // (17 bytes per 32 weights, as tst_runtime's mxfp4 fixture checks against the real
        // layout), which is what Layerwise counts for them: the reference, less the difference.
        std::uint64_t mxfp4_saving = 0;
        for (const auto& n : d.tree.nodes())
            for (const auto& t : n.tensors)
                if (t.quantized_bytes)
                    mxfp4_saving += t.numel() * 2 - *t.quantized_bytes;
        QVERIFY2(d.config.mxfp4_experts == (mxfp4_saving > 0), p.name.c_str());
        QVERIFY2(d.tree.module_bytes(0, SizeRule::accelerate(DType::bf16)) ==
                     r["module_sizes_bfloat16"].get<std::uint64_t>() - mxfp4_saving,
                 p.name.c_str());
        QCOMPARE(d.config.num_layers, r["num_layers"].get<std::int64_t>());
    }
}

void TestCheckpoint::storiesMatchesLlama2c()
{
    const fs::path hf = test::shared_data() / "models" / "stories260K";
    const ModelDescription d = describe_model(hf.string());
    QCOMPARE(d.tree.num_parameters(), std::uint64_t(260032));
    QCOMPARE(d.tree.tied().size(), std::size_t(1));

    // llama2.c layout: 7 int32 header, token embeddings [vocab, dim], rms_att [layers, dim], ...
    const std::string bin = test::read_file(test::shared_data() / "models" / "stories260K-llama2c" / "stories260K.bin");
    std::int32_t header[7];
    std::memcpy(header, bin.data(), sizeof header);
    const std::int64_t dim = header[0], layers = header[2], vocab = std::abs(header[5]);
    QCOMPARE(dim, d.config.hidden_size);
    QCOMPARE(layers, d.config.num_layers);
    QCOMPARE(vocab, d.config.vocab_size);
    const float* w = reinterpret_cast<const float*>(bin.data() + sizeof header);
    const auto embed_ref = at::from_blob(const_cast<float*>(w), {vocab, dim}, at::kFloat);
    QVERIFY(at::equal(tensor_view(*d.checkpoint, "model.embed_tokens.weight"), embed_ref));
    const auto rms_ref = at::from_blob(const_cast<float*>(w + vocab * dim), {layers, dim}, at::kFloat);
    for (std::int64_t l = 0; l < layers; ++l)
        QVERIFY(at::equal(tensor_view(*d.checkpoint, "model.layers." + std::to_string(l) + ".input_layernorm.weight"),
                          rms_ref[l]));
    // Describing never asked for tensor data; the views above did.
    QVERIFY(d.checkpoint->data_bytes_handed_out() > 0);
}

void TestCheckpoint::headersOnlyNeverTouchData()
{
    // A ~50 MB llama checkpoint written here, its pages dropped from the cache, then described.
    test::TempDir tmp;
    const fs::path folder = tmp.path() / "big";
    fs::create_directories(folder);
    test::write_file(folder / "config.json",
                     R"({"model_type":"llama","hidden_size":512,"intermediate_size":1024,"num_hidden_layers":2,
                        "num_attention_heads":8,"vocab_size":8192,"torch_dtype":"float32"})");
    const ModelConfig config = load_model_config(folder / "config.json");
    const ModuleTree skeleton = ModuleTree::from_config(config, DType::f32);
    json header = json::object();
    std::uint64_t offset = 0;
    for (const auto& n : skeleton.nodes())
        for (const auto& t : n.tensors) {
            if (!t.persistent)
                continue;
            const std::uint64_t size = t.numel() * 4;
            header[t.full_name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {offset, offset + size}}};
            offset += size;
        }
    std::string h = header.dump();
    h.resize((h.size() + 7) / 8 * 8, ' ');
    const fs::path weights = folder / "model.safetensors";
    {
        std::ofstream out(weights, std::ios::binary);
        const std::uint64_t n = h.size();
        out.write(reinterpret_cast<const char*>(&n), 8);
        out << h;
        std::vector<char> chunk(1 << 20, 1);
        for (std::uint64_t left = offset; left > 0;) {
            const auto k = std::min<std::uint64_t>(left, chunk.size());
            out.write(chunk.data(), static_cast<std::streamsize>(k));
            left -= k;
        }
    }
    {
        const int fd = ::open(weights.c_str(), O_RDONLY);
        ::fdatasync(fd);
        QCOMPARE(::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
        ::close(fd);
    }
    const ModelDescription d = describe_model(folder.string());
    QVERIFY(offset > 40u << 20);
    QCOMPARE(d.tree.num_parameters(), offset / 4);
    QCOMPARE(d.checkpoint->data_bytes_handed_out(), std::uint64_t(0));
    const MappedFile& file = *d.checkpoint->files().front();
    const std::uint64_t data_start = 8 + h.size();
    // Beyond the first MiB (the header and any kernel read-around) no page of tensor data is resident.
    QCOMPARE(file.resident_bytes(data_start + (1u << 20), offset - (1u << 20)), std::uint64_t(0));
    // The probe does see pages once data is read: touch the last tensor.
    const TensorEntry& last = d.checkpoint->tensors().back();
    QVERIFY(tensor_view(*d.checkpoint, last).sum().item<double>() > 0);
    QVERIFY(file.resident_bytes(last.offset, last.size) > 0);
}

void TestCheckpoint::badFiles()
{
    test::TempDir tmp;
    const std::string good = test::read_file(test::fixtures() / "checkpoints" / "llama-f32" / "model.safetensors");

    const fs::path truncated = tmp.path() / "truncated.safetensors";
    test::write_file(truncated, good.substr(0, good.size() / 2));
    QVERIFY(throws_with<FormatError>([&] { Checkpoint::open(truncated); },
                                     {"truncated.safetensors", "truncated file?", "reach byte"}));

    const fs::path short_file = tmp.path() / "short.safetensors";
    test::write_file(short_file, "abc");
    QVERIFY(throws_with<FormatError>([&] { Checkpoint::open(short_file); }, {"short.safetensors", "fewer than the 8-byte"}));

    const fs::path long_header = tmp.path() / "long_header.safetensors";
    std::string lh(8, '\0');
    lh[0] = static_cast<char>(0xe8);
    lh[1] = 0x03; // 1000
    test::write_file(long_header, lh + "{}");
    QVERIFY(throws_with<FormatError>([&] { Checkpoint::open(long_header); },
                                     {"long_header.safetensors", "header length 1000 at byte 0 is larger than the 2 bytes"}));

    const fs::path not_json = tmp.path() / "not_json.safetensors";
    test::write_file(not_json, std::string("\x04\0\0\0\0\0\0\0{abc", 12));
    QVERIFY(throws_with<FormatError>([&] { Checkpoint::open(not_json); }, {"not_json.safetensors", "not valid JSON"}));

    const fs::path truncated_bin = tmp.path() / "pytorch_model.bin";
    const std::string bin = test::read_file(test::fixtures() / "checkpoints" / "llama-bin" / "pytorch_model.bin");
    test::write_file(truncated_bin, bin.substr(0, bin.size() - 100));
    QVERIFY(throws_with<FormatError>([&] { Checkpoint::open(truncated_bin); }, {"pytorch_model.bin", "zip"}));
}

void TestCheckpoint::badFolders()
{
    test::TempDir tmp;
    // An index naming a missing shard.
    {
        const fs::path f = copy_fixture("qwen2-sharded", tmp.path());
        fs::remove(f / "model-00002-of-00004.safetensors");
        QVERIFY(throws_with<FormatError>([&] { describe_model(f.string()); },
                                         {"model.safetensors.index.json", "model-00002-of-00004.safetensors",
                                          "missing"}));
    }
    // An index that maps a tensor to a shard that does not hold it.
    {
        const fs::path f = copy_fixture("gpt_neox-sharded", tmp.path());
        auto index = test::read_json(f / "model.safetensors.index.json");
        std::string moved;
        for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it)
            if (it.value() == "model-00002-of-00002.safetensors") {
                moved = it.key();
                it.value() = "model-00001-of-00002.safetensors";
                break;
            }
        test::write_file(f / "model.safetensors.index.json", index.dump());
        QVERIFY(throws_with<FormatError>([&] { describe_model(f.string()); },
                                         {moved.c_str(), "does not contain it"}));
    }
    // A config whose shapes contradict the weights.
    {
        const fs::path f = copy_fixture("llama-f32", tmp.path());
        auto config = test::read_json(f / "config.json");
        config["intermediate_size"] = 48;
        test::write_file(f / "config.json", config.dump());
        QVERIFY(throws_with<FormatError>([&] { describe_model(f.string()); },
                                         {"contradicts the weights", "model.layers.0.mlp.gate_proj.weight",
                                          "model.safetensors", "[32, 16]", "[48, 16]"}));
        config["intermediate_size"] = 32;
        config["num_hidden_layers"] = 3;
        test::write_file(f / "config.json", config.dump());
        QVERIFY(throws_with<FormatError>([&] { describe_model(f.string()); },
                                         {"model.layers.2.self_attn.q_proj.weight", "missing from the checkpoint"}));
    }
    // An empty folder, a folder without weights, a folder without config.
    {
        const fs::path empty = tmp.path() / "empty";
        fs::create_directories(empty);
        QVERIFY(throws_with<FormatError>([&] { describe_model(empty.string()); }, {"empty", "is empty"}));
        const fs::path no_weights = tmp.path() / "no_weights";
        fs::create_directories(no_weights);
        fs::copy(test::fixtures() / "checkpoints" / "gpt2" / "config.json", no_weights / "config.json");
        // A config without weights (a model not downloaded yet) is described from the config,
        // and refused when loaded.
        const ModelDescription planned = describe_model(no_weights.string());
        QVERIFY(!planned.checkpoint);
        QCOMPARE(planned.tree.num_parameters(), describe_model((no_weights / "config.json").string()).tree.num_parameters());
        fs::create_directories(tmp.path() / "gptq_no_weights");
        fs::copy(test::fixtures() / "checkpoints" / "gpt2" / "config.json", tmp.path() / "gptq_no_weights" / "config.json");
        test::write_file(tmp.path() / "gptq_no_weights" / "quantize_config.json", R"({"bits": 4, "group_size": 128})");
        // A GPTQ folder whose weights are missing is still an error, not a plan of float weights.
        QVERIFY(throws_with<FormatError>([&] { describe_model((tmp.path() / "gptq_no_weights").string()); }, {"gptq_no_weights"}));
        const fs::path no_config = tmp.path() / "no_config";
        fs::create_directories(no_config);
        fs::copy(test::fixtures() / "checkpoints" / "gpt2" / "model.safetensors", no_config / "model.safetensors");
        QVERIFY(throws_with<FormatError>([&] { describe_model(no_config.string()); }, {"has no config.json"}));
    }
    QVERIFY(throws_with<IoError>([&] { describe_model("No-Such-Model"); }, {"neither a file", "Llama-3.1-8B"}));
    QVERIFY(throws_with<IoError>([&] { describe_model("/no/such/folder"); }, {"/no/such/folder does not exist"}));
}

void TestCheckpoint::permissionDenied()
{
    test::TempDir tmp;
    const fs::path f = copy_fixture("gpt2", tmp.path());
    fs::permissions(f, fs::perms::none);
    fs::permissions(tmp.path(), fs::perms::owner_all | fs::perms::others_exec);
    auto attempt = [&]() -> int {
        try {
            describe_model(f.string());
        } catch (const IoError& e) {
            return QString::fromUtf8(e.what()).contains("Permission denied") ? 0 : 3;
        } catch (...) {
            return 4;
        }
        return 5;
    };
    int rc = 0;
    if (::geteuid() != 0) {
        rc = attempt();
    } else {
        // root reads everything: check as an unprivileged user in a child process.
        const pid_t pid = ::fork();
        if (pid == 0) {
            if (::setgid(65534) != 0 || ::setuid(65534) != 0)
                ::_exit(6);
            ::_exit(attempt());
        }
        int status = 0;
        ::waitpid(pid, &status, 0);
        rc = WIFEXITED(status) ? WEXITSTATUS(status) : 7;
    }
    fs::permissions(f, fs::perms::owner_all);
    QCOMPARE(rc, 0);
}

QTEST_GUILESS_MAIN(TestCheckpoint)
#include "tst_checkpoint.moc"
