#pragma once
// One message of the chat: who, the text (answers rendered as Markdown), its statistics,
// and its actions (copy; edit for questions; regenerate for the last answer).
#include <QFrame>

class QLabel;
class QToolButton;

namespace layerwise::ui {

class MessageBubble : public QFrame {
    Q_OBJECT
public:
    MessageBubble(const QString& role, QWidget* parent = nullptr);
    void setContent(const QString& content);
    void setStatsText(const QString& text);
    void setStreaming(bool streaming);
    void setCanRegenerate(bool can);
    QString content() const { return m_content; }
    QLabel* body() const { return m_body; }

Q_SIGNALS:
    void copyRequested();
    void editRequested();
    void regenerateRequested();

private:
    QString m_role;
    QString m_content;
    QLabel* m_header = nullptr;
    QLabel* m_body = nullptr;
    QLabel* m_stats = nullptr;
    QToolButton* m_regenerate = nullptr;
    bool m_streaming = false;
};

} // namespace layerwise::ui
