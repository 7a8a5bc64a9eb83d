// The quantization wizard itself: it assembles the pages around their shared state, sends the
// jobs (size previews, the quantization, the perplexity runs) to the engine worker and feeds
// the worker's answers back into the state. The pages are in quantizewizard_pages.cpp,
// quantizewizard_parameters.cpp and quantizewizard_run.cpp.
#include "quantizewizard.h"

#include "engineworker.h"
#include "quantizewizard_pages.h"

#include <QFileInfo>
#include <QUuid>
#include <utility>

namespace layerwise::ui {

QuantizeWizard::QuantizeWizard(EngineWorker* worker, const QString& source, const PlanSettings& settings,
                               const QString& calibration, QWidget* parent)
    : QWizard(parent), m_worker(worker), m_state(new QuantizeWizardState(source, settings, calibration, this)),
      m_tagPrefix(QStringLiteral("wizard-%1:").arg(QUuid::createUuid().toString(QUuid::Id128)))
{
    qRegisterMetaType<QuantizeRequest>();
    qRegisterMetaType<QuantizeProgressView>();
    qRegisterMetaType<QuantizeResultView>();
    qRegisterMetaType<EvalRequest>();
    qRegisterMetaType<EvalResultView>();
    qRegisterMetaType<PlanSettings>();
    qRegisterMetaType<PlanView>();
    setObjectName(QStringLiteral("quantizeWizard"));
    setWindowTitle(tr("Quantize %1").arg(QFileInfo(source).fileName()));
    setWizardStyle(QWizard::ClassicStyle);
    setOption(QWizard::NoBackButtonOnLastPage);
    setOption(QWizard::NoCancelButtonOnLastPage);
    setMinimumSize(640, 520);
    // The Run page commits: once the folder is written, the pages after it do not go back to rerun it.
    setButtonText(QWizard::CommitButton, buttonText(QWizard::NextButton));
    connectWorker();
    addPages();
}

QuantizeWizard::~QuantizeWizard()
{
    if (m_state->isRunning())
        m_worker->cancelJob();
}

// Requests go to the worker's thread and answers come back, all queued.
void QuantizeWizard::connectWorker()
{
    connect(this, &QuantizeWizard::requestPreview, m_worker, &EngineWorker::previewPlan, Qt::QueuedConnection);
    connect(this, &QuantizeWizard::requestQuantize, m_worker, &EngineWorker::quantize, Qt::QueuedConnection);
    connect(this, &QuantizeWizard::requestEvaluate, m_worker, &EngineWorker::evaluate, Qt::QueuedConnection);
    connect(m_worker, &EngineWorker::previewPlanned, this, &QuantizeWizard::onPreview, Qt::QueuedConnection);
    connect(m_worker, &EngineWorker::quantizeProgress, this, &QuantizeWizard::onProgress, Qt::QueuedConnection);
    connect(m_worker, &EngineWorker::quantized, this, &QuantizeWizard::onQuantized, Qt::QueuedConnection);
    connect(m_worker, &EngineWorker::quantizeFailed, this, &QuantizeWizard::onQuantizeFailed, Qt::QueuedConnection);
    connect(m_worker, &EngineWorker::evalProgress, this, &QuantizeWizard::onEvalProgress, Qt::QueuedConnection);
    connect(m_worker, &EngineWorker::evaluated, this, &QuantizeWizard::onEvaluated, Qt::QueuedConnection);
    connect(m_worker, &EngineWorker::evalFailed, this, &QuantizeWizard::onEvalFailed, Qt::QueuedConnection);
}

// The pages, each on the shared state; their actions become the wizard's jobs.
void QuantizeWizard::addPages()
{
    auto* method = new QuantizeMethodPage(m_state, this);
    m_parametersPage = new QuantizeParametersPage(m_state, this);
    auto* calibration = new QuantizeCalibrationPage(m_state, this);
    auto* run = new QuantizeRunPage(m_state, this);
    auto* evaluation = new QuantizeEvaluatePage(m_state, this);
    auto* done = new QuantizeDonePage(m_state, this);
    setPage(MethodPage, method);
    setPage(ParametersPage, m_parametersPage);
    setPage(CalibrationPage, calibration);
    setPage(RunPage, run);
    setPage(EvaluatePage, evaluation);
    setPage(DonePage, done);
    setStartId(MethodPage);
    connect(m_parametersPage, &QuantizeParametersPage::previewWanted, this, &QuantizeWizard::updatePreview);
    connect(run, &QuantizeRunPage::runRequested, this, &QuantizeWizard::startRun);
    connect(run, &QuantizeRunPage::cancelRequested, this, &QuantizeWizard::cancelRun);
    connect(evaluation, &QuantizeEvaluatePage::evaluationRequested, this, &QuantizeWizard::evaluate);
    connect(done, &QuantizeDonePage::openRequested, this, &QuantizeWizard::openResult);
    // Back to the parameters after a cancelled GPTQ run: its kept layers are offered for resuming.
    connect(this, &QWizard::currentIdChanged, this, [this](int id) {
        if (id == ParametersPage)
            m_parametersPage->showPartialRun();
    });
}

QString QuantizeWizard::evaluationText() const
{
    return m_state->evaluationText();
}

int QuantizeWizard::nextId() const
{
    switch (currentId()) {
    case MethodPage: return ParametersPage;
    case ParametersPage: return methodInfo().needsCalibration ? CalibrationPage : RunPage;
    case CalibrationPage: return RunPage;
    case RunPage: return EvaluatePage;
    case EvaluatePage: return DonePage;
    default: return -1;
    }
}

void QuantizeWizard::reject()
{
    if (m_state->isRunning() || m_state->isEvaluating())
        m_worker->cancelJob(); // the engine removes what it had started; nothing half-written stays
    QWizard::reject();
}

// ---- The size preview ----

// The sizes and verdicts of the model as it is and quantized, for the plan's devices and limits.
void QuantizeWizard::updatePreview()
{
    PlanSettings original = m_state->planSettings();
    original.quant = QStringLiteral("none");
    PlanSettings quantized = m_state->planSettings();
    quantized.quant = m_state->previewQuant();
    ++m_previewSerial;
    m_state->startPreview();
    Q_EMIT requestPreview(original, m_tagPrefix + QStringLiteral("original:%1").arg(m_previewSerial));
    Q_EMIT requestPreview(quantized, m_tagPrefix + QStringLiteral("quantized:%1").arg(m_previewSerial));
}

void QuantizeWizard::onPreview(const QString& tag, const PlanView& plan)
{
    if (!tag.startsWith(m_tagPrefix))
        return; // another window's preview
    const QString rest = tag.mid(m_tagPrefix.size());
    if (rest.section(QLatin1Char(':'), 1).toInt() != m_previewSerial)
        return; // an answer to settings changed since
    const bool quantized = !rest.startsWith(QLatin1String("original"));
    m_state->setPreview(quantized, plan);
    if (rest.startsWith(QLatin1String("quantized")))
        Q_EMIT previewShown();
}

// ---- The quantization run ----

void QuantizeWizard::startRun()
{
    m_state->startRun();
    m_worker->resetJobCancel(); // here: a Cancel pressed before the worker starts still counts
    Q_EMIT requestQuantize(m_state->request());
}

void QuantizeWizard::cancelRun()
{
    if (!m_state->isRunning())
        return;
    m_worker->cancelJob();
    m_state->reportCancelling();
}

void QuantizeWizard::onProgress(const QuantizeProgressView& p)
{
    if (m_state->isRunning())
        m_state->setProgress(p);
}

void QuantizeWizard::onQuantized(const QuantizeResultView& r)
{
    if (!m_state->isRunning())
        return;
    m_state->finishRun(r);
    Q_EMIT runFinished(true);
}

void QuantizeWizard::onQuantizeFailed(const QString& message, bool cancelled)
{
    if (!m_state->isRunning())
        return;
    m_state->failRun(message, cancelled);
    Q_EMIT runFinished(false);
}

// ---- The evaluation ----

void QuantizeWizard::evaluate()
{
    if (m_state->isEvaluating() || m_state->result().folder.isEmpty())
        return;
    const QString text = evaluationText();
    if (text.trimmed().isEmpty()) {
        m_state->reportMissingEvaluationText();
        Q_EMIT evaluationFinished(false);
        return;
    }
    m_state->startEvaluation(2);
    m_worker->resetJobCancel();
    for (const auto& [tag, folder] : {std::pair<QString, QString>{QStringLiteral("before"), m_state->source()},
                                      {QStringLiteral("after"), m_state->result().folder}}) {
        EvalRequest r;
        r.tag = m_tagPrefix + tag;
        r.model = folder;
        r.text = text;
        r.context = m_state->choices().evalContext;
        r.stride = m_state->choices().evalStride;
        Q_EMIT requestEvaluate(r);
    }
}

void QuantizeWizard::onEvalProgress(const QString& tag, int done, int total)
{
    if (!tag.startsWith(m_tagPrefix) || !m_state->isEvaluating())
        return;
    m_state->setEvaluationProgress(tag.endsWith(QLatin1String("after")), done, total);
}

void QuantizeWizard::onEvaluated(const EvalResultView& r)
{
    if (!r.tag.startsWith(m_tagPrefix) || !m_state->isEvaluating())
        return;
    m_state->addEvaluation(r);
    if (!m_state->isEvaluating())
        Q_EMIT evaluationFinished(m_state->evaluationMessage().isEmpty());
}

void QuantizeWizard::onEvalFailed(const QString& tag, const QString& message, bool cancelled)
{
    if (!tag.startsWith(m_tagPrefix) || !m_state->isEvaluating())
        return;
    m_state->addEvaluationFailure(cancelled ? tr("cancelled") : message);
    if (!m_state->isEvaluating())
        Q_EMIT evaluationFinished(false);
}

void QuantizeWizard::openResult()
{
    if (m_state->result().folder.isEmpty())
        return;
    Q_EMIT openRequested(m_state->result().folder);
    accept();
}

} // namespace layerwise::ui
