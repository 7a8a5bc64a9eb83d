#pragma once
// Byte sizes: parsing memory limits exactly as accelerate's convert_file_size_to_int
// does ("20GiB", "10GB", "500MiB", "5Gb" = bits, plain integers = bytes) and formatting.
#include <cstdint>
#include <string>
#include <string_view>

namespace layerwise {

// Throws FormatError naming the text and the accepted forms.
std::int64_t parse_size(std::string_view text);

// "1.50 GiB", "512 B": binary units, two decimals.
std::string format_bytes(std::uint64_t bytes);

// "260,032"
std::string format_count(std::uint64_t count);

} // namespace layerwise
