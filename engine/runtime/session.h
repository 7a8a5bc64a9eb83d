#pragma once
// The generation loop: prefill (in chunks), then one token at a time until an end-of-sequence
// id, a stop string, the token budget or the stop flag. Tokens stream to a callback.
#include "runtime/runner.h"
#include "runtime/sampling.h"

#include <atomic>
#include <functional>
#include <string>
#include <vector>

namespace layerwise {

struct GenerationOptions {
    std::int64_t max_new_tokens = 128;
    SamplingOptions sampling;
    std::vector<std::int64_t> eos_ids;       // stop on any of these (generation_config / config)
    std::vector<std::string> stop_strings;   // needs `decode`
    std::int64_t prefill_chunk = 512;
};

struct GenerationResult {
    std::vector<std::int64_t> tokens;         // generated only
    std::string stop_reason;                  // "eos", "stop_string", "max_new_tokens", "stopped", "context_full"
    double ttft_s = 0;                        // prompt in -> first token out
    double decode_tokens_per_s = 0;           // after the first token
    double prefill_tokens_per_s = 0;
};

// on_token(id) returns false to stop. `decode` (optional) turns the generated ids into text
// for stop strings. `stop` is polled between tokens.
GenerationResult generate(Runner& runner, const std::vector<std::int64_t>& prompt, const GenerationOptions& options,
                          const std::function<bool(std::int64_t)>& on_token = {},
                          const std::atomic<bool>* stop = nullptr,
                          const std::function<std::string(const std::vector<std::int64_t>&)>& decode = {});

// The end-of-sequence ids a model folder declares (generation_config.json, then config.json).
std::vector<std::int64_t> eos_token_ids(const std::filesystem::path& model_folder, const ModelConfig& config);

} // namespace layerwise
