#include "quantizewizardstate.h"

#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QJsonDocument>
#include <QJsonObject>

namespace layerwise::ui {

namespace {

// The last `chars` characters of a text file, from the first line that starts inside them.
QString tailOf(const QString& path, qint64 chars)
{
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly))
        return {};
    const qint64 size = f.size();
    if (size > chars * 2)
        f.seek(size - chars * 2); // UTF-8: read a little more than needed
    QString text = QString::fromUtf8(f.readAll());
    if (text.size() > chars)
        text = text.right(chars);
    const qsizetype newline = text.indexOf(QLatin1Char('\n'));
    if (size > chars && newline >= 0 && newline < text.size() - 1)
        text = text.mid(newline + 1);
    return text;
}

} // namespace

QVector<QuantMethodInfo> quantMethods()
{
    QVector<QuantMethodInfo> m;
    m.push_back({QStringLiteral("int8"), QObject::tr("int8 — LLM.int8() (8 bits per weight)"),
                 QObject::tr("Each output row of a linear layer is scaled by its largest magnitude and rounded to 8 "
                             "bits (bitsandbytes' layout). Nearly lossless; the weights take about half of bfloat16 "
                             "and a quarter of float32. At run time, activation columns with outliers (|x| ≥ 6) are "
                             "multiplied in floating point."),
                 true, QString(), false, false});
    m.push_back({QStringLiteral("nf4"), QObject::tr("nf4 — 4-bit NormalFloat"),
                 QObject::tr("Blocks of 64 weights share one float32 scale; each weight is one of 16 values placed for "
                             "normally distributed weights (QLoRA's NF4). About a quarter of bfloat16, with a small loss "
                             "of quality. Double quantization also stores the scales in 8 bits."),
                 true, QString(), true, false});
    m.push_back({QStringLiteral("fp4"), QObject::tr("fp4 — 4-bit float"),
                 QObject::tr("As nf4, with bitsandbytes' 4-bit floating-point code (1 sign, 2 exponent, 1 mantissa "
                             "bit). Same size as nf4; usually a little less accurate."),
                 true, QString(), true, false});
    m.push_back({QStringLiteral("gptq"), QObject::tr("GPTQ — 2 to 8 bits, calibrated on text"),
                 QObject::tr("Runs calibration text through the model and quantizes it one decoder layer at a time: "
                             "each weight column's rounding error is compensated in the columns not yet rounded, using "
                             "the layer's inputs on that text (second-order information). Better quality than plain "
                             "rounding at the same size. The folder is AutoGPTQ-compatible: qweight, qzeros, scales and "
                             "g_idx packed as AutoGPTQ packs them, with its quantize_config.json. "
                             "Takes seconds for a tiny model, hours for a large one; a cancelled run resumes."),
                 true, QString(), false, true});
    return m;
}

QuantizeWizardState::QuantizeWizardState(const QString& source, const PlanSettings& settings, const QString& calibration,
                                         QObject* parent)
    : QObject(parent), m_source(source), m_settings(settings), m_calibration(calibration), m_methods(quantMethods())
{
    if (QFile config(QDir(source).filePath(QStringLiteral("config.json"))); config.open(QIODevice::ReadOnly))
        m_maxPositions = QJsonDocument::fromJson(config.readAll()).object().value(QStringLiteral("max_position_embeddings")).toInt();
    m_choices.method = m_methods.front().id;
    m_choices.defaultCalibration = m_choices.defaultEvalText = hasDefaultCalibration();
}

bool QuantizeWizardState::hasDefaultCalibration() const
{
    return !m_calibration.isEmpty() && QFileInfo(m_calibration).isFile();
}

void QuantizeWizardState::setChoices(const QuantizeChoices& choices)
{
    m_choices = choices;
    Q_EMIT choicesChanged();
}

QString QuantizeWizardState::method() const
{
    return methodInfo().id;
}

const QuantMethodInfo& QuantizeWizardState::methodInfo() const
{
    for (const auto& m : m_methods)
        if (m.id == m_choices.method)
            return m;
    return m_methods.front();
}

QuantizeRequest QuantizeWizardState::request() const
{
    const QuantizeChoices& c = m_choices;
    QuantizeRequest r;
    r.source = m_source;
    r.method = method();
    r.out = QDir::cleanPath(c.out.trimmed());
    if (methodInfo().needsCalibration) {
        r.calibration = c.defaultCalibration ? m_calibration : c.calibrationFile.trimmed();
        r.bits = c.bits;
        r.groupSize = c.groupSize;
        r.descAct = c.descAct;
        r.sym = c.sym;
        r.dampPercent = c.dampPercent;
        r.samples = c.samples;
        r.seqLen = c.seqLen;
        r.restart = !partialRun().folder.isEmpty() && !c.resume;
        return r;
    }
    r.doubleQuant = methodInfo().fourBit && c.doubleQuant;
    r.computeDtype = c.computeDtype;
    for (const QString& m : c.skipModules.split(QLatin1Char(','), Qt::SkipEmptyParts))
        r.skipModules.push_back(m.trimmed());
    return r;
}

GptqPartialRun QuantizeWizardState::partialRun() const
{
    if (!methodInfo().needsCalibration)
        return {};
    return gptqPartialRun(m_choices.out.trimmed());
}

QString QuantizeWizardState::evaluationText() const
{
    if (m_choices.defaultEvalText)
        return tailOf(m_calibration, defaultEvalChars);
    QFile f(m_choices.evalFile.trimmed());
    if (!f.open(QIODevice::ReadOnly))
        return {};
    return QString::fromUtf8(f.readAll());
}

QString QuantizeWizardState::previewQuant() const
{
    const QuantMethodInfo& info = methodInfo();
    if (info.id == QLatin1String("gptq"))
        return QStringLiteral("gptq-%1bit-%2")
            .arg(m_choices.bits)
            .arg(m_choices.groupSize < 0 ? QStringLiteral("nog") : QStringLiteral("%1g").arg(m_choices.groupSize));
    if (info.fourBit && m_choices.doubleQuant)
        return info.id + QStringLiteral("-dq");
    return info.id;
}

QString QuantizeWizardState::suggestFolder(const QString& source, const QString& method)
{
    const QString base = QDir::cleanPath(source) + QLatin1Char('-') + method;
    QString candidate = base;
    for (int i = 2; QFileInfo::exists(candidate); ++i)
        candidate = base + QLatin1Char('-') + QString::number(i);
    return candidate;
}

void QuantizeWizardState::startPreview()
{
    Q_EMIT previewRequested();
}

void QuantizeWizardState::setPreview(bool quantized, const PlanView& plan)
{
    (quantized ? m_planQuantized : m_planOriginal) = plan;
    Q_EMIT previewChanged();
}

void QuantizeWizardState::startRun()
{
    m_running = true;
    m_runOk = false;
    m_runCancelled = false;
    m_runMessage.clear();
    m_progress = {};
    m_result = {};
    m_before = m_after = {};
    Q_EMIT runStarted();
}

void QuantizeWizardState::reportCancelling()
{
    Q_EMIT runCancelling();
}

void QuantizeWizardState::setProgress(const QuantizeProgressView& p)
{
    m_progress = p;
    Q_EMIT progressChanged();
}

void QuantizeWizardState::finishRun(const QuantizeResultView& result)
{
    m_running = false;
    m_runOk = true;
    m_result = result;
    Q_EMIT runFinished(true);
}

void QuantizeWizardState::failRun(const QString& message, bool cancelled)
{
    m_running = false;
    m_runOk = false;
    m_runCancelled = cancelled;
    m_runMessage = message;
    Q_EMIT runFinished(false);
}

void QuantizeWizardState::startEvaluation(int jobs)
{
    m_before = m_after = {};
    m_evalMessage.clear();
    m_evalPending = jobs;
    Q_EMIT evaluationStarted();
}

void QuantizeWizardState::setEvaluationProgress(bool after, int done, int total)
{
    Q_EMIT evaluationProgress(after, done, total);
}

void QuantizeWizardState::addEvaluation(const EvalResultView& result)
{
    (result.tag.endsWith(QLatin1String("after")) ? m_after : m_before) = result;
    evaluationAnswered();
}

void QuantizeWizardState::addEvaluationFailure(const QString& message)
{
    if (m_evalMessage.isEmpty())
        m_evalMessage = message;
    evaluationAnswered();
}

void QuantizeWizardState::reportMissingEvaluationText()
{
    Q_EMIT evaluationTextMissing();
}

void QuantizeWizardState::evaluationAnswered()
{
    if (m_evalPending > 0 && --m_evalPending == 0)
        Q_EMIT evaluationFinished(m_evalMessage.isEmpty());
}

} // namespace layerwise::ui
