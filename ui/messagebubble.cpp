#include "messagebubble.h"

#include <QHBoxLayout>
#include <QLabel>
#include <QToolButton>
#include <QVBoxLayout>

namespace layerwise::ui {

MessageBubble::MessageBubble(const QString& role, QWidget* parent) : QFrame(parent), m_role(role)
{
    const bool user = role == QLatin1String("user");
    setObjectName(user ? QStringLiteral("userBubble") : QStringLiteral("assistantBubble"));
    setFrameShape(QFrame::StyledPanel);
    setStyleSheet(user ? QStringLiteral("QFrame#userBubble { background: #e0ecff; border: 1px solid #b6cdf5; border-radius: 8px; }")
                       : QStringLiteral("QFrame#assistantBubble { background: palette(base); border: 1px solid #d4d4d8; border-radius: 8px; }"));
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(10, 6, 10, 6);
    auto* top = new QHBoxLayout;
    m_header = new QLabel(user ? tr("<b>You</b>") : tr("<b>Assistant</b>"), this);
    m_header->setStyleSheet(QStringLiteral("background: transparent; border: none;"));
    top->addWidget(m_header);
    top->addStretch(1);
    auto addButton = [this, top](const QString& text, const QString& tip) {
        auto* b = new QToolButton(this);
        b->setText(text);
        b->setToolTip(tip);
        b->setAutoRaise(true);
        top->addWidget(b);
        return b;
    };
    connect(addButton(tr("Copy"), tr("Copy this message to the clipboard")), &QToolButton::clicked, this,
            &MessageBubble::copyRequested);
    if (user) {
        auto* edit = addButton(tr("Edit"), tr("Edit this message and send it again (the answers after it are dropped)"));
        edit->setObjectName(QStringLiteral("editMessage"));
        connect(edit, &QToolButton::clicked, this, &MessageBubble::editRequested);
    } else {
        m_regenerate = addButton(tr("Regenerate"), tr("Answer the last message again"));
        m_regenerate->setObjectName(QStringLiteral("regenerate"));
        m_regenerate->setVisible(false);
        connect(m_regenerate, &QToolButton::clicked, this, &MessageBubble::regenerateRequested);
    }
    layout->addLayout(top);
    m_body = new QLabel(this);
    m_body->setObjectName(QStringLiteral("messageBody"));
    m_body->setWordWrap(true);
    m_body->setTextInteractionFlags(Qt::TextSelectableByMouse | Qt::LinksAccessibleByMouse);
    m_body->setOpenExternalLinks(true);
    m_body->setStyleSheet(QStringLiteral("background: transparent; border: none;"));
    // Questions are shown as typed; answers are Markdown.
    m_body->setTextFormat(user ? Qt::PlainText : Qt::MarkdownText);
    layout->addWidget(m_body);
    m_stats = new QLabel(this);
    m_stats->setObjectName(QStringLiteral("messageStats"));
    m_stats->setStyleSheet(QStringLiteral("background: transparent; border: none; color: #71717a; font-size: 11px;"));
    m_stats->setVisible(false);
    layout->addWidget(m_stats);
}

void MessageBubble::setContent(const QString& content)
{
    m_content = content;
    m_body->setText(content.isEmpty() && m_streaming ? tr("…") : content);
}

void MessageBubble::setStatsText(const QString& text)
{
    m_stats->setText(text);
    m_stats->setVisible(!text.isEmpty());
}

void MessageBubble::setStreaming(bool streaming)
{
    m_streaming = streaming;
    setContent(m_content);
}

void MessageBubble::setCanRegenerate(bool can)
{
    if (m_regenerate)
        m_regenerate->setVisible(can);
}

} // namespace layerwise::ui
