#include "chatmodel.h"

namespace layerwise::ui {

ChatModel::ChatModel(QObject* parent) : QAbstractListModel(parent) {}

int ChatModel::rowCount(const QModelIndex& parent) const
{
    return parent.isValid() ? 0 : static_cast<int>(m_messages.size());
}

QVariant ChatModel::data(const QModelIndex& index, int role) const
{
    if (!checkIndex(index, CheckIndexOption::IndexIsValid | CheckIndexOption::ParentIsInvalid))
        return {};
    const StoredMessage& m = m_messages[index.row()];
    switch (role) {
    case Qt::DisplayRole:
    case ContentRole:
        return m.content;
    case RoleRole:
        return m.role;
    case StatsTextRole:
        return m.stats.isValid() ? statsText(m.stats) : QString();
    case StatsRole:
        return QVariant::fromValue(m.stats);
    case StreamingRole:
        return index.row() == m_streaming;
    default:
        return {};
    }
}

QHash<int, QByteArray> ChatModel::roleNames() const
{
    auto names = QAbstractListModel::roleNames();
    names.insert(RoleRole, "role");
    names.insert(ContentRole, "content");
    names.insert(StatsRole, "stats");
    names.insert(StatsTextRole, "statsText");
    names.insert(StreamingRole, "streaming");
    return names;
}

void ChatModel::setMessages(QVector<StoredMessage> messages)
{
    beginResetModel();
    m_messages = std::move(messages);
    m_streaming = -1;
    endResetModel();
}

int ChatModel::append(const QString& role, const QString& content)
{
    const int row = static_cast<int>(m_messages.size());
    beginInsertRows({}, row, row);
    m_messages.push_back({role, content, {}});
    endInsertRows();
    return row;
}

void ChatModel::appendText(int row, const QString& text)
{
    if (row < 0 || row >= m_messages.size() || text.isEmpty())
        return;
    m_messages[row].content += text;
    Q_EMIT dataChanged(index(row), index(row), {Qt::DisplayRole, ContentRole});
}

void ChatModel::setContent(int row, const QString& content)
{
    if (row < 0 || row >= m_messages.size())
        return;
    m_messages[row].content = content;
    Q_EMIT dataChanged(index(row), index(row), {Qt::DisplayRole, ContentRole});
}

void ChatModel::setStats(int row, const AnswerStats& stats)
{
    if (row < 0 || row >= m_messages.size())
        return;
    m_messages[row].stats = stats;
    Q_EMIT dataChanged(index(row), index(row), {StatsRole, StatsTextRole});
}

void ChatModel::setStreaming(int row)
{
    const int old = m_streaming;
    m_streaming = row;
    for (int r : {old, row})
        if (r >= 0 && r < m_messages.size())
            Q_EMIT dataChanged(index(r), index(r), {StreamingRole});
}

void ChatModel::truncate(int count)
{
    count = std::max(0, count);
    if (count >= m_messages.size())
        return;
    beginRemoveRows({}, count, static_cast<int>(m_messages.size()) - 1);
    m_messages.resize(count);
    if (m_streaming >= count)
        m_streaming = -1;
    endRemoveRows();
}

QString ChatModel::statsText(const AnswerStats& s)
{
    QString text = tr("%1 tokens · %2 tokens/s · first token %3 ms · context %4/%5")
                       .arg(s.tokens)
                       .arg(s.tokensPerSecond, 0, 'f', 1)
                       .arg(s.ttftMs, 0, 'f', 0)
                       .arg(s.contextUsed)
                       .arg(s.contextLength);
    if (s.stopReason == QLatin1String("stopped"))
        text += tr(" · stopped");
    else if (s.stopReason == QLatin1String("max_new_tokens"))
        text += tr(" · token limit");
    else if (s.stopReason == QLatin1String("context_full"))
        text += tr(" · context full");
    return text;
}

} // namespace layerwise::ui
