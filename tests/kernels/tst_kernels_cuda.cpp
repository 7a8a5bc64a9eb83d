// The CUDA GEMV kernels against the same LibTorch oracles as the CPU kernels (computed on the
// CPU), over odd sizes, act-order g_idx, group sizes, nested absmax and 1..8 (and 11) rows.
// Skips when this build has no CUDA kernels or no GPU is usable.
#include "kernel_cases.h"

#include "cuda_devices.h"
#include "dequantize.h"
#include "quant_gemv.h"

#include <ATen/ATen.h>
#include <QTest>

using namespace layerwise;
using namespace layerwise::kernels;

class TestKernelsCuda : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void init();
    void gptqGemv();
    void blockwise4Gemv();
    void int8Gemv();
};

namespace {
const at::Device kGpu("cuda:0");
constexpr double kBound = 1e-7;
} // namespace

void TestKernelsCuda::init()
{
    if (!built_with_cuda())
        QSKIP("this build has no CUDA kernels");
    if (cuda_devices().empty())
        QSKIP("no CUDA device is usable");
    at::manual_seed(7);
}

void TestKernelsCuda::gptqGemv()
{
    for (auto [in, out] : std::vector<std::pair<int, int>>{{256, 64}, {520, 200}, {4096, 512}})
        for (int gs : {32, 128, -1, 100})
            for (bool act : {false, true}) {
                const test::GptqCase c = test::make_gptq_case(in, out, gs, act, gs == 128);
                for (int rows : {1, 3, 8, 11}) {
                    const at::Tensor x = at::randn({rows, in});
                    const at::Tensor oracle = gptq_gemv_reference(x, c.qweight, c.qzeros, c.scales, c.g_idx);
                    const at::Tensor y = gptq_gemv(x.to(kGpu), c.qweight.to(kGpu), c.qzeros.to(kGpu), c.scales.to(kGpu), c.g_idx.to(kGpu));
                    QVERIFY(y.is_cuda());
                    const double e = test::nmse(y, oracle);
                    QVERIFY2(e < kBound, qPrintable(QString("%1x%2 g%3 act %4 rows %5: %6").arg(in).arg(out).arg(gs).arg(act).arg(rows).arg(e)));
                }
            }
}

void TestKernelsCuda::blockwise4Gemv()
{
    for (auto [out, in] : std::vector<std::pair<int, int>>{{5, 63}, {17, 96}, {300, 64}, {256, 4096}})
        for (QuantMethod m : {QuantMethod::nf4, QuantMethod::fp4})
            for (bool nested : {false, true}) {
                const Blockwise4Weight w = test::make_blockwise4(at::randn({out, in}), m, 64, nested);
                const Blockwise4Weight wg = test::to_device(w, kGpu);
                for (int rows : {1, 4, 8, 11}) {
                    const at::Tensor x = at::randn({rows, in});
                    const at::Tensor y = blockwise4_gemv(x.to(kGpu), wg);
                    const double e = test::nmse(y, blockwise4_gemv_reference(x, w));
                    QVERIFY2(e < kBound, qPrintable(QString("%1x%2 nested %3 rows %4: %5").arg(out).arg(in).arg(nested).arg(rows).arg(e)));
                }
            }
}

void TestKernelsCuda::int8Gemv()
{
    for (auto [out, in] : std::vector<std::pair<int, int>>{{1, 31}, {33, 100}, {64, 4096}})
        for (int rows : {1, 5, 8, 11}) {
            const at::Tensor cb = at::randint(-128, 128, {out, in}, at::kChar);
            const at::Tensor scb = at::rand({out}) + 0.01;
            auto [xq, xs] = test::int8_rows(at::randn({rows, in}));
            const at::Tensor expected = int8_gemv(xq, xs, cb, scb, CpuLevel::scalar); // exact int32 sums
            const at::Tensor y = int8_gemv(xq.to(kGpu), xs.to(kGpu), cb.to(kGpu), scb.to(kGpu));
            QVERIFY(at::equal(y.cpu(), expected));
        }
}

QTEST_GUILESS_MAIN(TestKernelsCuda)
#include "tst_kernels_cuda.moc"
