// libFuzzer: tokenizer.json parsing, then encoding and decoding a fixed text with it.
#include "core/error.h"
#include "text/tokenizer.h"

#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    try {
        const auto t = layerwise::text::tokenizer_from_json(std::string_view(reinterpret_cast<const char*>(data), size),
                                                             "fuzz/tokenizer.json");
        const auto ids = t->encode("Hello, world! 123 \xe4\xbd\xa0\xe5\xa5\xbd <s>", true);
        t->decode(ids, false);
    } catch (const layerwise::Error&) {
    }
    return 0;
}
