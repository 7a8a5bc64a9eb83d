// The quantization wizard's last pages: Run (the job's progress, ETA, Cancel), Evaluation
// (perplexity before and after) and Done ("Open it"). They render what the shared state reports.
#include "quantizewizard_pages.h"

#include "moduletreemodel.h"
#include "quantizewizardstate.h"

#include <QDir>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QProgressBar>
#include <QPushButton>
#include <QRadioButton>
#include <QSpinBox>
#include <QVBoxLayout>
#include <algorithm>

namespace layerwise::ui {

namespace {

QString durationText(double seconds)
{
    if (seconds < 0)
        return QObject::tr("estimating…");
    if (seconds < 60)
        return QObject::tr("%1 s").arg(seconds, 0, 'f', 0);
    if (seconds < 3600)
        return QObject::tr("%1 min %2 s").arg(static_cast<int>(seconds) / 60).arg(static_cast<int>(seconds) % 60);
    return QObject::tr("%1 h %2 min").arg(static_cast<int>(seconds) / 3600).arg(static_cast<int>(seconds) % 3600 / 60);
}

} // namespace

// ---- Run ----

QuantizeRunPage::QuantizeRunPage(QuantizeWizardState* state, QWidget* parent) : QWizardPage(parent), m_state(state)
{
    setTitle(tr("Quantizing"));
    setSubTitle(tr("The new folder appears only when every tensor is written; Cancel leaves nothing behind."));
    setCommitPage(true);
    auto* layout = new QVBoxLayout(this);
    m_bar = new QProgressBar(this);
    m_bar->setObjectName(QStringLiteral("runProgress"));
    m_item = new QLabel(this);
    m_item->setObjectName(QStringLiteral("runItem"));
    m_item->setWordWrap(true);
    m_error = new QLabel(this);
    m_error->setObjectName(QStringLiteral("runLayerError"));
    m_eta = new QLabel(this);
    m_eta->setObjectName(QStringLiteral("runEta"));
    m_status = new QLabel(this);
    m_status->setObjectName(QStringLiteral("runStatus"));
    m_status->setWordWrap(true);
    m_resume = new QLabel(this);
    m_resume->setObjectName(QStringLiteral("runResume"));
    m_resume->setWordWrap(true);
    m_resume->hide();
    m_cancel = new QPushButton(tr("Cancel the run"), this);
    m_cancel->setObjectName(QStringLiteral("cancelRun"));
    m_cancel->setToolTip(tr("Stop quantizing: the new folder never appears (GPTQ keeps its finished layers in "
                            "<folder>.partial, and a run with the same settings resumes from there)"));
    connect(m_cancel, &QPushButton::clicked, this, &QuantizeRunPage::cancelRequested);
    auto* row = new QHBoxLayout;
    row->addWidget(m_eta, 1);
    row->addWidget(m_cancel);
    layout->addWidget(m_resume);
    layout->addWidget(m_bar);
    layout->addWidget(m_item);
    layout->addWidget(m_error);
    layout->addLayout(row);
    layout->addSpacing(8);
    layout->addWidget(m_status);
    layout->addStretch(1);
    connect(state, &QuantizeWizardState::runStarted, this, &QuantizeRunPage::showStart);
    connect(state, &QuantizeWizardState::runCancelling, this, &QuantizeRunPage::showCancelling);
    connect(state, &QuantizeWizardState::progressChanged, this, &QuantizeRunPage::showProgress);
    connect(state, &QuantizeWizardState::runFinished, this, &QuantizeRunPage::showFinished);
}

void QuantizeRunPage::initializePage()
{
    setSubTitle(m_state->methodInfo().needsCalibration
                    ? tr("The new folder appears only when every layer is written. Cancel keeps the finished layers in "
                         "<folder>.partial, from which a run with the same settings resumes.")
                    : tr("The new folder appears only when every tensor is written; Cancel leaves nothing behind."));
    if (m_state->isRunning()) {
        // A run cancelled by Back is still stopping on the engine thread.
        m_status->setText(tr("The previous run is still stopping. Go Back, then Next to run again."));
        return;
    }
    Q_EMIT runRequested();
}

void QuantizeRunPage::cleanupPage()
{
    Q_EMIT cancelRequested(); // Back during the run cancels it: nothing is written
}

bool QuantizeRunPage::isComplete() const
{
    return !m_state->isRunning() && m_state->runSucceeded();
}

void QuantizeRunPage::showStart()
{
    const QString model = QFileInfo(m_state->source()).fileName();
    const bool gptq = m_state->methodInfo().needsCalibration;
    m_bar->setRange(0, 0); // busy until the first progress report
    m_item->setText(gptq ? tr("Reading %1 and the calibration text…").arg(model) : tr("Reading %1…").arg(model));
    m_eta->setText(tr("Time left: %1").arg(durationText(-1)));
    m_error->setVisible(gptq);
    m_error->clear();
    m_status->clear();
    const GptqPartialRun partial = m_state->partialRun();
    m_resume->setVisible(!partial.folder.isEmpty());
    if (!partial.folder.isEmpty())
        m_resume->setText(m_state->request().restart
                              ? tr("The interrupted run in %1 is discarded: this run starts afresh.")
                                    .arg(QDir::toNativeSeparators(partial.folder).toHtmlEscaped())
                              : tr("<b>Resuming the interrupted run</b> in %1: its finished layers (%2) are "
                                   "reused; the run goes on with the next one.")
                                    .arg(QDir::toNativeSeparators(partial.folder).toHtmlEscaped())
                                    .arg(partial.layersDone));
    m_cancel->setEnabled(true);
}

void QuantizeRunPage::showCancelling()
{
    m_cancel->setEnabled(false);
    m_status->setText(tr("Cancelling…"));
}

void QuantizeRunPage::showProgress()
{
    const QuantizeProgressView& p = m_state->progress();
    // Bytes can exceed an int: the bar counts per mille.
    m_bar->setRange(0, 1000);
    m_bar->setValue(p.total > 0 ? static_cast<int>(1000.0 * static_cast<double>(p.done) / static_cast<double>(p.total)) : 0);
    m_eta->setText(tr("Time left: %1").arg(durationText(p.etaSeconds)));
    if (p.layers > 0) { // GPTQ: per decoder layer, and per module within it
        if (p.item.isEmpty())
            m_item->setText(tr("Layer %1 of %2 done").arg(p.layer + 1).arg(p.layers));
        else
            m_item->setText(tr("Layer %1 of %2: %3 quantized").arg(p.layer + 1).arg(p.layers).arg(p.item));
        if (p.layerError >= 0)
            m_error->setText(tr("%1: average loss %2 (its error on the calibration text; lower is better)")
                                 .arg(p.item.section(QLatin1Char('.'), -2))
                                 .arg(p.layerError, 0, 'g', 4));
        return;
    }
    m_item->setText(tr("Quantizing %1").arg(p.item));
    if (p.layerError >= 0)
        m_error->setText(tr("Error of this layer: %1").arg(p.layerError, 0, 'g', 4));
}

void QuantizeRunPage::showFinished(bool ok)
{
    m_bar->setRange(0, 1000);
    m_cancel->setEnabled(false);
    if (ok)
        showSucceeded();
    else
        showFailed();
    Q_EMIT completeChanged();
}

void QuantizeRunPage::showSucceeded()
{
    const QuantizeResultView& r = m_state->result();
    m_bar->setValue(1000);
    QString what = tr("%1 linear layers quantized: %2 of tensors written to %3")
                       .arg(r.quantizedLinears)
                       .arg(formatBytes(r.weightBytes), QDir::toNativeSeparators(r.folder));
    if (r.keptLinears > 0)
        what += tr(". %1 kept as stored (sizes not multiples of 32)")
                    .arg(r.keptLinears == 1 ? tr("1 linear layer") : tr("%1 linear layers").arg(r.keptLinears));
    if (r.resumedLayers > 0)
        what += tr(". %1 from the interrupted run")
                    .arg(r.resumedLayers == 1 ? tr("1 decoder layer came") : tr("%1 decoder layers came").arg(r.resumedLayers));
    m_item->setText(what);
    m_error->hide(); // the last module's loss says nothing about the whole model: the Evaluation page does
    m_eta->setText(tr("Done in %1").arg(durationText(r.seconds)));
    m_status->setText(tr("<b style='color:#15803d'>The quantized model is saved.</b> Next: compare its perplexity "
                         "with the original's."));
}

void QuantizeRunPage::showFailed()
{
    const QString message = m_state->runMessage().toHtmlEscaped();
    m_bar->setValue(0);
    m_eta->clear();
    m_status->setText(m_state->runWasCancelled()
                          ? tr("<b>Cancelled.</b> %1 Go Back, then Next to run again.").arg(message)
                          : tr("<b style='color:#dc2626'>Quantization failed:</b> %1<br>The new folder was not "
                               "written. Go Back to change the settings and run again.")
                                .arg(message));
}

// ---- Evaluation ----

QuantizeEvaluatePage::QuantizeEvaluatePage(QuantizeWizardState* state, QWidget* parent)
    : QWizardPage(parent), m_state(state)
{
    setTitle(tr("Evaluation"));
    setSubTitle(tr("Perplexity of the original and of the quantized model on the same text (optional)."));
    auto* layout = new QVBoxLayout(this);
    createTextChoice(layout);
    auto* form = new QFormLayout;
    m_context = new QSpinBox(this);
    m_context->setObjectName(QStringLiteral("evalContext"));
    m_context->setRange(0, 1 << 20);
    m_context->setSpecialValueText(tr("the model's (at most 2048)"));
    m_context->setSuffix(tr(" tokens"));
    m_stride = new QSpinBox(this);
    m_stride->setObjectName(QStringLiteral("evalStride"));
    m_stride->setRange(0, 1 << 20);
    m_stride->setSpecialValueText(tr("half the window"));
    m_stride->setSuffix(tr(" tokens"));
    form->addRow(tr("Window:"), m_context);
    form->addRow(tr("Step:"), m_stride);
    m_button = new QPushButton(tr("Measure perplexity"), this);
    m_button->setObjectName(QStringLiteral("evaluate"));
    connect(m_button, &QPushButton::clicked, this, &QuantizeEvaluatePage::evaluationRequested);
    m_bar = new QProgressBar(this);
    m_bar->hide();
    m_result = new QLabel(this);
    m_result->setObjectName(QStringLiteral("evalResult"));
    m_result->setWordWrap(true);
    m_result->setTextInteractionFlags(Qt::TextSelectableByMouse);
    layout->addLayout(form);
    auto* buttonRow = new QHBoxLayout;
    buttonRow->addWidget(m_button);
    buttonRow->addStretch(1);
    layout->addLayout(buttonRow);
    layout->addWidget(m_bar);
    layout->addWidget(m_result);
    layout->addStretch(1);

    const auto stored = [this] { store(); };
    for (QRadioButton* b : {m_default, m_file})
        connect(b, &QRadioButton::toggled, this, stored);
    connect(m_path, &QLineEdit::textChanged, this, stored);
    connect(m_context, &QSpinBox::valueChanged, this, stored);
    connect(m_stride, &QSpinBox::valueChanged, this, stored);
    connect(state, &QuantizeWizardState::evaluationStarted, this, &QuantizeEvaluatePage::showStarted);
    connect(state, &QuantizeWizardState::evaluationProgress, this, &QuantizeEvaluatePage::showProgress);
    connect(state, &QuantizeWizardState::evaluationFinished, this, &QuantizeEvaluatePage::showFinished);
    connect(state, &QuantizeWizardState::evaluationTextMissing, this, &QuantizeEvaluatePage::showMissingText);
    store();
}

// The end of the default corpus, or a file of one's own.
void QuantizeEvaluatePage::createTextChoice(QVBoxLayout* layout)
{
    const bool haveDefault = m_state->hasDefaultCalibration();
    m_default = new QRadioButton(haveDefault ? tr("The end of the default corpus (the last %1 characters of %2)")
                                                   .arg(QuantizeWizardState::defaultEvalChars)
                                                   .arg(QFileInfo(m_state->calibrationDefault()).fileName())
                                             : tr("The end of the default corpus (not installed)"),
                                 this);
    m_default->setObjectName(QStringLiteral("evalDefault"));
    m_default->setEnabled(haveDefault);
    m_file = new QRadioButton(tr("A text file (UTF-8):"), this);
    m_file->setObjectName(QStringLiteral("evalFile"));
    (haveDefault ? m_default : m_file)->setChecked(true);
    m_path = new QLineEdit(this);
    m_path->setObjectName(QStringLiteral("evalPath"));
    auto* browse = new QPushButton(tr("Choose…"), this);
    connect(browse, &QPushButton::clicked, this, [this] {
        const QString path = QFileDialog::getOpenFileName(this, tr("Evaluation text"), QString(), tr("Text (*.txt);;All files (*)"));
        if (!path.isEmpty()) {
            m_path->setText(path);
            m_file->setChecked(true);
        }
    });
    auto* row = new QHBoxLayout;
    row->addWidget(m_path, 1);
    row->addWidget(browse);
    layout->addWidget(m_default);
    layout->addWidget(m_file);
    layout->addLayout(row);
}

void QuantizeEvaluatePage::store()
{
    QuantizeChoices c = m_state->choices();
    c.defaultEvalText = m_default->isChecked();
    c.evalFile = m_path->text();
    c.evalContext = m_context->value();
    c.evalStride = m_stride->value();
    m_state->setChoices(c);
}

void QuantizeEvaluatePage::initializePage()
{
    m_result->setText(tr("Optional: press <i>Measure perplexity</i>, or Next to skip."));
}

bool QuantizeEvaluatePage::isComplete() const
{
    return !m_state->isEvaluating();
}

void QuantizeEvaluatePage::showStarted()
{
    m_button->setEnabled(false);
    m_bar->setRange(0, 0);
    m_bar->show();
    m_result->setText(tr("Measuring the original model…"));
    Q_EMIT completeChanged();
}

void QuantizeEvaluatePage::showProgress(bool after, int done, int total)
{
    m_bar->setRange(0, 2 * std::max(total, 1));
    m_bar->setValue((after ? total : 0) + done);
    m_result->setText(after ? tr("Measuring the quantized model…") : tr("Measuring the original model…"));
}

void QuantizeEvaluatePage::showFinished(bool ok)
{
    m_bar->hide();
    m_button->setEnabled(true);
    Q_EMIT completeChanged();
    if (!ok) {
        m_result->setText(tr("<b style='color:#dc2626'>The evaluation failed:</b> %1")
                              .arg(m_state->evaluationMessage().toHtmlEscaped()));
        return;
    }
    const EvalResultView& before = m_state->before();
    const EvalResultView& after = m_state->after();
    const double change = before.perplexity > 0 ? 100.0 * (after.perplexity / before.perplexity - 1.0) : 0.0;
    m_result->setText(tr("<table cellpadding=3>"
                         "<tr><td>Perplexity of the original:</td><td><b>%1</b></td></tr>"
                         "<tr><td>Perplexity quantized:</td><td><b>%2</b> (%3%4%)</td></tr>"
                         "<tr><td colspan=2>%5 tokens scored in %6 windows. Lower is better; a few per cent more "
                         "is usual for 4-bit, under one per cent for int8.</td></tr></table>")
                          .arg(before.perplexity, 0, 'f', 4)
                          .arg(after.perplexity, 0, 'f', 4)
                          .arg(change >= 0 ? QStringLiteral("+") : QString())
                          .arg(change, 0, 'f', 2)
                          .arg(after.tokens)
                          .arg(after.windows));
}

void QuantizeEvaluatePage::showMissingText()
{
    m_result->setText(tr("<b style='color:#dc2626'>There is no text to measure:</b> choose a readable, "
                         "non-empty UTF-8 text file."));
}

// ---- Done ----

QuantizeDonePage::QuantizeDonePage(QuantizeWizardState* state, QWidget* parent) : QWizardPage(parent), m_state(state)
{
    setTitle(tr("Saved"));
    auto* layout = new QVBoxLayout(this);
    m_text = new QLabel(this);
    m_text->setObjectName(QStringLiteral("doneText"));
    m_text->setWordWrap(true);
    m_text->setTextInteractionFlags(Qt::TextSelectableByMouse);
    auto* open = new QPushButton(tr("Open it"), this);
    open->setObjectName(QStringLiteral("openResult"));
    open->setToolTip(tr("Open the quantized model in the main window and load it"));
    connect(open, &QPushButton::clicked, this, &QuantizeDonePage::openRequested);
    layout->addWidget(m_text);
    auto* row = new QHBoxLayout;
    row->addWidget(open);
    row->addStretch(1);
    layout->addLayout(row);
    layout->addStretch(1);
}

void QuantizeDonePage::initializePage()
{
    const QuantizeResultView& r = m_state->result();
    const QuantizeRequest request = m_state->request();
    const bool gptq = m_state->methodInfo().needsCalibration;
    const QString how = gptq ? tr("GPTQ %1-bit, %2")
                                   .arg(request.bits)
                                   .arg(request.groupSize < 0 ? tr("one group per row") : tr("groups of %1").arg(request.groupSize))
                             : m_state->method() + (request.doubleQuant ? tr(" with double quantization") : QString());
    QString text = tr("The quantized model is in <b>%1</b>: %2 linear layers quantized (%3), %4 of tensors.")
                       .arg(QDir::toNativeSeparators(r.folder).toHtmlEscaped())
                       .arg(r.quantizedLinears)
                       .arg(how)
                       .arg(formatBytes(r.weightBytes));
    if (m_state->after().perplexity > 0)
        text += tr("<br>Perplexity %1 → %2.").arg(m_state->before().perplexity, 0, 'f', 4).arg(m_state->after().perplexity, 0, 'f', 4);
    text += tr("<br><br><i>Open it</i> opens the folder in the main window and loads it; <i>Finish</i> closes the "
               "wizard. %1")
                .arg(gptq ? tr("It is in AutoGPTQ's format (tensors packed as AutoGPTQ packs them, quantize_config.json).")
                          : tr("transformers + bitsandbytes load the folder as it is."));
    m_text->setText(text);
}

} // namespace layerwise::ui
