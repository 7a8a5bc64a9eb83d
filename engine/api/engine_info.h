#pragma once
// What the engine was built with and can use here: the LibTorch version and the CUDA devices
// this process sees (none when there is no driver or device: models then run on the CPU).
#include <string>
#include <vector>

namespace layerwise {

struct GpuInfo {
    int index = 0;
    std::string name;
};

struct EngineInfo {
    std::string torch_version;
    std::vector<GpuInfo> gpus;
};

EngineInfo engine_info();

} // namespace layerwise
