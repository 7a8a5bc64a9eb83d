#include "runtime/sampling.h"

#include "core/error.h"

#include <ATen/ATen.h>
#include <algorithm>
#include <cmath>
#include <limits>

namespace layerwise {

Sampler::Sampler(SamplingOptions options) : m_options(options), m_rng(options.seed)
{
    if (!options.greedy && options.temperature <= 0)
        m_options.greedy = true; // temperature 0 means greedy, as most chat front ends treat it
    if (options.top_p <= 0 || options.top_p > 1)
        throw PlanError("top-p must be in (0, 1]");
    if (options.min_p < 0 || options.min_p > 1)
        throw PlanError("min-p must be in [0, 1]");
    if (options.repetition_penalty <= 0)
        throw PlanError("the repetition penalty must be positive");
    if (std::abs(options.presence_penalty) > 2 || std::abs(options.frequency_penalty) > 2)
        throw PlanError("the presence and frequency penalties must be in [-2, 2]");
}

namespace {

bool penalizes(const SamplingOptions& o)
{
    return o.repetition_penalty != 1.0 || o.presence_penalty != 0.0 || o.frequency_penalty != 0.0;
}

} // namespace

at::Tensor sampling_distribution(const at::Tensor& logits_in, const std::vector<std::int64_t>& history,
                                 const SamplingOptions& o)
{
    at::Tensor logits = logits_in.to(at::kFloat).clone();
    if (o.repetition_penalty != 1.0 && !history.empty()) {
        // transformers: divide positive scores, multiply negative ones, for every token seen.
        std::vector<std::int64_t> distinct = history;
        std::sort(distinct.begin(), distinct.end());
        distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
        const at::Tensor seen = at::tensor(distinct, at::kLong);
        const at::Tensor s = logits.index_select(0, seen);
        logits.index_put_({seen}, at::where(s < 0, s * o.repetition_penalty, s / o.repetition_penalty));
    }
    if ((o.presence_penalty != 0.0 || o.frequency_penalty != 0.0) && !history.empty()) {
        // OpenAI: logit - count * frequency_penalty - (count > 0) * presence_penalty.
        const at::Tensor counts = at::bincount(at::tensor(history, at::kLong), {}, logits.size(0)).to(at::kFloat);
        logits = logits - counts * o.frequency_penalty - (counts > 0).to(at::kFloat) * o.presence_penalty;
    }
    if (o.temperature != 1.0 && o.temperature > 0)
        logits = logits / o.temperature;
    const double neg_inf = -std::numeric_limits<double>::infinity();
    if (o.top_k > 0 && o.top_k < logits.size(0)) {
        const at::Tensor kth = std::get<0>(logits.topk(o.top_k)).narrow(0, o.top_k - 1, 1);
        logits = logits.masked_fill(logits < kth, neg_inf);
    }
    if (o.top_p < 1.0) {
        // Keep the smallest set of most likely tokens whose probability reaches top_p.
        auto [sorted, order] = logits.sort(/*dim=*/0, /*descending=*/false);
        const at::Tensor cumulative = sorted.softmax(0).cumsum(0);
        at::Tensor remove = cumulative <= (1.0 - o.top_p);
        remove.narrow(0, remove.size(0) - 1, 1).fill_(false); // keep at least one
        logits = logits.masked_fill(remove.scatter(0, order, remove), neg_inf);
    }
    at::Tensor probs = logits.softmax(0);
    if (o.min_p > 0.0) {
        const at::Tensor threshold = probs.max() * o.min_p;
        logits = logits.masked_fill(probs < threshold, neg_inf);
        probs = logits.softmax(0);
    }
    return probs;
}

std::int64_t Sampler::next(const at::Tensor& logits, const std::vector<std::int64_t>& history)
{
    if (m_options.greedy) {
        if (!penalizes(m_options))
            return logits.argmax().item<std::int64_t>();
        SamplingOptions penalties_only;
        penalties_only.greedy = true;
        penalties_only.repetition_penalty = m_options.repetition_penalty;
        penalties_only.presence_penalty = m_options.presence_penalty;
        penalties_only.frequency_penalty = m_options.frequency_penalty;
        return sampling_distribution(logits, history, penalties_only).argmax().item<std::int64_t>();
    }
    const at::Tensor probs = sampling_distribution(logits, history, m_options).contiguous();
    const float* p = probs.data_ptr<float>();
    std::uniform_real_distribution<double> u(0.0, 1.0);
    double r = u(m_rng);
    std::int64_t last = 0;
    for (std::int64_t i = 0; i < probs.size(0); ++i) {
        if (p[i] <= 0)
            continue;
        last = i;
        r -= p[i];
        if (r <= 0)
            return i;
    }
    return last;
}

} // namespace layerwise
