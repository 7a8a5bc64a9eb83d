#pragma once
// The main window: pick a model (folder, dropped folder or preset) and see what it is
// made of, module by module, before anything is loaded.
#include "enginework.h"

#include <QMainWindow>
#include <QThread>

class QComboBox;
class QLabel;
class QPlainTextEdit;
class QTreeView;

namespace layerwise::ui {

class DevicePanel;
class EngineWorker;
class ModuleTreeModel;
class PlacementMap;
class PlanBar;

class MainWindow : public QMainWindow {
    Q_OBJECT
public:
    // probeBandwidth: measure RAM/disk bandwidth once (tests turn it off).
    explicit MainWindow(QWidget* parent = nullptr, bool probeBandwidth = true);
    ~MainWindow() override;

    // A folder, config.json or preset name; the result arrives asynchronously.
    void openModel(const QString& what);
    ModuleTreeModel* moduleModel() const { return m_model; }
    QString currentSource() const { return m_source; }
    QString lastError() const { return m_lastError; }
    PlacementMap* placementMap() const { return m_placement; }
    DevicePanel* devicePanel() const { return m_devices; }
    PlanBar* planBar() const { return m_planBar; }
    const PlanView& currentPlan() const { return m_plan; }
    // Adds a hypothetical GPU from a profile ("RTX-4090") as the next cuda index.
    void addHypotheticalGpu(const QString& profile);
    bool showErrorDialogs = true; // tests turn the modal dialog off

Q_SIGNALS:
    void requestDescribe(const QString& what);
    void requestDevices(const layerwise::ui::PlanSettings& settings);
    void requestPlan(const layerwise::ui::PlanSettings& settings);
    void requestMove(int first, int last, const QString& key);
    void requestDeviceMap(const QString& text);
    void modelShown(const QString& source);
    void modelFailed(const QString& message);
    void planShown();

protected:
    void dragEnterEvent(QDragEnterEvent* event) override;
    void dropEvent(QDropEvent* event) override;

private:
    void onDescribed(const ModelSummary& summary);
    void onFailed(const QString& what, const QString& message);
    void onPlanned(const PlanView& plan);
    void chooseFolder();
    void replan();
    PlanSettings settings() const;

    QThread m_engineThread;
    EngineWorker* m_worker = nullptr;
    ModuleTreeModel* m_model = nullptr;
    QComboBox* m_presets = nullptr;
    QPlainTextEdit* m_summary = nullptr;
    QTreeView* m_tree = nullptr;
    QLabel* m_status = nullptr;
    DevicePanel* m_devices = nullptr;
    PlacementMap* m_placement = nullptr;
    PlanBar* m_planBar = nullptr;
    QPlainTextEdit* m_mapText = nullptr;
    QStringList m_hypothetical;
    PlanView m_plan;
    QString m_source;
    QString m_lastError;
};

} // namespace layerwise::ui
