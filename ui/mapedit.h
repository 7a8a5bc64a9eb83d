#pragma once
// One undoable edit of the placement: the plan settings and the hf_device_map before and after.
#include "enginework.h"

#include <QUndoCommand>
#include <functional>

namespace layerwise::ui {

// The plan settings and the map of one undo step.
struct PlanSnapshot {
    PlanSettings settings;
    QString map;
};

// The first redo is the edit itself (already planned); later undo and redo re-plan from the
// stored snapshot through `restore`. Consecutive steps of one slider drag (same merge id, less
// than 1.5 s apart) become one step.
class MapEdit : public QUndoCommand {
public:
    using Restore = std::function<void(const PlanSnapshot&)>;
    MapEdit(Restore restore, const QString& label, PlanSnapshot before, PlanSnapshot after, int mergeId);
    int id() const override { return m_id; }
    bool mergeWith(const QUndoCommand* other) override;
    void undo() override;
    void redo() override;

private:
    Restore m_restore;
    PlanSnapshot m_before, m_after;
    int m_id;
    qint64 m_time;
    bool m_done = false;
};

} // namespace layerwise::ui
