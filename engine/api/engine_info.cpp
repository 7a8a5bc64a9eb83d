#include "api/engine_info.h"

#include "cuda_devices.h"

#include <torch/version.h>

namespace layerwise {

EngineInfo engine_info()
{
    EngineInfo info;
    info.torch_version = TORCH_VERSION;
    for (const auto& g : kernels::cuda_devices())
        info.gpus.push_back({g.index, g.name});
    return info;
}

} // namespace layerwise
