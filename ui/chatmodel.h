#pragma once
// The messages of the conversation on screen. The answer being generated is the last row;
// streamed pieces are appended to it.
#include "conversationstore.h"

#include <QAbstractListModel>

namespace layerwise::ui {

class ChatModel : public QAbstractListModel {
    Q_OBJECT
public:
    enum Roles { RoleRole = Qt::UserRole + 1, ContentRole, StatsRole, StatsTextRole, StreamingRole };
    explicit ChatModel(QObject* parent = nullptr);

    int rowCount(const QModelIndex& parent = {}) const override;
    QVariant data(const QModelIndex& index, int role = Qt::DisplayRole) const override;
    QHash<int, QByteArray> roleNames() const override;

    void setMessages(QVector<StoredMessage> messages);
    const QVector<StoredMessage>& messages() const { return m_messages; }
    int append(const QString& role, const QString& content); // returns the new row
    void appendText(int row, const QString& text);
    void setContent(int row, const QString& content);
    void setStats(int row, const AnswerStats& stats);
    void setStreaming(int row) ; // -1: none
    int streamingRow() const { return m_streaming; }
    // Keeps the first `count` messages.
    void truncate(int count);

    // "42 tokens · 120.3 tokens/s · first token 35 ms · context 60/4096"
    static QString statsText(const AnswerStats& s);

private:
    QVector<StoredMessage> m_messages;
    int m_streaming = -1;
};

} // namespace layerwise::ui
