// `layerwise bench kernels` (also `bench --kernels`): see engine/api/kernel_bench.h.
#include "commands.h"

#include <CLI/CLI.hpp>
#include <iostream>
#include <nlohmann/json.hpp>

namespace layerwise::app {

void runKernelBench(const KernelBenchOptions& options)
{
    std::cout << run_kernel_bench(options).dump(1) << "\n";
}

void addKernelBench(CLI::App* bench, int& exitCode)
{
    auto* run = bench->add_subcommand("kernels", "Quantized GEMV kernels: GB/s of weights against memory bandwidth and "
                                                 "the dequantize-then-matmul reference (medians)");
    auto o = std::make_shared<KernelBenchOptions>();
    run->add_option("--shapes", o->shapes, "Weight shapes OUTxIN, comma-separated")->capture_default_str();
    run->add_option("--rows", o->rows, "Activation rows (1 = one decoded token)")->capture_default_str();
    run->add_option("--activations", o->activations, "float32 or bfloat16")->check(CLI::IsMember({"float32", "bfloat16"}))->capture_default_str();
    run->add_option("--levels", o->levels, "all, or a list of scalar, avx2, avx512, automatic")->capture_default_str();
    run->add_option("--runs", o->runs, "Timed calls per kernel (the median is reported)")->capture_default_str();
    run->add_option("--oracle-runs", o->oracleRuns, "Timed calls of each reference")->capture_default_str();
    run->add_option("--threads", o->threads, "CPU threads (default: all this process may use)");
    run->callback([o, &exitCode]() {
        runKernelBench(*o);
        exitCode = 0;
    });
}

} // namespace layerwise::app
