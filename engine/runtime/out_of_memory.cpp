#include "runtime/out_of_memory.h"

#include "core/bytes.h"
#include "cuda_devices.h"

#include <cstdlib>
#include <fstream>

namespace layerwise {

bool is_cpu_out_of_memory(const c10::Error& e)
{
    const std::string m = e.what();
    return m.find("DefaultCPUAllocator: not enough memory") != std::string::npos ||
           m.find("DefaultCPUAllocator: can't allocate memory") != std::string::npos;
}

namespace {

// "N GiB free" for the CPU (MemAvailable) or a CUDA device (the driver's count); "" if unknown.
std::string free_memory_text(const std::string& device)
{
    std::uint64_t free = 0;
    if (device == "cpu") {
        std::ifstream meminfo("/proc/meminfo");
        std::string key;
        std::uint64_t kb = 0;
        std::string unit;
        while (meminfo >> key >> kb >> unit)
            if (key == "MemAvailable:") {
                free = kb * 1024;
                break;
            }
    } else if (device.rfind("cuda:", 0) == 0) {
        const int index = std::atoi(device.c_str() + 5);
        for (const kernels::CudaDevice& d : kernels::cuda_devices())
            if (d.index == index)
                free = d.free_bytes;
    }
    return free ? "; " + format_bytes(free) + " free there now" : std::string();
}

} // namespace

void throw_out_of_memory(const std::string& what, const std::string& device, const char* torch_message)
{
    std::string first(torch_message ? torch_message : "");
    if (const auto nl = first.find('\n'); nl != std::string::npos)
        first.resize(nl);
    throw OutOfMemoryError(what + " does not fit in the memory left on " + device + " (" + first + free_memory_text(device) +
                           "). Plan again with a lower limit for " + device +
                           " (--max-memory, or the device's slider), a shorter context, or more layers on another "
                           "device; `layerwise plan` shows what fits where.");
}

} // namespace layerwise
