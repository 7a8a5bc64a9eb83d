#pragma once
// Reference logits of the fixtures (JSON rows of floats) as LibTorch tensors, and the
// prefill + cached-decode comparison against a reference of make_logits.py's form.
#include "runtime/loaded_model.h"
#include "runtime/runner.h"

#include <ATen/ATen.h>
#include <QtTest>
#include <nlohmann/json.hpp>

#include <vector>

namespace layerwise::test {

// [[...], [...]] -> a float32 tensor [rows, cols].
inline at::Tensor tensor_of(const nlohmann::json& rows)
{
    std::vector<float> flat;
    std::int64_t cols = 0;
    for (const auto& r : rows) {
        cols = static_cast<std::int64_t>(r.size());
        for (const auto& v : r)
            flat.push_back(v.get<float>());
    }
    return at::tensor(flat).reshape({static_cast<std::int64_t>(rows.size()), cols});
}

// [...] -> a float32 tensor [n].
inline at::Tensor row_of(const nlohmann::json& values)
{
    return tensor_of(nlohmann::json::array({values}))[0];
}

// Prefill (every position) and greedy decode steps with the cache, fed the reference's tokens:
// every logit within `tolerance`; with `compare_tokens` also the greedy token of every step.
inline void compare_logits(LoadedModel& model, const nlohmann::json& ref, double tolerance, bool compare_tokens = true)
{
    Runner runner(model, 64);
    const auto prompt = ref["prompt"].get<std::vector<std::int64_t>>();
    const at::Tensor logits = runner.forward(at::tensor(prompt, at::kLong).unsqueeze(0), true)[0].cpu();
    const double prefill_err = (logits - tensor_of(ref["prefill_logits"])).abs().max().item<double>();
    QVERIFY2(prefill_err <= tolerance, ("prefill max abs error " + std::to_string(prefill_err)).c_str());
    const auto tokens = ref["tokens"].get<std::vector<std::int64_t>>();
    at::Tensor step = logits[-1];
    double worst = prefill_err;
    for (std::size_t i = 0; i < tokens.size(); ++i) {
        const double err = (step - row_of(ref["step_logits"][i])).abs().max().item<double>();
        worst = std::max(worst, err);
        QVERIFY2(err <= tolerance, ("step " + std::to_string(i) + " max abs error " + std::to_string(err)).c_str());
        if (compare_tokens)
            QCOMPARE(step.argmax().item<std::int64_t>(), tokens[i]);
        step = runner.forward(at::tensor({tokens[i]}, at::kLong).unsqueeze(0))[0][0].cpu();
    }
    qInfo("largest logit difference %.3g (bound %.3g)", worst, tolerance);
}

// Continuous batching against the same reference: three sequences at different positions (the
// reference's prompt and tokens read as one text, cut at 3, 10 and 14 tokens), each prefilled
// into its own cache, then five decode steps of the three rows together. Row r's logits after
// position p must be the reference's logits after p tokens. `pooled`: the caches are slots of
// one pool (one gather per layer) instead of three separate caches (one attention per row).
inline void compare_batched_logits(LoadedModel& model, const nlohmann::json& ref, double tolerance, bool pooled)
{
    Runner runner(model, 64);
    auto text = ref["prompt"].get<std::vector<std::int64_t>>();
    const std::size_t prompt = text.size();
    for (auto t : ref["tokens"].get<std::vector<std::int64_t>>())
        text.push_back(t);
    // The reference logits after the first p tokens.
    const auto expected = [&](std::size_t p) {
        return p <= prompt ? tensor_of(ref["prefill_logits"])[static_cast<std::int64_t>(p - 1)] : row_of(ref["step_logits"][p - prompt]);
    };
    const std::vector<std::size_t> cuts{3, 10, 14};
    KvPool pool = runner.make_pool(4); // slots 3, 0, 2 used: rows need not be the pool's order
    const std::vector<std::int64_t> slots{3, 0, 2};
    std::vector<KvCache> separate;
    separate.reserve(cuts.size());
    std::vector<KvCache*> rows;
    for (std::size_t r = 0; r < cuts.size(); ++r) {
        if (pooled) {
            rows.push_back(&pool.slots[static_cast<std::size_t>(slots[r])]);
        } else {
            separate.push_back(runner.make_cache());
            rows.push_back(&separate.back());
        }
        runner.forward_rows({rows.back()}, at::tensor(std::vector<std::int64_t>(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(cuts[r] - 1)), at::kLong).unsqueeze(0));
    }
    double worst = 0;
    for (std::size_t step = 0; step < 5; ++step) {
        std::vector<std::int64_t> ids;
        for (std::size_t cut : cuts)
            ids.push_back(text[cut - 1 + step]);
        const at::Tensor logits =
            runner.forward_rows(rows, at::tensor(ids, at::kLong).unsqueeze(1), pooled ? &pool : nullptr, pooled ? slots : std::vector<std::int64_t>{}).cpu();
        QCOMPARE(logits.size(0), std::int64_t(3));
        for (std::size_t r = 0; r < cuts.size(); ++r) {
            QCOMPARE(rows[r]->length, static_cast<std::int64_t>(cuts[r] + step));
            const double err = (logits[static_cast<std::int64_t>(r)][0] - expected(cuts[r] + step)).abs().max().item<double>();
            worst = std::max(worst, err);
            QVERIFY2(err <= tolerance, ("row " + std::to_string(r) + " step " + std::to_string(step) + " max abs error " + std::to_string(err)).c_str());
        }
    }
    qInfo("largest logit difference %.3g (bound %.3g)", worst, tolerance);
}

} // namespace layerwise::test
