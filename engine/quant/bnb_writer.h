#pragma once
// Writes a quantized copy of a model folder in the layout transformers + bitsandbytes
// save_pretrained() produces: quantized decoder linears as bitsandbytes tensors (int8 weight +
// SCB + weight_format; 4-bit packed weight + absmax + quant_map [+ nested_absmax,
// nested_quant_map] + quant_state.bitsandbytes__<type>), everything else as stored,
// config.json with "quantization_config", tokenizer and generation files copied. The folder
// appears whole or not at all (written beside it under a temporary name, then renamed).
#include "core/log.h"
#include "core/progress.h"
#include "model/quant_config.h"

#include <filesystem>

namespace layerwise {

struct ModelDescription;

struct QuantizeResult {
    std::filesystem::path folder;
    int quantized_linears = 0;
    std::uint64_t weight_bytes = 0; // bytes of tensor data written
};

// IoError when `out` exists or cannot be written; UnsupportedError for a model without weights
// or already quantized; CancelledError when the progress callback returns false (nothing left behind).
QuantizeResult save_quantized(ModelDescription&& model, const QuantOptions& options, const std::filesystem::path& out,
                              const ProgressCallback& progress = {}, const Logger& log = {});

} // namespace layerwise
