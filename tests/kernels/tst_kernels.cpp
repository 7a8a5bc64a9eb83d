// The CPU GEMV kernels against their LibTorch oracles (dequantize, then a float32 matmul), at
// every instruction-set level this CPU runs (scalar, avx2, avx512 when present), with the
// normalised error bounds of llama.cpp's test-backend-ops: odd sizes, act-order g_idx,
// group sizes 32/64/128/-1 and one that is not a multiple of 8, 1..8 rows, float32 and
// bfloat16 activations. The oracles themselves are checked against the layouts: GPTQ against
// codes packed here and against the engine's AutoGPTQ packer, NF4/FP4 against the engine's
// bitsandbytes-exact dequantization.
#include "kernel_cases.h"

#include "cpu/cpu_features.h"
#include "cpu_levels.h"
#include "quant/gptq_pack.h"
#include "quant_gemv.h"

#include <ATen/ATen.h>
#include <QTest>
#include <vector>

using namespace layerwise;
using namespace layerwise::kernels;

namespace {

// Float32 activations: only the summation order differs from the oracle.
constexpr double kBoundF32 = 1e-7;
// bfloat16 activations: both outputs are rounded to bfloat16 (8 significant bits).
constexpr double kBoundBf16 = 1e-5;

QByteArray label(const std::string& s) { return QByteArray::fromStdString(s); }

} // namespace

class TestKernels : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void initTestCase();
    void cpuFeaturesAgreeWithTheCompiler();
    void gptqReferenceFollowsTheLayout();
    void gptqReadsTheProjectsPacker();
    void blockwise4ReferenceIsTheEngines();
    void gptqGemv_data();
    void gptqGemv();
    void blockwise4Gemv_data();
    void blockwise4Gemv();
    void int8GemvIsExact();
    void boundsCatchWrongLayouts();
    void badInput();
};

void TestKernels::initTestCase()
{
    at::manual_seed(20240611);
    std::string names;
    for (CpuLevel l : test::cpu_levels())
        names += std::string(cpu_level_name(l)) + " ";
    qInfo("kernel levels run on this CPU: %s(best: %s)", names.c_str(), std::string(cpu_level_name(best_cpu_level())).c_str());
}

void TestKernels::cpuFeaturesAgreeWithTheCompiler()
{
    // cpuid + xgetbv by hand against the compiler runtime's own detection.
    const CpuFeatures& f = cpu_features();
    QCOMPARE(f.avx2, bool(__builtin_cpu_supports("avx2")));
    QCOMPARE(f.fma, bool(__builtin_cpu_supports("fma")));
    QCOMPARE(f.avx512f, bool(__builtin_cpu_supports("avx512f")));
    QCOMPARE(f.avx512bw, bool(__builtin_cpu_supports("avx512bw")));
    QCOMPARE(f.avx512vl, bool(__builtin_cpu_supports("avx512vl")));
    QCOMPARE(f.avx512vnni, bool(__builtin_cpu_supports("avx512vnni")));
    QVERIFY(cpu_level_available(CpuLevel::scalar));
    QCOMPARE(resolve_cpu_level(CpuLevel::automatic), best_cpu_level());
    QVERIFY(best_cpu_level() != CpuLevel::automatic);
}

void TestKernels::gptqReferenceFollowsTheLayout()
{
    for (bool act : {false, true})
        for (bool sym : {false, true})
            for (std::int64_t gs : {32, 100, -1}) {
                const test::GptqCase c = test::make_gptq_case(200, 48, gs, act, sym);
                const at::Tensor w = dequantize_gptq_reference(c.qweight, c.qzeros, c.scales, c.g_idx);
                QCOMPARE(w.sizes().vec(), (std::vector<std::int64_t>{48, 200}));
                QVERIFY(at::equal(w, test::gptq_weight_of(c)));
            }
}

void TestKernels::gptqReadsTheProjectsPacker()
{
    // Tensors written by the engine's AutoGPTQ packer (byte-identical to AutoGPTQ's, tested in
    // tst_gptq): the oracle dequantizes as gptq_dequantize does, zero points 0 included, and
    // every level's GEMV stays within the bound.
    for (bool act : {false, true})
        for (int gs : {32, 128, -1}) {
            const std::int64_t in = 256, out = 96, groups = gs < 0 ? 1 : in / gs;
            const at::Tensor codes = at::randint(0, 16, {out, in}, at::kInt);
            const at::Tensor zeros = at::randint(0, 16, {groups, out}, at::kInt);
            const at::Tensor scales = at::rand({groups, out}) * 0.02 + 0.001;
            at::Tensor g_idx = gptq_default_g_idx(in, gs);
            if (act)
                g_idx = g_idx.index_select(0, at::randperm(in, at::kLong));
            const GptqPacked p = gptq_pack(codes, scales, zeros, g_idx, 4);
            QVERIFY(at::equal(dequantize_gptq_reference(p.qweight, p.qzeros, p.scales, p.g_idx), gptq_dequantize(p, 4, at::kFloat)));
            const at::Tensor x = at::randn({3, in});
            const at::Tensor oracle = at::matmul(x, gptq_dequantize(p, 4, at::kFloat).t());
            for (CpuLevel level : test::cpu_levels())
                QVERIFY(test::nmse(gptq_gemv(x, p.qweight, p.qzeros, p.scales, p.g_idx, level), oracle) < kBoundF32);
        }
}

void TestKernels::blockwise4ReferenceIsTheEngines()
{
    for (QuantMethod m : {QuantMethod::nf4, QuantMethod::fp4})
        for (bool nested : {false, true})
            for (auto [out, in] : std::vector<std::pair<std::int64_t, std::int64_t>>{{5, 63}, {33, 128}, {300, 64}}) {
                const at::Tensor w = at::randn({out, in});
                const Blockwise4Weight b = test::make_blockwise4(w, m, 64, nested);
                const at::Tensor absmax =
                    nested ? unnest_absmax(b.absmax, b.nested_absmax, b.nested_code, b.nested_offset, 256) : b.absmax;
                const at::Tensor engine = dequantize_4bit_blocks(b.packed, absmax, b.code, 64, {out, in}, at::kFloat);
                QVERIFY(at::equal(dequantize_blockwise4_reference(b), engine));
            }
}

void TestKernels::gptqGemv_data()
{
    QTest::addColumn<int>("in");
    QTest::addColumn<int>("out");
    QTest::addColumn<int>("groupSize");
    QTest::addColumn<bool>("actOrder");
    QTest::addColumn<bool>("symmetric");
    for (auto [in, out] : std::vector<std::pair<int, int>>{{256, 64}, {520, 200}, {1024, 328}, {40, 8}})
        for (int gs : {32, 64, 128, -1, 100})
            for (bool act : {false, true}) {
                const bool sym = (in + gs) % 3 == 0;
                QTest::newRow(label(std::to_string(in) + "x" + std::to_string(out) + " g" + std::to_string(gs) +
                                    (act ? " act-order" : "") + (sym ? " sym" : " asym"))
                                  .constData())
                    << in << out << gs << act << sym;
            }
}

void TestKernels::gptqGemv()
{
    QFETCH(int, in);
    QFETCH(int, out);
    QFETCH(int, groupSize);
    QFETCH(bool, actOrder);
    QFETCH(bool, symmetric);
    const test::GptqCase c = test::make_gptq_case(in, out, groupSize, actOrder, symmetric);
    for (int rows : {1, 2, 3, 4, 5, 8})
        for (auto dtype : {at::kFloat, at::kBFloat16}) {
            const at::Tensor x = at::randn({rows, in}).to(dtype);
            const at::Tensor oracle = gptq_gemv_reference(x, c.qweight, c.qzeros, c.scales, c.g_idx);
            for (CpuLevel level : test::cpu_levels()) {
                const at::Tensor y = gptq_gemv(x, c.qweight, c.qzeros, c.scales, c.g_idx, level);
                QCOMPARE(y.scalar_type(), dtype);
                QCOMPARE(y.sizes().vec(), (std::vector<std::int64_t>{rows, out}));
                const double e = test::nmse(y, oracle);
                QVERIFY2(e < (dtype == at::kFloat ? kBoundF32 : kBoundBf16),
                         qPrintable(QString("%1 rows %2 %3: nmse %4").arg(rows).arg(dtype == at::kFloat ? "f32" : "bf16")
                                        .arg(QString::fromLatin1(cpu_level_name(level).data(), int(cpu_level_name(level).size())))
                                        .arg(e)));
            }
        }
}

void TestKernels::blockwise4Gemv_data()
{
    QTest::addColumn<int>("out");
    QTest::addColumn<int>("in");
    QTest::addColumn<QString>("method");
    QTest::addColumn<int>("blocksize");
    QTest::addColumn<bool>("nested");
    struct Shape {
        int out, in;
    };
    // 63 and 97: odd rows start mid-byte; 96 and 200: blocks straddle rows (scalar path);
    // 64, 256, 1024: the SIMD paths; 300 x 64: two nested blocks of 256.
    for (Shape s : {Shape{5, 63}, Shape{7, 97}, Shape{17, 96}, Shape{9, 200}, Shape{33, 64}, Shape{300, 64}, Shape{40, 256},
                    Shape{24, 1024}})
        for (const char* m : {"nf4", "fp4"})
            for (int bs : {64, 128})
                for (bool nested : {false, true})
                    QTest::newRow(label(std::to_string(s.out) + "x" + std::to_string(s.in) + " " + m + " b" + std::to_string(bs) +
                                        (nested ? " nested" : ""))
                                      .constData())
                        << s.out << s.in << QString(m) << bs << nested;
}

void TestKernels::blockwise4Gemv()
{
    QFETCH(int, out);
    QFETCH(int, in);
    QFETCH(QString, method);
    QFETCH(int, blocksize);
    QFETCH(bool, nested);
    const Blockwise4Weight w = test::make_blockwise4(at::randn({out, in}), method == "nf4" ? QuantMethod::nf4 : QuantMethod::fp4,
                                                     blocksize, nested);
    for (int rows : {1, 2, 3, 4, 6, 8})
        for (auto dtype : {at::kFloat, at::kBFloat16}) {
            const at::Tensor x = at::randn({rows, in}).to(dtype);
            const at::Tensor oracle = blockwise4_gemv_reference(x, w);
            for (CpuLevel level : test::cpu_levels()) {
                const at::Tensor y = blockwise4_gemv(x, w, level);
                QCOMPARE(y.scalar_type(), dtype);
                QCOMPARE(y.sizes().vec(), (std::vector<std::int64_t>{rows, out}));
                const double e = test::nmse(y, oracle);
                QVERIFY2(e < (dtype == at::kFloat ? kBoundF32 : kBoundBf16),
                         qPrintable(QString("%1 rows %2 %3: nmse %4").arg(rows).arg(dtype == at::kFloat ? "f32" : "bf16")
                                        .arg(QString::fromLatin1(cpu_level_name(level).data(), int(cpu_level_name(level).size())))
                                        .arg(e)));
            }
        }
}

void TestKernels::int8GemvIsExact()
{
    // The int32 sums are exact, so every level gives the oracle's formula bit for bit when
    // that formula's sums are exact too (float64 products of the codes), and the float32
    // oracle within the bound. Weights cover every byte, -128 included.
    for (auto [out, in] : std::vector<std::pair<int, int>>{{1, 31}, {7, 64}, {33, 100}, {20, 257}, {64, 4096}})
        for (int rows : {1, 2, 4, 5, 8}) {
            const at::Tensor cb = at::randint(-128, 128, {out, in}, at::kChar);
            const at::Tensor scb = at::rand({out}) * 2 + 0.01;
            auto [xq, xs] = test::int8_rows(at::randn({rows, in}));
            const at::Tensor acc = at::matmul(xq.to(at::kDouble), cb.to(at::kDouble).t()).to(at::kFloat);
            const at::Tensor exact = acc * (xs.view({-1, 1}) * scb.view({1, -1})) * 6.200124e-05f;
            const at::Tensor oracle = int8_gemv_reference(xq, xs, cb, scb);
            for (CpuLevel level : test::cpu_levels()) {
                const at::Tensor y = int8_gemv(xq, xs, cb, scb, level);
                QVERIFY2(at::equal(y, exact), qPrintable(QString("%1x%2 rows %3 %4").arg(out).arg(in).arg(rows).arg(int(level))));
                QVERIFY(test::nmse(y, oracle) < kBoundF32);
            }
        }
}

void TestKernels::boundsCatchWrongLayouts()
{
    // The bounds separate right from wrong: the oracle of a misread layout (zero without its
    // +1, nibbles swapped, int8 weights transposed) is far outside them.
    const test::GptqCase c = test::make_gptq_case(256, 64, 64, false, false);
    const at::Tensor x = at::randn({1, 256});
    const at::Tensor y = gptq_gemv(x, c.qweight, c.qzeros, c.scales, c.g_idx);
    const at::Tensor zero_off = at::matmul(x, (test::gptq_weight_of(c) + c.scales.to(at::kFloat).index_select(0, c.g_idx.to(at::kLong)).t()).t());
    QVERIFY(test::nmse(y, zero_off) > 1e-3);
    QVERIFY(test::nmse(y, gptq_gemv_reference(x, c.qweight, c.qzeros, c.scales, c.g_idx)) < kBoundF32);

    Blockwise4Weight w = test::make_blockwise4(at::randn({16, 128}), QuantMethod::nf4, 64, false);
    const at::Tensor xb = at::randn({1, 128});
    const at::Tensor yb = blockwise4_gemv(xb, w);
    Blockwise4Weight swapped = w;
    swapped.packed = at::bitwise_or(at::bitwise_left_shift(w.packed, 4), at::bitwise_right_shift(w.packed, 4));
    QVERIFY(test::nmse(yb, blockwise4_gemv_reference(xb, swapped)) > 1e-3);

    const at::Tensor cb = at::randint(-127, 128, {32, 32}, at::kChar);
    auto [xq, xs] = test::int8_rows(at::randn({1, 32}));
    const at::Tensor scb = at::ones({32});
    QVERIFY(test::nmse(int8_gemv(xq, xs, cb, scb), int8_gemv_reference(xq, xs, cb.t().contiguous(), scb)) > 1e-3);
}

void TestKernels::badInput()
{
    const test::GptqCase c = test::make_gptq_case(64, 16, 32, false, false);
    const at::Tensor x = at::randn({1, 64});
    auto throws = [](auto&& f) {
        try {
            f();
        } catch (const c10::Error&) {
            return true;
        }
        return false;
    };
    QVERIFY(throws([&] { gptq_gemv(at::randn({1, 72}), c.qweight, c.qzeros, c.scales, c.g_idx); }));
    QVERIFY(throws([&] { gptq_gemv(x.to(at::kLong), c.qweight, c.qzeros, c.scales, c.g_idx); }));
    QVERIFY(throws([&] { gptq_gemv(x, c.qweight, c.qzeros, c.scales.to(at::kFloat), c.g_idx); }));
    QVERIFY(throws([&] { gptq_gemv(x, c.qweight, c.qzeros.narrow(0, 0, 1), c.scales, c.g_idx); }));
    at::Tensor bad_g = c.g_idx.clone();
    bad_g[10] = 2; // two groups: 0 and 1
    QVERIFY(throws([&] { gptq_gemv(x, c.qweight, c.qzeros, c.scales, bad_g); }));
    bad_g[10] = -1;
    QVERIFY(throws([&] { gptq_gemv(x, c.qweight, c.qzeros, c.scales, bad_g); }));

    Blockwise4Weight w = test::make_blockwise4(at::randn({8, 64}), QuantMethod::nf4, 64, false);
    Blockwise4Weight short_absmax = w;
    short_absmax.absmax = w.absmax.narrow(0, 0, 7);
    QVERIFY(throws([&] { blockwise4_gemv(x, short_absmax); }));
    Blockwise4Weight nested_without_tables = w;
    nested_without_tables.absmax = w.absmax.to(at::kByte);
    QVERIFY(throws([&] { blockwise4_gemv(x, nested_without_tables); }));

    // Activation code -128 (never made by row-absmax quantization) still gives the exact sums.
    const at::Tensor cb = at::randint(-128, 128, {4, 64}, at::kChar);
    const at::Tensor xq = at::randint(-128, 128, {1, 64}, at::kChar).index_fill_(1, at::tensor({3, 40}, at::kLong), -128);
    const at::Tensor exact = at::matmul(xq.to(at::kDouble), cb.to(at::kDouble).t()).to(at::kFloat) * at::ones({1, 4}) * 6.200124e-05f;
    QVERIFY(at::equal(int8_gemv(xq, at::ones({1}), cb, at::ones({4})), exact));
    QVERIFY(throws([&] { int8_gemv(xq.narrow(1, 0, 32), at::ones({1}), cb, at::ones({4})); }));

    if (!cpu_level_available(CpuLevel::avx512))
        QVERIFY(throws([&] { gptq_gemv(x, c.qweight, c.qzeros, c.scales, c.g_idx, CpuLevel::avx512); }));
}

QTEST_GUILESS_MAIN(TestKernels)
#include "tst_kernels.moc"
