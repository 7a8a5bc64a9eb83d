// The GGUF block kernels against gguf-py (tests/reference/make_gguf_block_fixtures.py): every
// format's decoder bit for bit, the Q8_0 activation quantizer byte for byte, and each format's
// dot-product kernel at every instruction-set level this CPU runs against a float32 matmul over
// the decoded weight, within the bound the 8-bit activation rounding allows.
#include "testdata.h"

#include "checkpoint/gguf.h"
#include "core/mapped_file.h"
#include "cpu/cpu_features.h"
#include "cpu_levels.h"
#include "cpu/gguf_blocks.h"
#include "cpu/gguf_panel.h"
#include "cpu/simd.h"
#include "gguf_linear.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <QTest>
#include <cstring>
#include <map>
#include <memory>
#include <vector>

using namespace layerwise;
using namespace layerwise::kernels;

namespace {

const std::vector<GgmlType>& formats()
{
    static const std::vector<GgmlType> f{GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0,
                                         GgmlType::MXFP4, GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K,
                                         GgmlType::Q6_K, GgmlType::F16,  GgmlType::BF16, GgmlType::F32};
    return f;
}

// The block size of the activation quantization a format pairs with (0: float activations).
std::int64_t activation_block(GgmlType t)
{
    switch (cpu::activation_type(t)) {
    case GgmlType::Q8_0:
    case GgmlType::Q8_1: return 32;
    case GgmlType::Q8_K: return 256;
    default: return 0;
    }
}

} // namespace

class TestGgufKernels : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void initTestCase();
    void decodersMatchGgufPy_data();
    void decodersMatchGgufPy();
    void activationQuantizerMatchesGgufPy();
    void halfConversionRoundsToNearestEven();
    void kernelsWithinActivationRounding_data();
    void kernelsWithinActivationRounding();
    void panelsWithinActivationRounding_data();
    void panelsWithinActivationRounding();
    void levelsAgree();
    void groupEqualsOneByOne();
    void eachEqualsOneByOne();
    void embeddingDecodesRows();
    void badInput();

private:
    std::unique_ptr<MappedFile> m_file;
    gguf::File m_gguf;
    std::map<std::string, const gguf::TensorInfo*> m_tensors;

    at::Tensor bytes_of(const std::string& name, std::int64_t rows) const;
    at::Tensor floats_of(const std::string& name) const;
};

void TestGgufKernels::initTestCase()
{
    at::manual_seed(4242);
    m_file = std::make_unique<MappedFile>(test::fixtures() / "gguf_blocks" / "blocks.gguf");
    m_gguf = gguf::read_header(*m_file, m_file->path().string());
    for (const auto& t : m_gguf.tensors)
        m_tensors[t.name] = &t;
    QCOMPARE(m_tensors.size(), formats().size() * 2 + 2);
    std::string names;
    for (CpuLevel l : test::cpu_levels())
        names += std::string(cpu_level_name(l)) + " ";
    qInfo("GGUF kernel levels run here: %s(VNNI: %s)", names.c_str(), cpu_features().avx512vnni ? "yes" : "no");
}

at::Tensor TestGgufKernels::bytes_of(const std::string& name, std::int64_t rows) const
{
    const gguf::TensorInfo& t = *m_tensors.at(name);
    const auto* p = m_file->data(t.offset, t.size);
    return at::from_blob(const_cast<std::byte*>(p), {rows, static_cast<std::int64_t>(t.size) / rows},
                         at::TensorOptions().dtype(at::kByte));
}

at::Tensor TestGgufKernels::floats_of(const std::string& name) const
{
    const gguf::TensorInfo& t = *m_tensors.at(name);
    QTEST_ASSERT(t.type == gguf::TensorType::F32 && t.dims.size() == 2);
    const auto* p = m_file->data(t.offset, t.size);
    return at::from_blob(const_cast<std::byte*>(p), {t.dims[1], t.dims[0]}, at::TensorOptions().dtype(at::kFloat));
}

void TestGgufKernels::decodersMatchGgufPy_data()
{
    QTest::addColumn<int>("type");
    for (GgmlType t : formats())
        QTest::newRow(gguf_type_name(t).c_str()) << static_cast<int>(t);
}

void TestGgufKernels::decodersMatchGgufPy()
{
    QFETCH(int, type);
    const auto t = static_cast<GgmlType>(type);
    const at::Tensor expected = floats_of(gguf_type_name(t) + ".expected");
    const std::int64_t rows = expected.size(0), in = expected.size(1);
    const at::Tensor w = bytes_of(gguf_type_name(t) + ".weight", rows);
    QCOMPARE(w.size(1), gguf_row_bytes(t, in));
    const at::Tensor got = gguf_dequantize(w, t, in);
    // Stored blocks decode exactly: the same bits as gguf-py's numpy decoder.
    QCOMPARE(std::memcmp(got.data_ptr<float>(), expected.data_ptr<float>(), static_cast<std::size_t>(rows * in) * 4), 0);
}

void TestGgufKernels::activationQuantizerMatchesGgufPy()
{
    const at::Tensor x = floats_of("activation").contiguous();
    const std::int64_t rows = x.size(0), in = x.size(1);
    const at::Tensor expected = bytes_of("activation.q8_0", rows);
    for (CpuLevel l : test::cpu_levels()) {
        std::vector<std::uint8_t> got(static_cast<std::size_t>(expected.numel()));
        for (std::int64_t r = 0; r < rows; ++r)
            cpu::quantize_row_q8_0(x[r].data_ptr<float>(), got.data() + r * expected.size(1), in, l);
        QVERIFY2(std::memcmp(got.data(), expected.data_ptr<std::uint8_t>(), got.size()) == 0, cpu_level_name(l).data());
    }
}

void TestGgufKernels::halfConversionRoundsToNearestEven()
{
    // Against LibTorch's own float -> half conversion (round to nearest even), over normal,
    // subnormal, overflowing and tie values.
    at::Tensor v = at::cat({at::randn({100000}) * 1e-3, at::randn({100000}) * 1e4, at::randn({10000}) * 1e-6,
                            at::tensor({65504.f, 65519.f, 65520.f, 1e9f, -1e9f, 0.f, -0.f, 1.f + 1.f / 2048, 1.f + 3.f / 2048,
                                        5.9604645e-8f, 2.9802322e-8f, 8.9406967e-8f})});
    const at::Tensor h = v.to(at::kHalf).view(at::kShort);
    const float* f = v.data_ptr<float>();
    const std::int16_t* e = h.data_ptr<std::int16_t>();
    std::int64_t wrong = 0;
    for (std::int64_t i = 0; i < v.numel(); ++i)
        wrong += cpu::float_to_half(f[i]) != static_cast<std::uint16_t>(e[i]);
    QCOMPARE(wrong, std::int64_t{0});
}

void TestGgufKernels::kernelsWithinActivationRounding_data()
{
    QTest::addColumn<int>("type");
    QTest::addColumn<int>("rows");
    for (GgmlType t : formats())
        for (int m : {1, 3, 8, 33})
            QTest::newRow((gguf_type_name(t) + " x" + std::to_string(m)).c_str()) << static_cast<int>(t) << m;
}

// The bound for y = x w^T through 8-bit activations: each activation x_i becomes d * q with
// |x_i - d q| <= d / 2 (d = the amax of its block / 127, itself rounded to half precision for
// Q8_0 / Q8_1: a relative 2^-11 more on every value), so |y - exact| <= sum_i |w_i| (d_i / 2 +
// |x_i| 2^-10); Q8_1's block sum s is a half too (|m| |s| 2^-11 per block, inside the same term
// since |s| <= sum |x̂|); plus the float32 summation, in any order: at most (in) * 2^-24 of
// sum |w_i x_i| (the classic bound for a sum of `in` terms). Checks every level this CPU runs and
// that the bound is not vacuous (far tighter than the size of the output's terms).
void check_within_activation_rounding(const at::Tensor& x, const at::Tensor& w, const at::Tensor& wf, GgmlType t)
{
    const std::int64_t rows = x.size(0), in = x.size(1), out = wf.size(0);
    const at::Tensor exact = at::matmul(x.to(at::kDouble), wf.to(at::kDouble).t());
    const std::int64_t block = activation_block(t);
    at::Tensor per_value;
    if (block > 0) {
        const at::Tensor d = x.abs().view({rows, in / block, block}).amax(-1, true) / 127.0;
        per_value = (d / 2 * 1.0001 + x.abs().view({rows, in / block, block}) * (1.0 / 1024)).reshape({rows, in});
    } else {
        per_value = at::zeros_like(x);
    }
    const at::Tensor mag = at::matmul(x.abs().to(at::kDouble), wf.abs().to(at::kDouble).t());
    const at::Tensor bound = at::matmul(per_value.to(at::kDouble), wf.abs().to(at::kDouble).t()) +
                            mag * (static_cast<double>(in) * std::ldexp(1.0, -24)) + 1e-30;
    for (CpuLevel l : test::cpu_levels()) {
        const at::Tensor y = gguf_linear(x, w, t, in, l);
        QCOMPARE(y.sizes().vec(), (std::vector<std::int64_t>{rows, out}));
        const at::Tensor err = (y.to(at::kDouble) - exact).abs();
        const double worst = (err / bound).max().item<double>();
        QVERIFY2(worst <= 1.0, qPrintable(QString("%1 at %2, %3 rows: error %4 of the bound").arg(gguf_type_name(t).c_str())
                                              .arg(cpu_level_name(l).data()).arg(rows).arg(worst)));
        const at::Tensor live = mag > 0; // the fixture's last weight row is all zeros
        QVERIFY((bound / (mag + 1e-30)).masked_select(live).max().item<double>() < (block ? 0.05 : 1e-4));
    }
}

void TestGgufKernels::kernelsWithinActivationRounding()
{
    QFETCH(int, type);
    QFETCH(int, rows);
    const auto t = static_cast<GgmlType>(type);
    const at::Tensor wf = floats_of(gguf_type_name(t) + ".expected");
    const std::int64_t out = wf.size(0), in = wf.size(1);
    const at::Tensor w = bytes_of(gguf_type_name(t) + ".weight", out);
    const at::Tensor x = at::randn({rows, in}) * at::rand({rows, 1}) * 4;
    check_within_activation_rounding(x, w, wf, t);
    // bfloat16 activations: converted to float32 on the way in, the result rounded on the way out.
    const at::Tensor yb = gguf_linear(x.to(at::kBFloat16), w, t, in);
    QCOMPARE(yb.scalar_type(), at::kBFloat16);
    const at::Tensor yf = gguf_linear(x.to(at::kBFloat16).to(at::kFloat), w, t, in);
    QVERIFY(at::equal(yb, yf.to(at::kBFloat16)));
}

void TestGgufKernels::panelsWithinActivationRounding_data()
{
    QTest::addColumn<int>("type");
    QTest::addColumn<int>("rows");
    for (GgmlType t : formats())
        for (int m : {8, 13, 64})
            QTest::newRow((gguf_type_name(t) + " x" + std::to_string(m)).c_str()) << static_cast<int>(t) << m;
}

void TestGgufKernels::panelsWithinActivationRounding()
{
    // Prefill shapes: 39 weight rows (the fixture's six, repeated and cut), so the AVX-512 VNNI
    // panels of sixteen rows come out whole, whole again and cut short (7 rows), against 8 to 64
    // activation rows (tiles of 8, 4 and 1).
    QFETCH(int, type);
    QFETCH(int, rows);
    const auto t = static_cast<GgmlType>(type);
    const at::Tensor wf6 = floats_of(gguf_type_name(t) + ".expected");
    const at::Tensor w6 = bytes_of(gguf_type_name(t) + ".weight", wf6.size(0));
    const at::Tensor wf = wf6.repeat({7, 1}).slice(0, 0, 39).contiguous();
    const at::Tensor w = w6.repeat({7, 1}).slice(0, 0, 39).contiguous();
    const at::Tensor x = at::randn({rows, wf.size(1)}) * at::rand({rows, 1}) * 4;
    check_within_activation_rounding(x, w, wf, t);
    if (cpu::panel_available(t, CpuLevel::avx512))
        qInfo("%s: panel kernel", gguf_type_name(t).c_str());
}

void TestGgufKernels::levelsAgree()
{
    // The integer block sums are exact at every level; only the float32 order in which blocks (or,
    // for float formats, products) are added differs: within the bound for two float sums of
    // `in` terms, 2 * in * 2^-24 of the sum of the magnitudes.
    const std::int64_t in = 768;
    for (const at::Tensor& x : {at::randn({4, in}), at::randn({20, in})}) {
        for (GgmlType t : formats()) {
            const at::Tensor wf = floats_of(gguf_type_name(t) + ".expected");
            const at::Tensor w = bytes_of(gguf_type_name(t) + ".weight", wf.size(0));
            const at::Tensor scalar = gguf_linear(x, w, t, in, CpuLevel::scalar);
            const at::Tensor mag = at::matmul(x.abs(), wf.abs().t()) * 1.05 + 1e-30;
            for (CpuLevel l : test::cpu_levels()) {
                const double worst = ((gguf_linear(x, w, t, in, l) - scalar).abs() / mag).max().item<double>();
                QVERIFY2(worst <= 2.0 * static_cast<double>(in) * std::ldexp(1.0, -24),
                         qPrintable(QString("%1 %2, %3 rows: %4").arg(gguf_type_name(t).c_str()).arg(cpu_level_name(l).data())
                                        .arg(x.size(0)).arg(worst)));
            }
        }
    }
}

void TestGgufKernels::groupEqualsOneByOne()
{
    // Weights of four activation formats (Q8_0, Q8_K, float, Q8_1) read one input: the group runs
    // the same kernels on the same quantized rows, so each output equals gguf_linear's exactly.
    const std::int64_t in = 768;
    std::vector<GgufWeight> group;
    for (GgmlType t : {GgmlType::Q4_0, GgmlType::Q6_K, GgmlType::F16, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::MXFP4})
        group.push_back({bytes_of(gguf_type_name(t) + ".weight", 6), t});
    for (int rows : {1, 9}) {
        const at::Tensor x = at::randn({rows, in});
        const std::vector<at::Tensor> ys = gguf_linear_group(x.view({1, rows, in}), group, in);
        QCOMPARE(ys.size(), group.size());
        for (std::size_t i = 0; i < group.size(); ++i) {
            QCOMPARE(ys[i].sizes().vec(), (std::vector<std::int64_t>{1, rows, 6}));
            QVERIFY2(at::equal(ys[i][0], gguf_linear(x, group[i].weight, group[i].type, in)),
                     gguf_type_name(group[i].type).c_str());
        }
    }
    QVERIFY_THROWS_EXCEPTION(c10::Error, gguf_linear_group(at::randn({1, in}), {}, in));
}

void TestGgufKernels::eachEqualsOneByOne()
{
    // A mixture of experts' pass: each weight over its own rows (1 or 3 of them), six formats of
    // four activation formats in one call; each output equals gguf_linear's on its own rows.
    const std::int64_t in = 768;
    const std::vector<GgmlType> types = {GgmlType::Q4_0, GgmlType::Q6_K, GgmlType::F16,
                                         GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::MXFP4};
    for (std::int64_t m : {1, 3}) {
        std::vector<at::Tensor> xs, ys, ws;
        std::vector<GgufEach> items;
        for (GgmlType t : types) {
            ws.push_back(bytes_of(gguf_type_name(t) + ".weight", 6));
            xs.push_back(at::randn({m, in}));
            ys.push_back(at::full({m, 6}, std::nan(""), at::kFloat));
            items.push_back({ws.back().data_ptr<std::uint8_t>(), t, 6, xs.back().data_ptr<float>(), m, ys.back().data_ptr<float>()});
        }
        gguf_matmul_each(items.data(), items.size(), in);
        for (std::size_t i = 0; i < types.size(); ++i)
            QVERIFY2(at::equal(ys[i], gguf_linear(xs[i], ws[i], types[i], in)), gguf_type_name(types[i]).c_str());
    }
}

void TestGgufKernels::embeddingDecodesRows()
{
    for (GgmlType t : {GgmlType::Q4_1, GgmlType::Q6_K, GgmlType::Q8_0, GgmlType::MXFP4}) {
        const at::Tensor wf = floats_of(gguf_type_name(t) + ".expected");
        const at::Tensor w = bytes_of(gguf_type_name(t) + ".weight", wf.size(0));
        const at::Tensor ids = at::tensor({3, 0, 5, 3}, at::kLong).view({2, 2});
        const at::Tensor e = gguf_embedding(w, t, wf.size(1), ids);
        QCOMPARE(e.sizes().vec(), (std::vector<std::int64_t>{2, 2, wf.size(1)}));
        QVERIFY(at::equal(e, wf.index_select(0, ids.reshape({-1})).view({2, 2, wf.size(1)})));
        QVERIFY_THROWS_EXCEPTION(c10::Error, gguf_embedding(w, t, wf.size(1), at::tensor({6}, at::kLong)));
        QVERIFY_THROWS_EXCEPTION(c10::Error, gguf_embedding(w, t, wf.size(1), at::tensor({-1}, at::kLong)));
    }
}

void TestGgufKernels::badInput()
{
    const at::Tensor w = bytes_of("Q4_K.weight", 6);
    const at::Tensor x = at::randn({1, 768});
    // Inputs that are not whole blocks, a weight of the wrong row size, float weights, an
    // activation of the wrong width, a format without a kernel: clear errors, nothing read.
    QVERIFY_THROWS_EXCEPTION(c10::Error, gguf_linear(at::randn({1, 700}), w, GgmlType::Q4_K, 700));
    QVERIFY_THROWS_EXCEPTION(c10::Error, gguf_linear(x, w.narrow(1, 0, 100), GgmlType::Q4_K, 768));
    QVERIFY_THROWS_EXCEPTION(c10::Error, gguf_linear(x, w.to(at::kFloat), GgmlType::Q4_K, 768));
    QVERIFY_THROWS_EXCEPTION(c10::Error, gguf_linear(at::randn({1, 512}), w, GgmlType::Q4_K, 768));
    QVERIFY_THROWS_EXCEPTION(c10::Error, gguf_linear(x, w, GgmlType::Q8_K, 768));
    QVERIFY_THROWS_EXCEPTION(c10::Error, gguf_linear(x, w, static_cast<GgmlType>(99), 768));
    try {
        gguf_linear(x, w, GgmlType::Q8_1, 768);
        QFAIL("Q8_1 weights have no kernel");
    } catch (const c10::Error& e) {
        QVERIFY2(QString(e.what()).contains("no kernel for ggml type Q8_1"), e.what());
    }
    QVERIFY(!gguf_has_kernel(GgmlType::Q8_K));
    QVERIFY(gguf_has_kernel(GgmlType::Q3_K));
    QVERIFY(gguf_has_kernel(GgmlType::MXFP4));
    QCOMPARE(cpu::activation_type(GgmlType::MXFP4), GgmlType::Q8_0);
    QCOMPARE(gguf_row_bytes(GgmlType::MXFP4, 768), std::int64_t{24 * 17});
}

QTEST_GUILESS_MAIN(TestGgufKernels)
#include "tst_gguf_kernels.moc"
