#pragma once
// Splitting a loop over LibTorch's intra-op threads, for the project's own kernels.
//
// ATen's at::parallel_for is a header template that runs in parallel only in translation units
// compiled with OpenMP enabled. This project is built with clang, whose OpenMP is LLVM's runtime,
// not the GNU one (libgomp) that the torch wheel's LibTorch uses, so compiled here it silently ran
// every loop on one thread. parallel_for() below enters the GNU runtime directly (GOMP_parallel,
// the call GCC emits for `#pragma omp parallel`), on LibTorch's own thread pool and thread count
// (at::set_num_threads), when LibTorch is built on OpenMP and libgomp was found beside it;
// otherwise it calls at::parallel_for (LibTorch's native pool, compiled inside LibTorch).
#include <cstdint>
#include <functional>

namespace layerwise::kernels {

// fn(b, e) over pieces of [begin, end), at most one piece per thread, none smaller than `grain`
// (one piece, on the calling thread, when the range is no larger than grain or inside a
// parallel region). An exception from fn is rethrown on the calling thread.
void parallel_for(std::int64_t begin, std::int64_t end, std::int64_t grain,
                  const std::function<void(std::int64_t, std::int64_t)>& fn);

// Whether parallel_for really splits work over threads in this build (false: one thread).
bool parallel_for_is_threaded();

} // namespace layerwise::kernels
