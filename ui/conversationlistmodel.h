#pragma once
// The saved conversations as a list (title; rename by editing). Presents StoredConversation
// values; ChatView keeps it and the store in step.
#include "conversationstore.h"

#include <QAbstractListModel>

namespace layerwise::ui {

class ConversationListModel : public QAbstractListModel {
    Q_OBJECT
public:
    enum Roles { IdRole = Qt::UserRole + 1, UpdatedRole, MessageCountRole };
    explicit ConversationListModel(QObject* parent = nullptr);

    int rowCount(const QModelIndex& parent = {}) const override;
    QVariant data(const QModelIndex& index, int role = Qt::DisplayRole) const override;
    bool setData(const QModelIndex& index, const QVariant& value, int role = Qt::EditRole) override;
    Qt::ItemFlags flags(const QModelIndex& index) const override;

    void setConversations(QVector<StoredConversation> conversations);
    const QVector<StoredConversation>& conversations() const { return m_items; }
    const StoredConversation& at(int row) const { return m_items[row]; }
    int rowOf(const QString& id) const;
    // Inserts at the top; returns its row (0).
    int prepend(const StoredConversation& c);
    void replace(int row, const StoredConversation& c);
    void remove(int row);

Q_SIGNALS:
    void renamed(int row);

private:
    QVector<StoredConversation> m_items;
};

} // namespace layerwise::ui
