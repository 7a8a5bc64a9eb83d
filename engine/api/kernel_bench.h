#pragma once
// The quantized GEMV kernels measured per kernel, shape and instruction-set level: weight bytes
// streamed per second against this machine's memory read bandwidth measured in the same run,
// and the speed-up over the kernels' own LibTorch references (dequantize, then a float32
// matmul) timed in the same run. Medians. (`layerwise bench kernels`.)
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>

namespace layerwise {

struct KernelBenchOptions {
    std::string shapes = "4096x4096,11008x4096,4096x11008"; // OUTxIN, comma-separated
    std::int64_t rows = 1;                                  // activation rows (1 = one decoded token)
    std::string activations = "float32";                    // or bfloat16
    std::string levels = "all";                             // or scalar, avx2, avx512, automatic
    int runs = 15;
    int oracleRuns = 5;
    int threads = 0;                                        // 0: every CPU this process may use
};

// PlanError for malformed shapes, unknown or unavailable levels, counts below one. The JSON
// object `bench kernels` prints.
nlohmann::json run_kernel_bench(const KernelBenchOptions& options);

} // namespace layerwise
