#pragma once
// What the CPU running this process can execute, read once from cpuid (and xgetbv: the OS
// must save the wide registers), and the instruction-set level the quantized kernels run at.
// No LibTorch here.
#include <string_view>

namespace layerwise::kernels {

struct CpuFeatures {
    bool avx2 = false, fma = false, f16c = false;
    bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
    bool avx512vnni = false, avx512bf16 = false;
};

// Detected once per process.
const CpuFeatures& cpu_features();

// Kernel levels, from the portable loop up. `automatic` asks for the best this CPU runs.
// avx2 needs AVX2 + FMA + F16C; avx512 needs AVX-512 F/BW/VL/DQ (VNNI and BF16 are used
// when present).
enum class CpuLevel { automatic, scalar, avx2, avx512 };

// The environment variable LAYERWISE_CPU_LEVEL (scalar, avx2, avx512; auto or unset: no cap)
// caps both: a level above it is reported unavailable, so the lower paths can be exercised on a
// CPU that has more.
CpuLevel best_cpu_level();
bool cpu_level_available(CpuLevel level);
// `automatic` -> best_cpu_level(); any other level unchanged.
CpuLevel resolve_cpu_level(CpuLevel level);
std::string_view cpu_level_name(CpuLevel level); // "automatic", "scalar", "avx2", "avx512"

} // namespace layerwise::kernels
