// EngineWorker: writing a quantized copy of a model folder and measuring perplexity (the
// quantization wizard's jobs), and plans computed for a preview without becoming the plan.
#include "engineworker.h"

#include "workerstate.h"

#include "quant/bnb_writer.h"
#include "runtime/perplexity.h"
#include "runtime/runner.h"
#include "text/tokenizer.h"

#include <ATen/Parallel.h>
#include <QDir>
#include <QElapsedTimer>

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

void EngineWorker::quantize(const QuantizeRequest& request)
{
    QElapsedTimer clock;
    clock.start();
    try {
        if (request.method == QLatin1String("gptq"))
            throw UnsupportedError("GPTQ quantization needs the GPTQ engine, which this build does not have yet: "
                                   "choose int8, nf4 or fp4");
        if (request.out.isEmpty())
            throw IoError("no output folder was chosen: choose a new folder for the quantized model");
        const QuantOptions options = quantOptionsOf(request);
        at::set_num_threads(usable_cpu_count());
        ModelDescription d = describe_model(request.source.toStdString());
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
        const QuantizeResult r = save_quantized(std::move(d), options, request.out.toStdString(), progress);
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
        at::set_num_threads(usable_cpu_count());
        ModelDescription d = describe_model(request.model.toStdString());
        if (!d.checkpoint)
            throw UnsupportedError("'" + d.source + "' has no weights to evaluate");
        const auto tokenizer = text::load_tokenizer(d.checkpoint->folder());
        const auto encoded = tokenizer->encode(request.text.toStdString(), true);
        const std::vector<std::int64_t> ids(encoded.begin(), encoded.end());
        const std::int64_t context =
            request.context > 0 ? request.context
                                : std::min<std::int64_t>(2048, std::max<std::int64_t>(2, d.config.max_position_embeddings));
        const std::int64_t stride = request.stride > 0 ? request.stride : std::max<std::int64_t>(1, context / 2);
        if (m_state->detected.empty()) {
            DetectOptions o;
            o.probe_bandwidth = probeBandwidth;
            m_state->detected = detect_devices(o);
        }
        PlanRequest r;
        r.devices = m_state->detected;
        r.context = context;
        r.weights = parse_weight_format("none", d.tree.dtype());
        const Plan plan = make_plan(d.tree, d.config, r);
        if (plan.verdict == Verdict::does_not_fit)
            throw PlanError("the model does not fit on this machine for evaluation: " + plan.reason);
        LoadOptions load;
        load.device_map = plan.device_map;
        load.offload_folder = (offloadFolder.isEmpty() ? QDir::tempPath() : offloadFolder).toStdString();
        load.progress = [this](const Progress&) { return !m_cancelJob.load(); };
        auto model = load_model(std::move(d), load);
        Runner runner(*model, context);
        const QString tag = request.tag;
        const PerplexityResult p = evaluate_perplexity(runner, ids, context, stride, [&](const Progress& pr) {
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
