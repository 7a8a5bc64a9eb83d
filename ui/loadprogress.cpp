#include "loadprogress.h"

#include "moduletreemodel.h"

#include <QHBoxLayout>
#include <QLabel>
#include <QProgressBar>
#include <QPushButton>

namespace layerwise::ui {

LoadProgress::LoadProgress(QWidget* parent) : QWidget(parent)
{
    auto* layout = new QHBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    m_bar = new QProgressBar(this);
    m_bar->setObjectName(QStringLiteral("loadBar"));
    m_bar->setRange(0, 1000);
    m_bar->setFixedWidth(220);
    m_bar->setFormat(QStringLiteral("%p%"));
    m_text = new QLabel(this);
    m_text->setObjectName(QStringLiteral("loadText"));
    m_text->setMinimumWidth(360);
    m_cancel = new QPushButton(tr("Cancel"), this);
    m_cancel->setObjectName(QStringLiteral("cancelLoad"));
    m_cancel->setToolTip(tr("Stop loading; everything read so far is freed"));
    connect(m_cancel, &QPushButton::clicked, this, [this] {
        m_cancel->setEnabled(false);
        m_text->setText(tr("Cancelling…"));
        Q_EMIT cancelRequested();
    });
    layout->addWidget(m_bar);
    layout->addWidget(m_text, 1);
    layout->addWidget(m_cancel);
}

void LoadProgress::start(const QString& model)
{
    m_bar->setValue(0);
    m_cancel->setEnabled(true);
    m_text->setText(tr("Loading %1…").arg(model));
}

void LoadProgress::setProgress(const LoadProgressView& p)
{
    const double fraction = p.total > 0 ? static_cast<double>(p.done) / static_cast<double>(p.total) : 0.0;
    m_bar->setValue(static_cast<int>(fraction * 1000.0 + 0.5));
    if (p.done >= p.total && p.total > 0 && p.item.isEmpty()) {
        m_text->setText(tr("Loaded"));
        return;
    }
    QString text = tr("%1 of %2").arg(formatBytes(p.done), formatBytes(p.total));
    if (!p.item.isEmpty())
        text += QStringLiteral(" · ") + p.item;
    if (p.etaSeconds >= 0)
        text += tr(" · %1 s left").arg(p.etaSeconds, 0, 'f', p.etaSeconds < 10 ? 1 : 0);
    if (m_cancel->isEnabled())
        m_text->setText(text);
}

int LoadProgress::percent() const
{
    return m_bar->value() / 10;
}

QString LoadProgress::text() const
{
    return m_text->text();
}

} // namespace layerwise::ui
