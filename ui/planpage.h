#pragma once
// The Plan tab: the device cards (memory bars, limit sliders) on the left; the plan bar and
// the placement map over the hf_device_map editor in the middle; the model's summary and
// module tree on the right. Its panels speak through their own signals (DevicePanel,
// PlanBar, PlacementMap, MapEditor); the main window turns them into plan requests.
#include "enginework.h"

#include <QSplitter>

class QPlainTextEdit;
class QSettings;
class QTreeView;

namespace layerwise::ui {

class DevicePanel;
class MapEditor;
class ModuleTreeModel;
class PlacementMap;
class PlanBar;

class PlanPage : public QSplitter {
    Q_OBJECT
public:
    explicit PlanPage(QWidget* parent = nullptr);

    DevicePanel* devicePanel() const { return m_devices; }
    PlanBar* planBar() const { return m_planBar; }
    PlacementMap* placementMap() const { return m_placement; }
    MapEditor* mapEditor() const { return m_mapEditor; }
    ModuleTreeModel* moduleModel() const { return m_model; }

    // The opened model's summary text and module tree.
    void showSummary(const ModelSummary& summary);

    // The splitters' sizes, kept across runs.
    void saveLayout(QSettings& settings) const;
    void restoreLayout(const QSettings& settings);

private:
    QWidget* createDeviceColumn();
    QWidget* createMapColumn();
    QWidget* createModelColumn();

    DevicePanel* m_devices = nullptr;
    PlanBar* m_planBar = nullptr;
    PlacementMap* m_placement = nullptr;
    MapEditor* m_mapEditor = nullptr;
    QSplitter* m_centerSplitter = nullptr;
    QPlainTextEdit* m_summary = nullptr;
    ModuleTreeModel* m_model = nullptr;
    QTreeView* m_tree = nullptr;
};

} // namespace layerwise::ui
