// The quantization wizard's last pages: Run (the job on the engine thread: progress, ETA,
// Cancel), Evaluation (perplexity before and after) and Done ("Open it").
#include "quantizewizard.h"

#include "engineworker.h"
#include "moduletreemodel.h"
#include "quantizewizard_pages.h"

#include <QDir>
#include <QFile>
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
#include <utility>

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

constexpr qint64 defaultEvalChars = 3000;

} // namespace

// ---- The wizard's jobs ----

void QuantizeWizard::startRun()
{
    if (m_running) {
        // A run cancelled by Back is still stopping on the engine thread.
        m_runStatus->setText(tr("The previous run is still stopping. Go Back, then Next to run again."));
        return;
    }
    m_running = true;
    m_runOk = false;
    m_runMessage.clear();
    m_progress = {};
    m_result = {};
    m_before = m_after = {};
    m_runBar->setRange(0, 0); // busy until the first progress report
    m_runItem->setText(tr("Reading %1…").arg(QFileInfo(m_source).fileName()));
    m_runEta->setText(tr("Time left: %1").arg(durationText(-1)));
    m_runError->setVisible(methodInfo().needsCalibration);
    m_runError->clear();
    m_runStatus->clear();
    const QuantizeRequest r = request();
    const GptqPartialRun partial = partialRun();
    m_runResume->setVisible(!partial.folder.isEmpty());
    if (!partial.folder.isEmpty())
        m_runResume->setText(r.restart ? tr("The interrupted run in %1 is discarded: this run starts afresh.")
                                             .arg(QDir::toNativeSeparators(partial.folder).toHtmlEscaped())
                                       : tr("<b>Resuming the interrupted run</b> in %1: its finished layers (%2) are "
                                            "reused; the run goes on with the next one.")
                                             .arg(QDir::toNativeSeparators(partial.folder).toHtmlEscaped())
                                             .arg(partial.layersDone));
    if (methodInfo().needsCalibration)
        m_runItem->setText(tr("Reading %1 and the calibration text…").arg(QFileInfo(m_source).fileName()));
    m_cancel->setEnabled(true);
    m_worker->resetJobCancel(); // here: a Cancel pressed before the worker starts still counts
    Q_EMIT requestQuantize(r);
}

void QuantizeWizard::cancelRun()
{
    if (!m_running)
        return;
    m_worker->cancelJob();
    m_cancel->setEnabled(false);
    m_runStatus->setText(tr("Cancelling…"));
}

QString QuantizeWizard::runMessage() const
{
    return m_runMessage;
}

void QuantizeWizard::onProgress(const QuantizeProgressView& p)
{
    if (!m_running)
        return;
    m_progress = p;
    // Bytes can exceed an int: the bar counts per mille.
    m_runBar->setRange(0, 1000);
    m_runBar->setValue(p.total > 0 ? static_cast<int>(1000.0 * static_cast<double>(p.done) / static_cast<double>(p.total)) : 0);
    m_runEta->setText(tr("Time left: %1").arg(durationText(p.etaSeconds)));
    if (p.layers > 0) { // GPTQ: per decoder layer, and per module within it
        if (p.item.isEmpty())
            m_runItem->setText(tr("Layer %1 of %2 done").arg(p.layer + 1).arg(p.layers));
        else
            m_runItem->setText(tr("Layer %1 of %2: %3 quantized").arg(p.layer + 1).arg(p.layers).arg(p.item));
        if (p.layerError >= 0)
            m_runError->setText(tr("%1: average loss %2 (its error on the calibration text; lower is better)")
                                    .arg(p.item.section(QLatin1Char('.'), -2))
                                    .arg(p.layerError, 0, 'g', 4));
        return;
    }
    m_runItem->setText(tr("Quantizing %1").arg(p.item));
    if (p.layerError >= 0)
        m_runError->setText(tr("Error of this layer: %1").arg(p.layerError, 0, 'g', 4));
}

void QuantizeWizard::onQuantized(const QuantizeResultView& r)
{
    if (!m_running)
        return;
    m_running = false;
    m_runOk = true;
    m_result = r;
    m_runBar->setRange(0, 1000);
    m_runBar->setValue(1000);
    QString what = tr("%1 linear layers quantized: %2 of tensors written to %3")
                       .arg(r.quantizedLinears)
                       .arg(formatBytes(r.weightBytes), QDir::toNativeSeparators(r.folder));
    if (r.keptLinears > 0)
        what += tr(". %1 kept as stored (sizes not multiples of 32)")
                    .arg(r.keptLinears == 1 ? tr("1 linear layer") : tr("%1 linear layers").arg(r.keptLinears));
    if (r.resumedLayers > 0)
        what += tr(". %1 from the interrupted run")
                    .arg(r.resumedLayers == 1 ? tr("1 decoder layer came") : tr("%1 decoder layers came").arg(r.resumedLayers));
    m_runItem->setText(what);
    m_runError->hide(); // the last module's loss says nothing about the whole model: the Evaluation page does
    m_runEta->setText(tr("Done in %1").arg(durationText(r.seconds)));
    m_runStatus->setText(tr("<b style='color:#15803d'>The quantized model is saved.</b> Next: compare its perplexity "
                            "with the original's."));
    m_cancel->setEnabled(false);
    static_cast<QuantizeRunPage*>(page(RunPage))->notifyChanged();
    Q_EMIT runFinished(true);
}

void QuantizeWizard::onQuantizeFailed(const QString& message, bool cancelled)
{
    if (!m_running)
        return;
    m_running = false;
    m_runOk = false;
    m_runMessage = message;
    m_runBar->setRange(0, 1000);
    m_runBar->setValue(0);
    m_cancel->setEnabled(false);
    m_runEta->clear();
    m_runStatus->setText(cancelled ? tr("<b>Cancelled.</b> %1 Go Back, then Next to run again.")
                                         .arg(message.toHtmlEscaped())
                                   : tr("<b style='color:#dc2626'>Quantization failed:</b> %1<br>The new folder was not "
                                        "written. Go Back to change the settings and run again.")
                                         .arg(message.toHtmlEscaped()));
    static_cast<QuantizeRunPage*>(page(RunPage))->notifyChanged();
    Q_EMIT runFinished(false);
}

QString QuantizeWizard::evaluationText() const
{
    if (m_evalDefault->isChecked())
        return tailOf(m_calibration, defaultEvalChars);
    QFile f(m_evalPath->text().trimmed());
    if (!f.open(QIODevice::ReadOnly))
        return {};
    return QString::fromUtf8(f.readAll());
}

void QuantizeWizard::evaluate()
{
    if (m_evalPending > 0 || m_result.folder.isEmpty())
        return;
    const QString text = evaluationText();
    if (text.trimmed().isEmpty()) {
        m_evalResult->setText(tr("<b style='color:#dc2626'>There is no text to measure:</b> choose a readable, "
                                 "non-empty UTF-8 text file."));
        Q_EMIT evaluationFinished(false);
        return;
    }
    m_before = m_after = {};
    m_evalMessage.clear();
    m_evalPending = 2;
    m_evalButton->setEnabled(false);
    m_evalBar->setRange(0, 0);
    m_evalBar->show();
    m_evalResult->setText(tr("Measuring the original model…"));
    static_cast<QuantizeEvaluatePage*>(page(EvaluatePage))->notifyChanged();
    m_worker->resetJobCancel();
    for (const auto& [tag, folder] : {std::pair<QString, QString>{QStringLiteral("before"), m_source},
                                      {QStringLiteral("after"), m_result.folder}}) {
        EvalRequest r;
        r.tag = m_tagPrefix + tag;
        r.model = folder;
        r.text = text;
        r.context = m_evalContext->value();
        r.stride = m_evalStride->value();
        Q_EMIT requestEvaluate(r);
    }
}

void QuantizeWizard::onEvalProgress(const QString& tag, int done, int total)
{
    if (!tag.startsWith(m_tagPrefix) || m_evalPending == 0)
        return;
    const bool after = tag.endsWith(QLatin1String("after"));
    m_evalBar->setRange(0, 2 * std::max(total, 1));
    m_evalBar->setValue((after ? total : 0) + done);
    m_evalResult->setText(after ? tr("Measuring the quantized model…") : tr("Measuring the original model…"));
}

void QuantizeWizard::onEvaluated(const EvalResultView& r)
{
    if (!r.tag.startsWith(m_tagPrefix) || m_evalPending == 0)
        return;
    (r.tag.endsWith(QLatin1String("after")) ? m_after : m_before) = r;
    if (--m_evalPending == 0)
        showEvaluation();
}

void QuantizeWizard::onEvalFailed(const QString& tag, const QString& message, bool cancelled)
{
    if (!tag.startsWith(m_tagPrefix) || m_evalPending == 0)
        return;
    if (m_evalMessage.isEmpty())
        m_evalMessage = cancelled ? tr("cancelled") : message;
    if (--m_evalPending == 0)
        showEvaluation();
}

void QuantizeWizard::showEvaluation()
{
    m_evalBar->hide();
    m_evalButton->setEnabled(true);
    static_cast<QuantizeEvaluatePage*>(page(EvaluatePage))->notifyChanged();
    if (!m_evalMessage.isEmpty()) {
        m_evalResult->setText(tr("<b style='color:#dc2626'>The evaluation failed:</b> %1").arg(m_evalMessage.toHtmlEscaped()));
        Q_EMIT evaluationFinished(false);
        return;
    }
    const double change = m_before.perplexity > 0 ? 100.0 * (m_after.perplexity / m_before.perplexity - 1.0) : 0.0;
    m_evalResult->setText(tr("<table cellpadding=3>"
                             "<tr><td>Perplexity of the original:</td><td><b>%1</b></td></tr>"
                             "<tr><td>Perplexity quantized:</td><td><b>%2</b> (%3%4%)</td></tr>"
                             "<tr><td colspan=2>%5 tokens scored in %6 windows. Lower is better; a few per cent more "
                             "is usual for 4-bit, under one per cent for int8.</td></tr></table>")
                              .arg(m_before.perplexity, 0, 'f', 4)
                              .arg(m_after.perplexity, 0, 'f', 4)
                              .arg(change >= 0 ? QStringLiteral("+") : QString())
                              .arg(change, 0, 'f', 2)
                              .arg(m_after.tokens)
                              .arg(m_after.windows));
    Q_EMIT evaluationFinished(true);
}

void QuantizeWizard::openResult()
{
    if (m_result.folder.isEmpty())
        return;
    Q_EMIT openRequested(m_result.folder);
    accept();
}

// ---- Run ----

QuantizeRunPage::QuantizeRunPage(QuantizeWizard* wizard) : QWizardPage(wizard), m_wizard(wizard)
{
    setTitle(tr("Quantizing"));
    setSubTitle(tr("The new folder appears only when every tensor is written; Cancel leaves nothing behind."));
    setCommitPage(true);
    auto* layout = new QVBoxLayout(this);
    wizard->m_runBar = new QProgressBar(this);
    wizard->m_runBar->setObjectName(QStringLiteral("runProgress"));
    wizard->m_runItem = new QLabel(this);
    wizard->m_runItem->setObjectName(QStringLiteral("runItem"));
    wizard->m_runItem->setWordWrap(true);
    wizard->m_runError = new QLabel(this);
    wizard->m_runError->setObjectName(QStringLiteral("runLayerError"));
    wizard->m_runEta = new QLabel(this);
    wizard->m_runEta->setObjectName(QStringLiteral("runEta"));
    wizard->m_runStatus = new QLabel(this);
    wizard->m_runStatus->setObjectName(QStringLiteral("runStatus"));
    wizard->m_runStatus->setWordWrap(true);
    wizard->m_runResume = new QLabel(this);
    wizard->m_runResume->setObjectName(QStringLiteral("runResume"));
    wizard->m_runResume->setWordWrap(true);
    wizard->m_runResume->hide();
    wizard->m_cancel = new QPushButton(tr("Cancel the run"), this);
    wizard->m_cancel->setObjectName(QStringLiteral("cancelRun"));
    wizard->m_cancel->setToolTip(tr("Stop quantizing: the new folder never appears (GPTQ keeps its finished layers in "
                                    "<folder>.partial, and a run with the same settings resumes from there)"));
    connect(wizard->m_cancel, &QPushButton::clicked, wizard, &QuantizeWizard::cancelRun);
    auto* row = new QHBoxLayout;
    row->addWidget(wizard->m_runEta, 1);
    row->addWidget(wizard->m_cancel);
    layout->addWidget(wizard->m_runResume);
    layout->addWidget(wizard->m_runBar);
    layout->addWidget(wizard->m_runItem);
    layout->addWidget(wizard->m_runError);
    layout->addLayout(row);
    layout->addSpacing(8);
    layout->addWidget(wizard->m_runStatus);
    layout->addStretch(1);
}

void QuantizeRunPage::initializePage()
{
    setSubTitle(m_wizard->methodInfo().needsCalibration
                    ? tr("The new folder appears only when every layer is written. Cancel keeps the finished layers in "
                         "<folder>.partial, from which a run with the same settings resumes.")
                    : tr("The new folder appears only when every tensor is written; Cancel leaves nothing behind."));
    m_wizard->startRun();
}

void QuantizeRunPage::cleanupPage()
{
    m_wizard->cancelRun(); // Back during the run cancels it: nothing is written
}

bool QuantizeRunPage::isComplete() const
{
    return !m_wizard->m_running && m_wizard->m_runOk;
}

// ---- Evaluation ----

QuantizeEvaluatePage::QuantizeEvaluatePage(QuantizeWizard* wizard) : QWizardPage(wizard), m_wizard(wizard)
{
    setTitle(tr("Evaluation"));
    setSubTitle(tr("Perplexity of the original and of the quantized model on the same text (optional)."));
    auto* layout = new QVBoxLayout(this);
    const bool haveDefault = !wizard->m_calibration.isEmpty() && QFileInfo(wizard->m_calibration).isFile();
    wizard->m_evalDefault = new QRadioButton(haveDefault ? tr("The end of the default corpus (the last %1 characters of %2)")
                                                               .arg(defaultEvalChars)
                                                               .arg(QFileInfo(wizard->m_calibration).fileName())
                                                         : tr("The end of the default corpus (not installed)"),
                                             this);
    wizard->m_evalDefault->setObjectName(QStringLiteral("evalDefault"));
    wizard->m_evalDefault->setEnabled(haveDefault);
    wizard->m_evalFile = new QRadioButton(tr("A text file (UTF-8):"), this);
    wizard->m_evalFile->setObjectName(QStringLiteral("evalFile"));
    (haveDefault ? wizard->m_evalDefault : wizard->m_evalFile)->setChecked(true);
    wizard->m_evalPath = new QLineEdit(this);
    wizard->m_evalPath->setObjectName(QStringLiteral("evalPath"));
    auto* browse = new QPushButton(tr("Choose…"), this);
    connect(browse, &QPushButton::clicked, this, [this] {
        const QString path = QFileDialog::getOpenFileName(this, tr("Evaluation text"), QString(), tr("Text (*.txt);;All files (*)"));
        if (!path.isEmpty()) {
            m_wizard->m_evalPath->setText(path);
            m_wizard->m_evalFile->setChecked(true);
        }
    });
    auto* row = new QHBoxLayout;
    row->addWidget(wizard->m_evalPath, 1);
    row->addWidget(browse);
    auto* form = new QFormLayout;
    wizard->m_evalContext = new QSpinBox(this);
    wizard->m_evalContext->setObjectName(QStringLiteral("evalContext"));
    wizard->m_evalContext->setRange(0, 1 << 20);
    wizard->m_evalContext->setSpecialValueText(tr("the model's (at most 2048)"));
    wizard->m_evalContext->setSuffix(tr(" tokens"));
    wizard->m_evalStride = new QSpinBox(this);
    wizard->m_evalStride->setObjectName(QStringLiteral("evalStride"));
    wizard->m_evalStride->setRange(0, 1 << 20);
    wizard->m_evalStride->setSpecialValueText(tr("half the window"));
    wizard->m_evalStride->setSuffix(tr(" tokens"));
    form->addRow(tr("Window:"), wizard->m_evalContext);
    form->addRow(tr("Step:"), wizard->m_evalStride);
    wizard->m_evalButton = new QPushButton(tr("Measure perplexity"), this);
    wizard->m_evalButton->setObjectName(QStringLiteral("evaluate"));
    connect(wizard->m_evalButton, &QPushButton::clicked, wizard, &QuantizeWizard::evaluate);
    wizard->m_evalBar = new QProgressBar(this);
    wizard->m_evalBar->hide();
    wizard->m_evalResult = new QLabel(this);
    wizard->m_evalResult->setObjectName(QStringLiteral("evalResult"));
    wizard->m_evalResult->setWordWrap(true);
    wizard->m_evalResult->setTextInteractionFlags(Qt::TextSelectableByMouse);
    layout->addWidget(wizard->m_evalDefault);
    layout->addWidget(wizard->m_evalFile);
    layout->addLayout(row);
    layout->addLayout(form);
    auto* buttonRow = new QHBoxLayout;
    buttonRow->addWidget(wizard->m_evalButton);
    buttonRow->addStretch(1);
    layout->addLayout(buttonRow);
    layout->addWidget(wizard->m_evalBar);
    layout->addWidget(wizard->m_evalResult);
    layout->addStretch(1);
}

void QuantizeEvaluatePage::initializePage()
{
    m_wizard->m_evalResult->setText(tr("Optional: press <i>Measure perplexity</i>, or Next to skip."));
}

bool QuantizeEvaluatePage::isComplete() const
{
    return m_wizard->m_evalPending == 0;
}

// ---- Done ----

QuantizeDonePage::QuantizeDonePage(QuantizeWizard* wizard) : QWizardPage(wizard), m_wizard(wizard)
{
    setTitle(tr("Saved"));
    auto* layout = new QVBoxLayout(this);
    wizard->m_doneText = new QLabel(this);
    wizard->m_doneText->setObjectName(QStringLiteral("doneText"));
    wizard->m_doneText->setWordWrap(true);
    wizard->m_doneText->setTextInteractionFlags(Qt::TextSelectableByMouse);
    wizard->m_open = new QPushButton(tr("Open it"), this);
    wizard->m_open->setObjectName(QStringLiteral("openResult"));
    wizard->m_open->setToolTip(tr("Open the quantized model in the main window and load it"));
    connect(wizard->m_open, &QPushButton::clicked, wizard, &QuantizeWizard::openResult);
    layout->addWidget(wizard->m_doneText);
    auto* row = new QHBoxLayout;
    row->addWidget(wizard->m_open);
    row->addStretch(1);
    layout->addLayout(row);
    layout->addStretch(1);
}

void QuantizeDonePage::initializePage()
{
    const QuantizeResultView& r = m_wizard->m_result;
    QString text = tr("The quantized model is in <b>%1</b>: %2 linear layers quantized (%3), %4 of tensors.")
                       .arg(QDir::toNativeSeparators(r.folder).toHtmlEscaped())
                       .arg(r.quantizedLinears)
                       .arg(m_wizard->methodInfo().needsCalibration
                                ? tr("GPTQ %1-bit, %2").arg(m_wizard->request().bits).arg(m_wizard->request().groupSize < 0 ? tr("one group per row") : tr("groups of %1").arg(m_wizard->request().groupSize))
                                : m_wizard->method() + (m_wizard->request().doubleQuant ? tr(" with double quantization") : QString()))
                       .arg(formatBytes(r.weightBytes));
    if (m_wizard->m_after.perplexity > 0)
        text += tr("<br>Perplexity %1 → %2.").arg(m_wizard->m_before.perplexity, 0, 'f', 4).arg(m_wizard->m_after.perplexity, 0, 'f', 4);
    text += tr("<br><br><i>Open it</i> opens the folder in the main window and loads it; <i>Finish</i> closes the "
               "wizard. %1")
                .arg(m_wizard->methodInfo().needsCalibration
                         ? tr("It is in AutoGPTQ's format (tensors packed as AutoGPTQ packs them, quantize_config.json).")
                         : tr("transformers + bitsandbytes load the folder as it is."));
    m_wizard->m_doneText->setText(text);
}

} // namespace layerwise::ui
