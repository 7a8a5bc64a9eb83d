#include "engineworker.h"

#include "workerstate.h"

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>

namespace layerwise::ui {

EngineWorker::EngineWorker(QObject* parent) : QObject(parent), m_state(std::make_unique<WorkerState>()) {}
EngineWorker::~EngineWorker() = default;

namespace {

ModelSummary summarize(const Model& d)
{
    ModelSummary s;
    s.source = QString::fromStdString(d.source());
    s.architecture = QString::fromStdString(d.config().architecture);
    s.text = QString::fromStdString(d.to_text());
    s.parameters = d.tree().num_parameters();
    const auto bytes = d.tree().all_module_bytes(SizeRule::stored());
    s.bytes = bytes.front();
    const auto& nodes = d.tree().nodes();
    // Parameters per node, accumulated bottom-up (nodes are in preorder).
    std::vector<quint64> params(nodes.size(), 0);
    for (std::size_t i = nodes.size(); i-- > 0;) {
        for (const auto& t : nodes[i].tensors)
            if (t.is_parameter() && t.tied_to.empty())
                params[i] += t.numel();
        if (nodes[i].parent >= 0)
            params[static_cast<std::size_t>(nodes[i].parent)] += params[i];
    }
    for (std::size_t i = 0; i < nodes.size(); ++i) {
        ModuleRow r;
        r.name = QString::fromStdString(nodes[i].name);
        r.className = QString::fromStdString(nodes[i].class_name);
        r.bytes = bytes[i];
        r.parameters = params[i];
        r.parent = nodes[i].parent;
        r.children = QVector<int>(nodes[i].children.begin(), nodes[i].children.end());
        r.noSplit = nodes[i].no_split;
        for (const auto& t : nodes[i].tensors)
            if (!t.tied_to.empty())
                r.tiedTo = QString::fromStdString(t.tied_to);
        if (!nodes[i].tensors.empty())
            r.dtype = QString::fromLatin1(torch_name(nodes[i].tensors.front().dtype).data());
        // A GGUF weight kept in its block format shows that format ("Q4_K"), as it is held.
        for (const auto& t : nodes[i].tensors)
            if (const std::string stored = d.stored_format(t); !stored.empty())
                r.dtype = QString::fromStdString(stored);
        s.modules.push_back(std::move(r));
    }
    return s;
}

} // namespace

FootprintRow footprintRow(const DeviceFootprint& f, const Machine* machine)
{
    const std::string prefix = machine ? machine->name + "/" : std::string();
    FootprintRow row;
    row.key = QString::fromStdString(prefix + f.device.id.map_key());
    row.name = QString::fromStdString(prefix + f.device.id.name() + "  " + f.device.name);
    row.machine = machine ? QString::fromStdString(machine->name) : QString();
    row.limit = f.limit;
    row.weights = f.weights;
    row.kvCache = f.kv_cache;
    row.activations = f.activations;
    row.overhead = f.overhead + f.staging;
    row.layers = f.layers;
    row.readPerToken = f.read_per_token;
    row.experts = f.experts;
    return row;
}

PlanRequest requestFrom(const PlanSettings& s, const std::vector<DeviceInfo>& detected, const Model& d)
{
    PlanRequest r;
    std::vector<std::string> specs;
    for (const auto& h : s.hypothetical)
        specs.push_back(h.toStdString());
    r.devices = apply_device_specs(detected, specs);
    for (const auto& [key, bytes] : s.limits)
        if (!key.contains(QLatin1Char('/'))) // another machine's device: applied to that machine (limitedMachines)
            r.max_memory.push_back({parse_device(key.toStdString()), bytes});
    r.strategy = parse_strategy(s.strategy.toStdString());
    r.accelerate = s.accelerate;
    r.context = s.context;
    r.batch = s.batch;
    DType dtype = d.dtype();
    if (s.dtype != QLatin1String("auto"))
        if (auto parsed = dtype_from_torch_name(s.dtype.toStdString()))
            dtype = *parsed;
    r.weights = parse_weight_format(s.quant.toStdString(), dtype);
    return r;
}

PlanView viewOf(const Plan& plan, const Model& d, const PlanRequest& r)
{
    PlanView v;
    v.verdict = QString::fromLatin1(verdict_name(plan.verdict).data());
    v.reason = QString::fromStdString(plan.reason);
    v.mode = QString::fromStdString(plan.mode);
    v.decodeTokensPerSecond = plan.estimate.decode_tokens_per_s;
    v.prefillTokensPerSecond = plan.estimate.prefill_tokens_per_s;
    for (const auto& f : plan.devices)
        if (!(f.device.id.kind == Device::Kind::disk && f.used() == 0 && f.limit > (std::int64_t(1) << 50)))
            v.devices.push_back(footprintRow(f, nullptr));
    for (const auto& dev : plan.layer_devices)
        v.layerDevices.push_back(QString::fromStdString(dev.map_key()));
    for (std::uint64_t bytes : layer_bytes(d, r.weights))
        v.layerBytes.push_back(static_cast<qint64>(bytes));
    v.deviceMapJson = QString::fromStdString(device_map_to_text(plan.device_map));
    // Each block's experts: where most of them are, and their bytes.
    for (int block : d.tree().no_split_blocks()) {
        const std::vector<int> experts = d.tree().experts_under(block);
        if (experts.empty())
            continue;
        std::map<std::string, int> count;
        qint64 bytes = 0;
        for (int e : experts) {
            std::vector<int> stack{e};
            std::string first;
            while (!stack.empty()) {
                const ModuleNode& m = d.tree().nodes()[static_cast<std::size_t>(stack.back())];
                stack.pop_back();
                for (const auto& t : m.tensors) {
                    bytes += static_cast<qint64>(tensor_bytes(d.tree(), t, r.weights));
                    if (first.empty())
                        first = t.full_name;
                }
                stack.insert(stack.end(), m.children.begin(), m.children.end());
            }
            if (const Device* dev = device_of(plan.device_map, first))
                count[dev->map_key()] += 1;
        }
        auto most = std::max_element(count.begin(), count.end(), [](const auto& a, const auto& b) { return a.second < b.second; });
        const ModuleNode& list = d.tree().nodes()[static_cast<std::size_t>(d.tree().nodes()[static_cast<std::size_t>(experts.front())].parent)];
        v.expertModules.push_back(QString::fromStdString(list.name));
        v.expertDevices.push_back(most == count.end() ? QString() : QString::fromStdString(most->first));
        v.expertsSplit.push_back(count.size() > 1);
        v.expertBytes.push_back(bytes);
    }
    if (r.weights.kind != WeightFormat::Kind::plain)
        v.quant = QString::fromStdString(r.weights.name());
    else if (const std::string saved = d.saved_quantization(); !saved.empty())
        v.quant = QString::fromStdString(saved);
    // Modules outside the decoder blocks that hold weights: embeddings, final norm, lm_head.
    const auto& nodes = d.tree().nodes();
    const auto blocks = d.tree().no_split_blocks();
    const int firstBlock = blocks.empty() ? static_cast<int>(nodes.size()) : blocks.front();
    for (std::size_t i = 0; i < nodes.size(); ++i) {
        const ModuleNode& n = nodes[i];
        if (!n.children.empty() || n.tensors.empty() || n.no_split)
            continue;
        bool inBlock = false;
        for (int p = n.parent; p >= 0 && !inBlock; p = nodes[static_cast<std::size_t>(p)].parent)
            inBlock = nodes[static_cast<std::size_t>(p)].no_split;
        bool persistent = false;
        for (const auto& t : n.tensors)
            persistent = persistent || t.is_parameter() || t.persistent;
        if (inBlock || !persistent)
            continue;
        MapModule m;
        m.name = QString::fromStdString(n.name);
        m.beforeLayers = static_cast<int>(i) < firstBlock;
        m.dtype = QString::fromLatin1(torch_name(n.tensors.front().dtype).data());
        const Device* dev = nullptr;
        for (const auto& t : n.tensors) {
            const Device* own = device_of(plan.device_map, t.full_name);
            if (!own && !t.tied_to.empty())
                own = device_of(plan.device_map, t.tied_to);
            dev = dev ? dev : own;
            if (t.tied_to.empty())
                m.bytes += static_cast<qint64>(tensor_bytes(d.tree(), t, r.weights));
            else
                m.tiedTo = QString::fromStdString(t.tied_to).section(QLatin1Char('.'), 0, -2);
        }
        if (dev)
            m.device = QString::fromStdString(dev->map_key());
        v.modules.push_back(m);
    }
    return v;
}


void EngineWorker::describe(const QString& what)
{
    try {
        m_state->model = Model::open(what.toStdString());
        m_state->plan.reset();
        Q_EMIT described(summarize(*m_state->model));
    } catch (const std::exception& e) {
        Q_EMIT failed(what, QString::fromUtf8(e.what()));
    }
}

void EngineWorker::detectDevices(const PlanSettings& settings)
{
    try {
        m_state->devices(probeBandwidth);
        std::vector<std::string> specs;
        for (const auto& h : settings.hypothetical)
            specs.push_back(h.toStdString());
        QVector<DeviceRow> rows;
        for (const auto& d : apply_device_specs(m_state->detected, specs)) {
            DeviceRow r;
            r.key = QString::fromStdString(d.id.map_key());
            r.name = QString::fromStdString(d.id.name());
            r.model = QString::fromStdString(d.name);
            r.hypothetical = d.hypothetical;
            r.total = d.total_bytes;
            r.available = d.available_bytes;
            r.bandwidth = d.bandwidth;
            rows.push_back(r);
        }
        rows += machineDeviceRows(m_state->machines);
        Q_EMIT devicesDetected(rows);
    } catch (const std::exception& e) {
        Q_EMIT failed(tr("devices"), QString::fromUtf8(e.what()));
    }
}

void EngineWorker::plan(const PlanSettings& settings)
{
    if (!m_state->model)
        return;
    try {
        m_state->devices(probeBandwidth);
        m_state->request = requestFrom(settings, m_state->detected, *m_state->model);
        m_state->pipeline.reset();
        if (!m_state->machines.empty()) {
            m_state->pipeline = plan_pipeline(*m_state->model, m_state->request, limitedMachines(m_state->machines, settings));
            m_state->plan = m_state->pipeline->stages.front().plan;
        } else {
            m_state->plan = plan_model(*m_state->model, m_state->request);
        }
        publish();
    } catch (const std::exception& e) {
        Q_EMIT failed(tr("plan"), QString::fromUtf8(e.what()));
    }
}

void EngineWorker::previewPlan(const PlanSettings& settings, const QString& tag)
{
    if (!m_state->model)
        return;
    try {
        m_state->devices(probeBandwidth);
        const PlanRequest r = requestFrom(settings, m_state->detected, *m_state->model);
        const Plan plan = plan_model(*m_state->model, r);
        Q_EMIT previewPlanned(tag, viewOf(plan, *m_state->model, r));
    } catch (const std::exception& e) {
        PlanView failed;
        failed.verdict = QStringLiteral("error");
        failed.reason = QString::fromUtf8(e.what());
        Q_EMIT previewPlanned(tag, failed);
    }
}

void EngineWorker::moveLayers(int first, int last, const QString& key)
{
    if (!m_state->model || !m_state->plan)
        return;
    if (refusedWithMachines(tr("move layers")))
        return;
    try {
        m_state->plan = plan_with_layers_moved(*m_state->model, m_state->request, *m_state->plan, first, last,
                                               parse_device(key.toStdString()));
        m_state->request.strategy = Strategy::custom;
        m_state->request.custom_map = m_state->plan->device_map;
        publish();
    } catch (const std::exception& e) {
        Q_EMIT failed(tr("move layers"), QString::fromUtf8(e.what()));
    }
}

void EngineWorker::moveModule(const QString& module, const QString& key)
{
    if (!m_state->model || !m_state->plan)
        return;
    if (refusedWithMachines(tr("move module")))
        return;
    try {
        m_state->plan = plan_with_module_moved(*m_state->model, m_state->request, *m_state->plan, module.toStdString(),
                                               parse_device(key.toStdString()));
        publish();
    } catch (const std::exception& e) {
        Q_EMIT failed(tr("move module"), QString::fromUtf8(e.what()));
    }
}

void EngineWorker::useDeviceMap(const QString& text)
{
    if (!m_state->model)
        return;
    if (refusedWithMachines(tr("device map")))
        return;
    try {
        PlanRequest r = m_state->request;
        r.strategy = Strategy::custom;
        r.custom_map = parse_device_map(text.toStdString());
        m_state->plan = plan_model(*m_state->model, r);
        m_state->request = r;
        publish();
    } catch (const std::exception& e) {
        Q_EMIT failed(tr("device map"), QString::fromUtf8(e.what()));
    }
}

void EngineWorker::restorePlan(const PlanSettings& settings, const QString& map)
{
    if (!m_state->model)
        return;
    if (!m_state->machines.empty()) { // the pipeline planner places the layers: the settings say it all
        plan(settings);
        return;
    }
    try {
        m_state->devices(probeBandwidth);
        PlanRequest r = requestFrom(settings, m_state->detected, *m_state->model);
        if (!map.isEmpty()) {
            r.strategy = Strategy::custom;
            r.custom_map = parse_device_map(map.toStdString());
        }
        m_state->plan = plan_model(*m_state->model, r);
        m_state->request = r;
        publish();
    } catch (const std::exception& e) {
        Q_EMIT failed(tr("device map"), QString::fromUtf8(e.what()));
    }
}

void EngineWorker::publish()
{
    Q_EMIT planned(m_state->pipeline ? viewOfPipeline(*m_state->pipeline, *m_state->model, m_state->request)
                                     : viewOf(*m_state->plan, *m_state->model, m_state->request));
}

} // namespace layerwise::ui
