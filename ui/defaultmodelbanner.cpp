#include "defaultmodelbanner.h"

#include <QHBoxLayout>
#include <QLabel>
#include <QPushButton>

namespace layerwise::ui {

DefaultModelBanner::DefaultModelBanner(QWidget* parent) : QFrame(parent)
{
    setObjectName(QStringLiteral("defaultModelBanner"));
    setStyleSheet(QStringLiteral("QFrame#defaultModelBanner { background: #ecfdf5; border: 1px solid #6ee7b7; border-radius: 6px; }"));
    auto* layout = new QHBoxLayout(this);
    m_text = new QLabel(this);
    m_text->setWordWrap(true);
    m_try = new QPushButton(this);
    m_try->setObjectName(QStringLiteral("tryDefaultModel"));
    m_try->setStyleSheet(QStringLiteral("QPushButton { font-weight: bold; padding: 6px 16px; }"));
    connect(m_try, &QPushButton::clicked, this, &DefaultModelBanner::tryRequested);
    auto* dismiss = new QPushButton(tr("Not now"), this);
    connect(dismiss, &QPushButton::clicked, this, &QWidget::hide);
    layout->addWidget(m_text, 1);
    layout->addWidget(m_try);
    layout->addWidget(dismiss);
}

void DefaultModelBanner::setModel(const QString& path, const QString& label)
{
    m_try->setText(tr("Try %1").arg(label));
    m_try->setToolTip(tr("Open %1, load it with the automatic plan and start chatting").arg(path));
    m_text->setText(tr("<b>New here?</b> Try a small model first: %1 loads in seconds and answers in the Chat tab.")
                        .arg(label.toHtmlEscaped()));
}

} // namespace layerwise::ui
