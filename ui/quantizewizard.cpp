// The quantization wizard: the wizard itself and its first pages (Method, Parameters,
// Calibration data). The Run, Evaluation and Done pages are in quantizewizard_run.cpp.
#include "quantizewizard.h"

#include "engineworker.h"
#include "moduletreemodel.h"
#include "planbar.h"
#include "quantizewizard_pages.h"

#include <QButtonGroup>
#include <QCheckBox>
#include <QComboBox>
#include <QDir>
#include <QDoubleSpinBox>
#include <QFile>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QJsonDocument>
#include <QJsonObject>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>
#include <QRadioButton>
#include <QSpinBox>
#include <QUuid>
#include <QVBoxLayout>

namespace layerwise::ui {

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

QuantizeWizard::QuantizeWizard(EngineWorker* worker, const QString& source, const PlanSettings& settings,
                               const QString& calibration, QWidget* parent)
    : QWizard(parent), m_worker(worker), m_source(source), m_settings(settings), m_calibration(calibration),
      m_methods(quantMethods()), m_tagPrefix(QStringLiteral("wizard-%1:").arg(QUuid::createUuid().toString(QUuid::Id128)))
{
    if (QFile config(QDir(source).filePath(QStringLiteral("config.json"))); config.open(QIODevice::ReadOnly))
        m_maxPositions = QJsonDocument::fromJson(config.readAll()).object().value(QStringLiteral("max_position_embeddings")).toInt();
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

    connect(this, &QuantizeWizard::requestPreview, worker, &EngineWorker::previewPlan, Qt::QueuedConnection);
    connect(this, &QuantizeWizard::requestQuantize, worker, &EngineWorker::quantize, Qt::QueuedConnection);
    connect(this, &QuantizeWizard::requestEvaluate, worker, &EngineWorker::evaluate, Qt::QueuedConnection);
    connect(worker, &EngineWorker::previewPlanned, this, &QuantizeWizard::onPreview, Qt::QueuedConnection);
    connect(worker, &EngineWorker::quantizeProgress, this, &QuantizeWizard::onProgress, Qt::QueuedConnection);
    connect(worker, &EngineWorker::quantized, this, &QuantizeWizard::onQuantized, Qt::QueuedConnection);
    connect(worker, &EngineWorker::quantizeFailed, this, &QuantizeWizard::onQuantizeFailed, Qt::QueuedConnection);
    connect(worker, &EngineWorker::evalProgress, this, &QuantizeWizard::onEvalProgress, Qt::QueuedConnection);
    connect(worker, &EngineWorker::evaluated, this, &QuantizeWizard::onEvaluated, Qt::QueuedConnection);
    connect(worker, &EngineWorker::evalFailed, this, &QuantizeWizard::onEvalFailed, Qt::QueuedConnection);

    setPage(MethodPage, new QuantizeMethodPage(this));
    setPage(ParametersPage, new QuantizeParametersPage(this));
    setPage(CalibrationPage, new QuantizeCalibrationPage(this));
    setPage(RunPage, new QuantizeRunPage(this));
    setPage(EvaluatePage, new QuantizeEvaluatePage(this));
    setPage(DonePage, new QuantizeDonePage(this));
    setStartId(MethodPage);
    // Back to the parameters after a cancelled GPTQ run: its kept layers are offered for resuming.
    connect(this, &QWizard::currentIdChanged, this, [this](int id) {
        if (id == ParametersPage) {
            showPartialRun();
            usePartialSettings();
        }
    });
}

QuantizeWizard::~QuantizeWizard()
{
    if (m_running)
        m_worker->cancelJob();
}

QString QuantizeWizard::method() const
{
    for (int i = 0; i < m_methodButtons.size(); ++i)
        if (m_methodButtons[i]->isChecked())
            return m_methods[i].id;
    return m_methods.front().id;
}

const QuantMethodInfo& QuantizeWizard::methodInfo() const
{
    const QString id = method();
    for (const auto& m : m_methods)
        if (m.id == id)
            return m;
    return m_methods.front();
}

QuantizeRequest QuantizeWizard::request() const
{
    QuantizeRequest r;
    r.source = m_source;
    r.method = method();
    r.out = QDir::cleanPath(m_output->text().trimmed());
    if (methodInfo().needsCalibration) {
        r.calibration = m_calibDefault->isChecked() ? m_calibration : m_calibPath->text().trimmed();
        r.bits = m_bits->currentData().toInt();
        r.groupSize = m_groupSize->currentData().toInt();
        r.descAct = m_descAct->isChecked();
        r.sym = m_sym->isChecked();
        r.dampPercent = m_damp->value() / 100.0; // the spin box shows per cent; AutoGPTQ's damp_percent is a fraction
        r.samples = m_samples->value();
        r.seqLen = m_seqLen->value();
        r.restart = !partialRun().folder.isEmpty() && !m_resume->isChecked();
        return r;
    }
    r.doubleQuant = methodInfo().fourBit && m_doubleQuant->isChecked();
    r.computeDtype = m_computeDtype->currentText();
    for (const QString& m : m_skipModules->text().split(QLatin1Char(','), Qt::SkipEmptyParts))
        r.skipModules.push_back(m.trimmed());
    return r;
}

QString QuantizeWizard::suggestFolder(const QString& source, const QString& method)
{
    const QString base = QDir::cleanPath(source) + QLatin1Char('-') + method;
    QString candidate = base;
    for (int i = 2; QFileInfo::exists(candidate); ++i)
        candidate = base + QLatin1Char('-') + QString::number(i);
    return candidate;
}

GptqPartialRun QuantizeWizard::partialRun() const
{
    if (!methodInfo().needsCalibration || !m_output)
        return {};
    return gptqPartialRun(m_output->text().trimmed());
}

// The interrupted run of the chosen folder, if any, and whether it is resumed.
void QuantizeWizard::showPartialRun()
{
    const GptqPartialRun run = partialRun();
    m_partialText->setVisible(!run.folder.isEmpty());
    m_resume->setVisible(!run.folder.isEmpty());
    if (run.folder.isEmpty())
        return;
    m_partialText->setText(
        tr("<b>An interrupted run of this folder exists</b> (%1): %6 done with %2-bit, group %3, "
           "%4 samples × %5 tokens.")
            .arg(QDir::toNativeSeparators(run.folder).toHtmlEscaped())
            .arg(run.bits)
            .arg(run.groupSize)
            .arg(run.samples)
            .arg(run.seqLen)
            .arg(run.layersDone == 1 ? tr("1 decoder layer") : tr("%1 decoder layers").arg(run.layersDone)));
}

// Resuming needs the same settings (and calibration text): they are filled in from its state.
void QuantizeWizard::usePartialSettings()
{
    const GptqPartialRun run = partialRun();
    if (run.folder.isEmpty() || !m_resume->isChecked())
        return;
    if (const int i = m_bits->findData(run.bits); i >= 0)
        m_bits->setCurrentIndex(i);
    if (const int i = m_groupSize->findData(run.groupSize); i >= 0)
        m_groupSize->setCurrentIndex(i);
    m_descAct->setChecked(run.descAct);
    m_sym->setChecked(run.sym);
    if (run.dampPercent > 0)
        m_damp->setValue(run.dampPercent * 100.0);
    if (run.samples > 0)
        m_samples->setValue(run.samples);
    if (run.seqLen > 0)
        m_seqLen->setValue(run.seqLen);
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
    if (m_running || m_evalPending > 0)
        m_worker->cancelJob(); // the engine removes what it had started; nothing half-written stays
    QWizard::reject();
}

// The sizes and verdicts of the model as it is and quantized, for the plan's devices and limits.
void QuantizeWizard::updatePreview()
{
    const QuantMethodInfo& info = methodInfo();
    QString quant = info.id;
    if (info.id == QLatin1String("gptq")) {
        const int group = m_groupSize->currentData().toInt();
        quant = QStringLiteral("gptq-%1bit-%2").arg(m_bits->currentData().toInt()).arg(group < 0 ? QStringLiteral("nog") : QStringLiteral("%1g").arg(group));
    }
    else if (info.fourBit && m_doubleQuant->isChecked())
        quant += QStringLiteral("-dq");
    PlanSettings original = m_settings;
    original.quant = QStringLiteral("none");
    PlanSettings quantized = m_settings;
    quantized.quant = quant;
    ++m_previewSerial;
    m_size->setText(tr("Computing the size…"));
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
    if (rest.startsWith(QLatin1String("original")))
        m_planOriginal = plan;
    else
        m_planQuantized = plan;
    showPreview();
    if (rest.startsWith(QLatin1String("quantized")))
        Q_EMIT previewShown();
}

void QuantizeWizard::showPreview()
{
    if (m_planQuantized.verdict == QLatin1String("error")) {
        m_size->setText(tr("The size cannot be computed: %1").arg(m_planQuantized.reason.toHtmlEscaped()));
        m_verdict->clear();
        return;
    }
    const qint64 before = m_planOriginal.weightBytes(), after = m_planQuantized.weightBytes();
    if (before > 0 && after > 0)
        m_size->setText(tr("Weights: <b>%1</b> → <b>%2</b> (%3% of the original; embeddings, norms and the "
                           "output layer keep their dtype)")
                            .arg(formatBytes(static_cast<quint64>(before)), formatBytes(static_cast<quint64>(after)))
                            .arg(100.0 * static_cast<double>(after) / static_cast<double>(before), 0, 'f', 0));
    if (!m_planQuantized.verdict.isEmpty())
        m_verdict->setText(tr("On the devices of the current plan: %1").arg(verdictHtml(m_planQuantized)));
}

// ---- Method ----

QuantizeMethodPage::QuantizeMethodPage(QuantizeWizard* wizard) : QWizardPage(wizard), m_wizard(wizard)
{
    setTitle(tr("Quantization method"));
    setSubTitle(tr("How the weights of the linear layers are stored."));
    auto* layout = new QVBoxLayout(this);
    auto* intro = new QLabel(tr("The wizard writes a quantized copy of <b>%1</b> to a new folder; the original stays as "
                                "it is.")
                                 .arg(QFileInfo(wizard->source()).fileName().toHtmlEscaped()),
                             this);
    intro->setWordWrap(true);
    layout->addWidget(intro);
    auto* group = new QButtonGroup(this);
    for (const QuantMethodInfo& m : wizard->m_methods) {
        auto* b = new QRadioButton(m.label, this);
        b->setObjectName(QStringLiteral("method-") + m.id);
        b->setEnabled(m.available);
        b->setToolTip(m.available ? m.explanation : m.unavailableReason);
        group->addButton(b);
        layout->addWidget(b);
        wizard->m_methodButtons.push_back(b);
        if (!m.available) {
            auto* why = new QLabel(QStringLiteral("<i>%1</i>").arg(m.unavailableReason.toHtmlEscaped()), this);
            why->setObjectName(QStringLiteral("unavailable-") + m.id);
            why->setIndent(24);
            layout->addWidget(why);
        }
        connect(b, &QRadioButton::toggled, this, [this] { showExplanation(); });
    }
    wizard->m_methodText = new QLabel(this);
    wizard->m_methodText->setObjectName(QStringLiteral("methodExplanation"));
    wizard->m_methodText->setWordWrap(true);
    wizard->m_methodText->setFrameShape(QFrame::StyledPanel);
    wizard->m_methodText->setMargin(8);
    layout->addSpacing(8);
    layout->addWidget(wizard->m_methodText);
    layout->addStretch(1);
    wizard->m_methodButtons.front()->setChecked(true);
    showExplanation();
}

void QuantizeMethodPage::showExplanation()
{
    m_wizard->m_methodText->setText(m_wizard->methodInfo().explanation);
}

bool QuantizeMethodPage::isComplete() const
{
    return m_wizard->methodInfo().available;
}

// ---- Parameters ----

QuantizeParametersPage::QuantizeParametersPage(QuantizeWizard* wizard) : QWizardPage(wizard), m_wizard(wizard)
{
    setTitle(tr("Parameters"));
    setSubTitle(tr("What the quantized model keeps, how big it becomes and where it goes."));
    auto* layout = new QVBoxLayout(this);
    wizard->m_paramText = new QLabel(this);
    wizard->m_paramText->setWordWrap(true);
    layout->addWidget(wizard->m_paramText);
    // bitsandbytes methods (int8, nf4, fp4)
    wizard->m_bnbOptions = new QWidget(this);
    auto* form = new QFormLayout(wizard->m_bnbOptions);
    form->setContentsMargins(0, 0, 0, 0);
    wizard->m_doubleQuant = new QCheckBox(tr("Double quantization (the block scales stored in 8 bits too)"), this);
    wizard->m_doubleQuant->setObjectName(QStringLiteral("doubleQuant"));
    wizard->m_doubleQuant->setToolTip(tr("Saves about 0.4 bits per weight, at almost no cost in quality (4-bit only)"));
    form->addRow(tr("4-bit:"), wizard->m_doubleQuant);
    wizard->m_computeDtype = new QComboBox(this);
    wizard->m_computeDtype->setObjectName(QStringLiteral("computeDtype"));
    wizard->m_computeDtype->addItems({QStringLiteral("auto"), QStringLiteral("bfloat16"), QStringLiteral("float16"),
                                      QStringLiteral("float32")});
    wizard->m_computeDtype->setToolTip(tr("The dtype the 4-bit layers compute in (auto: the model's dtype)"));
    form->addRow(tr("4-bit compute dtype:"), wizard->m_computeDtype);
    wizard->m_skipModules = new QLineEdit(this);
    wizard->m_skipModules->setObjectName(QStringLiteral("skipModules"));
    wizard->m_skipModules->setPlaceholderText(tr("e.g. mlp.down_proj, self_attn.o_proj"));
    wizard->m_skipModules->setToolTip(tr("Linear layers kept in their dtype, comma-separated: a module name or the end of "
                                         "one (the output layer and the embeddings are always kept)"));
    form->addRow(tr("Keep unquantized:"), wizard->m_skipModules);
    layout->addWidget(wizard->m_bnbOptions);

    // GPTQ: each field with a line saying what it does.
    wizard->m_gptqOptions = new QWidget(this);
    auto* gform = new QFormLayout(wizard->m_gptqOptions);
    gform->setContentsMargins(0, 0, 0, 0);
    gform->setVerticalSpacing(3);
    const auto row = [this, gform](const QString& label, QWidget* field, const QString& help) {
        auto* box = new QWidget(this);
        auto* h = new QHBoxLayout(box);
        h->setContentsMargins(0, 0, 0, 0);
        h->addWidget(field);
        auto* text = new QLabel(QStringLiteral("<small>%1</small>").arg(help), box);
        text->setWordWrap(true);
        h->addWidget(text, 1);
        field->setToolTip(help);
        gform->addRow(label, box);
    };
    wizard->m_bits = new QComboBox(this);
    wizard->m_bits->setObjectName(QStringLiteral("gptqBits"));
    for (int b : {2, 3, 4, 8})
        wizard->m_bits->addItem(tr("%1 bits").arg(b), b);
    wizard->m_bits->setCurrentIndex(2);
    row(tr("Bits per weight:"), wizard->m_bits, tr("4 is the usual choice; 3 and 2 lose quality fast; 8 is almost lossless."));
    wizard->m_groupSize = new QComboBox(this);
    wizard->m_groupSize->setObjectName(QStringLiteral("gptqGroupSize"));
    for (int g : {32, 64, 128})
        wizard->m_groupSize->addItem(tr("%1 weights").arg(g), g);
    wizard->m_groupSize->addItem(tr("whole row (-1)"), -1);
    wizard->m_groupSize->setCurrentIndex(2);
    row(tr("Group size:"), wizard->m_groupSize,
        tr("Consecutive weights of a row sharing one scale and zero point: smaller groups are more accurate and a "
           "little bigger. It must divide the layers' input size."));
    wizard->m_descAct = new QCheckBox(tr("desc_act"), this);
    wizard->m_descAct->setObjectName(QStringLiteral("gptqDescAct"));
    row(tr("Act-order:"), wizard->m_descAct,
        tr("Quantize first the inputs with the largest activations. Often more accurate; some loaders run such models "
           "slower."));
    wizard->m_sym = new QCheckBox(tr("sym"), this);
    wizard->m_sym->setObjectName(QStringLiteral("gptqSym"));
    wizard->m_sym->setChecked(true);
    row(tr("Symmetric:"), wizard->m_sym,
        tr("The zero point fixed in the middle of the range (AutoGPTQ's default). Off: one zero point fitted per "
           "group, better for lopsided weights."));
    wizard->m_damp = new QDoubleSpinBox(this);
    wizard->m_damp->setObjectName(QStringLiteral("gptqDamp"));
    wizard->m_damp->setDecimals(1);
    wizard->m_damp->setRange(0.1, 50);
    wizard->m_damp->setSingleStep(0.5);
    wizard->m_damp->setValue(1.0);
    wizard->m_damp->setSuffix(QStringLiteral(" %"));
    row(tr("Damping:"), wizard->m_damp,
        tr("damp_percent: keeps the computation stable by adding this share of the inputs' average energy. Raise it "
           "(e.g. to 10 %) if a layer fails."));
    wizard->m_samples = new QSpinBox(this);
    wizard->m_samples->setObjectName(QStringLiteral("gptqSamples"));
    wizard->m_samples->setRange(1, 4096);
    wizard->m_samples->setValue(128);
    row(tr("Calibration samples:"), wizard->m_samples,
        tr("Passages of the calibration text (next page) the layers are measured on, spread over the whole text."));
    wizard->m_seqLen = new QSpinBox(this);
    wizard->m_seqLen->setObjectName(QStringLiteral("gptqSeqLen"));
    wizard->m_seqLen->setRange(2, wizard->m_maxPositions > 1 ? wizard->m_maxPositions : 1 << 20);
    wizard->m_seqLen->setValue(std::min(512, wizard->m_seqLen->maximum()));
    wizard->m_seqLen->setSuffix(tr(" tokens"));
    row(tr("Sample length:"), wizard->m_seqLen,
        tr("At most the model's context. Samples × length: better calibration, but a longer run and more memory."));
    layout->addWidget(wizard->m_gptqOptions);

    wizard->m_size = new QLabel(this);
    wizard->m_size->setObjectName(QStringLiteral("quantizedSize"));
    wizard->m_size->setWordWrap(true);
    wizard->m_verdict = new QLabel(this);
    wizard->m_verdict->setObjectName(QStringLiteral("quantizedVerdict"));
    wizard->m_verdict->setWordWrap(true);
    layout->addSpacing(6);
    layout->addWidget(wizard->m_size);
    layout->addWidget(wizard->m_verdict);
    layout->addSpacing(6);

    auto* outRow = new QHBoxLayout;
    wizard->m_output = new QLineEdit(this);
    wizard->m_output->setObjectName(QStringLiteral("outputFolder"));
    wizard->m_output->setToolTip(tr("A new folder: it must not exist yet. It appears whole when the run succeeds, "
                                    "never half-written."));
    auto* browse = new QPushButton(tr("Choose…"), this);
    connect(browse, &QPushButton::clicked, this, [this] {
        const QString path = QFileDialog::getSaveFileName(this, tr("The new folder for the quantized model"),
                                                          m_wizard->m_output->text(), QString(), nullptr,
                                                          QFileDialog::ShowDirsOnly);
        if (!path.isEmpty())
            m_wizard->m_output->setText(path);
    });
    outRow->addWidget(new QLabel(tr("Save to the new folder:"), this));
    outRow->addWidget(wizard->m_output, 1);
    outRow->addWidget(browse);
    layout->addLayout(outRow);
    wizard->m_outputError = new QLabel(this);
    wizard->m_outputError->setObjectName(QStringLiteral("outputError"));
    wizard->m_outputError->setWordWrap(true);
    wizard->m_outputError->setStyleSheet(QStringLiteral("color: #dc2626"));
    wizard->m_outputError->hide();
    layout->addWidget(wizard->m_outputError);
    wizard->m_partialText = new QLabel(this);
    wizard->m_partialText->setObjectName(QStringLiteral("partialRun"));
    wizard->m_partialText->setWordWrap(true);
    wizard->m_partialText->hide();
    wizard->m_resume = new QCheckBox(tr("Resume it: its settings are filled in above (use the same calibration text). "
                                        "Unchecked: its layers are discarded and the run starts afresh."),
                                     this);
    wizard->m_resume->setObjectName(QStringLiteral("resumePartial"));
    wizard->m_resume->setChecked(true);
    wizard->m_resume->hide();
    layout->addWidget(wizard->m_partialText);
    layout->addWidget(wizard->m_resume);
    layout->addStretch(1);

    connect(wizard->m_doubleQuant, &QCheckBox::toggled, this, [this] { m_wizard->updatePreview(); });
    connect(wizard->m_bits, &QComboBox::currentIndexChanged, this, [this] { m_wizard->updatePreview(); });
    connect(wizard->m_groupSize, &QComboBox::currentIndexChanged, this, [this] { m_wizard->updatePreview(); });
    connect(wizard->m_resume, &QCheckBox::toggled, this, [this] { m_wizard->usePartialSettings(); });
    connect(wizard->m_output, &QLineEdit::textChanged, this, [this] {
        m_wizard->showPartialRun();
        m_wizard->usePartialSettings();
    });
    connect(wizard->m_output, &QLineEdit::textEdited, this, [this] {
        m_wizard->m_outputError->hide();
        m_wizard->m_output->setProperty("suggested", false); // the user's own choice stays
    });
}

void QuantizeParametersPage::initializePage()
{
    const QuantMethodInfo& info = m_wizard->methodInfo();
    m_wizard->m_bnbOptions->setVisible(!info.needsCalibration);
    m_wizard->m_gptqOptions->setVisible(info.needsCalibration);
    m_wizard->m_doubleQuant->setEnabled(info.fourBit);
    m_wizard->m_computeDtype->setEnabled(info.fourBit);
    if (!info.fourBit)
        m_wizard->m_doubleQuant->setChecked(false);
    m_wizard->m_paramText->setText(
        info.needsCalibration
            ? tr("GPTQ's settings, AutoGPTQ's defaults preset (4 bits, groups of 128, symmetric, damping 1 %). The "
                 "embeddings, norms and output layer keep their dtype, and so do linears whose sizes are not multiples "
                 "of 32 (AutoGPTQ's packing needs them).")
            : info.explanation);
    const QString suggested = QuantizeWizard::suggestFolder(m_wizard->source(), info.id);
    if (m_wizard->m_output->text().isEmpty() || m_wizard->m_output->property("suggested").toBool()) {
        m_wizard->m_output->setText(suggested);
        m_wizard->m_output->setProperty("suggested", true);
    }
    m_wizard->m_outputError->hide();
    m_wizard->showPartialRun();
    m_wizard->usePartialSettings();
    m_wizard->updatePreview();
}

bool QuantizeParametersPage::validatePage()
{
    const QString out = QDir::cleanPath(m_wizard->m_output->text().trimmed());
    QString error;
    if (m_wizard->m_output->text().trimmed().isEmpty())
        error = tr("Choose a new folder for the quantized model.");
    else if (QFileInfo::exists(out))
        error = tr("%1 already exists. Choose a new folder: the wizard never writes into or over an existing one.")
                    .arg(QDir::toNativeSeparators(out));
    else if (!QFileInfo(QFileInfo(out).absolutePath()).isDir())
        error = tr("The folder %1 that should hold it does not exist. Create it first or choose another place.")
                    .arg(QDir::toNativeSeparators(QFileInfo(out).absolutePath()));
    else if (!QFileInfo(QFileInfo(out).absolutePath()).isWritable())
        error = tr("%1 cannot be written to. Choose a folder you can write to.")
                    .arg(QDir::toNativeSeparators(QFileInfo(out).absolutePath()));
    m_wizard->m_outputError->setText(error);
    m_wizard->m_outputError->setVisible(!error.isEmpty());
    return error.isEmpty();
}

// ---- Calibration data (GPTQ) ----

QuantizeCalibrationPage::QuantizeCalibrationPage(QuantizeWizard* wizard) : QWizardPage(wizard), m_wizard(wizard)
{
    setTitle(tr("Calibration data"));
    setSubTitle(tr("GPTQ measures each layer on real text and corrects its rounding errors."));
    auto* layout = new QVBoxLayout(this);
    const bool haveDefault = !wizard->m_calibration.isEmpty() && QFileInfo(wizard->m_calibration).isFile();
    wizard->m_calibDefault = new QRadioButton(
        haveDefault ? tr("The default corpus: the King James Bible, from Debian's bible-kjv package\n%1 (%2)")
                          .arg(QDir::toNativeSeparators(wizard->m_calibration), formatBytes(static_cast<quint64>(QFileInfo(wizard->m_calibration).size())))
                    : tr("The default corpus (not installed: run packaging/setup.sh, which fetches the King James Bible)"),
        this);
    wizard->m_calibDefault->setObjectName(QStringLiteral("calibrationDefault"));
    wizard->m_calibDefault->setEnabled(haveDefault);
    wizard->m_calibFile = new QRadioButton(tr("A text file of my own (UTF-8):"), this);
    wizard->m_calibFile->setObjectName(QStringLiteral("calibrationFile"));
    (haveDefault ? wizard->m_calibDefault : wizard->m_calibFile)->setChecked(true);
    auto* row = new QHBoxLayout;
    wizard->m_calibPath = new QLineEdit(this);
    wizard->m_calibPath->setObjectName(QStringLiteral("calibrationPath"));
    auto* browse = new QPushButton(tr("Choose…"), this);
    connect(browse, &QPushButton::clicked, this, [this] {
        const QString path = QFileDialog::getOpenFileName(this, tr("Calibration text"), QString(), tr("Text (*.txt);;All files (*)"));
        if (!path.isEmpty()) {
            m_wizard->m_calibPath->setText(path);
            m_wizard->m_calibFile->setChecked(true);
        }
    });
    row->addWidget(wizard->m_calibPath, 1);
    row->addWidget(browse);
    wizard->m_calibSummary = new QLabel(this);
    wizard->m_calibSummary->setObjectName(QStringLiteral("calibrationSummary"));
    wizard->m_calibSummary->setWordWrap(true);
    layout->addWidget(wizard->m_calibDefault);
    layout->addWidget(wizard->m_calibFile);
    layout->addLayout(row);
    layout->addSpacing(8);
    layout->addWidget(wizard->m_calibSummary);
    layout->addStretch(1);
    for (QWidget* w : {static_cast<QWidget*>(wizard->m_calibDefault), static_cast<QWidget*>(wizard->m_calibFile)})
        connect(static_cast<QRadioButton*>(w), &QRadioButton::toggled, this, &QWizardPage::completeChanged);
    connect(wizard->m_calibPath, &QLineEdit::textChanged, this, &QWizardPage::completeChanged);
}

void QuantizeCalibrationPage::initializePage()
{
    const QuantizeRequest r = m_wizard->request();
    m_wizard->m_calibSummary->setText(
        tr("%1 samples of %2 tokens each are taken, spread evenly over the text (each from the start of a line), "
           "with the model's tokenizer. Any plain prose in the model's language works; the text must hold at least one "
           "sample's worth of tokens. Resuming an interrupted run needs the same text.")
            .arg(r.samples)
            .arg(r.seqLen));
}

bool QuantizeCalibrationPage::isComplete() const
{
    return m_wizard->m_calibDefault->isChecked() || QFileInfo(m_wizard->m_calibPath->text().trimmed()).isFile();
}

} // namespace layerwise::ui
