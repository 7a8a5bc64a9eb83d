#include "samplingform.h"

#include <QCheckBox>
#include <QCryptographicHash>
#include <QDoubleSpinBox>
#include <QFormLayout>
#include <QSettings>
#include <QSpinBox>

namespace layerwise::ui {

namespace {

QDoubleSpinBox* doubleBox(QWidget* parent, double lo, double hi, double step, int decimals, const QString& tip)
{
    auto* b = new QDoubleSpinBox(parent);
    b->setRange(lo, hi);
    b->setSingleStep(step);
    b->setDecimals(decimals);
    b->setToolTip(tip);
    return b;
}

QString groupFor(const QString& model)
{
    // A model folder path is not a valid settings key: use its hash.
    return QStringLiteral("sampling/") +
           QString::fromLatin1(QCryptographicHash::hash(model.toUtf8(), QCryptographicHash::Sha1).toHex().left(16));
}

} // namespace

SamplingForm::SamplingForm(QWidget* parent) : QWidget(parent)
{
    auto* form = new QFormLayout(this);
    form->setContentsMargins(0, 0, 0, 0);
    m_greedy = new QCheckBox(tr("Greedy (always the most likely token)"), this);
    m_greedy->setObjectName(QStringLiteral("greedy"));
    m_greedy->setToolTip(tr("Deterministic: ignores temperature, top-k, top-p and min-p."));
    m_temperature = doubleBox(this, 0.0, 5.0, 0.05, 2, tr("Higher is more varied; 0 is greedy."));
    m_temperature->setObjectName(QStringLiteral("temperature"));
    m_topK = new QSpinBox(this);
    m_topK->setRange(0, 100000);
    m_topK->setSpecialValueText(tr("off"));
    m_topK->setToolTip(tr("Sample only among the k most likely tokens (0: off)."));
    m_topP = doubleBox(this, 0.0, 1.0, 0.05, 2, tr("Nucleus sampling: the smallest set of tokens whose probability reaches p (1: off)."));
    m_minP = doubleBox(this, 0.0, 1.0, 0.01, 2, tr("Drop tokens less likely than min-p × the most likely one (0: off)."));
    m_repetition = doubleBox(this, 0.5, 3.0, 0.05, 2, tr("Above 1 discourages repeating tokens already in the conversation."));
    m_maxNewTokens = new QSpinBox(this);
    m_maxNewTokens->setObjectName(QStringLiteral("maxNewTokens"));
    m_maxNewTokens->setRange(1, 1 << 20);
    m_maxNewTokens->setToolTip(tr("The longest answer, in tokens."));
    m_seed = new QSpinBox(this);
    m_seed->setRange(0, std::numeric_limits<int>::max());
    m_seed->setToolTip(tr("The random seed: the same seed and settings give the same answer."));
    form->addRow(m_greedy);
    form->addRow(tr("Temperature"), m_temperature);
    form->addRow(tr("Top-k"), m_topK);
    form->addRow(tr("Top-p"), m_topP);
    form->addRow(tr("Min-p"), m_minP);
    form->addRow(tr("Repetition penalty"), m_repetition);
    form->addRow(tr("Max new tokens"), m_maxNewTokens);
    form->addRow(tr("Seed"), m_seed);
    setSettings({});
    connect(m_greedy, &QCheckBox::toggled, this, [this] {
        updateEnabled();
        Q_EMIT changed();
    });
    for (auto* b : {m_temperature, m_topP, m_minP, m_repetition})
        connect(b, &QDoubleSpinBox::valueChanged, this, &SamplingForm::changed);
    for (auto* b : {m_topK, m_maxNewTokens, m_seed})
        connect(b, &QSpinBox::valueChanged, this, &SamplingForm::changed);
}

void SamplingForm::updateEnabled()
{
    for (QWidget* w : std::initializer_list<QWidget*>{m_temperature, m_topK, m_topP, m_minP, m_seed})
        w->setEnabled(!m_greedy->isChecked());
}

SamplingSettings SamplingForm::settings() const
{
    SamplingSettings s;
    s.greedy = m_greedy->isChecked();
    s.temperature = m_temperature->value();
    s.topK = m_topK->value();
    s.topP = m_topP->value();
    s.minP = m_minP->value();
    s.repetitionPenalty = m_repetition->value();
    s.maxNewTokens = m_maxNewTokens->value();
    s.seed = static_cast<quint64>(m_seed->value());
    return s;
}

void SamplingForm::setSettings(const SamplingSettings& s)
{
    const QSignalBlocker blockers[] = {QSignalBlocker(m_greedy), QSignalBlocker(m_temperature), QSignalBlocker(m_topK),
                                       QSignalBlocker(m_topP), QSignalBlocker(m_minP), QSignalBlocker(m_repetition),
                                       QSignalBlocker(m_maxNewTokens), QSignalBlocker(m_seed)};
    m_greedy->setChecked(s.greedy);
    m_temperature->setValue(s.temperature);
    m_topK->setValue(s.topK);
    m_topP->setValue(s.topP);
    m_minP->setValue(s.minP);
    m_repetition->setValue(s.repetitionPenalty);
    m_maxNewTokens->setValue(s.maxNewTokens);
    m_seed->setValue(static_cast<int>(s.seed));
    updateEnabled();
}

SamplingSettings SamplingForm::load(QSettings& settings, const QString& model)
{
    SamplingSettings s;
    settings.beginGroup(groupFor(model));
    s.greedy = settings.value(QStringLiteral("greedy"), s.greedy).toBool();
    s.temperature = settings.value(QStringLiteral("temperature"), s.temperature).toDouble();
    s.topK = settings.value(QStringLiteral("topK"), s.topK).toInt();
    s.topP = settings.value(QStringLiteral("topP"), s.topP).toDouble();
    s.minP = settings.value(QStringLiteral("minP"), s.minP).toDouble();
    s.repetitionPenalty = settings.value(QStringLiteral("repetitionPenalty"), s.repetitionPenalty).toDouble();
    s.maxNewTokens = settings.value(QStringLiteral("maxNewTokens"), s.maxNewTokens).toInt();
    s.seed = settings.value(QStringLiteral("seed"), s.seed).toULongLong();
    settings.endGroup();
    return s;
}

void SamplingForm::save(QSettings& settings, const QString& model, const SamplingSettings& s)
{
    settings.beginGroup(groupFor(model));
    settings.setValue(QStringLiteral("model"), model);
    settings.setValue(QStringLiteral("greedy"), s.greedy);
    settings.setValue(QStringLiteral("temperature"), s.temperature);
    settings.setValue(QStringLiteral("topK"), s.topK);
    settings.setValue(QStringLiteral("topP"), s.topP);
    settings.setValue(QStringLiteral("minP"), s.minP);
    settings.setValue(QStringLiteral("repetitionPenalty"), s.repetitionPenalty);
    settings.setValue(QStringLiteral("maxNewTokens"), s.maxNewTokens);
    settings.setValue(QStringLiteral("seed"), s.seed);
    settings.endGroup();
}

} // namespace layerwise::ui
