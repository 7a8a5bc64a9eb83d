#pragma once
// The zip container of torch.save (PyTorch >= 1.6): entries are stored uncompressed,
// so each record is a byte range of the file. Reads the central directory (zip64 too).
#include <cstdint>
#include <map>
#include <string>

namespace layerwise {

class MappedFile;

struct ZipRecord {
    std::uint64_t offset = 0; // absolute offset of the record's bytes
    std::uint64_t size = 0;
};

// Name -> byte range of every record. FormatError if not a zip, truncated, or compressed.
std::map<std::string, ZipRecord> read_zip_directory(const MappedFile& file);

} // namespace layerwise
