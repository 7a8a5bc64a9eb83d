#pragma once
// Choosing the next token from logits, in transformers' order: repetition penalty, then
// temperature, top-k, top-p, min-p, then a draw (or argmax when greedy).
#include "runtime/run_types.h"
#include <ATen/core/Tensor.h>
#include <cstdint>
#include <random>
#include <vector>

namespace layerwise {

class Sampler {
public:
    explicit Sampler(SamplingOptions options);
    // logits: float32 [vocab]; `history`: the tokens so far (for the repetition penalty).
    std::int64_t next(const at::Tensor& logits, const std::vector<std::int64_t>& history);
    const SamplingOptions& options() const { return m_options; }

private:
    SamplingOptions m_options;
    std::mt19937_64 m_rng;
};

// The filtered, renormalised distribution the sampler draws from (for tests).
at::Tensor sampling_distribution(const at::Tensor& logits, const std::vector<std::int64_t>& history,
                                 const SamplingOptions& options);

} // namespace layerwise
