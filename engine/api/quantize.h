#pragma once
// Quantization jobs: a bitsandbytes-format copy of a model (int8, NF4, FP4), and the GPTQ /
// round-to-nearest job that writes an AutoGPTQ-format copy layer by layer, resumable
// (jobs/gptq_job.h holds its options, progress and result). Both write a new folder whole or
// not at all; both cancel through their progress callback (CancelledError).
#include "api/model.h"
#include "core/progress.h"
#include "jobs/gptq_job.h"
#include "model/quant_config.h"
#include "plan/weight_format.h"

#include <cstdint>
#include <filesystem>
#include <string>

namespace layerwise {

struct BnbQuantizeResult {
    std::filesystem::path folder;
    std::int64_t quantized_linears = 0;
    std::uint64_t weight_bytes = 0;
};

BnbQuantizeResult quantize_bnb(Model&& model, const QuantOptions& options, const std::filesystem::path& out,
                               const ProgressCallback& progress = {}, const Logger& log = {});

GptqJobResult quantize_gptq(const std::string& source, const std::filesystem::path& out, const GptqJobOptions& options,
                            const GptqProgressCallback& progress = {}, const Logger& log = {});

// The quantization to apply while loading for a planned weight format (none, int8, nf4, fp4,
// with double quantization). UnsupportedError for formats that need a calibration job (GPTQ).
QuantOptions load_quantization(const WeightFormat& format);

} // namespace layerwise
