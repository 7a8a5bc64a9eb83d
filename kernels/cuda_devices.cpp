#include "cuda_devices.h"

#ifdef LAYERWISE_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

namespace layerwise::kernels {

std::vector<CudaDevice> cuda_devices()
{
    std::vector<CudaDevice> out;
#ifdef LAYERWISE_HAVE_CUDA
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) {
        cudaGetLastError(); // clear the sticky error (e.g. 35: insufficient driver) for later callers
        return out;
    }
    for (int i = 0; i < count; ++i) {
        cudaDeviceProp prop{};
        if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) {
            cudaGetLastError();
            continue;
        }
        CudaDevice d;
        d.index = i;
        d.name = prop.name;
        d.major = prop.major;
        d.minor = prop.minor;
        d.total_bytes = prop.totalGlobalMem;
        d.free_bytes = prop.totalGlobalMem;
        d.multiprocessors = prop.multiProcessorCount;
        d.pci_bus = prop.pciBusID;
        int previous = 0;
        if (cudaGetDevice(&previous) == cudaSuccess && cudaSetDevice(i) == cudaSuccess) {
            std::size_t free_b = 0, total_b = 0;
            if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess)
                d.free_bytes = free_b;
            else
                cudaGetLastError();
            cudaSetDevice(previous);
        }
        out.push_back(std::move(d));
    }
#endif
    return out;
}

} // namespace layerwise::kernels
