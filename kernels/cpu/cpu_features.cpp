#include "cpu/cpu_features.h"

#include <cstdio>
#include <cstdlib>
#include <string>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <cstdint>
#define LAYERWISE_X86 1
#endif

namespace layerwise::kernels {

namespace {

#ifdef LAYERWISE_X86
std::uint64_t read_xcr0()
{
    std::uint32_t eax = 0, edx = 0;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return (static_cast<std::uint64_t>(edx) << 32) | eax;
}
#endif

CpuFeatures detect()
{
    CpuFeatures f;
#ifdef LAYERWISE_X86
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return f;
    const bool osxsave = c & (1u << 27);
    if (!osxsave)
        return f;
    const std::uint64_t xcr0 = read_xcr0();
    const bool ymm = (xcr0 & 0x6) == 0x6;           // SSE and AVX state
    const bool zmm = ymm && (xcr0 & 0xe0) == 0xe0;  // opmask, ZMM0-15 upper halves, ZMM16-31
    const bool fma = c & (1u << 12), f16c = c & (1u << 29), avx = c & (1u << 28);
    if (!ymm || !avx)
        return f;
    f.fma = fma;
    f.f16c = f16c;
    if (__get_cpuid_max(0, nullptr) < 7)
        return f;
    __cpuid_count(7, 0, a, b, c, d);
    f.avx2 = b & (1u << 5);
    if (zmm) {
        f.avx512f = b & (1u << 16);
        f.avx512dq = b & (1u << 17);
        f.avx512bw = b & (1u << 30);
        f.avx512vl = b & (1u << 31);
        f.avx512vnni = c & (1u << 11);
        unsigned a1 = 0, b1 = 0, c1 = 0, d1 = 0;
        __cpuid_count(7, 1, a1, b1, c1, d1);
        f.avx512bf16 = a1 & (1u << 5);
    }
#endif
    return f;
}

// LAYERWISE_CPU_LEVEL=scalar|avx2|avx512 caps the level every kernel dispatches to (unset,
// empty or "auto": no cap), so that the lower paths can be run and tested on a CPU that has
// more. An unknown value is reported once on stderr and ignored.
int level_rank(CpuLevel level)
{
    switch (level) {
    case CpuLevel::automatic: return 3;
    case CpuLevel::scalar: return 0;
    case CpuLevel::avx2: return 1;
    case CpuLevel::avx512: return 2;
    }
    return 3;
}

int read_level_cap()
{
    const char* env = std::getenv("LAYERWISE_CPU_LEVEL");
    if (!env || !*env)
        return 3;
    const std::string v(env);
    if (v == "auto" || v == "automatic")
        return 3;
    for (CpuLevel l : {CpuLevel::scalar, CpuLevel::avx2, CpuLevel::avx512})
        if (v == cpu_level_name(l))
            return level_rank(l);
    std::fprintf(stderr, "layerwise: LAYERWISE_CPU_LEVEL=%s is not one of scalar, avx2, avx512, auto: ignored\n", env);
    return 3;
}

int level_cap()
{
    static const int cap = read_level_cap();
    return cap;
}

} // namespace

const CpuFeatures& cpu_features()
{
    static const CpuFeatures features = detect();
    return features;
}

bool cpu_level_available(CpuLevel level)
{
    if (level_rank(level) > level_cap() && level != CpuLevel::automatic)
        return false;
    const CpuFeatures& f = cpu_features();
    const bool avx2 = f.avx2 && f.fma && f.f16c;
    switch (level) {
    case CpuLevel::automatic:
    case CpuLevel::scalar: return true;
    case CpuLevel::avx2: return avx2;
    case CpuLevel::avx512: return avx2 && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq;
    }
    return false;
}

CpuLevel best_cpu_level()
{
    static const CpuLevel best = cpu_level_available(CpuLevel::avx512) ? CpuLevel::avx512
                                 : cpu_level_available(CpuLevel::avx2) ? CpuLevel::avx2
                                                                       : CpuLevel::scalar;
    return best;
}

CpuLevel resolve_cpu_level(CpuLevel level)
{
    return level == CpuLevel::automatic ? best_cpu_level() : level;
}

std::string_view cpu_level_name(CpuLevel level)
{
    switch (level) {
    case CpuLevel::automatic: return "automatic";
    case CpuLevel::scalar: return "scalar";
    case CpuLevel::avx2: return "avx2";
    case CpuLevel::avx512: return "avx512";
    }
    return "?";
}

} // namespace layerwise::kernels
