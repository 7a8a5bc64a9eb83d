// libFuzzer: the GGUF header parser (metadata values, nested arrays, tensor infos, alignment,
// offsets) and the dequantizers over whatever tensors it accepts. Also parses every prefix
// length through parse_prefix, as the checkpoint reader does while it grows its read. Each
// accepted 2-D tensor also goes through the block kernels' dot products (every level the CPU
// runs) row by row, against an activation row quantized to the format's 8-bit blocks.
#include "checkpoint/gguf.h"
#include "checkpoint/gguf_dequantize.h"
#include "core/error.h"
#include "cpu/gguf_blocks.h"

#include <cstdint>
#include <vector>

namespace {

void dot_rows(const layerwise::gguf::TensorInfo& t, const std::uint8_t* data, const float* decoded)
{
    using namespace layerwise::kernels;
    const auto type = static_cast<cpu::GgmlType>(t.type);
    int elements = 0, bytes = 0;
    if (t.dims.size() != 2 || !cpu::block_geometry(type, elements, bytes))
        return;
    const std::int64_t in = t.dims[0], rows = t.dims[1];
    std::vector<std::uint8_t> act(static_cast<std::size_t>(in / 32 * 292 + 64));
    const void* a = decoded; // float activations for F32/F16/BF16: the decoded row itself
    switch (cpu::activation_type(type)) {
    case cpu::GgmlType::Q8_0: cpu::quantize_row_q8_0(decoded, act.data(), in, CpuLevel::automatic), a = act.data(); break;
    case cpu::GgmlType::Q8_1: cpu::quantize_row_q8_1(decoded, act.data(), in, CpuLevel::automatic), a = act.data(); break;
    case cpu::GgmlType::Q8_K:
        if (in % 256)
            return;
        cpu::quantize_row_q8_K(decoded, act.data(), in, CpuLevel::automatic), a = act.data();
        break;
    default: break;
    }
    for (CpuLevel l : {CpuLevel::scalar, CpuLevel::avx2, CpuLevel::avx512}) {
        const cpu::VecDot dot = cpu_level_available(l) ? cpu::vec_dot_kernel(type, l) : nullptr;
        for (std::int64_t r = 0; dot && r < rows; ++r)
            (void)dot(in, data + t.offset + r * (in / elements) * bytes, a);
    }
}

} // namespace

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
            dot_rows(t, data, out.data());
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
