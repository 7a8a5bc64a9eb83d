#include "conversationlistmodel.h"

namespace layerwise::ui {

ConversationListModel::ConversationListModel(QObject* parent) : QAbstractListModel(parent) {}

int ConversationListModel::rowCount(const QModelIndex& parent) const
{
    return parent.isValid() ? 0 : static_cast<int>(m_items.size());
}

QVariant ConversationListModel::data(const QModelIndex& index, int role) const
{
    if (!checkIndex(index, CheckIndexOption::IndexIsValid | CheckIndexOption::ParentIsInvalid))
        return {};
    const StoredConversation& c = m_items[index.row()];
    switch (role) {
    case Qt::DisplayRole:
    case Qt::EditRole:
        return c.title;
    case Qt::ToolTipRole:
        return tr("%1 messages · %2").arg(c.messages.size()).arg(QLocale().toString(c.updated, QLocale::ShortFormat));
    case IdRole:
        return c.id;
    case UpdatedRole:
        return c.updated;
    case MessageCountRole:
        return static_cast<int>(c.messages.size());
    default:
        return {};
    }
}

bool ConversationListModel::setData(const QModelIndex& index, const QVariant& value, int role)
{
    if (role != Qt::EditRole || !checkIndex(index, CheckIndexOption::IndexIsValid | CheckIndexOption::ParentIsInvalid))
        return false;
    const QString title = value.toString().trimmed();
    if (title.isEmpty() || title == m_items[index.row()].title)
        return false;
    m_items[index.row()].title = title;
    Q_EMIT dataChanged(index, index, {Qt::DisplayRole, Qt::EditRole});
    Q_EMIT renamed(index.row());
    return true;
}

Qt::ItemFlags ConversationListModel::flags(const QModelIndex& index) const
{
    if (!index.isValid())
        return Qt::NoItemFlags;
    return QAbstractListModel::flags(index) | Qt::ItemIsEditable;
}

void ConversationListModel::setConversations(QVector<StoredConversation> conversations)
{
    beginResetModel();
    m_items = std::move(conversations);
    endResetModel();
}

int ConversationListModel::rowOf(const QString& id) const
{
    for (int i = 0; i < m_items.size(); ++i)
        if (m_items[i].id == id)
            return i;
    return -1;
}

int ConversationListModel::prepend(const StoredConversation& c)
{
    beginInsertRows({}, 0, 0);
    m_items.prepend(c);
    endInsertRows();
    return 0;
}

void ConversationListModel::replace(int row, const StoredConversation& c)
{
    if (row < 0 || row >= m_items.size())
        return;
    m_items[row] = c;
    Q_EMIT dataChanged(index(row), index(row));
}

void ConversationListModel::remove(int row)
{
    if (row < 0 || row >= m_items.size())
        return;
    beginRemoveRows({}, row, row);
    m_items.removeAt(row);
    endRemoveRows();
}

} // namespace layerwise::ui
