// Unit tests without model data: sizes, dtypes, safetensors/index/config/pickle validation, kernels.
#include "testdata.h"

#include "checkpoint/safetensors.h"
#include "checkpoint/sharded_index.h"
#include "checkpoint/torch_pickle.h"
#include "core/bytes.h"
#include "core/dtype.h"
#include "core/error.h"
#include "dequantize.h"
#include "model/config.h"

#include <ATen/ATen.h>

using namespace layerwise;
using layerwise::test::throws_with;

class TestCore : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void sizesMatchAccelerate();
    void formatting();
    void dtypeTable();
    void safetensorsHeaderValid();
    void safetensorsHeaderRejects_data();
    void safetensorsHeaderRejects();
    void shardedIndexRejects_data();
    void shardedIndexRejects();
    void configFamilies();
    void configRejects_data();
    void configRejects();
    void autoDtype();
    void pickleRefusesCode();
    void dequantizeInt8Reference();
};

void TestCore::sizesMatchAccelerate()
{
    // Expected values: accelerate.utils.modeling.convert_file_size_to_int (tests/reference).
    const auto ref = test::read_json(test::fixtures() / "sizes.json");
    QVERIFY(ref.size() > 30);
    for (auto it = ref.begin(); it != ref.end(); ++it) {
        const std::string text = it.key();
        const bool all_digits = !text.empty() && text.find_first_not_of("0123456789") == std::string::npos;
        if (it.value().is_null() && !all_digits) {
            QVERIFY2(throws_with<FormatError>([&] { parse_size(text); }, {"not in a valid format"}), text.c_str());
            continue;
        }
        // accelerate takes Python integers as bytes; on a command line they arrive as digit strings.
        const std::int64_t expected = it.value().is_null() ? std::stoll(text) : it.value().get<std::int64_t>();
        QCOMPARE(parse_size(text), expected);
    }
}

void TestCore::formatting()
{
    QCOMPARE(format_bytes(512), std::string("512 B"));
    QCOMPARE(format_bytes(1536), std::string("1.50 KiB"));
    QCOMPARE(format_bytes(16060522752ULL), std::string("14.96 GiB"));
    QCOMPARE(format_count(260032), std::string("260,032"));
    QCOMPARE(format_count(8030261248ULL), std::string("8,030,261,248"));
}

void TestCore::dtypeTable()
{
    const char* names[] = {"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2", "I64", "I32",
                           "I16", "I8",  "U64", "U32", "U16",  "U8",      "BOOL"};
    for (const char* n : names) {
        auto d = dtype_from_safetensors(n);
        QVERIFY2(d.has_value(), n);
        QCOMPARE(safetensors_name(*d), std::string_view(n));
    }
    QVERIFY(!dtype_from_safetensors("F4").has_value());
    QCOMPARE(dtype_bits(DType::bf16), 16);
    QCOMPARE(dtype_bytes(DType::int4, 3), std::uint64_t(2));
    QCOMPARE(*dtype_from_torch_name("torch.bfloat16"), DType::bf16);
    QCOMPARE(*dtype_from_torch_name("fp16"), DType::f16);
    QVERIFY(is_floating(DType::f8_e4m3) && !is_floating(DType::boolean));
}

namespace {
// A header for a file whose data buffer is `buffer` bytes.
std::uint64_t file_size_for(const std::string& header, std::uint64_t buffer) { return 8 + header.size() + buffer; }
} // namespace

void TestCore::safetensorsHeaderValid()
{
    const std::string h = R"({"__metadata__":{"format":"pt"},"b":{"dtype":"BF16","shape":[2,3],"data_offsets":[16,28]},)"
                          R"("a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"s":{"dtype":"I8","shape":[],"data_offsets":[28,29]}})";
    const auto parsed = parse_safetensors_header(h, file_size_for(h, 29), "x.safetensors");
    QCOMPARE(parsed.tensors.size(), std::size_t(3));
    QCOMPARE(parsed.metadata.at("format"), std::string("pt"));
    QCOMPARE(parsed.tensors[0].name, std::string("b"));
    QCOMPARE(parsed.tensors[0].offset, 8 + h.size() + 16);
    QCOMPARE(parsed.tensors[2].shape.size(), std::size_t(0));
    QCOMPARE(parsed.tensors[2].size, std::uint64_t(1));
}

void TestCore::safetensorsHeaderRejects_data()
{
    QTest::addColumn<QString>("header");
    QTest::addColumn<int>("buffer");
    QTest::addColumn<QString>("needle");
    QTest::newRow("not json") << R"({"a": )" << 0 << "not valid JSON";
    QTest::newRow("not object") << R"([1, 2])" << 0 << "not an object";
    QTest::newRow("unknown dtype") << R"({"w":{"dtype":"F12","shape":[1],"data_offsets":[0,2]}})" << 2
                                   << "tensor 'w': unknown dtype 'F12'";
    QTest::newRow("out of range") << R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})" << 8
                                  << "tensor 'w': data_offsets [0,16] reach byte";
    QTest::newRow("size mismatch") << R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}})" << 16
                                   << "hold 16 bytes but shape [3] x F32 needs 12";
    QTest::newRow("overlap") << R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})"
                             << 12 << "overlaps tensor 'a'";
    QTest::newRow("hole") << R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})"
                          << 12 << "belong to no tensor";
    QTest::newRow("trailing") << R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})" << 9
                              << "the tensors end at byte";
    QTest::newRow("duplicate") << R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})"
                               << 8 << "tensor 'a' appears twice";
    QTest::newRow("begin after end") << R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})" << 4
                                     << "end before they begin";
    QTest::newRow("negative dim") << R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})" << 4
                                  << "must hold non-negative integers";
    QTest::newRow("missing offsets") << R"({"a":{"dtype":"F32","shape":[1]}})" << 4 << "'data_offsets' must be";
    QTest::newRow("bad metadata") << R"({"__metadata__":{"n":1}})" << 0 << "__metadata__['n'] is not a string";
    QTest::newRow("overflow") << R"({"a":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}})" << 8
                              << "overflows";
}

void TestCore::safetensorsHeaderRejects()
{
    QFETCH(QString, header);
    QFETCH(int, buffer);
    QFETCH(QString, needle);
    const std::string h = header.toStdString();
    const std::string n = needle.toStdString();
    QVERIFY(throws_with<FormatError>(
        [&] { parse_safetensors_header(h, file_size_for(h, static_cast<std::uint64_t>(buffer)), "m.safetensors"); },
        {"m.safetensors", n.c_str()}));
}

void TestCore::shardedIndexRejects_data()
{
    QTest::addColumn<QString>("json");
    QTest::addColumn<QString>("needle");
    QTest::newRow("not json") << "{" << "not valid JSON";
    QTest::newRow("no weight_map") << R"({"metadata":{}})" << "missing the 'weight_map'";
    QTest::newRow("empty") << R"({"weight_map":{}})" << "weight_map is empty";
    QTest::newRow("path escape") << R"({"weight_map":{"a":"../../etc/passwd"}})" << "is not a file name";
    QTest::newRow("not a string") << R"({"weight_map":{"a":3}})" << "weight_map['a'] is not a file name";
    QTest::newRow("bad total") << R"({"metadata":{"total_size":"big"},"weight_map":{"a":"x"}})"
                               << "total_size must be a non-negative integer";
}

void TestCore::shardedIndexRejects()
{
    QFETCH(QString, json);
    QFETCH(QString, needle);
    const std::string j = json.toStdString(), n = needle.toStdString();
    QVERIFY(throws_with<FormatError>([&] { parse_sharded_index(j, "model.safetensors.index.json"); },
                                     {"model.safetensors.index.json", n.c_str()}));
    const auto ok = parse_sharded_index(
        R"({"metadata":{"total_size":10},"weight_map":{"a":"s2","b":"s1","c":"s2"}})", "i");
    QCOMPARE(ok.shards, (std::vector<std::string>{"s2", "s1"}));
    QCOMPARE(*ok.total_size, std::uint64_t(10));
}

void TestCore::configFamilies()
{
    // transformers 4.x spelling
    auto c = parse_model_config(R"({"model_type":"llama","hidden_size":64,"intermediate_size":172,"num_hidden_layers":5,
        "num_attention_heads":8,"num_key_value_heads":4,"vocab_size":512,"torch_dtype":"float16",
        "rope_scaling":{"rope_type":"llama3","factor":8.0,"low_freq_factor":1.0,"high_freq_factor":4.0,
        "original_max_position_embeddings":8192},"rope_theta":500000.0})", "c");
    QCOMPARE(c.head_dim, std::int64_t(8));
    QCOMPARE(c.rope.type, std::string("llama3"));
    QCOMPARE(c.rope.theta, 500000.0);
    QCOMPARE(c.rope.original_max_position_embeddings, std::int64_t(8192));
    QCOMPARE(*c.dtype, DType::f16);
    QCOMPARE(c.architecture, std::string("LlamaForCausalLM"));
    // transformers 5.x spelling
    c = parse_model_config(R"({"model_type":"gpt_neox","hidden_size":16,"intermediate_size":32,"num_hidden_layers":2,
        "num_attention_heads":4,"vocab_size":96,"dtype":"bfloat16",
        "rope_parameters":{"partial_rotary_factor":0.5,"rope_theta":10000.0,"rope_type":"default"}})", "c");
    QCOMPARE(c.rotary_dim(), std::int64_t(2));
    QCOMPARE(*c.dtype, DType::bf16);
    QVERIFY(c.attention_bias);
    // gpt2 defaults: n_inner = 4 * n_embd, tied head
    c = parse_model_config(R"({"model_type":"gpt2","n_embd":32,"n_layer":2,"n_head":4,"vocab_size":100,"n_inner":null})", "c");
    QCOMPARE(c.intermediate_size, std::int64_t(128));
    QVERIFY(c.tie_word_embeddings);
    QCOMPARE(c.max_position_embeddings, std::int64_t(1024));
    // qwen3 head_dim independent of hidden / heads
    c = parse_model_config(R"({"model_type":"qwen3","hidden_size":1024,"intermediate_size":3072,"num_hidden_layers":28,
        "num_attention_heads":16,"num_key_value_heads":8,"head_dim":128,"vocab_size":151936})", "c");
    QCOMPARE(c.head_dim, std::int64_t(128));
    QVERIFY(!c.dtype.has_value());
}

void TestCore::configRejects_data()
{
    QTest::addColumn<QString>("json");
    QTest::addColumn<QString>("needle");
    QTest::addColumn<bool>("unsupported");
    QTest::newRow("unknown arch") << R"({"model_type":"mamba"})"
                                  << "unsupported architecture 'mamba'; supported: gemma2, gemma3_text, gpt2, gpt_neox, gpt_oss, llama, mistral, mixtral, phi3, qwen2, qwen2_moe, qwen3, qwen3_moe"
                                  << true;
    QTest::newRow("no model_type") << R"({"hidden_size":3})" << "'model_type' is missing" << false;
    QTest::newRow("missing field") << R"({"model_type":"llama","intermediate_size":4,"num_hidden_layers":1,"num_attention_heads":1,"vocab_size":2})"
                                   << "'hidden_size' is missing" << false;
    QTest::newRow("not positive") << R"({"model_type":"llama","hidden_size":0,"intermediate_size":4,"num_hidden_layers":1,"num_attention_heads":1,"vocab_size":2})"
                                  << "'hidden_size' must be a positive integer, not 0" << false;
    QTest::newRow("heads") << R"({"model_type":"llama","hidden_size":10,"intermediate_size":4,"num_hidden_layers":1,"num_attention_heads":3,"vocab_size":2})"
                           << "not divisible by the 3 attention heads" << false;
    QTest::newRow("kv heads") << R"({"model_type":"llama","hidden_size":12,"intermediate_size":4,"num_hidden_layers":1,"num_attention_heads":4,"num_key_value_heads":3,"vocab_size":2})"
                              << "not a multiple of 3 key/value heads" << false;
    QTest::newRow("dtype") << R"({"model_type":"gpt2","n_embd":4,"n_layer":1,"n_head":1,"vocab_size":2,"torch_dtype":"int8"})"
                           << "not a floating-point torch dtype" << false;
    QTest::newRow("not json") << "{,}" << "not valid JSON" << false;
    QTest::newRow("rope") << R"({"model_type":"llama","hidden_size":4,"intermediate_size":4,"num_hidden_layers":1,"num_attention_heads":1,"vocab_size":2,"rope_scaling":{"type":"magic"}})"
                          << "rope type 'magic' is not supported" << true;
    QTest::newRow("rope field type") << R"({"model_type":"llama","hidden_size":4,"intermediate_size":4,"num_hidden_layers":1,"num_attention_heads":1,"vocab_size":2,"rope_scaling":{"rope_type":32}})"
                                     << "config.json rope_scaling: 'rope_type' must be a string, not 32" << false;
    QTest::newRow("longrope without long_factor")
        << R"({"model_type":"llama","hidden_size":4,"intermediate_size":4,"num_hidden_layers":1,"num_attention_heads":1,"vocab_size":2,"rope_scaling":{"rope_type":"longrope","short_factor":[1,1],"original_max_position_embeddings":8}})"
        << "longrope needs 'long_factor'" << false;
    QTest::newRow("longrope factor not a number")
        << R"({"model_type":"llama","hidden_size":4,"intermediate_size":4,"num_hidden_layers":1,"num_attention_heads":1,"vocab_size":2,"rope_scaling":{"rope_type":"longrope","short_factor":[1,1],"long_factor":[1,"x"],"original_max_position_embeddings":8}})"
        << "'long_factor' must hold positive numbers" << false;
    QTest::newRow("longrope without original context")
        << R"({"model_type":"llama","hidden_size":4,"intermediate_size":4,"num_hidden_layers":1,"num_attention_heads":1,"vocab_size":2,"rope_scaling":{"rope_type":"longrope","short_factor":[1,1],"long_factor":[1,2]}})"
        << "longrope needs 'original_max_position_embeddings'" << false;
}

void TestCore::configRejects()
{
    QFETCH(QString, json);
    QFETCH(QString, needle);
    QFETCH(bool, unsupported);
    const std::string j = json.toStdString(), n = needle.toStdString();
    if (unsupported)
        QVERIFY(throws_with<UnsupportedError>([&] { parse_model_config(j, "config.json"); }, {"config.json", n.c_str()}));
    else
        QVERIFY(throws_with<FormatError>([&] { parse_model_config(j, "config.json"); }, {"config.json", n.c_str()}));
}

void TestCore::autoDtype()
{
    auto c = parse_model_config(R"({"model_type":"gpt2","n_embd":4,"n_layer":1,"n_head":1,"vocab_size":2})", "c");
    QCOMPARE(resolve_auto_dtype(c, DType::bf16), DType::bf16); // no config dtype: the weights decide
    QCOMPARE(resolve_auto_dtype(c, std::nullopt), DType::f32);
    c.dtype = DType::f16;
    QCOMPARE(resolve_auto_dtype(c, DType::bf16), DType::f16); // the config wins
}

void TestCore::pickleRefusesCode()
{
    // Protocol-2 pickle of os.system("true"): GLOBAL 'posix system', a string, TUPLE1, REDUCE.
    using namespace std::string_literals;
    const std::string evil = "\x80\x02"s + "cposix\nsystem\nq\x00"s + "X\x04\x00\x00\x00"s + "true\x85R."s;
    QVERIFY(throws_with<FormatError>([&] { read_state_dict_pickle(evil, "evil.bin"); },
                                     {"evil.bin", "posix.system", "never runs code"}));
    QVERIFY(throws_with<FormatError>([&] { read_state_dict_pickle(std::string("\x80\x02}q", 4), "t.bin"); },
                                     {"t.bin", "unexpected end of pickle"}));
    QVERIFY(throws_with<FormatError>([&] { read_state_dict_pickle(std::string("\x80\x02K\x05.", 5), "n.bin"); },
                                     {"not a state dict"}));
}

void TestCore::dequantizeInt8Reference()
{
    // bitsandbytes' int8 layout: W = CB * SCB / 127 per output row.
    const auto cb = at::tensor({127, -127, 64, 0}, at::kChar).reshape({2, 2});
    const auto scb = at::tensor({2.0f, 4.0f});
    const auto w = kernels::dequantize_int8_rowwise(cb, scb, at::kFloat);
    const auto expected = at::tensor({2.0f, -2.0f, 64.0f * 4.0f / 127.0f, 0.0f}).reshape({2, 2});
    QVERIFY(at::allclose(w, expected, 0, 1e-6));
    QCOMPARE(kernels::dequantize_int8_rowwise(cb, scb, at::kHalf).scalar_type(), at::kHalf);
}

QTEST_GUILESS_MAIN(TestCore)
#include "tst_core.moc"
