#pragma once
// The parameters of GPTQ (and of round-to-nearest in the same format) and their checks. No
// LibTorch: the UI and the command line fill these in.
#include <cstdint>
#include <string>

namespace layerwise {

struct GptqParams {
    int bits = 4;            // 2, 3, 4 or 8
    int group_size = 128;    // -1: one group per row; otherwise > 0
    bool sym = true;         // symmetric: zero point fixed at (2^bits) / 2
    bool desc_act = false;   // act-order
    bool static_groups = false;
    double damp_percent = 0.01;
    int block_size = 128;    // columns per lazy-update block (AutoGPTQ's blocksize)
};

// PlanError naming `where` for bits outside {2, 3, 4, 8}, a group size that is 0, below -1,
// or smaller than in_features without dividing it (a group size at least in_features means
// one group, as AutoGPTQ computes it), damp_percent outside (0, 1), or a block size < 1.
void validate_gptq_params(const GptqParams& params, std::int64_t in_features, const std::string& where);

// The number of groups of a layer: 1 for group_size -1, else ceil(in_features / group_size).
std::int64_t gptq_group_count(const GptqParams& params, std::int64_t in_features);

} // namespace layerwise
