// libFuzzer: the GGUF header parser (metadata values, nested arrays, tensor infos, alignment,
// offsets) and the dequantizers over whatever tensors it accepts. Also parses every prefix
// length through parse_prefix, as the checkpoint reader does while it grows its read.
#include "checkpoint/gguf.h"
#include "checkpoint/gguf_dequantize.h"
#include "core/error.h"

#include <cstdint>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    using namespace layerwise;
    try {
        // A short prefix first: it must either ask for more or agree with the whole parse.
        const std::size_t prefix = size / 2;
        (void)gguf::parse_prefix(data, prefix, size, "fuzz.gguf");
        const gguf::File f = gguf::parse(data, size, "fuzz.gguf");
        std::vector<float> out;
        for (const auto& t : f.tensors) {
            if (!gguf::can_dequantize(t.type) || t.numel() > (1u << 16))
                continue;
            out.resize(t.numel());
            gguf::dequantize(t.type, data + t.offset, t.numel(), out.data());
        }
        for (const auto& kv : f.metadata.entries()) {
            // The typed getters on every key: wrong types are errors, never crashes.
            try { (void)f.metadata.get_int(kv.key); } catch (const Error&) {}
            try { (void)f.metadata.get_strings(kv.key); } catch (const Error&) {}
            try { (void)f.metadata.get_floats(kv.key); } catch (const Error&) {}
        }
    } catch (const layerwise::Error&) {
    }
    return 0;
}
