// libFuzzer: config.json -> ModelConfig.
#include "core/error.h"
#include "model/config.h"

#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    try {
        layerwise::parse_model_config(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz/config.json");
    } catch (const layerwise::Error&) {
    }
    return 0;
}
