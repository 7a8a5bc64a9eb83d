#include "parallel.h"

#include <ATen/Config.h>
#include <ATen/Parallel.h>
#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>

#if AT_PARALLEL_OPENMP && defined(LAYERWISE_HAVE_GOMP)
#define LAYERWISE_USE_GOMP 1
extern "C" {
// libgomp's ABI (what GCC emits for `#pragma omp parallel`) and two OpenMP queries.
void GOMP_parallel(void (*fn)(void*), void* data, unsigned num_threads, unsigned flags);
int omp_get_thread_num(void);
int omp_get_num_threads(void);
}
#endif

namespace layerwise::kernels {

namespace {

#ifdef LAYERWISE_USE_GOMP
struct Job {
    std::int64_t begin, end, chunk;
    const std::function<void(std::int64_t, std::int64_t)>* fn;
    std::once_flag failed;
    std::exception_ptr error;
};

// Runs on every thread of the team: thread t takes the t-th chunk.
void run_chunk(void* data)
{
    Job& job = *static_cast<Job*>(data);
    const std::int64_t t = omp_get_thread_num();
    const std::int64_t b = job.begin + t * job.chunk;
    const std::int64_t e = std::min(job.end, b + job.chunk);
    if (b >= e)
        return;
    try {
        (*job.fn)(b, e);
    } catch (...) {
        std::call_once(job.failed, [&] { job.error = std::current_exception(); });
    }
}

thread_local bool in_region = false;
#endif

} // namespace

bool parallel_for_is_threaded()
{
#ifdef LAYERWISE_USE_GOMP
    return true;
#else
    return AT_PARALLEL_NATIVE != 0;
#endif
}

void parallel_for(std::int64_t begin, std::int64_t end, std::int64_t grain,
                  const std::function<void(std::int64_t, std::int64_t)>& fn)
{
    if (begin >= end)
        return;
#ifdef LAYERWISE_USE_GOMP
    at::internal::lazy_init_num_threads();
    const std::int64_t n = end - begin;
    grain = std::max<std::int64_t>(1, grain);
    const std::int64_t threads = std::min<std::int64_t>(at::get_num_threads(), (n + grain - 1) / grain);
    if (threads <= 1 || in_region || at::in_parallel_region()) {
        fn(begin, end);
        return;
    }
    Job job{begin, end, (n + threads - 1) / threads, &fn, {}, nullptr};
    in_region = true;
    GOMP_parallel(run_chunk, &job, static_cast<unsigned>(threads), 0);
    in_region = false;
    if (job.error)
        std::rethrow_exception(job.error);
#else
    at::parallel_for(begin, end, grain, fn);
#endif
}

} // namespace layerwise::kernels
