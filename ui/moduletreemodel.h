#pragma once
// The module tree of a model as a Qt item model: module, class, size, parameters, dtype.
#include "enginework.h"

#include <QAbstractItemModel>

namespace layerwise::ui {

class ModuleTreeModel : public QAbstractItemModel {
    Q_OBJECT
public:
    enum Column { NameColumn, ClassColumn, BytesColumn, ParametersColumn, DtypeColumn, ColumnCount };
    enum Role { BytesRole = Qt::UserRole + 1, NoSplitRole };

    using QAbstractItemModel::QAbstractItemModel;

    void setSummary(const ModelSummary& summary);
    const ModelSummary& summary() const { return m_summary; }

    QModelIndex index(int row, int column, const QModelIndex& parent = {}) const override;
    QModelIndex parent(const QModelIndex& child) const override;
    int rowCount(const QModelIndex& parent = {}) const override;
    int columnCount(const QModelIndex& parent = {}) const override;
    QVariant data(const QModelIndex& index, int role = Qt::DisplayRole) const override;
    QVariant headerData(int section, Qt::Orientation orientation, int role = Qt::DisplayRole) const override;

private:
    int nodeOf(const QModelIndex& index) const; // the root (0) for an invalid index
    ModelSummary m_summary;
};

QString formatBytes(quint64 bytes);

} // namespace layerwise::ui
