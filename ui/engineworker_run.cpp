// EngineWorker: loading, unloading and chatting (the model runs on the worker thread).
#include "engineworker.h"

#include "workerstate.h"

#include <QDateTime>
#include <QDir>
#include <QElapsedTimer>
#include <nlohmann/json.hpp>

namespace layerwise::ui {

namespace {

Conversation conversationOf(const ChatTurnRequest& r)
{
    Conversation c;
    c.system = r.system.toStdString();
    c.raw = r.raw;
    for (const auto& m : r.messages)
        c.messages.push_back({m.role.toStdString(), m.content.toStdString()});
    return c;
}

GenerationOptions generationOf(const SamplingSettings& s)
{
    GenerationOptions g;
    g.max_new_tokens = std::max(1, s.maxNewTokens);
    g.sampling.greedy = s.greedy;
    g.sampling.temperature = s.temperature;
    g.sampling.top_k = s.topK;
    g.sampling.top_p = s.topP;
    g.sampling.min_p = s.minP;
    g.sampling.repetition_penalty = s.repetitionPenalty;
    g.sampling.seed = s.seed;
    return g;
}

LayerActivity activityOf(LayerState s)
{
    switch (s) {
    case LayerState::resident: return LayerActivity::resident;
    case LayerState::streaming_in: return LayerActivity::streamingIn;
    case LayerState::computing: return LayerActivity::computing;
    case LayerState::evicted: return LayerActivity::evicted;
    }
    return LayerActivity::planned;
}

} // namespace

void EngineWorker::load()
{
    if (!m_state->model || !m_state->plan) {
        Q_EMIT loadFailed(tr("There is no planned model to load: open a model folder first."), false);
        return;
    }
    stopServerBecause(tr("The server stopped: another model is loading."));
    m_state->unload();
    QElapsedTimer clock;
    clock.start();
    try {
        if (!m_state->model->has_weights())
            throw UnsupportedError("'" + m_state->model->source() +
                                   "' is a preset: it describes a model's shape but has no weights. Open a model folder "
                                   "with a checkpoint to load it.");
        const WeightFormat& weights = m_state->request.weights;
        const QuantOptions quant = load_quantization(weights);
        // LibTorch may see one core in a VM: use every CPU this process may run on, as the CLI does.
        set_cpu_threads(0);
        Model model = Model::open(m_state->model->source());
        SessionOptions o;
        o.dtype = m_state->request.weights.dtype;
        o.quant = quant;
        o.device_map = m_state->plan->device_map;
        if (m_state->pipeline) { // each other machine loads its stage from its own copy
            use_pipeline(*m_state->model, *m_state->pipeline, o);
            o.remote_token = m_state->machineToken;
        }
        o.context = m_state->request.context;
        o.offload_folder = (offloadFolder.isEmpty() ? QDir::tempPath() : offloadFolder).toStdString();
        qint64 lastEmit = -1000;
        o.progress = [&](const Progress& p) {
            const qint64 now = clock.elapsed();
            if (now - lastEmit >= 50 || p.done == p.total) {
                lastEmit = now;
                LoadProgressView v;
                v.done = p.done;
                v.total = p.total;
                v.item = QString::fromStdString(p.item);
                if (p.done > 0 && p.total >= p.done)
                    v.etaSeconds = static_cast<double>(now) / 1000.0 * static_cast<double>(p.total - p.done) /
                                   static_cast<double>(p.done);
                Q_EMIT loadProgress(v);
            }
            return !m_cancelLoad.load();
        };
        o.on_layer_state = [this](int layer, LayerState state) {
            if (layer >= 0 && layer < m_layerStates.size())
                m_layerStates[layer] = static_cast<int>(activityOf(state));
            publishLayerStates(false);
        };
        m_layerStates.clear();
        auto session = Session::load(std::move(model), o);
        LoadedView view;
        view.source = QString::fromStdString(m_state->model->source());
        view.quant = quant.enabled() ? QString::fromStdString(weights.name()) : QStringLiteral("none");
        view.deviceMapJson = QString::fromStdString(session->hf_device_map().dump(2));
        for (const Device& home : session->layer_devices()) {
            view.layerDevices.push_back(QString::fromStdString(home.map_key()));
            m_layerStates.push_back(static_cast<int>(home.kind == Device::Kind::disk ? LayerActivity::evicted
                                                                                     : LayerActivity::resident));
        }
        if (m_state->pipeline) // the layers other machines run are resident there
            for (const PipelineStage& s : m_state->pipeline->stages)
                if (const Machine* m = m_state->pipeline->machine_of(s))
                    for (std::int64_t l = s.first; l < s.end && l < view.layerDevices.size(); ++l) {
                        view.layerDevices[static_cast<int>(l)] = QString::fromStdString(
                            m->name + "/" + s.plan.layer_devices[static_cast<std::size_t>(l - s.first)].map_key());
                        m_layerStates[static_cast<int>(l)] = static_cast<int>(LayerActivity::resident);
                    }
        for (const LoadedFootprint& f : session->footprint()) {
            FootprintRow row;
            std::string prefix;
            for (const Machine& m : m_state->machines)
                if (m.address == f.machine)
                    prefix = m.name + "/";
            row.key = QString::fromStdString(prefix + f.device.map_key());
            row.machine = QString::fromStdString(prefix).chopped(prefix.empty() ? 0 : 1);
            row.weights = static_cast<qint64>(f.weight_bytes);
            row.kvCache = static_cast<qint64>(f.kv_cache_bytes);
            row.layers = f.layers;
            view.live.push_back(row);
        }
        view.contextLength = static_cast<int>(session->context_length());
        view.hasTemplate = session->has_template();
        m_state->session = std::move(session);
        view.seconds = static_cast<double>(clock.elapsed()) / 1000.0;
        LoadProgressView done;
        done.done = done.total = 1;
        done.etaSeconds = 0;
        Q_EMIT loadProgress(done);
        Q_EMIT loaded(view);
        publishLayerStates(true);
    } catch (const CancelledError&) {
        m_state->unload();
        Q_EMIT loadFailed(tr("Loading was cancelled; nothing stays loaded."), true);
    } catch (const std::exception& e) {
        m_state->unload();
        Q_EMIT loadFailed(QString::fromUtf8(e.what()), false);
    }
}

void EngineWorker::unload()
{
    stopServerBecause(tr("The server stopped: the model it served was unloaded."));
    m_state->unload();
    m_layerStates.clear();
    Q_EMIT unloaded();
}

void EngineWorker::publishLayerStates(bool force)
{
    const qint64 now = QDateTime::currentMSecsSinceEpoch();
    if (!force && now - m_lastLayerEmit < 40)
        return;
    m_lastLayerEmit = now;
    Q_EMIT layerStates(m_layerStates);
}

void EngineWorker::chat(const ChatTurnRequest& request)
{
    m_stop.store(false);
    if (!m_state->session) {
        Q_EMIT answerFailed(tr("No model is loaded: load one (Ctrl+L) before chatting."));
        return;
    }
    m_lastLayerEmit = 0; // the first layer change of every answer is shown, however short it is
    try {
        const ChatAnswer answer = m_state->session->chat(
            conversationOf(request), generationOf(request.sampling),
            [this](std::string_view piece) {
                Q_EMIT answerPiece(QString::fromUtf8(piece.data(), static_cast<qsizetype>(piece.size())));
                return true;
            },
            &m_stop);
        AnswerStats stats;
        stats.tokens = static_cast<int>(answer.generation.tokens.size());
        stats.ttftMs = answer.generation.ttft_s * 1000.0;
        stats.tokensPerSecond = answer.generation.decode_tokens_per_s;
        stats.promptTokens = static_cast<int>(answer.prompt_tokens);
        stats.contextUsed = static_cast<int>(answer.context_used);
        stats.contextLength = static_cast<int>(answer.context_length);
        stats.stopReason = QString::fromStdString(answer.generation.stop_reason);
        publishLayerStates(true);
        Q_EMIT answerFinished(QString::fromStdString(answer.text), stats);
    } catch (const RemoteError& e) {
        publishLayerStates(true);
        Q_EMIT answerFailed(QString::fromUtf8(e.what()));
        if (!e.address().empty())
            Q_EMIT machineFailed(QString::fromStdString(e.address()), QString::fromUtf8(e.what()));
    } catch (const std::exception& e) {
        publishLayerStates(true);
        Q_EMIT answerFailed(QString::fromUtf8(e.what()));
    }
}

void EngineWorker::previewPrompt(const ChatTurnRequest& request)
{
    if (!m_state->session) {
        Q_EMIT promptPreview(tr("(load the model to see the prompt its chat template makes)"), 0);
        return;
    }
    try {
        const Conversation c = conversationOf(request);
        const std::string text = m_state->session->prompt_text(c);
        const auto ids = m_state->session->prompt_ids(c);
        Q_EMIT promptPreview(QString::fromStdString(text), static_cast<int>(ids.size()));
    } catch (const std::exception& e) {
        Q_EMIT promptPreview(tr("The chat template failed: %1").arg(QString::fromUtf8(e.what())), 0);
    }
}

} // namespace layerwise::ui
