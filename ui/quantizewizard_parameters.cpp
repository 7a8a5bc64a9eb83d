// The quantization wizard's Parameters page: the method's options, the size of the quantized
// model and whether it fits the plan's devices, the new folder, an interrupted GPTQ run to resume.
#include "quantizewizard_pages.h"

#include "moduletreemodel.h"
#include "planbar.h"
#include "quantizewizardstate.h"

#include <QCheckBox>
#include <QComboBox>
#include <QDir>
#include <QDoubleSpinBox>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>
#include <QSpinBox>
#include <QVBoxLayout>
#include <algorithm>

namespace layerwise::ui {

QuantizeParametersPage::QuantizeParametersPage(QuantizeWizardState* state, QWidget* parent)
    : QWizardPage(parent), m_state(state)
{
    setTitle(tr("Parameters"));
    setSubTitle(tr("What the quantized model keeps, how big it becomes and where it goes."));
    auto* layout = new QVBoxLayout(this);
    m_text = new QLabel(this);
    m_text->setWordWrap(true);
    layout->addWidget(m_text);
    layout->addWidget(createBitsandbytesOptions());
    layout->addWidget(createGptqOptions());

    m_size = new QLabel(this);
    m_size->setObjectName(QStringLiteral("quantizedSize"));
    m_size->setWordWrap(true);
    m_verdict = new QLabel(this);
    m_verdict->setObjectName(QStringLiteral("quantizedVerdict"));
    m_verdict->setWordWrap(true);
    layout->addSpacing(6);
    layout->addWidget(m_size);
    layout->addWidget(m_verdict);
    layout->addSpacing(6);

    createOutputRow(layout);
    createPartialRunNotice(layout);
    layout->addStretch(1);
    connectFields();
    store();
}

// int8, nf4, fp4: bitsandbytes' options.
QWidget* QuantizeParametersPage::createBitsandbytesOptions()
{
    m_bnbOptions = new QWidget(this);
    auto* form = new QFormLayout(m_bnbOptions);
    form->setContentsMargins(0, 0, 0, 0);
    m_doubleQuant = new QCheckBox(tr("Double quantization (the block scales stored in 8 bits too)"), this);
    m_doubleQuant->setObjectName(QStringLiteral("doubleQuant"));
    m_doubleQuant->setToolTip(tr("Saves about 0.4 bits per weight, at almost no cost in quality (4-bit only)"));
    form->addRow(tr("4-bit:"), m_doubleQuant);
    m_computeDtype = new QComboBox(this);
    m_computeDtype->setObjectName(QStringLiteral("computeDtype"));
    m_computeDtype->addItems({QStringLiteral("auto"), QStringLiteral("bfloat16"), QStringLiteral("float16"),
                              QStringLiteral("float32")});
    m_computeDtype->setToolTip(tr("The dtype the 4-bit layers compute in (auto: the model's dtype)"));
    form->addRow(tr("4-bit compute dtype:"), m_computeDtype);
    m_skipModules = new QLineEdit(this);
    m_skipModules->setObjectName(QStringLiteral("skipModules"));
    m_skipModules->setPlaceholderText(tr("e.g. mlp.down_proj, self_attn.o_proj"));
    m_skipModules->setToolTip(tr("Linear layers kept in their dtype, comma-separated: a module name or the end of "
                                 "one (the output layer and the embeddings are always kept)"));
    form->addRow(tr("Keep unquantized:"), m_skipModules);
    return m_bnbOptions;
}

// One GPTQ field with a line saying what it does.
void QuantizeParametersPage::addGptqRow(QFormLayout* form, const QString& label, QWidget* field, const QString& help)
{
    auto* box = new QWidget(this);
    auto* h = new QHBoxLayout(box);
    h->setContentsMargins(0, 0, 0, 0);
    h->addWidget(field);
    auto* text = new QLabel(QStringLiteral("<small>%1</small>").arg(help), box);
    text->setWordWrap(true);
    h->addWidget(text, 1);
    field->setToolTip(help);
    form->addRow(label, box);
}

// GPTQ's options, AutoGPTQ's defaults preset.
QWidget* QuantizeParametersPage::createGptqOptions()
{
    m_gptqOptions = new QWidget(this);
    auto* form = new QFormLayout(m_gptqOptions);
    form->setContentsMargins(0, 0, 0, 0);
    form->setVerticalSpacing(3);
    m_bits = new QComboBox(this);
    m_bits->setObjectName(QStringLiteral("gptqBits"));
    for (int b : {2, 3, 4, 8})
        m_bits->addItem(tr("%1 bits").arg(b), b);
    m_bits->setCurrentIndex(2);
    addGptqRow(form, tr("Bits per weight:"), m_bits, tr("4 is the usual choice; 3 and 2 lose quality fast; 8 is almost lossless."));
    m_groupSize = new QComboBox(this);
    m_groupSize->setObjectName(QStringLiteral("gptqGroupSize"));
    for (int g : {32, 64, 128})
        m_groupSize->addItem(tr("%1 weights").arg(g), g);
    m_groupSize->addItem(tr("whole row (-1)"), -1);
    m_groupSize->setCurrentIndex(2);
    addGptqRow(form, tr("Group size:"), m_groupSize,
               tr("Consecutive weights of a row sharing one scale and zero point: smaller groups are more accurate and a "
                  "little bigger. It must divide the layers' input size."));
    m_descAct = new QCheckBox(tr("desc_act"), this);
    m_descAct->setObjectName(QStringLiteral("gptqDescAct"));
    addGptqRow(form, tr("Act-order:"), m_descAct,
               tr("Quantize first the inputs with the largest activations. Often more accurate; some loaders run such "
                  "models slower."));
    m_sym = new QCheckBox(tr("sym"), this);
    m_sym->setObjectName(QStringLiteral("gptqSym"));
    m_sym->setChecked(true);
    addGptqRow(form, tr("Symmetric:"), m_sym,
               tr("The zero point fixed in the middle of the range (AutoGPTQ's default). Off: one zero point fitted per "
                  "group, better for lopsided weights."));
    m_damp = new QDoubleSpinBox(this);
    m_damp->setObjectName(QStringLiteral("gptqDamp"));
    m_damp->setDecimals(1);
    m_damp->setRange(0.1, 50);
    m_damp->setSingleStep(0.5);
    m_damp->setValue(1.0);
    m_damp->setSuffix(QStringLiteral(" %"));
    addGptqRow(form, tr("Damping:"), m_damp,
               tr("damp_percent: keeps the computation stable by adding this share of the inputs' average energy. "
                  "Raise it (e.g. to 10 %) if a layer fails."));
    m_samples = new QSpinBox(this);
    m_samples->setObjectName(QStringLiteral("gptqSamples"));
    m_samples->setRange(1, 4096);
    m_samples->setValue(128);
    addGptqRow(form, tr("Calibration samples:"), m_samples,
               tr("Passages of the calibration text (next page) the layers are measured on, spread over the whole text."));
    m_seqLen = new QSpinBox(this);
    m_seqLen->setObjectName(QStringLiteral("gptqSeqLen"));
    m_seqLen->setRange(2, m_state->maxPositions() > 1 ? m_state->maxPositions() : 1 << 20);
    m_seqLen->setValue(std::min(512, m_seqLen->maximum()));
    m_seqLen->setSuffix(tr(" tokens"));
    addGptqRow(form, tr("Sample length:"), m_seqLen,
               tr("At most the model's context. Samples × length: better calibration, but a longer run and more memory."));
    return m_gptqOptions;
}

// "Save to the new folder" with its chooser, and the line saying why a folder is refused.
void QuantizeParametersPage::createOutputRow(QVBoxLayout* layout)
{
    auto* outRow = new QHBoxLayout;
    m_output = new QLineEdit(this);
    m_output->setObjectName(QStringLiteral("outputFolder"));
    m_output->setToolTip(tr("A new folder: it must not exist yet. It appears whole when the run succeeds, "
                            "never half-written."));
    auto* browse = new QPushButton(tr("Choose…"), this);
    connect(browse, &QPushButton::clicked, this, [this] {
        const QString path = QFileDialog::getSaveFileName(this, tr("The new folder for the quantized model"),
                                                          m_output->text(), QString(), nullptr, QFileDialog::ShowDirsOnly);
        if (!path.isEmpty())
            m_output->setText(path);
    });
    outRow->addWidget(new QLabel(tr("Save to the new folder:"), this));
    outRow->addWidget(m_output, 1);
    outRow->addWidget(browse);
    layout->addLayout(outRow);
    m_outputError = new QLabel(this);
    m_outputError->setObjectName(QStringLiteral("outputError"));
    m_outputError->setWordWrap(true);
    m_outputError->setStyleSheet(QStringLiteral("color: #dc2626"));
    m_outputError->hide();
    layout->addWidget(m_outputError);
}

// An interrupted GPTQ run of the chosen folder, and whether to resume it.
void QuantizeParametersPage::createPartialRunNotice(QVBoxLayout* layout)
{
    m_partialText = new QLabel(this);
    m_partialText->setObjectName(QStringLiteral("partialRun"));
    m_partialText->setWordWrap(true);
    m_partialText->hide();
    m_resume = new QCheckBox(tr("Resume it: its settings are filled in above (use the same calibration text). "
                                "Unchecked: its layers are discarded and the run starts afresh."),
                             this);
    m_resume->setObjectName(QStringLiteral("resumePartial"));
    m_resume->setChecked(true);
    m_resume->hide();
    layout->addWidget(m_partialText);
    layout->addWidget(m_resume);
}

// Every edit goes into the shared state first; then what depends on it follows.
void QuantizeParametersPage::connectFields()
{
    const auto stored = [this] { store(); };
    connect(m_doubleQuant, &QCheckBox::toggled, this, stored);
    connect(m_computeDtype, &QComboBox::currentIndexChanged, this, stored);
    connect(m_skipModules, &QLineEdit::textChanged, this, stored);
    connect(m_bits, &QComboBox::currentIndexChanged, this, stored);
    connect(m_groupSize, &QComboBox::currentIndexChanged, this, stored);
    connect(m_descAct, &QCheckBox::toggled, this, stored);
    connect(m_sym, &QCheckBox::toggled, this, stored);
    connect(m_damp, &QDoubleSpinBox::valueChanged, this, stored);
    connect(m_samples, &QSpinBox::valueChanged, this, stored);
    connect(m_seqLen, &QSpinBox::valueChanged, this, stored);
    connect(m_resume, &QCheckBox::toggled, this, stored);
    connect(m_output, &QLineEdit::textChanged, this, stored);

    connect(m_doubleQuant, &QCheckBox::toggled, this, &QuantizeParametersPage::previewWanted);
    connect(m_bits, &QComboBox::currentIndexChanged, this, &QuantizeParametersPage::previewWanted);
    connect(m_groupSize, &QComboBox::currentIndexChanged, this, &QuantizeParametersPage::previewWanted);
    connect(m_resume, &QCheckBox::toggled, this, &QuantizeParametersPage::usePartialSettings);
    connect(m_output, &QLineEdit::textChanged, this, &QuantizeParametersPage::showPartialRun);
    connect(m_output, &QLineEdit::textEdited, this, [this] {
        m_outputError->hide();
        m_outputSuggested = false; // the user's own choice stays
    });
    connect(m_state, &QuantizeWizardState::previewRequested, this, [this] { m_size->setText(tr("Computing the size…")); });
    connect(m_state, &QuantizeWizardState::previewChanged, this, &QuantizeParametersPage::showPreview);
}

void QuantizeParametersPage::store()
{
    QuantizeChoices c = m_state->choices();
    c.doubleQuant = m_doubleQuant->isChecked();
    c.computeDtype = m_computeDtype->currentText();
    c.skipModules = m_skipModules->text();
    c.bits = m_bits->currentData().toInt();
    c.groupSize = m_groupSize->currentData().toInt();
    c.descAct = m_descAct->isChecked();
    c.sym = m_sym->isChecked();
    c.dampPercent = m_damp->value() / 100.0; // the spin box shows per cent; AutoGPTQ's damp_percent is a fraction
    c.samples = m_samples->value();
    c.seqLen = m_seqLen->value();
    c.resume = m_resume->isChecked();
    c.out = m_output->text();
    m_state->setChoices(c);
}

void QuantizeParametersPage::initializePage()
{
    const QuantMethodInfo& info = m_state->methodInfo();
    m_bnbOptions->setVisible(!info.needsCalibration);
    m_gptqOptions->setVisible(info.needsCalibration);
    m_doubleQuant->setEnabled(info.fourBit);
    m_computeDtype->setEnabled(info.fourBit);
    if (!info.fourBit)
        m_doubleQuant->setChecked(false);
    m_text->setText(
        info.needsCalibration
            ? tr("GPTQ's settings, AutoGPTQ's defaults preset (4 bits, groups of 128, symmetric, damping 1 %). The "
                 "embeddings, norms and output layer keep their dtype, and so do linears whose sizes are not multiples "
                 "of 32 (AutoGPTQ's packing needs them).")
            : info.explanation);
    const QString suggested = QuantizeWizardState::suggestFolder(m_state->source(), info.id);
    if (m_output->text().isEmpty() || m_outputSuggested) {
        m_output->setText(suggested);
        m_outputSuggested = true;
    }
    m_outputError->hide();
    showPartialRun();
    Q_EMIT previewWanted();
}

bool QuantizeParametersPage::validatePage()
{
    const QString out = QDir::cleanPath(m_output->text().trimmed());
    QString error;
    if (m_output->text().trimmed().isEmpty())
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
    m_outputError->setText(error);
    m_outputError->setVisible(!error.isEmpty());
    return error.isEmpty();
}

void QuantizeParametersPage::showPartialRun()
{
    const GptqPartialRun run = m_state->partialRun();
    m_partialText->setVisible(!run.folder.isEmpty());
    m_resume->setVisible(!run.folder.isEmpty());
    if (!run.folder.isEmpty())
        m_partialText->setText(
            tr("<b>An interrupted run of this folder exists</b> (%1): %6 done with %2-bit, group %3, "
               "%4 samples × %5 tokens.")
                .arg(QDir::toNativeSeparators(run.folder).toHtmlEscaped())
                .arg(run.bits)
                .arg(run.groupSize)
                .arg(run.samples)
                .arg(run.seqLen)
                .arg(run.layersDone == 1 ? tr("1 decoder layer") : tr("%1 decoder layers").arg(run.layersDone)));
    usePartialSettings();
}

// Resuming needs the same settings (and calibration text): they are filled in from its state.
void QuantizeParametersPage::usePartialSettings()
{
    const GptqPartialRun run = m_state->partialRun();
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

// The sizes of the model as it is and quantized, and the verdict on the plan's devices.
void QuantizeParametersPage::showPreview()
{
    const PlanView& original = m_state->previewOriginal();
    const PlanView& quantized = m_state->previewQuantized();
    if (quantized.verdict == QLatin1String("error")) {
        m_size->setText(tr("The size cannot be computed: %1").arg(quantized.reason.toHtmlEscaped()));
        m_verdict->clear();
        return;
    }
    const qint64 before = original.weightBytes(), after = quantized.weightBytes();
    if (before > 0 && after > 0)
        m_size->setText(tr("Weights: <b>%1</b> → <b>%2</b> (%3% of the original; embeddings, norms and the "
                           "output layer keep their dtype)")
                            .arg(formatBytes(static_cast<quint64>(before)), formatBytes(static_cast<quint64>(after)))
                            .arg(100.0 * static_cast<double>(after) / static_cast<double>(before), 0, 'f', 0));
    if (!quantized.verdict.isEmpty())
        m_verdict->setText(tr("On the devices of the current plan: %1").arg(verdictHtml(quantized)));
}

} // namespace layerwise::ui
