// libFuzzer: model.safetensors.index.json parsing.
#include "checkpoint/sharded_index.h"
#include "core/error.h"

#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    try {
        layerwise::parse_sharded_index(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.index.json");
    } catch (const layerwise::Error&) {
    }
    return 0;
}
