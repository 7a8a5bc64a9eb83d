#pragma once
// safetensors: an 8-byte little-endian header length, a JSON header
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}},
// then the byte buffer. The header is parsed and validated once, read with pread();
// tensor data stays in the file until a caller asks for a view.
#include "checkpoint/tensor_entry.h"

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace layerwise {

struct SafetensorsHeader {
    std::vector<TensorEntry> tensors;           // in header order; offsets absolute in the file
    std::map<std::string, std::string> metadata; // "__metadata__"
    std::uint64_t data_start = 0;                // 8 + header length
};

// Largest header accepted, as the reference implementation (100 MB).
inline constexpr std::uint64_t max_safetensors_header = 100'000'000;

// Validates a header against a file of `file_size` bytes. `where` names the file in messages.
// Every violation is a FormatError naming the tensor and byte offsets:
// unknown dtype, bad shape, offsets out of range / overlapping / leaving holes,
// size not matching shape x dtype, duplicate names, non-JSON or non-object header.
SafetensorsHeader parse_safetensors_header(std::string_view header_json, std::uint64_t file_size,
                                           const std::string& where);

class MappedFile;

// Reads and validates the header of an open file (never touching tensor data).
SafetensorsHeader read_safetensors_header(const MappedFile& file, std::size_t file_index);

} // namespace layerwise
