#pragma once
// The devices a plan can use: real ones (CUDA GPUs, CPU RAM, the disk holding the offload
// folder) and hypothetical ones from profiles ("cuda:1=RTX-4090", "cuda:0=24GiB") for
// what-if planning. Each carries a memory size and a bandwidth figure.
#include "devices/device.h"

#include <cstdint>
#include <filesystem>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace layerwise {

struct DeviceInfo {
    Device id;
    std::string name;            // "NVIDIA H100 80GB SXM", "AMD EPYC 7B13", "disk /work"
    bool hypothetical = false;
    std::uint64_t total_bytes = 0;
    std::uint64_t available_bytes = 0; // free now (real) or total (hypothetical)
    double bandwidth = 0;        // bytes/s: memory (GPU, CPU) or sequential read (disk)
    std::string bandwidth_source; // "measured", "profile", "assumed"
    double link_bandwidth = 0;   // bytes/s host link of a GPU (PCIe), 0 otherwise
    double flops = 0;            // dense 16-bit (GPU) or estimated fp32 (CPU) operations/s
    std::string compute_capability;
    int cores = 0;
    std::vector<std::string> isa; // CPU: avx2, avx512f, avx512_bf16, amx_bf16...
    std::string path;            // disk: the offload folder
};

struct GpuProfile {
    std::string key;  // file stem, "RTX-4090"
    std::string name;
    std::uint64_t memory = 0;
    double bandwidth = 0;
    double flops = 0;
    int pcie_generation = 4;
    std::string compute_capability;
};

// resources/devices/*.json ($LAYERWISE_DEVICES, <exe>/../share/layerwise/devices, the source tree).
std::vector<GpuProfile> gpu_profiles();
const GpuProfile* find_gpu_profile(const std::vector<GpuProfile>& profiles, const std::string& key_or_name);
double pcie_bandwidth(int generation); // effective bytes/s of an x16 link

struct DetectOptions {
    std::filesystem::path offload_folder = ".";
    bool probe_bandwidth = true;   // measure RAM and disk once, then reuse the cached figure
    bool refresh_probe = false;
    bool real_gpus = true;
};

// Real devices of this machine. No GPU is a normal result.
std::vector<DeviceInfo> detect_devices(const DetectOptions& options);

// "--device" specs: "cuda:0=24GiB", "cuda:1=RTX-4090", "1=H100-80GB", "cpu=64GiB", "disk=2TB".
// A hypothetical device replaces the real one with the same id. PlanError for bad specs.
std::vector<DeviceInfo> apply_device_specs(std::vector<DeviceInfo> devices, const std::vector<std::string>& specs);

// A device as JSON ({"device": "cuda:0", "name": ..., "total_bytes": ...}), as `layerwise devices
// --json` prints it and a pipeline worker reports it; and back (FormatError for a bad object).
nlohmann::json device_info_to_json(const DeviceInfo& d);
DeviceInfo device_info_from_json(const nlohmann::json& j);

} // namespace layerwise
