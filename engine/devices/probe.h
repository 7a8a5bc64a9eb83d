#pragma once
// Measured bandwidths of this machine's RAM and of the disk holding the offload folder:
// a short probe (about a second), cached in $XDG_CACHE_HOME/layerwise/bandwidth.json.
#include <string>

namespace layerwise {

struct BandwidthFigures {
    double ram = 0;  // bytes/s, memcpy of a buffer much larger than the caches (read + write)
    double disk = 0; // bytes/s, sequential read of a file not in the page cache
};

BandwidthFigures measure_bandwidth(const std::string& disk_folder);
// The cached figures for (cpu, disk folder), measured when absent or when `refresh`.
BandwidthFigures cached_bandwidth(const std::string& cpu_name, const std::string& disk_folder, bool refresh);

} // namespace layerwise
