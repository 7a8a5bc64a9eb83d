#include "plan/weight_format.h"

#include "core/error.h"
#include "model/module_tree.h"

#include <charconv>

namespace layerwise {

std::string WeightFormat::name() const
{
    switch (kind) {
    case Kind::plain: return std::string(torch_name(dtype));
    case Kind::int8: return "int8";
    case Kind::nf4: return double_quant ? "nf4-dq" : "nf4";
    case Kind::fp4: return double_quant ? "fp4-dq" : "fp4";
    case Kind::gptq: return "gptq-" + std::to_string(bits) + "bit-" + (group_size < 0 ? std::string("nog") : std::to_string(group_size) + "g");
    }
    return "?";
}

WeightFormat parse_weight_format(std::string_view quant, DType dtype)
{
    WeightFormat f;
    f.dtype = dtype;
    if (quant.empty() || quant == "none")
        return f;
    if (quant == "int8" || quant == "8bit") {
        f.kind = WeightFormat::Kind::int8;
        return f;
    }
    if (quant == "nf4" || quant == "fp4" || quant == "nf4-dq" || quant == "fp4-dq" || quant == "4bit") {
        f.kind = quant.substr(0, 3) == "fp4" ? WeightFormat::Kind::fp4 : WeightFormat::Kind::nf4;
        f.double_quant = quant.ends_with("-dq");
        return f;
    }
    if (quant.substr(0, 4) == "gptq") {
        f.kind = WeightFormat::Kind::gptq;
        // gptq-<bits>bit-<group>g
        std::string_view rest = quant.substr(4);
        auto number = [&](std::string_view& s, int& out) {
            while (!s.empty() && (s.front() == '-' || s.front() == ':'))
                s.remove_prefix(1);
            const bool negative = !s.empty() && s.front() == 'n';
            if (negative) { // "nog": no grouping
                s.remove_prefix(std::min<std::size_t>(3, s.size()));
                out = -1;
                return true;
            }
            auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
            if (ec != std::errc())
                return false;
            s.remove_prefix(static_cast<std::size_t>(p - s.data()));
            return true;
        };
        if (!rest.empty()) {
            if (!number(rest, f.bits) || !(rest.substr(0, 3) == "bit"))
                throw PlanError("quantization '" + std::string(quant) + "': write gptq-<bits>bit-<group>g, e.g. gptq-4bit-128g");
            rest.remove_prefix(3);
            if (!rest.empty() && (!number(rest, f.group_size) || !(rest.empty() || rest == "g")))
                throw PlanError("quantization '" + std::string(quant) + "': write gptq-<bits>bit-<group>g, e.g. gptq-4bit-128g");
        }
        if (f.bits != 2 && f.bits != 3 && f.bits != 4 && f.bits != 8)
            throw PlanError("GPTQ bits must be 2, 3, 4 or 8, not " + std::to_string(f.bits));
        if (f.group_size != -1 && f.group_size != 32 && f.group_size != 64 && f.group_size != 128 && f.group_size != 256 &&
            f.group_size != 1024)
            throw PlanError("GPTQ group size must be -1, 32, 64, 128, 256 or 1024, not " + std::to_string(f.group_size));
        return f;
    }
    throw PlanError("unknown quantization '" + std::string(quant) + "'; use none, int8, nf4, fp4, nf4-dq or gptq-4bit-128g");
}

bool is_quantizable(const ModuleTree& tree, const ModuleTensor& tensor)
{
    if (tensor.buffer || tensor.name != "weight" || tensor.shape.size() != 2 || !tensor.tied_to.empty())
        return false;
    const std::string module = tensor.full_name.substr(0, tensor.full_name.size() - 7);
    const int node = tree.find(module);
    if (node < 0)
        return false;
    const auto& cls = tree.nodes()[static_cast<std::size_t>(node)].class_name;
    if (cls != "Linear" && cls != "Conv1D")
        return false;
    for (int p = tree.nodes()[static_cast<std::size_t>(node)].parent; p >= 0; p = tree.nodes()[static_cast<std::size_t>(p)].parent)
        if (tree.nodes()[static_cast<std::size_t>(p)].no_split)
            return true;
    return false; // the LM head and anything outside decoder blocks stay unquantized
}

std::uint64_t tensor_bytes(const ModuleTree& tree, const ModuleTensor& tensor, const WeightFormat& f)
{
    if (!tensor.tied_to.empty())
        return 0;
    if (tensor.quantized_bytes)
        return *tensor.quantized_bytes; // saved quantized: loaded as it is, whatever format was asked
    if (f.kind == WeightFormat::Kind::plain || !is_quantizable(tree, tensor))
        return tree.tensor_bytes(tensor, SizeRule::as_loaded(f.dtype));
    const std::uint64_t n = tensor.numel();
    const std::uint64_t rows = static_cast<std::uint64_t>(tensor.shape[0]);
    const std::uint64_t cols = static_cast<std::uint64_t>(tensor.shape[1]);
    switch (f.kind) {
    case WeightFormat::Kind::int8:
        return n + rows * 4; // int8 weights + a float32 absmax per output row (SCB)
    case WeightFormat::Kind::nf4:
    case WeightFormat::Kind::fp4: {
        const std::uint64_t blocks = (n + 63) / 64;
        const std::uint64_t packed = (n + 1) / 2;
        // What a bitsandbytes 4-bit linear holds (and saves): the packed weight, a float32 absmax per
        // block of 64 and its 16-value float32 quant_map; nested, a uint8 absmax per block, a
        // float32 absmax per 256 blocks and the 256-value float32 nested_quant_map.
        if (!f.double_quant)
            return packed + blocks * 4 + 16 * 4;
        return packed + blocks + 16 * 4 + ((blocks + 255) / 256) * 4 + 256 * 4;
    }
    case WeightFormat::Kind::gptq: {
        // Linear weight [out, in] (Conv1D [in, out]); GPTQ packs along `in`.
        const bool conv1d = tree.nodes()[static_cast<std::size_t>(tree.find(tensor.full_name.substr(0, tensor.full_name.size() - 7)))].class_name == "Conv1D";
        const std::uint64_t in = conv1d ? rows : cols, out = conv1d ? cols : rows;
        if (in % 32 != 0 || out % 32 != 0) // AutoGPTQ's packing needs both: the GPTQ job keeps such a linear as stored
            return tree.tensor_bytes(tensor, SizeRule::as_loaded(f.dtype));
        const std::uint64_t groups = f.group_size < 0 ? 1 : (in + static_cast<std::uint64_t>(f.group_size) - 1) / static_cast<std::uint64_t>(f.group_size);
        const auto bits = static_cast<std::uint64_t>(f.bits);
        const std::uint64_t qweight = (in * bits + 31) / 32 * out * 4;
        const std::uint64_t qzeros = groups * ((out * bits + 31) / 32) * 4;
        const std::uint64_t scales = groups * out * 2;
        const std::uint64_t g_idx = in * 4;
        return qweight + qzeros + scales + g_idx;
    }
    case WeightFormat::Kind::plain: break;
    }
    return 0;
}

} // namespace layerwise
