#pragma once
// The values a run takes and gives back: sampling and generation options, a generation's
// result, a conversation and its answer, a perplexity measurement and a layer's live state.
// Plain values (no LibTorch), part of the engine API.
#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace layerwise {

// Where a decoder layer's weights are while a model runs (the placement map's live colours).
enum class LayerState { resident, streaming_in, computing, evicted };

struct SamplingOptions {
    bool greedy = false;
    double temperature = 1.0;
    std::int64_t top_k = 0;   // 0: off
    double top_p = 1.0;       // 1: off
    double min_p = 0.0;       // 0: off
    double repetition_penalty = 1.0;
    // OpenAI's penalties, in [-2, 2]: each token's logit minus frequency_penalty times its count
    // in the history plus presence_penalty if it occurs there at all (0: off).
    double presence_penalty = 0.0;
    double frequency_penalty = 0.0;
    std::uint64_t seed = 0;
};

struct GenerationOptions {
    std::int64_t max_new_tokens = 128;
    SamplingOptions sampling;
    std::vector<std::int64_t> eos_ids;       // stop on any of these (generation_config / config)
    std::vector<std::string> stop_strings;   // needs `decode`
    std::int64_t prefill_chunk = 512;
};

struct GenerationResult {
    std::vector<std::int64_t> tokens;         // generated only
    std::string stop_reason;                  // "eos", "stop_string", "max_new_tokens", "stopped", "context_full", "error"
    std::string error;                        // stop_reason "error": what went wrong
    double ttft_s = 0;                        // prompt in -> first token out
    double decode_tokens_per_s = 0;           // after the first token
    double prefill_tokens_per_s = 0;
};

// One sequence of a batch decoded together (Session::batch): its prompt, its own options and
// callbacks, called from the thread that runs the batch.
struct SequenceRequest {
    std::vector<std::int64_t> prompt;
    GenerationOptions options;                          // eos_ids as given (Session::eos_ids() for the model's)
    std::function<bool(std::int64_t)> on_token;        // false: this sequence stops
    std::function<void(const GenerationResult&)> on_done; // once, when it leaves the batch
    const std::atomic<bool>* stop = nullptr;            // polled before every step: true leaves at once
};

struct ChatMessage {
    std::string role; // "system", "user", "assistant", "tool"
    std::string content;
    // More fields of the message as a JSON object ("tool_calls", "tool_call_id", "name"...),
    // passed to the chat template as they are; empty: none.
    std::string extra_json;
};

struct Conversation {
    std::string system;                // empty: no system message
    std::vector<ChatMessage> messages; // in order; the answer follows the last one
    // Raw completion: no template; the messages' contents are concatenated as they are and
    // encoded with the tokenizer's special tokens (BOS). For models without a chat template.
    bool raw = false;
    // Tool definitions (a JSON array, OpenAI's format) for templates that take `tools`; empty: none.
    std::string tools_json;
};

struct ChatAnswer {
    std::string text;            // the answer, special tokens skipped
    std::string reasoning;       // what a harmony model (gpt-oss) wrote in its analysis channel, apart from the answer
    GenerationResult generation; // tokens, stop reason, time to first token, tokens/s
    std::int64_t prompt_tokens = 0;
    std::int64_t reused_tokens = 0;  // prompt tokens whose cache was kept from the last turn
    std::int64_t context_used = 0;   // tokens in the cache after the answer
    std::int64_t context_length = 0;
};

struct PerplexityResult {
    double perplexity = 0.0;
    double mean_nll = 0.0;
    std::int64_t tokens = 0;          // the guide's n_tokens (sum of weights)
    std::int64_t sequence_tokens = 0; // tokens in the input
    std::int64_t windows = 0;
};

} // namespace layerwise
