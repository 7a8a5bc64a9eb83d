// The quantization wizard's Method and Calibration data pages. The Parameters page is in
// quantizewizard_parameters.cpp; Run, Evaluation and Done in quantizewizard_run.cpp.
#include "quantizewizard_pages.h"

#include "moduletreemodel.h"
#include "quantizewizardstate.h"

#include <QButtonGroup>
#include <QDir>
#include <QFileDialog>
#include <QFileInfo>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>
#include <QRadioButton>
#include <QVBoxLayout>

namespace layerwise::ui {

// ---- Method ----

QuantizeMethodPage::QuantizeMethodPage(QuantizeWizardState* state, QWidget* parent) : QWizardPage(parent), m_state(state)
{
    setTitle(tr("Quantization method"));
    setSubTitle(tr("How the weights of the linear layers are stored."));
    auto* layout = new QVBoxLayout(this);
    auto* intro = new QLabel(tr("The wizard writes a quantized copy of <b>%1</b> to a new folder; the original stays as "
                                "it is.")
                                 .arg(QFileInfo(state->source()).fileName().toHtmlEscaped()),
                             this);
    intro->setWordWrap(true);
    layout->addWidget(intro);
    auto* group = new QButtonGroup(this);
    QRadioButton* first = nullptr;
    for (const QuantMethodInfo& m : state->methods()) {
        auto* b = new QRadioButton(m.label, this);
        b->setObjectName(QStringLiteral("method-") + m.id);
        b->setEnabled(m.available);
        b->setToolTip(m.available ? m.explanation : m.unavailableReason);
        group->addButton(b);
        layout->addWidget(b);
        if (!first)
            first = b;
        if (!m.available) {
            auto* why = new QLabel(QStringLiteral("<i>%1</i>").arg(m.unavailableReason.toHtmlEscaped()), this);
            why->setObjectName(QStringLiteral("unavailable-") + m.id);
            why->setIndent(24);
            layout->addWidget(why);
        }
        connect(b, &QRadioButton::toggled, this, [this, id = m.id](bool checked) {
            if (checked)
                choose(id);
        });
    }
    m_text = new QLabel(this);
    m_text->setObjectName(QStringLiteral("methodExplanation"));
    m_text->setWordWrap(true);
    m_text->setFrameShape(QFrame::StyledPanel);
    m_text->setMargin(8);
    layout->addSpacing(8);
    layout->addWidget(m_text);
    layout->addStretch(1);
    first->setChecked(true);
}

void QuantizeMethodPage::choose(const QString& method)
{
    QuantizeChoices c = m_state->choices();
    c.method = method;
    m_state->setChoices(c);
    m_text->setText(m_state->methodInfo().explanation);
    Q_EMIT completeChanged();
}

bool QuantizeMethodPage::isComplete() const
{
    return m_state->methodInfo().available;
}

// ---- Calibration data (GPTQ) ----

QuantizeCalibrationPage::QuantizeCalibrationPage(QuantizeWizardState* state, QWidget* parent)
    : QWizardPage(parent), m_state(state)
{
    setTitle(tr("Calibration data"));
    setSubTitle(tr("GPTQ measures each layer on real text and corrects its rounding errors."));
    auto* layout = new QVBoxLayout(this);
    const QString corpus = state->calibrationDefault();
    const bool haveDefault = state->hasDefaultCalibration();
    m_default = new QRadioButton(
        haveDefault ? tr("The default corpus: the King James Bible, from Debian's bible-kjv package\n%1 (%2)")
                          .arg(QDir::toNativeSeparators(corpus), formatBytes(static_cast<quint64>(QFileInfo(corpus).size())))
                    : tr("The default corpus (not installed: run packaging/setup.sh, which fetches the King James Bible)"),
        this);
    m_default->setObjectName(QStringLiteral("calibrationDefault"));
    m_default->setEnabled(haveDefault);
    m_file = new QRadioButton(tr("A text file of my own (UTF-8):"), this);
    m_file->setObjectName(QStringLiteral("calibrationFile"));
    (haveDefault ? m_default : m_file)->setChecked(true);
    auto* row = new QHBoxLayout;
    m_path = new QLineEdit(this);
    m_path->setObjectName(QStringLiteral("calibrationPath"));
    auto* browse = new QPushButton(tr("Choose…"), this);
    connect(browse, &QPushButton::clicked, this, [this] {
        const QString path = QFileDialog::getOpenFileName(this, tr("Calibration text"), QString(), tr("Text (*.txt);;All files (*)"));
        if (!path.isEmpty()) {
            m_path->setText(path);
            m_file->setChecked(true);
        }
    });
    row->addWidget(m_path, 1);
    row->addWidget(browse);
    m_summary = new QLabel(this);
    m_summary->setObjectName(QStringLiteral("calibrationSummary"));
    m_summary->setWordWrap(true);
    layout->addWidget(m_default);
    layout->addWidget(m_file);
    layout->addLayout(row);
    layout->addSpacing(8);
    layout->addWidget(m_summary);
    layout->addStretch(1);
    for (QRadioButton* b : {m_default, m_file})
        connect(b, &QRadioButton::toggled, this, [this] {
            store();
            Q_EMIT completeChanged();
        });
    connect(m_path, &QLineEdit::textChanged, this, [this] {
        store();
        Q_EMIT completeChanged();
    });
    store();
}

void QuantizeCalibrationPage::store()
{
    QuantizeChoices c = m_state->choices();
    c.defaultCalibration = m_default->isChecked();
    c.calibrationFile = m_path->text();
    m_state->setChoices(c);
}

void QuantizeCalibrationPage::initializePage()
{
    const QuantizeRequest r = m_state->request();
    m_summary->setText(
        tr("%1 samples of %2 tokens each are taken, spread evenly over the text (each from the start of a line), "
           "with the model's tokenizer. Any plain prose in the model's language works; the text must hold at least one "
           "sample's worth of tokens. Resuming an interrupted run needs the same text.")
            .arg(r.samples)
            .arg(r.seqLen));
}

bool QuantizeCalibrationPage::isComplete() const
{
    return m_default->isChecked() || QFileInfo(m_path->text().trimmed()).isFile();
}

} // namespace layerwise::ui
