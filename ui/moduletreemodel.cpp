#include "moduletreemodel.h"

#include <QLocale>

namespace layerwise::ui {

QString formatBytes(quint64 bytes)
{
    return QLocale::c().formattedDataSize(static_cast<qint64>(bytes), 2, QLocale::DataSizeIecFormat);
}

void ModuleTreeModel::setSummary(const ModelSummary& summary)
{
    beginResetModel();
    m_summary = summary;
    endResetModel();
}

int ModuleTreeModel::nodeOf(const QModelIndex& index) const
{
    return index.isValid() ? static_cast<int>(index.internalId()) : 0;
}

QModelIndex ModuleTreeModel::index(int row, int column, const QModelIndex& parent) const
{
    if (m_summary.modules.isEmpty() || row < 0 || column < 0 || column >= ColumnCount)
        return {};
    if (parent.isValid() && parent.column() != 0)
        return {};
    const auto& children = m_summary.modules[nodeOf(parent)].children;
    if (row >= children.size())
        return {};
    return createIndex(row, column, static_cast<quintptr>(children[row]));
}

QModelIndex ModuleTreeModel::parent(const QModelIndex& child) const
{
    if (!child.isValid())
        return {};
    const int parentNode = m_summary.modules[nodeOf(child)].parent;
    if (parentNode <= 0)
        return {};
    const int grand = m_summary.modules[parentNode].parent;
    const int row = static_cast<int>(m_summary.modules[grand].children.indexOf(parentNode));
    return createIndex(row, 0, static_cast<quintptr>(parentNode));
}

int ModuleTreeModel::rowCount(const QModelIndex& parent) const
{
    if (m_summary.modules.isEmpty() || (parent.isValid() && parent.column() != 0))
        return 0;
    return static_cast<int>(m_summary.modules[nodeOf(parent)].children.size());
}

int ModuleTreeModel::columnCount(const QModelIndex&) const
{
    return ColumnCount;
}

QVariant ModuleTreeModel::data(const QModelIndex& index, int role) const
{
    if (!checkIndex(index, CheckIndexOption::IndexIsValid))
        return {};
    const ModuleRow& r = m_summary.modules[nodeOf(index)];
    if (role == BytesRole)
        return r.bytes;
    if (role == NoSplitRole)
        return r.noSplit;
    if (role == Qt::TextAlignmentRole && (index.column() == BytesColumn || index.column() == ParametersColumn))
        return QVariant::fromValue(Qt::AlignRight | Qt::AlignVCenter);
    if (role == Qt::ToolTipRole && r.noSplit)
        return tr("%1 is kept whole on one device").arg(r.name);
    if (role == Qt::ToolTipRole && !r.tiedTo.isEmpty())
        return tr("Shares its weight with %1: stored and counted once").arg(r.tiedTo);
    if (role != Qt::DisplayRole)
        return {};
    switch (index.column()) {
    case NameColumn: {
        const qsizetype dot = r.name.lastIndexOf(QLatin1Char('.'));
        return dot < 0 ? r.name : r.name.mid(dot + 1);
    }
    case ClassColumn: return r.className;
    case BytesColumn: return r.bytes == 0 && !r.tiedTo.isEmpty() ? tr("tied") : formatBytes(r.bytes);
    case ParametersColumn: return QLocale().toString(r.parameters);
    case DtypeColumn: return r.dtype;
    }
    return {};
}

QVariant ModuleTreeModel::headerData(int section, Qt::Orientation orientation, int role) const
{
    if (orientation != Qt::Horizontal || role != Qt::DisplayRole)
        return {};
    switch (section) {
    case NameColumn: return tr("Module");
    case ClassColumn: return tr("Class");
    case BytesColumn: return tr("Size");
    case ParametersColumn: return tr("Parameters");
    case DtypeColumn: return tr("Dtype");
    }
    return {};
}

} // namespace layerwise::ui
