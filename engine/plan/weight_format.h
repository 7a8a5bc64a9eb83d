#pragma once
// How weights are stored once loaded: a plain dtype, or a quantized format for the
// linear layers of the decoder blocks (embeddings, norms and the LM head stay in the
// compute dtype, as bitsandbytes and AutoGPTQ keep them).
#include "core/dtype.h"

#include <cstdint>
#include <string>
#include <string_view>

namespace layerwise {

class ModuleTree;
struct ModuleTensor;

struct WeightFormat {
    enum class Kind { plain, int8, nf4, fp4, gptq };
    Kind kind = Kind::plain;
    DType dtype = DType::bf16; // plain dtype / compute dtype of quantized formats
    int bits = 4;              // gptq: 2, 3, 4, 8
    int group_size = 128;      // gptq: -1 = one group per column
    bool double_quant = false; // nf4/fp4: quantized absmax

    std::string name() const; // "bfloat16", "int8", "nf4", "gptq-4bit-128g"
};

// "none" / "" (plain), "int8", "nf4", "fp4", "nf4-dq", "gptq" (4 bit, group 128), "gptq-3bit-64g".
WeightFormat parse_weight_format(std::string_view quant, DType dtype);

// Bytes of one tensor in this format (a tied tensor: 0, it is stored once).
std::uint64_t tensor_bytes(const ModuleTree& tree, const ModuleTensor& tensor, const WeightFormat& format);
bool is_quantizable(const ModuleTree& tree, const ModuleTensor& tensor);

} // namespace layerwise
