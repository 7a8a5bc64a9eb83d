// EngineWorker: writing a quantized copy of a model folder and measuring perplexity (the
// quantization wizard's jobs), and plans computed for a preview without becoming the plan.
#include "engineworker.h"

#include "workerstate.h"

#include <QDir>
#include <QElapsedTimer>
#include <QFile>
#include <QJsonDocument>
#include <QJsonObject>
#include <filesystem>

namespace layerwise::ui {

namespace {

QuantOptions quantOptionsOf(const QuantizeRequest& r)
{
    QuantOptions o;
    o.method = parse_quant_method(r.method.toStdString());
    if (!o.enabled())
        throw PlanError("choose a quantization method (int8, nf4 or fp4)");
    o.double_quant = r.doubleQuant && (o.method == QuantMethod::nf4 || o.method == QuantMethod::fp4);
    if (!r.computeDtype.isEmpty() && r.computeDtype != QLatin1String("auto")) {
        const auto d = dtype_from_torch_name(r.computeDtype.toStdString());
        if (!d || !is_floating(*d))
            throw PlanError("the compute dtype '" + r.computeDtype.toStdString() + "' is not float32, bfloat16 or float16");
        o.compute_dtype = *d;
    }
    for (const QString& m : r.skipModules)
        if (!m.trimmed().isEmpty())
            o.skip_modules.push_back(m.trimmed().toStdString());
    return o;
}

double etaOf(qint64 elapsedMs, std::uint64_t done, std::uint64_t total)
{
    if (done == 0 || total < done)
        return -1;
    return static_cast<double>(elapsedMs) / 1000.0 * static_cast<double>(total - done) / static_cast<double>(done);
}

} // namespace

GptqPartialRun gptqPartialRun(const QString& out)
{
    GptqPartialRun run;
    if (out.trimmed().isEmpty())
        return run;
    const QString folder = QString::fromStdString(gptq_partial_folder(std::filesystem::path(QDir::cleanPath(out).toStdString())).string());
    QFile f(QDir(folder).filePath(QStringLiteral("state.json")));
    if (!f.open(QIODevice::ReadOnly))
        return run;
    const QJsonObject state = QJsonDocument::fromJson(f.readAll()).object();
    const QJsonObject identity = state.value(QStringLiteral("identity")).toObject();
    const QJsonObject config = identity.value(QStringLiteral("quantize_config")).toObject();
    if (state.isEmpty() || config.isEmpty())
        return run;
    run.folder = folder;
    run.layersDone = state.value(QStringLiteral("layers_done")).toInt();
    run.bits = config.value(QStringLiteral("bits")).toInt();
    run.groupSize = config.value(QStringLiteral("group_size")).toInt();
    run.descAct = config.value(QStringLiteral("desc_act")).toBool();
    run.sym = config.value(QStringLiteral("sym")).toBool(true);
    run.dampPercent = config.value(QStringLiteral("damp_percent")).toDouble();
    run.samples = identity.value(QStringLiteral("samples")).toInt();
    run.seqLen = identity.value(QStringLiteral("seq_len")).toInt();
    run.rtn = identity.value(QStringLiteral("method")).toString() == QLatin1String("rtn");
    return run;
}

// GPTQ: the job streams the layers and reports per module; an interrupted run resumes from
// `<out>.partial` (kept on Cancel) unless the request asks to start afresh.
void EngineWorker::quantizeGptq(const QuantizeRequest& request)
{
    QElapsedTimer clock;
    clock.start();
    const std::filesystem::path out = QDir::cleanPath(request.out).toStdString();
    try {
        if (request.out.isEmpty())
            throw IoError("no output folder was chosen: choose a new folder for the quantized model");
        set_cpu_threads(0);
        GptqJobOptions o;
        o.method = GptqJobMethod::gptq;
        o.params.bits = request.bits;
        o.params.group_size = request.groupSize;
        o.params.desc_act = request.descAct;
        o.params.sym = request.sym;
        o.params.damp_percent = request.dampPercent;
        o.calibration = request.calibration.toStdString();
        o.samples = request.samples;
        o.seq_len = request.seqLen;
        if (request.restart) {
            std::error_code ec;
            std::filesystem::remove_all(gptq_partial_folder(out), ec);
        }
        const auto progress = [&](const GptqLayerProgress& p) {
            QuantizeProgressView v;
            v.layer = p.layer;
            v.layers = p.layers;
            v.done = static_cast<quint64>(p.layer + (p.module.empty() ? 1 : 0));
            v.total = static_cast<quint64>(p.layers);
            v.item = QString::fromStdString(p.module);
            v.etaSeconds = p.eta_seconds > 0 || p.module.empty() ? p.eta_seconds : -1;
            v.layerError = p.module.empty() ? -1 : p.avg_loss;
            Q_EMIT quantizeProgress(v);
            return !m_cancelJob.load();
        };
        const GptqJobResult r = quantize_gptq(request.source.toStdString(), out, o, progress);
        QuantizeResultView view;
        view.folder = QString::fromStdString(r.folder.string());
        view.quantizedLinears = r.quantized_linears;
        view.keptLinears = r.kept_linears;
        view.resumedLayers = r.resumed_layers;
        view.weightBytes = r.weight_bytes;
        view.seconds = static_cast<double>(clock.elapsed()) / 1000.0;
        Q_EMIT quantized(view);
    } catch (const CancelledError&) {
        const GptqPartialRun partial = gptqPartialRun(request.out);
        Q_EMIT quantizeFailed(partial.layersDone > 0
                                  ? tr("Quantization was cancelled; no folder was written. The finished layers (%2) are kept "
                                       "in %1: run again with the same settings to resume from there.")
                                        .arg(QDir::toNativeSeparators(partial.folder))
                                        .arg(partial.layersDone)
                                  : tr("Quantization was cancelled; no folder was written."),
                              true);
    } catch (const std::exception& e) {
        Q_EMIT quantizeFailed(QString::fromUtf8(e.what()), false);
    }
}

void EngineWorker::quantize(const QuantizeRequest& request)
{
    if (request.method == QLatin1String("gptq")) {
        quantizeGptq(request);
        return;
    }
    QElapsedTimer clock;
    clock.start();
    try {
        if (request.out.isEmpty())
            throw IoError("no output folder was chosen: choose a new folder for the quantized model");
        const QuantOptions options = quantOptionsOf(request);
        set_cpu_threads(0);
        qint64 lastEmit = -1000;
        const auto progress = [&](const Progress& p) {
            const qint64 now = clock.elapsed();
            if (now - lastEmit >= 50 || p.done == p.total) {
                lastEmit = now;
                QuantizeProgressView v;
                v.done = p.done;
                v.total = p.total;
                v.item = QString::fromStdString(p.item);
                v.etaSeconds = etaOf(now, p.done, p.total);
                Q_EMIT quantizeProgress(v);
            }
            return !m_cancelJob.load();
        };
        const BnbQuantizeResult r = quantize_bnb(Model::open(request.source.toStdString()), options,
                                                 request.out.toStdString(), progress);
        QuantizeResultView view;
        view.folder = QString::fromStdString(r.folder.string());
        view.quantizedLinears = r.quantized_linears;
        view.weightBytes = r.weight_bytes;
        view.seconds = static_cast<double>(clock.elapsed()) / 1000.0;
        Q_EMIT quantized(view);
    } catch (const CancelledError&) {
        Q_EMIT quantizeFailed(tr("Quantization was cancelled; no folder was written."), true);
    } catch (const std::exception& e) {
        Q_EMIT quantizeFailed(QString::fromUtf8(e.what()), false);
    }
}

void EngineWorker::evaluate(const EvalRequest& request)
{
    QElapsedTimer clock;
    clock.start();
    try {
        set_cpu_threads(0);
        Model model = Model::open(request.model.toStdString());
        if (!model.has_weights())
            throw UnsupportedError("'" + model.source() + "' has no weights to evaluate");
        const auto encoded = model.tokenizer()->encode(request.text.toStdString(), true);
        const std::vector<std::int64_t> ids(encoded.begin(), encoded.end());
        const std::int64_t positions = model.config().max_position_embeddings;
        const std::int64_t context =
            request.context > 0 ? request.context : std::min<std::int64_t>(2048, std::max<std::int64_t>(2, positions));
        const std::int64_t stride = request.stride > 0 ? request.stride : std::max<std::int64_t>(1, context / 2);
        m_state->devices(probeBandwidth);
        PlanRequest r;
        r.devices = m_state->detected;
        r.context = context;
        r.weights = parse_weight_format("none", model.dtype());
        const Plan plan = plan_model(model, r);
        if (plan.verdict == Verdict::does_not_fit)
            throw PlanError("the model does not fit on this machine for evaluation: " + plan.reason);
        SessionOptions load;
        load.device_map = plan.device_map;
        load.context = context;
        load.require_tokenizer = false;
        load.offload_folder = (offloadFolder.isEmpty() ? QDir::tempPath() : offloadFolder).toStdString();
        load.progress = [this](const Progress&) { return !m_cancelJob.load(); };
        const auto session = Session::load(std::move(model), load);
        const QString tag = request.tag;
        const PerplexityResult p = session->perplexity(ids, context, stride, [&](const Progress& pr) {
            Q_EMIT evalProgress(tag, static_cast<int>(pr.done), static_cast<int>(pr.total));
            return !m_cancelJob.load();
        });
        EvalResultView v;
        v.tag = tag;
        v.perplexity = p.perplexity;
        v.tokens = p.tokens;
        v.windows = p.windows;
        v.seconds = static_cast<double>(clock.elapsed()) / 1000.0;
        Q_EMIT evaluated(v);
    } catch (const CancelledError&) {
        Q_EMIT evalFailed(request.tag, tr("The evaluation was cancelled."), true);
    } catch (const std::exception& e) {
        Q_EMIT evalFailed(request.tag, QString::fromUtf8(e.what()), false);
    }
}

} // namespace layerwise::ui
