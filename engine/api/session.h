#pragma once
// A loaded model that runs: Session::load() places the weights as a plan says (GPU, CPU,
// disk; quantized on the fly if asked), then generates from token ids, chats through the
// model's chat template with its KV cache kept between turns, measures perplexity and reports
// where its weights are. One Session runs one sequence at a time (several with batch()); calls block; calls from
// several threads take turns (the desktop app's chat and its local server share one session);
// cancel through the progress callback (load, perplexity) or the stop flag (generation).
#include "api/batch.h"
#include "api/remote.h"
#include "api/model.h"
#include "core/progress.h"
#include "model/quant_config.h"
#include "plan/device_map.h"
#include "runtime/run_types.h"

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace layerwise {

struct SessionOptions {
    std::optional<DType> dtype;                 // nullopt: the model's dtype
    DeviceMap device_map;                       // from a Plan, or a map file; must fit the model
    std::filesystem::path offload_folder = "."; // where converted disk weights are written once
    QuantOptions quant;                         // quantize decoder linears while loading
    bool gguf_decode = false;                   // GGUF blocks decoded to the dtype instead of run as blocks
    std::int64_t context = 2048;                // KV cache length
    // true: the tokenizer must load (chat needs it); false: a model without one still runs on ids.
    bool require_tokenizer = true;
    ProgressCallback progress;                  // bytes done / total; false cancels (CancelledError)
    Logger log;
    std::function<void(int layer, LayerState state)> on_layer_state; // live placement, from the running thread
    // Pipeline stages on other machines (api/remote.h): each worker loads its layers from its own
    // copy of the model (the same path there) and runs them; this machine keeps the rest. Every
    // call to a worker waits at most remote_timeout; RemoteError names a worker that fails.
    std::vector<RemoteStage> remote_stages;
    std::string remote_token;
    std::chrono::milliseconds remote_timeout = std::chrono::seconds(60);
    // Several sequences decoded together over a pipeline go in micro-batches, one per stage, so
    // that every machine works at once (false: the whole batch through one stage after the other).
    bool micro_batches = true;
};

// Loads by a pipeline plan: this machine's stage becomes options.device_map (the other stages'
// layers mapped on disk, never read), each other stage a remote stage with its plan's map.
void use_pipeline(const Model& model, const PipelinePlan& plan, SessionOptions& options);

// What a loaded model holds where (the plan's DeviceFootprint is what it expects to hold).
struct LoadedFootprint {
    std::string machine; // "" for this machine; a pipeline worker's "host:port"
    Device device;
    std::uint64_t weight_bytes = 0;   // weights whose home is this device
    std::uint64_t kv_cache_bytes = 0; // the KV cache held there
    int layers = 0;                   // decoder blocks whose home is this device
};

class Session {
public:
    // Loads `model` (consumed). Throws and frees everything on any error: OutOfMemoryError,
    // CancelledError, IoError, FormatError, PlanError.
    static std::unique_ptr<Session> load(Model&& model, const SessionOptions& options);
    ~Session();
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    // Generates after `prompt` (the cache starts empty). on_token(id) returns false to stop;
    // `stop` is polled between tokens. Stops at options.eos_ids (Model::eos_ids() for the
    // model's own; empty: only at the token budget).
    GenerationResult generate(const std::vector<std::int64_t>& prompt, const GenerationOptions& options,
                              const std::function<bool(std::int64_t)>& on_token = {},
                              const std::atomic<bool>* stop = nullptr);

    // Chat (needs the tokenizer): answers the conversation's last message, streaming whole UTF-8
    // characters to on_text (false stops). The cache of the previous turn is reused where the
    // new prompt starts the same way. eos_ids empty: the model's and the template's.
    // A harmony model's (gpt-oss's) reasoning streams to `on_reasoning`, its answer to `on_text`.
    ChatAnswer chat(const Conversation& conversation, GenerationOptions options,
                    const std::function<bool(std::string_view)>& on_text = {}, const std::atomic<bool>* stop = nullptr,
                    const std::function<bool(std::string_view)>& on_reasoning = {});
    std::string prompt_text(const Conversation& conversation) const;
    std::vector<std::int64_t> prompt_ids(const Conversation& conversation) const;
    bool has_template() const;     // false: the ChatML fallback
    void reset();                  // forget the cached conversation

    // Perplexity of `ids`, sliding windows of `context` tokens every `stride` (at most the
    // session's context). The progress callback gets windows done / total; false cancels.
    PerplexityResult perplexity(const std::vector<std::int64_t>& ids, std::int64_t context, std::int64_t stride,
                                const ProgressCallback& progress = {});

    const ModelConfig& config() const;
    const text::Tokenizer* tokenizer() const;   // null when the model has none
    std::vector<std::int64_t> eos_ids() const;  // the model's and (with a tokenizer) the template's end-of-turn ids
    std::int64_t context_length() const;
    DType dtype() const;

    nlohmann::json hf_device_map() const;       // where each module runs, transformers' format
    std::vector<Device> layer_devices() const;  // each decoder block's home
    // With a pipeline, each worker's devices follow, as it reports them (RemoteError when one fails).
    std::vector<LoadedFootprint> footprint() const;

    // Up to `slots` sequences decoded together (continuous batching, api/batch.h), each with its
    // own KV cache of context_length() tokens, allocated here (OutOfMemoryError when they do not
    // fit; plan with PlanRequest::batch = slots + 1 to count them with this session's own).
    std::unique_ptr<Batch> batch(std::size_t slots);

    // GPU runs with CPU-offloaded layers: copy the next layer while one computes (default).
    void set_prefetch(bool on);
    bool prefetching() const;

private:
    struct State;
    explicit Session(std::unique_ptr<State> state);
    std::unique_ptr<State> m_state;
};

// CPU threads LibTorch and the kernels use; 0: every CPU this process may run on.
void set_cpu_threads(int threads);
int cpu_threads();

} // namespace layerwise
