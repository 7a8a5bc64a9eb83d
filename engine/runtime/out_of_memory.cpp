#include "runtime/out_of_memory.h"

namespace layerwise {

bool is_cpu_out_of_memory(const c10::Error& e)
{
    const std::string m = e.what();
    return m.find("DefaultCPUAllocator: not enough memory") != std::string::npos ||
           m.find("DefaultCPUAllocator: can't allocate memory") != std::string::npos;
}

void throw_out_of_memory(const std::string& what, const std::string& device, const char* torch_message)
{
    std::string first(torch_message ? torch_message : "");
    if (const auto nl = first.find('\n'); nl != std::string::npos)
        first.resize(nl);
    throw OutOfMemoryError(what + " does not fit in the memory left on " + device + " (" + first +
                           "). Plan again with a lower limit for " + device +
                           " (--max-memory, or the device's slider), a shorter context, or more layers on another "
                           "device; `layerwise plan` shows what fits where.");
}

} // namespace layerwise
