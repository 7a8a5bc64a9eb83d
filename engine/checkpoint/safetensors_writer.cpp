#include "checkpoint/safetensors_writer.h"

#include "core/error.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <sys/mman.h>
#include <unistd.h>

namespace layerwise {

void write_safetensors(const std::filesystem::path& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata)
{
    nlohmann::ordered_json header = nlohmann::ordered_json::object();
    if (!metadata.empty())
        header["__metadata__"] = metadata;
    std::uint64_t offset = 0;
    std::vector<std::uint64_t> sizes;
    for (const auto& t : tensors) {
        std::uint64_t numel = 1;
        for (auto d : t.shape)
            numel *= static_cast<std::uint64_t>(d);
        const std::uint64_t size = dtype_bytes(t.dtype, numel);
        header[t.name] = {{"dtype", safetensors_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + size}}};
        sizes.push_back(size);
        offset += size;
    }
    std::string h = header.dump();
    // The data starts on a 64-byte boundary (the reference writer pads to 8): tensors whose
    // sizes are multiples of 64 bytes then sit where LibTorch's own allocations would, and
    // kernels take the same (aligned) paths on them as on weights held in memory.
    h.resize((h.size() + 8 + 63) / 64 * 64 - 8, ' ');
    const std::uint64_t total = 8 + h.size() + offset;

    const std::filesystem::path tmp = path.string() + ".tmp";
    const int fd = ::open(tmp.c_str(), O_CREAT | O_RDWR | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        throw IoError("cannot create " + tmp.string() + ": " + std::strerror(errno));
    auto fail = [&](const std::string& what) {
        const std::string why = std::strerror(errno);
        ::close(fd);
        ::unlink(tmp.c_str());
        throw IoError(what + " " + path.string() + ": " + why + (errno == ENOSPC ? " (the disk is full)" : ""));
    };
    if (::posix_fallocate(fd, 0, static_cast<off_t>(total)) != 0 && ::ftruncate(fd, static_cast<off_t>(total)) != 0)
        fail("cannot reserve space for");
    void* map = ::mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED)
        fail("cannot map");
    auto* out = static_cast<std::byte*>(map);
    const std::uint64_t n = h.size();
    std::memcpy(out, &n, 8); // little-endian hosts only (x86-64, aarch64)
    std::memcpy(out + 8, h.data(), h.size());
    std::byte* data = out + 8 + h.size();
    try {
        for (std::size_t i = 0; i < tensors.size(); ++i) {
            tensors[i].fill(data);
            data += sizes[i];
        }
    } catch (...) {
        ::munmap(map, total);
        ::close(fd);
        ::unlink(tmp.c_str());
        throw;
    }
    if (::msync(map, total, MS_SYNC) != 0) {
        ::munmap(map, total);
        fail("cannot write");
    }
    ::munmap(map, total);
    if (::close(fd) != 0) {
        ::unlink(tmp.c_str());
        throw IoError("cannot write " + path.string() + ": " + std::strerror(errno));
    }
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    if (ec) {
        ::unlink(tmp.c_str());
        throw IoError("cannot rename " + tmp.string() + " to " + path.string() + ": " + ec.message());
    }
}

} // namespace layerwise
