#include "runtime/perplexity.h"

#include "core/error.h"

#include <ATen/ATen.h>
#include <cmath>

namespace layerwise {

PerplexityResult evaluate_perplexity(Runner& runner, const std::vector<std::int64_t>& ids, std::int64_t context,
                                     std::int64_t stride, const ProgressCallback& progress)
{
    if (context < 2 || stride < 1 || stride > context)
        throw PlanError("perplexity: the context must be at least 2 and the stride between 1 and the context (got context " +
                        std::to_string(context) + ", stride " + std::to_string(stride) + ")");
    if (context > runner.capacity())
        throw PlanError("perplexity: the context " + std::to_string(context) + " is longer than the loaded KV cache (" +
                        std::to_string(runner.capacity()) + ")");
    const auto seq_len = static_cast<std::int64_t>(ids.size());
    if (seq_len < 2)
        throw PlanError("perplexity needs at least two tokens of text");
    const at::Tensor all = at::tensor(ids, at::kLong).unsqueeze(0);
    const std::int64_t windows_total = (seq_len + stride - 1) / stride;
    PerplexityResult r;
    r.sequence_tokens = seq_len;
    double nll_sum = 0.0;
    std::int64_t prev_end = 0;
    for (std::int64_t begin = 0; begin < seq_len; begin += stride) {
        const std::int64_t end = std::min(begin + context, seq_len);
        const std::int64_t trg_len = end - prev_end;
        const std::int64_t len = end - begin;
        runner.reset();
        const at::Tensor logits = runner.forward(all.narrow(1, begin, len), /*all_positions=*/true)[0]; // [len, vocab]
        at::Tensor labels = all[0].narrow(0, begin, len).clone();
        if (len - trg_len > 0)
            labels.narrow(0, 0, len - trg_len).fill_(-100);
        const std::int64_t valid = std::min(trg_len, len);
        if (len > 1) {
            // transformers' causal-LM loss: logits[:-1] against labels[1:], mean over labels != -100.
            const at::Tensor loss = at::cross_entropy_loss(logits.narrow(0, 0, len - 1).to(at::kFloat), labels.narrow(0, 1, len - 1),
                                                           {}, at::Reduction::Mean, -100);
            const std::int64_t weight = valid - 1; // num_valid_tokens - batch_size
            nll_sum += loss.item<double>() * static_cast<double>(weight);
            r.tokens += weight;
        }
        ++r.windows;
        prev_end = end;
        if (progress && !progress({static_cast<std::uint64_t>(r.windows), static_cast<std::uint64_t>(windows_total), "perplexity"}))
            throw CancelledError("evaluation cancelled");
        if (end == seq_len)
            break;
    }
    if (r.tokens <= 0)
        throw PlanError("perplexity: the text is too short to score any token");
    r.mean_nll = nll_sum / static_cast<double>(r.tokens);
    r.perplexity = std::exp(r.mean_nll);
    return r;
}

} // namespace layerwise
