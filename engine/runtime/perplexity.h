#pragma once
// Perplexity of a token sequence with the sliding-window method of the transformers
// perplexity guide: windows of `context` tokens every `stride` tokens; in each window only the
// tokens not scored by the previous one are targets (the rest are labelled -100), the mean loss
// of a window is weighted by its target count minus one (the guide's rule for the internal
// label shift), perplexity = exp(weighted sum / total weight).
#include "runtime/run_types.h"
#include "core/progress.h"
#include "runtime/runner.h"

#include <cstdint>
#include <vector>

namespace layerwise {

// The runner's capacity must hold `context` tokens. PlanError for context/stride < 1, stride >
// context, or fewer than two tokens. The progress callback gets windows done / total.
PerplexityResult evaluate_perplexity(Runner& runner, const std::vector<std::int64_t>& ids, std::int64_t context,
                                     std::int64_t stride, const ProgressCallback& progress = {});

} // namespace layerwise
