#pragma once
// The CUDA devices this process can use, through the CUDA runtime. Any runtime error
// (no driver: cudaErrorInsufficientDriver, no device) means "no GPU", never a failure.
#include <cstdint>
#include <string>
#include <vector>

namespace layerwise::kernels {

struct CudaDevice {
    int index = 0;
    std::string name;
    int major = 0, minor = 0;
    std::uint64_t total_bytes = 0;
    std::uint64_t free_bytes = 0;
    int multiprocessors = 0;
    int pci_bus = 0;
};

std::vector<CudaDevice> cuda_devices();

} // namespace layerwise::kernels
