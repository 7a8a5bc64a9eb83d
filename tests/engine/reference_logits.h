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

} // namespace layerwise::test
