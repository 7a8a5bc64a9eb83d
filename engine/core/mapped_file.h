#pragma once
// A read-only memory mapping of a whole file (RAII). Checkpoint tensors are views
// into it. Headers are read with pread() so that describing a model never faults in
// a page of tensor data; `resident_bytes` (mincore) lets tests prove it.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>

namespace layerwise {

class MappedFile {
public:
    // Throws IoError (missing file, no permission, a folder) naming the path.
    explicit MappedFile(const std::filesystem::path& path);
    ~MappedFile();
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;

    const std::filesystem::path& path() const { return m_path; }
    std::uint64_t size() const { return m_size; }

    // Copies [offset, offset + length) with pread(); throws FormatError if past the end.
    std::string read(std::uint64_t offset, std::uint64_t length) const;

    // Pointer into the mapping (maps lazily on first use). Counted: see data_bytes_handed_out().
    const std::byte* data(std::uint64_t offset, std::uint64_t length) const;

    // Bytes handed out through data(): 0 proves no tensor data was asked for.
    std::uint64_t data_bytes_handed_out() const { return m_handed_out; }

    // How many bytes of [offset, offset + length) are in the page cache (mincore).
    std::uint64_t resident_bytes(std::uint64_t offset, std::uint64_t length) const;

    // Ask the kernel to read [offset, offset + length) ahead (madvise WILLNEED).
    void prefetch(std::uint64_t offset, std::uint64_t length) const;
    // Read [offset, offset + length) in now and map its pages into this process (madvise
    // POPULATE_READ; on kernels before 5.14, one read per page), so that weights held in RAM
    // as views of the file cost no page fault when first used.
    void populate(std::uint64_t offset, std::uint64_t length) const;
    // Drop [offset, offset + length) from this process's memory (madvise DONTNEED); the pages
    // are read again from the file on the next access.
    void release(std::uint64_t offset, std::uint64_t length) const;

private:
    void map() const;
    // [offset, offset + length) widened to whole pages and cut at the end of the file: the
    // mapping's pointer and length (null when the range starts past the end).
    std::pair<char*, std::uint64_t> whole_pages(std::uint64_t offset, std::uint64_t length) const;

    std::filesystem::path m_path;
    int m_fd = -1;
    std::uint64_t m_size = 0;
    mutable void* m_map = nullptr;
    mutable std::uint64_t m_handed_out = 0;
};

} // namespace layerwise
