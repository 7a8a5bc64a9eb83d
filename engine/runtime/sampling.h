#pragma once
// Choosing the next token from logits, in transformers' order: repetition penalty, then
// temperature, top-k, top-p, min-p, then a draw (or argmax when greedy).
#include <ATen/core/Tensor.h>
#include <cstdint>
#include <random>
#include <vector>

namespace layerwise {

struct SamplingOptions {
    bool greedy = false;
    double temperature = 1.0;
    std::int64_t top_k = 0;   // 0: off
    double top_p = 1.0;       // 1: off
    double min_p = 0.0;       // 0: off
    double repetition_penalty = 1.0;
    std::uint64_t seed = 0;
};

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
