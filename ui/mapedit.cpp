#include "mapedit.h"

#include <QDateTime>
#include <utility>

namespace layerwise::ui {

MapEdit::MapEdit(Restore restore, const QString& label, PlanSnapshot before, PlanSnapshot after, int mergeId)
    : QUndoCommand(label), m_restore(std::move(restore)), m_before(std::move(before)), m_after(std::move(after)),
      m_id(mergeId), m_time(QDateTime::currentMSecsSinceEpoch())
{
}

bool MapEdit::mergeWith(const QUndoCommand* other)
{
    const auto* o = static_cast<const MapEdit*>(other);
    if (o->m_time - m_time > 1500)
        return false;
    m_after = o->m_after;
    m_time = o->m_time;
    return true;
}

void MapEdit::undo()
{
    m_restore(m_before);
}

void MapEdit::redo()
{
    if (m_done)
        m_restore(m_after);
    m_done = true;
}

} // namespace layerwise::ui
