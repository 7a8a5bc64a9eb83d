// "Add machine…": other machines running `layerwise worker` in the plan. The layers are then
// planned in pipeline stages over them and this machine (plan/pipeline.h): each machine's
// devices are cards and lanes of their own ("host2/cuda:0", "host2/cpu"), grouped by machine.
#include "engineworker.h"

#include "workerstate.h"

#include <algorithm>
#include <cstdio>

namespace layerwise::ui {

namespace {

QString machineCaption(const Machine& m, bool used)
{
    char link[96];
    std::snprintf(link, sizeof link, "link %.3g Gb/s, %.3g ms", m.link.bandwidth * 8 / 1e9, m.link.latency * 1e3);
    return QStringLiteral("%1 · %2 · %3%4")
        .arg(QString::fromStdString(m.name), QString::fromStdString(m.address), QString::fromLatin1(link),
             used ? QString() : QObject::tr(" · not used: it would only add link time"));
}

} // namespace

QVector<DeviceRow> machineDeviceRows(const std::vector<Machine>& machines)
{
    QVector<DeviceRow> rows;
    for (const Machine& m : machines)
        for (const DeviceInfo& d : m.devices) {
            DeviceRow r;
            r.key = QString::fromStdString(m.name + "/" + d.id.map_key());
            r.name = QString::fromStdString(m.name + "/" + d.id.name());
            r.model = QString::fromStdString(d.name);
            r.total = d.total_bytes;
            r.available = d.available_bytes;
            r.bandwidth = d.bandwidth;
            r.machine = QString::fromStdString(m.name);
            r.machineCaption = machineCaption(m, true);
            rows.push_back(r);
        }
    return rows;
}

std::vector<Machine> limitedMachines(std::vector<Machine> machines, const PlanSettings& settings)
{
    for (const auto& [key, bytes] : settings.limits) {
        const QString machine = key.section(QLatin1Char('/'), 0, 0), device = key.section(QLatin1Char('/'), 1);
        if (device.isEmpty())
            continue;
        for (Machine& m : machines)
            if (QString::fromStdString(m.name) == machine)
                m.max_memory.push_back({parse_device(device.toStdString()), std::max<qint64>(bytes, 0)});
    }
    return machines;
}

PlanView viewOfPipeline(const PipelinePlan& p, const Model& d, const PlanRequest& r)
{
    // This machine's stage as a plan of the whole model gives the modules, experts and map.
    const PipelineStage& home = p.stages.front();
    Plan local = home.plan;
    local.device_map = whole_model_map(d.tree(), home.plan.device_map, home.first, home.end, true);
    PlanView v = viewOf(local, d, r);
    v.verdict = QString::fromLatin1(verdict_name(p.verdict).data());
    v.reason = QString::fromStdString(p.reason);
    v.mode = QString::fromStdString(home.plan.mode);
    v.decodeTokensPerSecond = p.estimate.decode_tokens_per_s;
    v.prefillTokensPerSecond = p.estimate.prefill_tokens_per_s;
    v.devices.clear();
    const auto layers = static_cast<int>(d.tree().no_split_blocks().size());
    v.layerDevices = QStringList(layers, QStringLiteral("disk"));
    for (const PipelineStage& s : p.stages) {
        const Machine* m = p.machine_of(s);
        for (const auto& f : s.plan.devices)
            if (!(f.device.id.kind == Device::Kind::disk && f.used() == 0 && f.limit > (std::int64_t(1) << 50)))
                v.devices.push_back(footprintRow(f, m));
        const std::string prefix = m ? m->name + "/" : std::string();
        for (std::int64_t l = s.first; l < s.end; ++l) {
            const QString key = QString::fromStdString(prefix + s.plan.layer_devices[static_cast<std::size_t>(l - s.first)].map_key());
            v.layerDevices[static_cast<int>(l)] = key;
            if (m && l < v.expertDevices.size())
                v.expertDevices[static_cast<int>(l)] = key; // a block's experts travel with it
        }
    }
    // The machines the plan leaves out still show, empty, with why.
    for (std::size_t i = 0; i < p.machines.size(); ++i) {
        const Machine& m = p.machines[i];
        const bool used = std::any_of(p.stages.begin(), p.stages.end(), [&](const PipelineStage& s) { return s.machine == static_cast<int>(i); });
        v.machines.push_back({QString::fromStdString(m.name), machineCaption(m, used)});
        if (used)
            continue;
        for (const DeviceInfo& dev : m.devices)
            if (dev.id.kind != Device::Kind::disk) {
                DeviceFootprint f;
                f.device = dev;
                const MemoryLimit* limit = find_limit(m.max_memory, dev.id);
                f.limit = limit ? limit->bytes : static_cast<std::int64_t>(dev.available_bytes);
                v.devices.push_back(footprintRow(f, &m));
            }
    }
    return v;
}

void EngineWorker::addMachine(const QString& address, const QString& token)
{
    try {
        const std::string where = address.trimmed().toStdString();
        for (const Machine& m : m_state->machines)
            if (m.address == where)
                throw PlanError(where + " is in the plan already (as " + m.name + ")");
        if (!m_state->machines.empty() && token.toStdString() != m_state->machineToken)
            throw PlanError("the machines of one plan share one token: give the token the other workers were started with");
        // Names stay as given (host2, host3...), never reused while the app runs.
        m_state->machines.push_back(describe_machine(where, token.toStdString(), "host" + std::to_string(m_state->nextMachine)));
        ++m_state->nextMachine;
        m_state->machineToken = token.toStdString();
        publishMachines();
    } catch (const std::exception& e) {
        Q_EMIT failed(tr("add machine"), QString::fromUtf8(e.what()));
    }
}

void EngineWorker::removeMachine(const QString& address)
{
    std::erase_if(m_state->machines, [&](const Machine& m) { return m.address == address.toStdString(); });
    if (m_state->machines.empty())
        m_state->pipeline.reset();
    publishMachines();
}

void EngineWorker::removeAllMachines()
{
    m_state->machines.clear();
    m_state->pipeline.reset();
    publishMachines();
}

void EngineWorker::publishMachines()
{
    QStringList rows;
    for (const Machine& m : m_state->machines)
        rows.push_back(QString::fromStdString(m.name + "  " + m.address));
    Q_EMIT machinesChanged(rows);
}

bool EngineWorker::refusedWithMachines(const QString& what)
{
    if (m_state->machines.empty())
        return false;
    Q_EMIT failed(what, tr("With other machines in the plan, the pipeline planner places the layers in stages. Remove the "
                           "machines (Model ▸ Remove machines) to place layers by hand."));
    return true;
}

} // namespace layerwise::ui
