#include "core/mapped_file.h"

#include "core/error.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace layerwise {
namespace {

std::string errno_text()
{
    return std::strerror(errno);
}

std::uint64_t page_size()
{
    return static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));
}

} // namespace

MappedFile::MappedFile(const std::filesystem::path& path) : m_path(path)
{
    m_fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (m_fd < 0) {
        const int err = errno;
        std::string hint = err == EACCES ? " (check the file's permissions)"
                           : err == ENOENT ? " (the file does not exist)"
                                           : "";
        throw IoError("cannot open " + path.string() + ": " + std::strerror(err) + hint);
    }
    struct stat st {};
    if (::fstat(m_fd, &st) != 0) {
        const std::string why = errno_text();
        ::close(m_fd);
        throw IoError("cannot stat " + path.string() + ": " + why);
    }
    if (!S_ISREG(st.st_mode)) {
        ::close(m_fd);
        throw IoError(path.string() + " is not a regular file");
    }
    m_size = static_cast<std::uint64_t>(st.st_size);
    // Describing a model reads only headers: keep the kernel from reading tensor data ahead.
    ::posix_fadvise(m_fd, 0, 0, POSIX_FADV_RANDOM);
}

MappedFile::~MappedFile()
{
    if (m_map)
        ::munmap(m_map, m_size);
    if (m_fd >= 0)
        ::close(m_fd);
}

std::string MappedFile::read(std::uint64_t offset, std::uint64_t length) const
{
    if (offset > m_size || length > m_size - offset)
        throw FormatError(m_path.string() + ": needs bytes " + std::to_string(offset) + ".." +
                          std::to_string(offset + length) + " but the file has only " +
                          std::to_string(m_size) + " bytes (truncated?)");
    std::string out(length, '\0');
    std::uint64_t done = 0;
    while (done < length) {
        const ssize_t n = ::pread(m_fd, out.data() + done, length - done, static_cast<off_t>(offset + done));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            throw IoError("cannot read " + m_path.string() + ": " + errno_text());
        }
        if (n == 0)
            throw FormatError(m_path.string() + ": unexpected end of file at byte " + std::to_string(offset + done));
        done += static_cast<std::uint64_t>(n);
    }
    return out;
}

void MappedFile::map() const
{
    if (m_map || m_size == 0)
        return;
    void* p = ::mmap(nullptr, m_size, PROT_READ, MAP_SHARED, m_fd, 0);
    if (p == MAP_FAILED)
        throw IoError("cannot map " + m_path.string() + ": " + errno_text());
    m_map = p;
}

const std::byte* MappedFile::data(std::uint64_t offset, std::uint64_t length) const
{
    if (offset > m_size || length > m_size - offset)
        throw FormatError(m_path.string() + ": range " + std::to_string(offset) + ".." +
                          std::to_string(offset + length) + " is past the end of the file (" +
                          std::to_string(m_size) + " bytes)");
    map();
    m_handed_out += length;
    if (!m_map) {
        static const std::byte empty{};
        return &empty;
    }
    return static_cast<const std::byte*>(m_map) + offset;
}

std::uint64_t MappedFile::resident_bytes(std::uint64_t offset, std::uint64_t length) const
{
    if (length == 0 || offset >= m_size)
        return 0;
    length = std::min(length, m_size - offset);
    // A private probe mapping: it does not count as handing data out and faults nothing in.
    const std::uint64_t ps = page_size();
    const std::uint64_t first = offset / ps * ps;
    const std::uint64_t span = offset + length - first;
    void* p = ::mmap(nullptr, span, PROT_READ, MAP_SHARED, m_fd, static_cast<off_t>(first));
    if (p == MAP_FAILED)
        throw IoError("cannot map " + m_path.string() + ": " + errno_text());
    std::vector<unsigned char> pages((span + ps - 1) / ps);
    const int rc = ::mincore(p, span, pages.data());
    ::munmap(p, span);
    if (rc != 0)
        throw IoError("mincore failed on " + m_path.string() + ": " + errno_text());
    std::uint64_t resident = 0;
    for (std::size_t i = 0; i < pages.size(); ++i) {
        if (!(pages[i] & 1))
            continue;
        const std::uint64_t lo = std::max(first + i * ps, offset);
        const std::uint64_t hi = std::min(first + (i + 1) * ps, offset + length);
        resident += hi - lo;
    }
    return resident;
}

std::pair<char*, std::uint64_t> MappedFile::whole_pages(std::uint64_t offset, std::uint64_t length) const
{
    map();
    if (!m_map || offset >= m_size)
        return {nullptr, 0};
    const std::uint64_t first = offset / page_size() * page_size();
    return {static_cast<char*>(m_map) + first, std::min(length, m_size - offset) + (offset - first)};
}

void MappedFile::prefetch(std::uint64_t offset, std::uint64_t length) const
{
    if (const auto [p, span] = whole_pages(offset, length); p)
        ::madvise(p, span, MADV_WILLNEED);
}

void MappedFile::populate(std::uint64_t offset, std::uint64_t length) const
{
    const auto [p, span] = whole_pages(offset, length);
    if (!p)
        return;
#ifdef MADV_POPULATE_READ
    if (::madvise(p, span, MADV_POPULATE_READ) == 0)
        return;
#endif
    // Older kernels: fault each page in (a read error surfaces as SIGBUS here, as it would on
    // first use).
    volatile char sink = 0;
    for (std::uint64_t i = 0; i < span; i += page_size())
        sink = static_cast<char>(sink + p[i]);
    (void)sink;
}

void MappedFile::release(std::uint64_t offset, std::uint64_t length) const
{
    if (!m_map || offset >= m_size)
        return;
    const std::uint64_t ps = page_size();
    // Whole pages inside the range only: a neighbouring tensor may share the edge pages.
    const std::uint64_t first = (offset + ps - 1) / ps * ps;
    const std::uint64_t end = std::min(offset + length, m_size) / ps * ps;
    if (end > first)
        ::madvise(static_cast<char*>(m_map) + first, end - first, MADV_DONTNEED);
}

} // namespace layerwise
