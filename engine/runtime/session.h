#pragma once
// The generation loop: prefill (in chunks), then one token at a time until an end-of-sequence
// id, a stop string, the token budget or the stop flag. Tokens stream to a callback.
#include "runtime/run_types.h"
#include "runtime/runner.h"
#include "runtime/sampling.h"

#include <atomic>
#include <functional>
#include <string>
#include <vector>

namespace layerwise {

// on_token(id) returns false to stop. `decode` (optional) turns the generated ids into text
// for stop strings. `stop` is polled between tokens.
GenerationResult generate(Runner& runner, const std::vector<std::int64_t>& prompt, const GenerationOptions& options,
                          const std::function<bool(std::int64_t)>& on_token = {},
                          const std::atomic<bool>* stop = nullptr,
                          const std::function<std::string(const std::vector<std::int64_t>&)>& decode = {});

// The end-of-sequence ids a model folder declares (generation_config.json, then config.json).
std::vector<std::int64_t> eos_token_ids(const std::filesystem::path& model_folder, const ModelConfig& config);

} // namespace layerwise
