// libFuzzer: the safetensors JSON header parser and validator.
#include "checkpoint/safetensors.h"
#include "core/error.h"

#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    const std::string_view header(reinterpret_cast<const char*>(data), size);
    // The buffer size varies with the input so offsets both fit and overflow.
    const std::uint64_t file_size = 8 + size + (size ? data[0] * 16u : 0u);
    try {
        layerwise::parse_safetensors_header(header, file_size, "fuzz.safetensors");
    } catch (const layerwise::Error&) {
    }
    return 0;
}
