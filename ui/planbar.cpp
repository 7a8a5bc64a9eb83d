#include "planbar.h"

#include <QCheckBox>
#include <QComboBox>
#include <QGridLayout>
#include <QLabel>
#include <QSpinBox>

namespace layerwise::ui {

PlanBar::PlanBar(QWidget* parent) : QWidget(parent)
{
    auto* grid = new QGridLayout(this);
    grid->setContentsMargins(6, 6, 6, 6);
    m_strategy = new QComboBox(this);
    m_strategy->setObjectName(QStringLiteral("strategy"));
    m_strategy->addItems({QStringLiteral("auto"), QStringLiteral("balanced"), QStringLiteral("balanced_low_0"),
                          QStringLiteral("sequential")});
    m_context = new QSpinBox(this);
    m_context->setObjectName(QStringLiteral("context"));
    m_context->setRange(256, 1 << 20);
    m_context->setSingleStep(1024);
    m_context->setValue(4096);
    m_context->setSuffix(tr(" tokens"));
    m_dtype = new QComboBox(this);
    m_dtype->addItems({QStringLiteral("auto"), QStringLiteral("bfloat16"), QStringLiteral("float16"), QStringLiteral("float32")});
    m_quant = new QComboBox(this);
    m_quant->setObjectName(QStringLiteral("quant"));
    m_quant->addItems({QStringLiteral("none"), QStringLiteral("int8"), QStringLiteral("nf4"), QStringLiteral("nf4-dq"),
                       QStringLiteral("fp4"), QStringLiteral("fp4-dq"), QStringLiteral("gptq-4bit-128g"),
                       QStringLiteral("gptq-3bit-128g")});
    m_quant->setToolTip(tr("Quantize the decoder's linear layers while loading (bitsandbytes layout): int8 (LLM.int8), "
                           "nf4/fp4 (4-bit, -dq: double quantization). GPTQ formats are planned with their real sizes; "
                           "loading them needs the GPTQ engine."));
    m_accelerate = new QCheckBox(tr("as accelerate"), this);
    m_accelerate->setToolTip(tr("Show accelerate's device_map for the strategy (it does not count the KV cache)"));
    // Two settings per row: the bar fits a narrow window (the verdict below wraps).
    int index = 0;
    for (auto [label, w] : {std::pair<QString, QWidget*>{tr("Strategy"), m_strategy}, {tr("Context"), m_context},
                            {tr("Dtype"), m_dtype}, {tr("Quantization"), m_quant}}) {
        grid->addWidget(new QLabel(label, this), index / 2, (index % 2) * 2);
        grid->addWidget(w, index / 2, (index % 2) * 2 + 1);
        ++index;
    }
    grid->addWidget(m_accelerate, 0, 4);
    grid->setColumnStretch(5, 1);
    const int col = 6;
    m_verdict = new QLabel(this);
    m_verdict->setObjectName(QStringLiteral("verdict"));
    m_verdict->setWordWrap(true);
    m_verdict->setTextInteractionFlags(Qt::TextSelectableByMouse);
    m_estimate = new QLabel(this);
    m_estimate->setObjectName(QStringLiteral("estimate"));
    m_estimate->setWordWrap(true);
    grid->addWidget(m_verdict, 2, 0, 1, col);
    grid->addWidget(m_estimate, 3, 0, 1, col);
    for (QComboBox* c : {m_strategy, m_dtype, m_quant})
        connect(c, &QComboBox::currentIndexChanged, this, &PlanBar::settingsChanged);
    connect(m_context, &QSpinBox::valueChanged, this, &PlanBar::settingsChanged);
    connect(m_accelerate, &QCheckBox::toggled, this, &PlanBar::settingsChanged);
}

void PlanBar::apply(PlanSettings& s) const
{
    s.strategy = m_strategy->currentText();
    s.context = m_context->value();
    s.dtype = m_dtype->currentText();
    s.quant = m_quant->currentText();
    s.accelerate = m_accelerate->isChecked();
}

void PlanBar::setSettings(const PlanSettings& s)
{
    const QSignalBlocker b1(m_strategy), b2(m_context), b3(m_dtype), b4(m_quant), b5(m_accelerate);
    m_strategy->setCurrentText(s.strategy);
    m_context->setValue(static_cast<int>(s.context));
    m_dtype->setCurrentText(s.dtype);
    m_quant->setCurrentText(s.quant);
    m_accelerate->setChecked(s.accelerate);
}

QString verdictHtml(const PlanView& plan)
{
    static const QHash<QString, QPair<QString, QString>> words{
        {QStringLiteral("fits_on_gpu"), {PlanBar::tr("Fits on the GPU"), QStringLiteral("#15803d")}},
        {QStringLiteral("fits_with_cpu_offload"), {PlanBar::tr("Fits with CPU offload"), QStringLiteral("#b45309")}},
        {QStringLiteral("fits_with_disk_offload"), {PlanBar::tr("Fits with disk offload"), QStringLiteral("#c2410c")}},
        {QStringLiteral("does_not_fit"), {PlanBar::tr("Does not fit"), QStringLiteral("#dc2626")}}};
    const auto w = words.value(plan.verdict, {plan.verdict, QStringLiteral("#000000")});
    return QStringLiteral("<b style='color:%1'>%2</b> — %3").arg(w.second, w.first, plan.reason.toHtmlEscaped());
}

void PlanBar::setPlan(const PlanView& plan)
{
    m_verdict->setText(verdictHtml(plan));
    m_estimate->setText(tr("Estimate: %1 tokens/s decode, %2 tokens/s prefill (%3)")
                            .arg(plan.decodeTokensPerSecond, 0, 'g', 3)
                            .arg(plan.prefillTokensPerSecond, 0, 'g', 3)
                            .arg(plan.mode));
}

QString PlanBar::verdictText() const
{
    return m_verdict->text();
}

} // namespace layerwise::ui
