#pragma once
// The kernel instruction-set levels this CPU runs (scalar always; avx2 and avx512 when the CPU
// has them and LAYERWISE_CPU_LEVEL does not cap them): every kernel suite checks each of them.
#include "cpu/cpu_features.h"

#include <vector>

namespace layerwise::test {

inline std::vector<kernels::CpuLevel> cpu_levels()
{
    std::vector<kernels::CpuLevel> v{kernels::CpuLevel::scalar};
    for (kernels::CpuLevel l : {kernels::CpuLevel::avx2, kernels::CpuLevel::avx512})
        if (kernels::cpu_level_available(l))
            v.push_back(l);
    return v;
}

} // namespace layerwise::test
