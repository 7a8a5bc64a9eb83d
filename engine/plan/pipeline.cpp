// Pipelines across machines: the split search and the stage plans (pipeline.h).
//
// The search: the time of n decoder blocks on each machine, for every n (the stage planned by the
// one-machine planner with blocks [0, n), the blocks of a model being alike; this machine's share
// always with the embeddings and the head), then a dynamic programme over the machines in order
// for each number of remote stages. The split with the fewest remote stages among those within 1%
// of the fastest wins, and its stages are planned again with their real blocks.
#include "plan/pipeline.h"

#include "core/bytes.h"
#include "core/error.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

namespace layerwise {
namespace {

constexpr double inf = std::numeric_limits<double>::infinity();
constexpr double near_fastest = 1.01; // splits within 1% of the fastest count as fast
constexpr std::int64_t message_overhead = 512; // header, signature and store framing of one link message

PlanRequest stage_request(const PlanRequest& request, const Machine* machine)
{
    PlanRequest r = request;
    if (machine) {
        r.devices = machine->devices;
        r.max_memory = machine->max_memory; // the request's limits are this machine's
    }
    return r;
}

Plan plan_stage(const ModuleTree& tree, const ModelConfig& config, const PlanRequest& request, const Machine* machine,
                std::int64_t first, std::int64_t end, bool advise)
{
    PlanRequest r = stage_request(request, machine);
    r.advise = advise;
    return make_plan(tree.only_layers(first, end, machine == nullptr), config, r);
}

// One crossing of the link with `tokens` positions' hidden states.
double crossing_seconds(const MachineLink& link, const ModelConfig& config, const PlanRequest& request, std::int64_t tokens)
{
    const double bytes = static_cast<double>(tokens * request.batch * config.hidden_size * dtype_bits(request.weights.dtype) / 8 +
                                              message_overhead);
    return link.latency + (link.bandwidth > 0 ? bytes / link.bandwidth : inf);
}

std::string layer_range(std::int64_t first, std::int64_t end)
{
    if (end - first == 1)
        return "layer " + std::to_string(first);
    return "layers " + std::to_string(first) + "-" + std::to_string(end - 1);
}

std::string where(const PipelinePlan& plan, const PipelineStage& s)
{
    const Machine* m = plan.machine_of(s);
    return m ? "on " + m->name + " (" + m->address + ")" : "here";
}

Verdict worst(Verdict a, Verdict b)
{
    return static_cast<int>(a) > static_cast<int>(b) ? a : b;
}

// The stages' times and the link's, the verdict and its reason, of a chosen split.
void sum_up(PipelinePlan& p, const ModelConfig& config, const PlanRequest& request)
{
    const std::int64_t chunk = std::min(request.prefill_chunk, request.context);
    double decode = 0, prefill = 0;
    p.verdict = Verdict::fits_on_gpu;
    p.crossings = 0;
    p.link_seconds_per_token = 0;
    for (const PipelineStage& s : p.stages) {
        decode += s.plan.estimate.seconds_per_token;
        prefill += s.plan.estimate.prefill_tokens_per_s > 0
                       ? static_cast<double>(chunk * request.batch) / s.plan.estimate.prefill_tokens_per_s
                       : 0;
        p.verdict = worst(p.verdict, s.plan.verdict);
        if (const Machine* m = p.machine_of(s)) {
            p.crossings += 2;
            p.link_seconds_per_token += 2 * crossing_seconds(m->link, config, request, 1);
            prefill += 2 * crossing_seconds(m->link, config, request, chunk);
        }
    }
    decode += p.link_seconds_per_token;
    p.estimate.seconds_per_token = decode;
    p.estimate.decode_tokens_per_s = decode > 0 ? static_cast<double>(request.batch) / decode : 0;
    p.estimate.prefill_tokens_per_s = prefill > 0 ? static_cast<double>(chunk * request.batch) / prefill : 0;
    std::ostringstream why;
    if (p.verdict == Verdict::does_not_fit) {
        for (const PipelineStage& s : p.stages)
            if (s.plan.verdict == Verdict::does_not_fit) {
                why << layer_range(s.first, s.end) << " " << where(p, s) << ": " << s.plan.reason;
                break;
            }
        why << " (no split over these " << p.machines.size() + 1 << " machines fits)";
    } else {
        for (std::size_t i = 0; i < p.stages.size(); ++i)
            why << (i ? ", " : "") << layer_range(p.stages[i].first, p.stages[i].end) << " " << where(p, p.stages[i]);
        if (p.stages.size() == 1 && !p.machines.empty())
            why << " (the other machines would only add link time)";
        for (const PipelineStage& s : p.stages)
            why << "; " << (p.machine_of(s) ? p.machine_of(s)->name : std::string("this machine")) << ": " << s.plan.reason;
    }
    p.reason = why.str();
}

// The time of n decoder blocks on a machine, for n = 0..layers (infinite where they do not fit).
// Fitting is monotone in n, so the most that fit is found by bisection; the times are planned at
// about a dozen counts up to it and interpolated between them (a model's blocks are alike, and
// the chosen split is planned again exactly), which keeps a mixture of experts' search short.
std::vector<double> stage_times(const ModuleTree& tree, const ModelConfig& config, const PlanRequest& request, const Machine* machine,
                                std::int64_t layers)
{
    std::vector<double> t(static_cast<std::size_t>(layers + 1), inf);
    std::map<std::int64_t, double> planned;
    const auto time_of = [&](std::int64_t n) {
        if (auto it = planned.find(n); it != planned.end())
            return it->second;
        const Plan p = plan_stage(tree, config, request, machine, 0, n, false);
        return planned[n] = p.verdict == Verdict::does_not_fit ? inf : p.estimate.seconds_per_token;
    };
    if (machine)
        t[0] = 0; // left out
    const std::int64_t lo = machine ? 1 : 0;
    if (lo > layers || !std::isfinite(time_of(lo)))
        return t;
    std::int64_t most = lo, over = layers + 1; // `most` fits; `over` does not (or is past the end)
    if (std::isfinite(time_of(layers)))
        most = layers;
    else
        for (over = layers; over - most > 1;) {
            const std::int64_t mid = (most + over) / 2;
            (std::isfinite(time_of(mid)) ? most : over) = mid;
        }
    const std::int64_t step = std::max<std::int64_t>(1, (most - lo) / 12);
    std::int64_t prev = lo;
    for (std::int64_t n = lo; n <= most; n = n == most ? most + 1 : std::min(most, n + step)) {
        const double tn = time_of(n);
        t[static_cast<std::size_t>(n)] = tn;
        for (std::int64_t k = prev + 1; k < n; ++k) // between two planned counts, on the line joining them
            t[static_cast<std::size_t>(k)] = t[static_cast<std::size_t>(prev)] +
                                             (tn - t[static_cast<std::size_t>(prev)]) * static_cast<double>(k - prev) / static_cast<double>(n - prev);
        prev = n;
    }
    return t;
}

// The block counts of the fastest split using exactly `k` of the remote machines (for each k),
// their times; empty counts where none fits.
struct Split {
    double time = inf;
    std::vector<std::int64_t> counts; // per machine: this one, then the remote ones
};

std::vector<Split> best_splits(const std::vector<std::vector<double>>& times, const std::vector<double>& hop, std::int64_t layers)
{
    const std::size_t machines = times.size(), L = static_cast<std::size_t>(layers);
    // f[i][l][k]: the least time with the first i machines holding blocks [0, l), k of them remote.
    struct Cell {
        double time = inf;
        std::int64_t taken = 0;
    };
    std::vector<std::vector<std::vector<Cell>>> f(machines + 1, std::vector<std::vector<Cell>>(L + 1, std::vector<Cell>(machines)));
    for (std::size_t n = 0; n <= L; ++n)
        if (std::isfinite(times[0][n]))
            f[1][n][0] = {times[0][n], static_cast<std::int64_t>(n)};
    for (std::size_t i = 1; i < machines; ++i)
        for (std::size_t l = 0; l <= L; ++l)
            for (std::size_t k = 0; k < machines; ++k) {
                if (!std::isfinite(f[i][l][k].time))
                    continue;
                for (std::size_t n = 0; l + n <= L; ++n) {
                    if (!std::isfinite(times[i][n]))
                        break;
                    const std::size_t k2 = k + (n > 0);
                    const double t = f[i][l][k].time + times[i][n] + (n > 0 ? hop[i] : 0);
                    if (t < f[i + 1][l + n][k2].time)
                        f[i + 1][l + n][k2] = {t, static_cast<std::int64_t>(n)};
                }
            }
    std::vector<Split> out(machines);
    for (std::size_t k = 0; k < machines; ++k) {
        if (!std::isfinite(f[machines][L][k].time))
            continue;
        out[k].time = f[machines][L][k].time;
        out[k].counts.assign(machines, 0);
        std::size_t l = L, kk = k;
        for (std::size_t i = machines; i-- > 0;) {
            const std::int64_t n = f[i + 1][l][kk].taken;
            out[k].counts[i] = n;
            l -= static_cast<std::size_t>(n);
            if (i > 0 && n > 0)
                --kk;
        }
    }
    return out;
}

PipelinePlan planned_split(const ModuleTree& tree, const ModelConfig& config, const PlanRequest& request,
                           const std::vector<Machine>& machines, const std::vector<std::int64_t>& counts, const std::string& mode)
{
    PipelinePlan p;
    p.machines = machines;
    std::int64_t at = 0;
    for (std::size_t i = 0; i < counts.size(); ++i) {
        if (i > 0 && counts[i] == 0)
            continue;
        PipelineStage s;
        s.machine = static_cast<int>(i) - 1;
        s.first = at;
        s.end = at + counts[i];
        s.plan = plan_stage(tree, config, request, p.machine_of(s), s.first, s.end, true);
        s.plan.mode = mode;
        at = s.end;
        p.stages.push_back(std::move(s));
    }
    sum_up(p, config, request);
    return p;
}

} // namespace

PipelinePlan make_pipeline_plan(const ModuleTree& tree, const ModelConfig& config, const PlanRequest& request,
                                const std::vector<Machine>& machines)
{
    if (request.strategy == Strategy::custom)
        throw PlanError("a device map file places one machine's devices; to plan over several machines use a strategy "
                        "(auto, balanced, balanced_low_0, sequential)");
    if (request.accelerate)
        throw PlanError("accelerate's maps cover one machine; plan over several machines with the layerwise planner");
    const auto layers = static_cast<std::int64_t>(tree.no_split_blocks().size());
    std::vector<std::vector<double>> times{stage_times(tree, config, request, nullptr, layers)};
    std::vector<double> hop{0};
    for (const Machine& m : machines) {
        times.push_back(stage_times(tree, config, request, &m, layers));
        hop.push_back(2 * crossing_seconds(m.link, config, request, 1));
    }
    const std::string mode = "layerwise " + std::string(strategy_name(request.strategy)) + " over " +
                             std::to_string(machines.size() + 1) + " machines";
    const std::vector<Split> splits = best_splits(times, hop, layers);
    double fastest = inf;
    for (const Split& s : splits)
        fastest = std::min(fastest, s.time);
    for (const Split& s : splits)
        if (std::isfinite(s.time) && s.time <= fastest * near_fastest)
            return planned_split(tree, config, request, machines, s.counts, mode);
    // Nothing fits: the even split over every machine, to show what is short where.
    std::vector<std::int64_t> even(machines.size() + 1);
    for (std::size_t i = 0; i < even.size(); ++i)
        even[i] = layers * static_cast<std::int64_t>(i + 1) / static_cast<std::int64_t>(even.size()) -
                  layers * static_cast<std::int64_t>(i) / static_cast<std::int64_t>(even.size());
    PipelinePlan p = planned_split(tree, config, request, machines, even, mode);
    p.verdict = Verdict::does_not_fit;
    return p;
}

DeviceMap whole_model_map(const ModuleTree& tree, const DeviceMap& stage_map, std::int64_t first, std::int64_t end, bool with_rest)
{
    DeviceMap map;
    for (std::size_t i = 0; i < tree.nodes().size(); ++i) {
        const ModuleNode& n = tree.nodes()[i];
        const int layer = tree.layer_of(static_cast<int>(i));
        const bool mine = layer < 0 ? with_rest : layer >= first && layer < end;
        DeviceMap own;
        for (const ModuleTensor& t : n.tensors) {
            const Device* d = mine ? device_of(stage_map, t.full_name) : nullptr;
            own.emplace_back(t.full_name, d ? *d : mine ? Device::cpu() : Device::disk());
        }
        // A leaf module on one device is one key ("model.embed_tokens"), as accelerate writes it.
        const bool one = !own.empty() && n.children.empty() && !n.name.empty() &&
                         std::all_of(own.begin(), own.end(), [&](const auto& e) { return e.second == own.front().second; });
        if (one)
            map.emplace_back(n.name, own.front().second);
        else
            map.insert(map.end(), own.begin(), own.end());
    }
    return in_model_order(tree, clean_device_map(std::move(map)));
}

std::string device_label(const PipelinePlan& plan, const PipelineStage& stage, const Device& device)
{
    const Machine* m = plan.machine_of(stage);
    return m ? m->name + "/" + device.name() : device.name();
}

nlohmann::json pipeline_plan_to_json(const PipelinePlan& plan)
{
    using nlohmann::json;
    json stages = json::array();
    for (const PipelineStage& s : plan.stages) {
        json j = plan_to_json(s.plan);
        const Machine* m = plan.machine_of(s);
        j["machine"] = m ? m->name : "this machine";
        j["address"] = m ? json(m->address) : json(nullptr);
        j["first_layer"] = s.first;
        j["end_layer"] = s.end;
        for (auto& d : j["devices"])
            d["device"] = device_label(plan, s, parse_device(d["device"].get<std::string>()));
        if (m)
            j["link"] = {{"bandwidth_bytes_per_s", m->link.bandwidth}, {"latency_s", m->link.latency}, {"source", m->link.source}};
        stages.push_back(std::move(j));
    }
    return {{"verdict", verdict_name(plan.verdict)},
            {"reason", plan.reason},
            {"stages", stages},
            {"crossings_per_token", plan.crossings},
            {"link_seconds_per_token", plan.link_seconds_per_token},
            {"estimate",
             {{"decode_tokens_per_s", plan.estimate.decode_tokens_per_s},
              {"prefill_tokens_per_s", plan.estimate.prefill_tokens_per_s},
              {"seconds_per_token", plan.estimate.seconds_per_token}}}};
}

std::string pipeline_plan_to_text(const PipelinePlan& plan)
{
    std::ostringstream o;
    char buf[240];
    o << "verdict   " << verdict_name(plan.verdict) << ": " << plan.reason << "\n";
    std::snprintf(buf, sizeof buf, "estimate  %.3g tokens/s decode, %.3g tokens/s prefill (%s; %d link crossings a token, %.3g ms)\n",
                  plan.estimate.decode_tokens_per_s, plan.estimate.prefill_tokens_per_s,
                  plan.stages.empty() ? "" : plan.stages.front().plan.mode.c_str(), plan.crossings, plan.link_seconds_per_token * 1e3);
    o << buf;
    for (const PipelineStage& s : plan.stages) {
        const Machine* m = plan.machine_of(s);
        o << "\n" << (m ? m->name + " (" + m->address + ")" : std::string("this machine")) << ": " << layer_range(s.first, s.end)
          << (m ? "" : ", embeddings and head");
        if (m) {
            std::snprintf(buf, sizeof buf, "; link %.3g Gb/s, %.3g ms latency (%s)", m->link.bandwidth * 8 / 1e9, m->link.latency * 1e3,
                          m->link.source.c_str());
            o << buf;
        }
        std::snprintf(buf, sizeof buf, "; %.3g tokens/s alone\n", s.plan.estimate.decode_tokens_per_s);
        o << buf << device_table(s.plan, [&](const Device& d) { return device_label(plan, s, d); });
    }
    std::vector<std::string> unused;
    for (std::size_t i = 0; i < plan.machines.size(); ++i)
        if (std::none_of(plan.stages.begin(), plan.stages.end(), [&](const PipelineStage& s) { return s.machine == static_cast<int>(i); }))
            unused.push_back(plan.machines[i].name + " (" + plan.machines[i].address + ")");
    for (std::size_t i = 0; i < unused.size(); ++i)
        o << (i ? ", " : "\nnot used: ") << unused[i] << (i + 1 == unused.size() ? "\n" : "");
    return o.str();
}

} // namespace layerwise
