#include "runtime/session.h"

#include "core/error.h"
#include "core/json_read.h"
#include "core/mapped_file.h"

#include <ATen/ATen.h>
#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>

namespace layerwise {

namespace {

using Clock = std::chrono::steady_clock;

double seconds(Clock::time_point a, Clock::time_point b)
{
    return std::chrono::duration<double>(b - a).count();
}

} // namespace

GenerationResult generate(Runner& runner, const std::vector<std::int64_t>& prompt, const GenerationOptions& options,
                          const std::function<bool(std::int64_t)>& on_token, const std::atomic<bool>* stop,
                          const std::function<std::string(const std::vector<std::int64_t>&)>& decode)
{
    if (prompt.empty())
        throw PlanError("the prompt is empty: give at least one token (e.g. the BOS id)");
    const std::int64_t vocab = runner.model().config.vocab_size;
    for (auto id : prompt)
        if (id < 0 || id >= vocab)
            throw PlanError("token id " + std::to_string(id) + " is outside the vocabulary (0.." + std::to_string(vocab - 1) + ")");
    GenerationResult result;
    Sampler sampler(options.sampling);
    std::vector<std::int64_t> history = prompt;
    const auto t0 = Clock::now();
    at::Tensor logits;
    for (std::size_t at_pos = 0; at_pos < prompt.size();) {
        const std::size_t n = std::min<std::size_t>(static_cast<std::size_t>(std::max<std::int64_t>(options.prefill_chunk, 1)),
                                                    prompt.size() - at_pos);
        const at::Tensor ids = at::tensor(std::vector<std::int64_t>(prompt.begin() + static_cast<std::ptrdiff_t>(at_pos),
                                                                    prompt.begin() + static_cast<std::ptrdiff_t>(at_pos + n)),
                                          at::kLong)
                                   .unsqueeze(0);
        logits = runner.forward(ids);
        at_pos += n;
        if (stop && stop->load()) {
            result.stop_reason = "stopped";
            return result;
        }
    }
    const auto t_prefill = Clock::now();
    Clock::time_point t_first{};
    result.stop_reason = "max_new_tokens";
    for (std::int64_t i = 0; i < options.max_new_tokens; ++i) {
        const std::int64_t token = sampler.next(logits[0][0], history);
        result.tokens.push_back(token);
        history.push_back(token);
        if (i == 0) {
            t_first = Clock::now();
            result.ttft_s = seconds(t0, t_first);
            result.prefill_tokens_per_s = static_cast<double>(prompt.size()) / std::max(1e-9, seconds(t0, t_prefill));
        }
        if (on_token && !on_token(token)) {
            result.stop_reason = "stopped";
            break;
        }
        if (std::find(options.eos_ids.begin(), options.eos_ids.end(), token) != options.eos_ids.end()) {
            result.stop_reason = "eos";
            break;
        }
        if (!options.stop_strings.empty() && decode) {
            const std::string text = decode(result.tokens);
            if (std::any_of(options.stop_strings.begin(), options.stop_strings.end(),
                            [&](const std::string& s) { return !s.empty() && text.find(s) != std::string::npos; })) {
                result.stop_reason = "stop_string";
                break;
            }
        }
        if (stop && stop->load()) {
            result.stop_reason = "stopped";
            break;
        }
        if (i + 1 == options.max_new_tokens)
            break;
        if (runner.position() >= runner.capacity()) {
            result.stop_reason = "context_full";
            break;
        }
        logits = runner.forward(at::tensor({token}, at::kLong).unsqueeze(0));
    }
    const auto t_end = Clock::now();
    if (result.tokens.size() > 1)
        result.decode_tokens_per_s = static_cast<double>(result.tokens.size() - 1) / std::max(1e-9, seconds(t_first, t_end));
    return result;
}

std::vector<std::int64_t> eos_token_ids(const std::filesystem::path& folder, const ModelConfig& config)
{
    std::vector<std::int64_t> ids;
    const auto file = folder / "generation_config.json";
    std::error_code ec;
    if (std::filesystem::exists(file, ec)) {
        try {
            MappedFile f(file);
            const auto j = parse_json(f.read(0, f.size()), file.string());
            if (j.contains("eos_token_id")) {
                const auto& e = j["eos_token_id"];
                if (e.is_number_integer())
                    ids.push_back(e.get<std::int64_t>());
                else if (e.is_array())
                    for (const auto& x : e)
                        if (x.is_number_integer())
                            ids.push_back(x.get<std::int64_t>());
            }
        } catch (const nlohmann::json::exception& e) {
            throw_json_value_error(e, file.string(), "eos_token_id");
        }
    }
    for (auto id : config.eos_token_ids)
        if (std::find(ids.begin(), ids.end(), id) == ids.end())
            ids.push_back(id);
    return ids;
}

} // namespace layerwise
