#include "api/kernel_bench.h"

#include "core/error.h"
#include "cpu/cpu_features.h"
#include "quant/blockwise4.h"
#include "quant_gemv.h"
#include "runtime/loaded_model.h"

#include "parallel.h"
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>

namespace layerwise {

namespace {

using kernels::CpuLevel;

double medianOf(std::vector<double> v)
{
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[v.size() / 2];
}

// Seconds per call, median of `runs` after one warm-up; `fn(k)` runs on copy k % copies.
double timeIt(int runs, int copies, const std::function<void(int)>& fn)
{
    fn(0);
    std::vector<double> s;
    for (int r = 0; r < runs; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        fn((r + 1) % copies);
        s.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    return medianOf(s);
}

// Read bandwidth: calls that each read one 16 MiB piece of a 512 MiB buffer (the next piece
// each time, so every read comes from memory, not the caches), split over the threads. Pieces
// the size of a weight keep one call as long as a kernel's, so both meet the same scheduler
// (on a busy machine long calls lose more time to other processes than short ones).
double memoryReadBandwidth(int runs)
{
    const std::int64_t n = (std::int64_t(512) << 20) / 8, piece = (std::int64_t(16) << 20) / 8, pieces = n / piece;
    std::vector<std::uint64_t> buf(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i)
        buf[i] = static_cast<std::uint64_t>(i);
    std::vector<std::uint64_t> partial(static_cast<std::size_t>(at::get_num_threads()) * 8);
    volatile std::uint64_t sink = 0;
    const double s = timeIt(std::max(runs, 32), static_cast<int>(pieces), [&](int k) {
        const std::uint64_t* base = buf.data() + k * piece;
        kernels::parallel_for(0, piece, piece / at::get_num_threads(), [&](std::int64_t b, std::int64_t e) {
            // Four 16-byte accumulators (SSE2, any x86-64): far more than memory can feed.
            using V = std::uint64_t __attribute__((vector_size(16)));
            V a0{}, a1{}, a2{}, a3{};
            std::int64_t i = b;
            for (; i + 8 <= e; i += 8) {
                V v0, v1, v2, v3;
                std::memcpy(&v0, base + i, 16);
                std::memcpy(&v1, base + i + 2, 16);
                std::memcpy(&v2, base + i + 4, 16);
                std::memcpy(&v3, base + i + 6, 16);
                a0 += v0;
                a1 += v1;
                a2 += v2;
                a3 += v3;
            }
            const V v = a0 + a1 + a2 + a3;
            std::uint64_t t = v[0] + v[1];
            for (; i < e; ++i)
                t += base[i];
            partial[static_cast<std::size_t>(at::get_thread_num()) * 8] = t;
        });
        std::uint64_t t = 0;
        for (std::size_t k = 0; k < partial.size(); k += 8)
            t += partial[k];
        sink = sink + t;
    });
    return static_cast<double>(piece * 8) / s / 1e9;
}

std::uint64_t bytesOf(std::initializer_list<at::Tensor> ts)
{
    std::uint64_t b = 0;
    for (const auto& t : ts)
        if (t.defined())
            b += static_cast<std::uint64_t>(t.nbytes());
    return b;
}

struct Case {
    std::string kernel;
    std::uint64_t bytes = 0;                  // weight bytes one call streams
    std::function<void(int, CpuLevel)> run;   // copy, level
    std::function<void(int)> oracle;
    int copies = 1;
};

// AutoGPTQ tensors of random codes (the packing does not change the speed).
struct Gptq {
    at::Tensor qweight, qzeros, scales, g_idx;
};
Gptq randomGptq(std::int64_t out, std::int64_t in, std::int64_t groupSize, bool actOrder)
{
    Gptq g;
    const std::int64_t groups = (in + groupSize - 1) / groupSize;
    g.qweight = at::randint(std::numeric_limits<std::int32_t>::min(), std::numeric_limits<std::int32_t>::max(), {in / 8, out}, at::kInt);
    g.qzeros = at::randint(std::numeric_limits<std::int32_t>::min(), std::numeric_limits<std::int32_t>::max(), {groups, out / 8}, at::kInt);
    g.scales = (at::rand({groups, out}) * 0.01 + 0.001).to(at::kHalf);
    at::Tensor idx = at::arange(in, at::kLong).div(groupSize, "floor");
    if (actOrder)
        idx = idx.index_select(0, at::randperm(in, at::kLong));
    g.g_idx = idx.to(at::kInt);
    return g;
}

std::vector<Case> casesFor(std::int64_t out, std::int64_t in, const at::Tensor& x, std::uint64_t workingSet)
{
    std::vector<Case> cases;
    auto copiesFor = [&](std::uint64_t bytes) { return static_cast<int>(std::max<std::uint64_t>(1, (workingSet + bytes - 1) / bytes)); };
    for (bool act : {false, true}) {
        Case c;
        c.kernel = act ? "gptq-4bit-g128-act-order" : "gptq-4bit-g128";
        auto ws = std::make_shared<std::vector<Gptq>>();
        ws->push_back(randomGptq(out, in, 128, act));
        const Gptq f = ws->front(); // (a copy of the handles: push_back below moves the vector)
        c.bytes = bytesOf({f.qweight, f.qzeros, f.scales, f.g_idx});
        c.copies = copiesFor(c.bytes);
        for (int k = 1; k < c.copies; ++k)
            ws->push_back({f.qweight.clone(), f.qzeros.clone(), f.scales.clone(), f.g_idx.clone()});
        c.run = [ws, x](int k, CpuLevel l) { const Gptq& g = (*ws)[k]; kernels::gptq_gemv(x, g.qweight, g.qzeros, g.scales, g.g_idx, l); };
        c.oracle = [ws, x](int k) { const Gptq& g = (*ws)[k]; kernels::gptq_gemv_reference(x, g.qweight, g.qzeros, g.scales, g.g_idx); };
        cases.push_back(std::move(c));
    }
    for (bool nested : {false, true}) {
        Case c;
        c.kernel = nested ? "nf4-double-quant" : "nf4";
        auto ws = std::make_shared<std::vector<kernels::Blockwise4Weight>>();
        kernels::Blockwise4Weight w;
        auto [packed, absmax] = quantize_4bit_blocks(at::randn({out, in}), QuantMethod::nf4, 64);
        w.packed = packed;
        w.code = code_4bit(QuantMethod::nf4);
        w.out = out;
        w.in = in;
        w.absmax = absmax;
        if (nested) {
            NestedAbsmax n = nest_absmax(absmax, 256);
            w.absmax = n.absmax_u8;
            w.nested_absmax = n.nested_absmax;
            w.nested_code = n.nested_code;
            w.nested_offset = n.offset;
        }
        c.bytes = bytesOf({w.packed, w.absmax, w.nested_absmax});
        c.copies = copiesFor(c.bytes);
        ws->push_back(w);
        for (int k = 1; k < c.copies; ++k) {
            kernels::Blockwise4Weight copy = w;
            copy.packed = w.packed.clone();
            copy.absmax = w.absmax.clone();
            ws->push_back(copy);
        }
        c.run = [ws, x](int k, CpuLevel l) { kernels::blockwise4_gemv(x, (*ws)[k], l); };
        c.oracle = [ws, x](int k) { kernels::blockwise4_gemv_reference(x, (*ws)[k]); };
        cases.push_back(std::move(c));
    }
    {
        Case c;
        c.kernel = "int8";
        auto ws = std::make_shared<std::vector<std::pair<at::Tensor, at::Tensor>>>();
        ws->emplace_back(at::randint(-127, 128, {out, in}, at::kChar), at::rand({out}) + 0.01);
        c.bytes = bytesOf({ws->front().first, ws->front().second});
        c.copies = copiesFor(c.bytes);
        for (int k = 1; k < c.copies; ++k)
            ws->emplace_back(ws->front().first.clone(), ws->front().second.clone());
        const at::Tensor xf = x.to(at::kFloat);
        const at::Tensor absmax = std::get<0>(xf.abs().max(1)).clamp_min(1e-8);
        const at::Tensor xq = at::round(xf * (127.0 / absmax).unsqueeze(1)).to(at::kChar);
        c.run = [ws, xq, absmax](int k, CpuLevel l) { kernels::int8_gemv(xq, absmax, (*ws)[k].first, (*ws)[k].second, l); };
        c.oracle = [ws, xq, absmax](int k) { kernels::int8_gemv_reference(xq, absmax, (*ws)[k].first, (*ws)[k].second); };
        cases.push_back(std::move(c));
    }
    return cases;
}

} // namespace

nlohmann::json run_kernel_bench(const KernelBenchOptions& o)
{
    at::set_num_threads(o.threads > 0 ? o.threads : usable_cpu_count());
    at::manual_seed(1);
    std::vector<CpuLevel> levels;
    if (o.levels == "all") {
        for (CpuLevel l : {CpuLevel::scalar, CpuLevel::avx2, CpuLevel::avx512})
            if (kernels::cpu_level_available(l))
                levels.push_back(l);
    } else {
        std::stringstream ss(o.levels);
        for (std::string name; std::getline(ss, name, ',');) {
            CpuLevel l = CpuLevel::automatic;
            for (CpuLevel c : {CpuLevel::automatic, CpuLevel::scalar, CpuLevel::avx2, CpuLevel::avx512})
                if (kernels::cpu_level_name(c) == name)
                    l = c;
            if (l == CpuLevel::automatic && name != "automatic")
                throw PlanError("--levels: '" + name + "' is not a level (all, or scalar, avx2, avx512, automatic)");
            if (!kernels::cpu_level_available(l))
                throw PlanError("--levels: this CPU cannot run the '" + name + "' kernels");
            levels.push_back(l);
        }
    }
    std::vector<std::pair<std::int64_t, std::int64_t>> shapeList;
    std::stringstream shapes(o.shapes);
    for (std::string shape; std::getline(shapes, shape, ',');) {
        const auto xPos = shape.find('x');
        std::int64_t out = 0, in = 0;
        std::size_t used1 = 0, used2 = 0;
        try {
            if (xPos != std::string::npos) {
                out = std::stoll(shape.substr(0, xPos), &used1);
                in = std::stoll(shape.substr(xPos + 1), &used2);
            }
        } catch (const std::exception&) {
            out = in = 0;
        }
        if (out <= 0 || in <= 0 || used1 != xPos || used2 != shape.size() - xPos - 1)
            throw PlanError("--shapes takes OUTxIN pairs such as 4096x4096, not '" + shape + "'");
        if (out % 8 || in % 128)
            throw PlanError("--shapes " + shape + ": OUT must be a multiple of 8 and IN of 128");
        shapeList.emplace_back(out, in);
    }
    if (o.rows < 1 || o.runs < 1 || o.oracleRuns < 1)
        throw PlanError("--rows, --runs and --oracle-runs must be at least 1");
    const double bandwidth = memoryReadBandwidth(o.runs);
    nlohmann::json results = nlohmann::json::array();
    for (const auto& [out, in] : shapeList) {
        const at::Tensor x = at::randn({o.rows, in}).to(o.activations == "bfloat16" ? at::kBFloat16 : at::kFloat);
        for (Case& c : casesFor(out, in, x, std::uint64_t(128) << 20)) {
            const double oracleS = timeIt(o.oracleRuns, c.copies, c.oracle);
            for (CpuLevel level : levels) {
                const double s = timeIt(o.runs, c.copies, [&](int k) { c.run(k, level); });
                const double gbps = static_cast<double>(c.bytes) / s / 1e9;
                results.push_back({{"kernel", c.kernel},
                                   {"shape", {out, in}},
                                   {"level", std::string(kernels::cpu_level_name(kernels::resolve_cpu_level(level)))},
                                   {"weight_bytes", c.bytes},
                                   {"median_ms", s * 1e3},
                                   {"gb_per_s", gbps},
                                   {"fraction_of_memory_bandwidth", gbps / bandwidth},
                                   {"oracle_median_ms", oracleS * 1e3},
                                   {"speedup_vs_oracle", oracleS / s}});
            }
        }
    }
    nlohmann::json j{{"benchmark", "kernels"},
                     {"threads", at::get_num_threads()},
                     {"best_cpu_level", std::string(kernels::cpu_level_name(kernels::best_cpu_level()))},
                     {"rows", o.rows},
                     {"activations", o.activations},
                     {"runs", o.runs},
                     {"oracle_runs", o.oracleRuns},
                     {"memory_read_gb_per_s", bandwidth},
                     {"results", results}};
    return j;
}

} // namespace layerwise
