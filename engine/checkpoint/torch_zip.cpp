#include "checkpoint/torch_zip.h"

#include "core/error.h"
#include "core/mapped_file.h"

#include <algorithm>

namespace layerwise {
namespace {

std::uint64_t le(const std::string& b, std::size_t at, int n)
{
    std::uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i)
        v = (v << 8) | static_cast<unsigned char>(b[at + static_cast<std::size_t>(i)]);
    return v;
}

} // namespace

std::map<std::string, ZipRecord> read_zip_directory(const MappedFile& file)
{
    const std::string where = file.path().string();
    if (file.size() < 22)
        throw FormatError(where + ": " + std::to_string(file.size()) +
                          " bytes is too short for a PyTorch checkpoint (truncated file?)");
    const std::uint64_t tail_len = std::min<std::uint64_t>(file.size(), 65536 + 22);
    const std::uint64_t tail_start = file.size() - tail_len;
    const std::string tail = file.read(tail_start, tail_len);
    std::size_t eocd = std::string::npos;
    for (std::size_t i = tail.size() - 22 + 1; i-- > 0;) {
        if (le(tail, i, 4) == 0x06054b50) {
            eocd = i;
            break;
        }
    }
    if (eocd == std::string::npos)
        throw FormatError(where + ": no zip end-of-directory record; this is not a PyTorch (torch.save zip) "
                          "checkpoint or it is truncated (legacy pre-1.6 .bin files are not supported: re-save "
                          "them with a current torch or convert to safetensors)");
    std::uint64_t entries = le(tail, eocd + 10, 2);
    std::uint64_t cd_size = le(tail, eocd + 12, 4);
    std::uint64_t cd_offset = le(tail, eocd + 16, 4);
    if (entries == 0xFFFF || cd_size == 0xFFFFFFFF || cd_offset == 0xFFFFFFFF) {
        const std::uint64_t eocd_abs = tail_start + eocd;
        if (eocd_abs < 20)
            throw FormatError(where + ": zip64 locator missing before byte " + std::to_string(eocd_abs));
        const std::string loc = file.read(eocd_abs - 20, 20);
        if (le(loc, 0, 4) != 0x07064b50)
            throw FormatError(where + ": zip64 locator missing at byte " + std::to_string(eocd_abs - 20));
        const std::uint64_t z64 = le(loc, 8, 8);
        const std::string rec = file.read(z64, 56);
        if (le(rec, 0, 4) != 0x06064b50)
            throw FormatError(where + ": bad zip64 end-of-directory record at byte " + std::to_string(z64));
        entries = le(rec, 32, 8);
        cd_size = le(rec, 40, 8);
        cd_offset = le(rec, 48, 8);
    }
    const std::string cd = file.read(cd_offset, cd_size);
    std::map<std::string, ZipRecord> records;
    std::size_t p = 0;
    for (std::uint64_t e = 0; e < entries; ++e) {
        if (p + 46 > cd.size() || le(cd, p, 4) != 0x02014b50)
            throw FormatError(where + ": corrupt zip central directory at byte " + std::to_string(cd_offset + p));
        const auto method = le(cd, p + 10, 2);
        std::uint64_t csize = le(cd, p + 20, 4);
        std::uint64_t usize = le(cd, p + 24, 4);
        const auto name_len = le(cd, p + 28, 2);
        const auto extra_len = le(cd, p + 30, 2);
        const auto comment_len = le(cd, p + 32, 2);
        std::uint64_t local = le(cd, p + 42, 4);
        if (p + 46 + name_len + extra_len + comment_len > cd.size())
            throw FormatError(where + ": corrupt zip central directory entry at byte " + std::to_string(cd_offset + p));
        const std::string name = cd.substr(p + 46, name_len);
        // zip64 extra field: the 0xFFFFFFFF fields, in order usize, csize, local offset.
        std::size_t x = p + 46 + name_len;
        const std::size_t x_end = x + extra_len;
        while (x + 4 <= x_end) {
            const auto id = le(cd, x, 2);
            const auto len = le(cd, x + 2, 2);
            std::size_t q = x + 4;
            if (id == 0x0001) {
                if (usize == 0xFFFFFFFF && q + 8 <= x_end) { usize = le(cd, q, 8); q += 8; }
                if (csize == 0xFFFFFFFF && q + 8 <= x_end) { csize = le(cd, q, 8); q += 8; }
                if (local == 0xFFFFFFFF && q + 8 <= x_end) { local = le(cd, q, 8); }
            }
            x += 4 + len;
        }
        if (method != 0)
            throw FormatError(where + ": zip record '" + name + "' is compressed (method " + std::to_string(method) +
                              "); PyTorch checkpoints store records uncompressed — re-save with torch.save");
        const std::string lh = file.read(local, 30);
        if (le(lh, 0, 4) != 0x04034b50)
            throw FormatError(where + ": record '" + name + "': no local zip header at byte " + std::to_string(local));
        const std::uint64_t data = local + 30 + le(lh, 26, 2) + le(lh, 28, 2);
        if (data > file.size() || usize > file.size() - data)
            throw FormatError(where + ": record '" + name + "' (bytes " + std::to_string(data) + ".." +
                              std::to_string(data + usize) + ") runs past the end of the file (" +
                              std::to_string(file.size()) + " bytes; truncated?)");
        records[name] = ZipRecord{data, usize};
        p += 46 + name_len + extra_len + comment_len;
    }
    return records;
}

} // namespace layerwise
