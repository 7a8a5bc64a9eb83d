#include "devices/inventory.h"

#include "core/bytes.h"
#include "core/error.h"
#include "core/json_read.h"
#include "core/mapped_file.h"
#include "cuda_devices.h"
#include "devices/probe.h"
#include "model/presets.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sched.h>
#include <set>
#include <sstream>
#include <sys/statvfs.h>
#include <thread>

namespace layerwise {

namespace fs = std::filesystem;

double pcie_bandwidth(int generation)
{
    // Effective host-to-device throughput of an x16 link (about 80% of the raw rate).
    switch (generation) {
    case 3: return 12e9;
    case 4: return 25e9;
    case 5: return 50e9;
    case 6: return 100e9;
    default: return 25e9;
    }
}

std::vector<GpuProfile> gpu_profiles()
{
#ifdef LAYERWISE_SOURCE_DEVICE_DIR
    const auto dirs = resource_search_path("LAYERWISE_DEVICES", "devices", LAYERWISE_SOURCE_DEVICE_DIR);
#else
    const auto dirs = resource_search_path("LAYERWISE_DEVICES", "devices", {});
#endif
    std::error_code ec;
    std::vector<GpuProfile> out;
    for (const auto& dir : dirs) {
        if (!fs::is_directory(dir, ec))
            continue;
        for (const auto& e : fs::directory_iterator(dir, ec)) {
            if (e.path().extension() != ".json")
                continue;
            const std::string key = e.path().stem().string();
            if (std::any_of(out.begin(), out.end(), [&](const GpuProfile& p) { return p.key == key; }))
                continue;
            try {
                MappedFile f(e.path());
                const auto j = parse_json(f.read(0, f.size()), e.path().string());
                GpuProfile p;
                p.key = key;
                p.name = j.value("name", key);
                p.memory = static_cast<std::uint64_t>(parse_size(j.at("memory").get<std::string>()));
                p.bandwidth = j.at("bandwidth_gb_s").get<double>() * 1e9;
                p.flops = j.value("bf16_tflops", 0.0) * 1e12;
                p.pcie_generation = j.value("pcie_generation", 4);
                p.compute_capability = j.value("compute_capability", "");
                out.push_back(std::move(p));
            } catch (const FormatError&) {
                throw;
            } catch (const std::exception& ex) {
                throw FormatError(e.path().string() + ": not a device profile (" + ex.what() + ")");
            }
        }
    }
    std::sort(out.begin(), out.end(), [](const GpuProfile& a, const GpuProfile& b) { return a.key < b.key; });
    return out;
}

namespace {

std::vector<std::string> words(std::string s)
{
    for (char& c : s)
        c = c == '-' || c == '_' ? ' ' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::istringstream in(s);
    std::vector<std::string> out;
    for (std::string w; in >> w;)
        out.push_back(w);
    return out;
}

// Whether `phrase` appears in `text` as consecutive whole words.
bool has_phrase(const std::vector<std::string>& text, const std::vector<std::string>& phrase)
{
    if (phrase.empty() || phrase.size() > text.size())
        return false;
    for (std::size_t i = 0; i + phrase.size() <= text.size(); ++i)
        if (std::equal(phrase.begin(), phrase.end(), text.begin() + static_cast<std::ptrdiff_t>(i)))
            return true;
    return false;
}

} // namespace

const GpuProfile* find_gpu_profile(const std::vector<GpuProfile>& profiles, const std::string& key_or_name)
{
    const auto name = words(key_or_name);
    for (const auto& p : profiles)
        if (words(p.key) == name)
            return &p;
    // A real GPU's name ("NVIDIA H100 80GB HBM3") matched to the profile whose model words it contains,
    // the memory size word optional ("RTX 4090" or "H100 80GB").
    const GpuProfile* best = nullptr;
    std::size_t best_words = 0;
    for (const auto& p : profiles) {
        auto phrase = words(p.key);
        for (int pass = 0; pass < 2; ++pass) {
            if (has_phrase(name, phrase) && phrase.size() > best_words) {
                best = &p;
                best_words = phrase.size();
            }
            if (!phrase.empty() && phrase.back().ends_with("gb"))
                phrase.pop_back();
        }
    }
    return best;
}

namespace {

std::string read_text(const fs::path& p)
{
    std::ifstream in(p);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

DeviceInfo detect_cpu()
{
    DeviceInfo d;
    d.id = Device::cpu();
    const std::string cpuinfo = read_text("/proc/cpuinfo");
    std::istringstream lines(cpuinfo);
    std::string line;
    std::set<std::string> flags;
    while (std::getline(lines, line)) {
        const auto colon = line.find(':');
        if (colon == std::string::npos)
            continue;
        std::string key = line.substr(0, line.find_last_not_of(" \t", colon - 1) + 1);
        const std::string value = colon + 2 <= line.size() ? line.substr(colon + 2) : "";
        if (key == "model name" && d.name.empty())
            d.name = value;
        if (key == "flags" && flags.empty()) {
            std::istringstream f(value);
            std::string flag;
            while (f >> flag)
                flags.insert(flag);
        }
    }
    for (const char* isa : {"sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni",
                            "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_int8", "asimd", "sve"})
        if (flags.count(isa))
            d.isa.emplace_back(isa);
    cpu_set_t set;
    CPU_ZERO(&set);
    d.cores = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set)
                                                          : static_cast<int>(std::thread::hardware_concurrency());
    const std::string meminfo = read_text("/proc/meminfo");
    auto kib = [&](const char* key) -> std::uint64_t {
        const auto p = meminfo.find(key);
        return p == std::string::npos ? 0 : std::strtoull(meminfo.c_str() + p + std::strlen(key), nullptr, 10) * 1024;
    };
    d.total_bytes = kib("MemTotal:");
    d.available_bytes = kib("MemAvailable:");
    // fp32 FMA throughput estimate: lanes x 2 FMA units x 2 ops at ~2.5 GHz.
    const double lanes = flags.count("avx512f") ? 16 : flags.count("avx2") ? 8 : 4;
    d.flops = d.cores * 2.5e9 * lanes * 2 * 2;
    d.bandwidth = 20e9;
    d.bandwidth_source = "assumed";
    if (d.name.empty())
        d.name = "CPU";
    return d;
}

DeviceInfo detect_disk(const fs::path& folder)
{
    DeviceInfo d;
    d.id = Device::disk();
    std::error_code ec;
    fs::path probe = fs::absolute(folder, ec);
    while (!probe.empty() && !fs::exists(probe, ec) && probe != probe.parent_path())
        probe = probe.parent_path();
    d.path = probe.string();
    struct statvfs st {};
    if (::statvfs(probe.c_str(), &st) == 0) {
        d.total_bytes = static_cast<std::uint64_t>(st.f_blocks) * st.f_frsize;
        d.available_bytes = static_cast<std::uint64_t>(st.f_bavail) * st.f_frsize;
    }
    d.name = "disk " + d.path;
    d.bandwidth = 1e9;
    d.bandwidth_source = "assumed";
    return d;
}

DeviceInfo gpu_from_profile(int index, const GpuProfile& p)
{
    DeviceInfo d;
    d.id = Device::gpu(index);
    d.name = p.name;
    d.hypothetical = true;
    d.total_bytes = d.available_bytes = p.memory;
    d.bandwidth = p.bandwidth;
    d.bandwidth_source = "profile";
    d.link_bandwidth = pcie_bandwidth(p.pcie_generation);
    d.flops = p.flops;
    d.compute_capability = p.compute_capability;
    return d;
}

} // namespace

std::vector<DeviceInfo> detect_devices(const DetectOptions& options)
{
    std::vector<DeviceInfo> out;
    if (options.real_gpus) {
        const auto profiles = gpu_profiles();
        for (const auto& g : kernels::cuda_devices()) {
            DeviceInfo d;
            d.id = Device::gpu(g.index);
            d.name = g.name;
            d.total_bytes = g.total_bytes;
            d.available_bytes = g.free_bytes;
            d.compute_capability = std::to_string(g.major) + "." + std::to_string(g.minor);
            if (const GpuProfile* p = find_gpu_profile(profiles, g.name)) {
                d.bandwidth = p->bandwidth;
                d.flops = p->flops;
                d.link_bandwidth = pcie_bandwidth(p->pcie_generation);
                d.bandwidth_source = "profile " + p->key;
            } else {
                d.bandwidth = 500e9;
                d.flops = 50e12;
                d.link_bandwidth = pcie_bandwidth(4);
                d.bandwidth_source = "assumed";
            }
            out.push_back(std::move(d));
        }
    }
    DeviceInfo cpu = detect_cpu();
    DeviceInfo disk = detect_disk(options.offload_folder);
    if (options.probe_bandwidth) {
        const BandwidthFigures bw = cached_bandwidth(cpu.name, disk.path, options.refresh_probe);
        if (bw.ram > 0) {
            cpu.bandwidth = bw.ram;
            cpu.bandwidth_source = "measured";
        }
        if (bw.disk > 0) {
            disk.bandwidth = bw.disk;
            disk.bandwidth_source = "measured";
        }
    }
    out.push_back(std::move(cpu));
    out.push_back(std::move(disk));
    return out;
}

std::vector<DeviceInfo> apply_device_specs(std::vector<DeviceInfo> devices, const std::vector<std::string>& specs)
{
    const auto profiles = gpu_profiles();
    for (const auto& spec : specs) {
        const auto eq = spec.find('=');
        if (eq == std::string::npos)
            throw PlanError("--device '" + spec + "' needs the form DEVICE=SIZE or DEVICE=PROFILE (e.g. cuda:0=24GiB, cuda:1=RTX-4090)");
        const Device id = parse_device(spec.substr(0, eq));
        const std::string what = spec.substr(eq + 1);
        DeviceInfo d;
        const GpuProfile* profile = nullptr;
        for (const auto& p : profiles)
            if (words(p.key) == words(what))
                profile = &p;
        if (profile && id.is_gpu()) {
            d = gpu_from_profile(id.index, *profile);
        } else {
            std::int64_t bytes = 0;
            try {
                bytes = parse_size(what);
            } catch (const FormatError&) {
                std::string names;
                for (const auto& p : profiles)
                    names += (names.empty() ? "" : ", ") + p.key;
                throw PlanError("--device " + spec + ": '" + what + "' is neither a size (24GiB) nor a GPU profile (" +
                                names + ")");
            }
            auto same = std::find_if(devices.begin(), devices.end(), [&](const DeviceInfo& x) { return x.id == id; });
            if (same != devices.end()) {
                d = *same; // keep the real device's bandwidth; change its memory
            } else {
                d.id = id;
                d.name = id.is_gpu() ? "GPU" : id.name();
                d.bandwidth = id.is_gpu() ? 1000e9 : id.kind == Device::Kind::cpu ? 50e9 : 2e9;
                d.bandwidth_source = "assumed";
                d.link_bandwidth = id.is_gpu() ? pcie_bandwidth(4) : 0;
                d.flops = id.is_gpu() ? 100e12 : 1e12;
            }
            d.hypothetical = true;
            d.total_bytes = d.available_bytes = static_cast<std::uint64_t>(bytes);
        }
        std::erase_if(devices, [&](const DeviceInfo& x) { return x.id == id; });
        devices.push_back(std::move(d));
    }
    std::stable_sort(devices.begin(), devices.end(), [](const DeviceInfo& a, const DeviceInfo& b) { return a.id < b.id; });
    return devices;
}

nlohmann::json device_info_to_json(const DeviceInfo& d)
{
    return {{"device", d.id.name()},         {"name", d.name},
            {"hypothetical", d.hypothetical}, {"total_bytes", d.total_bytes},
            {"available_bytes", d.available_bytes}, {"bandwidth_bytes_per_s", d.bandwidth},
            {"bandwidth_source", d.bandwidth_source}, {"link_bandwidth_bytes_per_s", d.link_bandwidth},
            {"flops", d.flops},              {"compute_capability", d.compute_capability},
            {"cores", d.cores},              {"isa", d.isa},
            {"path", d.path}};
}

DeviceInfo device_info_from_json(const nlohmann::json& j)
{
    try {
        DeviceInfo d;
        d.id = parse_device(j.at("device").get<std::string>());
        d.name = j.value("name", std::string());
        d.hypothetical = j.value("hypothetical", false);
        d.total_bytes = j.at("total_bytes").get<std::uint64_t>();
        d.available_bytes = j.at("available_bytes").get<std::uint64_t>();
        d.bandwidth = j.value("bandwidth_bytes_per_s", 0.0);
        d.bandwidth_source = j.value("bandwidth_source", std::string());
        d.link_bandwidth = j.value("link_bandwidth_bytes_per_s", 0.0);
        d.flops = j.value("flops", 0.0);
        d.compute_capability = j.value("compute_capability", std::string());
        d.cores = j.value("cores", 0);
        d.isa = j.value("isa", std::vector<std::string>());
        d.path = j.value("path", std::string());
        return d;
    } catch (const nlohmann::json::exception& e) {
        throw FormatError(std::string("a device description is malformed: ") + e.what());
    }
}

} // namespace layerwise
