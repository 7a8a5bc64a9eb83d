#pragma once
// The loader's side of quantization: recognising weights a bitsandbytes checkpoint already
// holds quantized, and quantizing float weights on their way to their device (host memory for
// CPU and disk layers; disk layers are written once to an offload file).
#include "checkpoint/checkpoint.h"
#include "checkpoint/safetensors_writer.h"
#include "quant/gptq_config.h"
#include "quant/quant_linear.h"

#include <functional>
#include <map>
#include <memory>
#include <optional>

namespace layerwise {

// The bitsandbytes companions of a saved quantized weight "<module>.weight": a
// "<module>.weight.quant_state.bitsandbytes__nf4|fp4" (4-bit) or "<module>.SCB" (int8); or,
// for a GPTQ checkpoint (`gptq` its config), "<module>.qweight" and company: shape [out, in]
// from qweight. nullopt for a plain weight. FormatError for an unreadable quant_state, or GPTQ
// tensors without a GPTQ config.
std::optional<QuantInfo> saved_quant_info(const Checkpoint& checkpoint, const std::string& module,
                                          const GptqConfig* gptq = nullptr);

// Zero-copy views of a saved quantized weight's tensors (suffix -> tensor), checked for size.
std::vector<std::pair<std::string, at::Tensor>> saved_quant_tensors(const Checkpoint& checkpoint,
                                                                     const std::string& module, const QuantInfo& info);

// Disk layers quantized once into an offload file: the writes (quantizing lazily, one weight at a
// time) and, once written, the QuantInfo of each module.
class QuantOffloadWriter {
public:
    QuantOffloadWriter(const QuantOptions& options, DType compute_dtype) : m_options(options), m_compute(compute_dtype) {}
    // `source` yields the float weight (called while writing).
    void add(const std::string& module, const std::vector<std::int64_t>& shape, std::function<at::Tensor()> source,
             std::vector<TensorToWrite>& writes);
    const std::map<std::string, QuantInfo>& infos() const { return m_state->infos; }

private:
    struct State {
        std::string module;
        QuantizedWeight current;
        std::map<std::string, QuantInfo> infos;
    };
    QuantOptions m_options;
    DType m_compute;
    std::shared_ptr<State> m_state = std::make_shared<State>();
};

} // namespace layerwise
