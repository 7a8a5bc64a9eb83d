#pragma once
// The main window: pick a model (folder, dropped folder or preset) and see what it is
// made of, module by module, before anything is loaded; load it with the plan (progress,
// Cancel), watch its layers work in the placement map, and chat with it.
// The window assembles panels (PlanPage, ChatPage, DefaultModelBanner, LoadProgress) and wires
// them to the engine worker; it keeps what spans them: the plan shown, the load state, the
// undo steps of map edits.
#include "chatwork.h"
#include "enginework.h"
#include "mapedit.h"

#include <QMainWindow>
#include <QPointer>
#include <QThread>

class QAction;
class QLabel;
class QMenu;
class QPushButton;
class QTabWidget;
class QUndoStack;

namespace layerwise::ui {

class ChatPage;
class ServerPanel;
class ChatView;
class DefaultModelBanner;
class DevicePanel;
class LoadProgress;
class EngineWorker;
class ModuleTreeModel;
class PlacementMap;
class PlanBar;
class PlanPage;
class QuantizeWizard;

class MainWindow : public QMainWindow {
    Q_OBJECT
public:
    // probeBandwidth: measure RAM/disk bandwidth once (tests turn it off).
    explicit MainWindow(QWidget* parent = nullptr, bool probeBandwidth = true);
    ~MainWindow() override;

    // A folder, config.json or preset name; the result arrives asynchronously.
    void openModel(const QString& what);
    ModuleTreeModel* moduleModel() const;
    QString currentSource() const { return m_source; }
    QString lastError() const { return m_lastError; }
    PlacementMap* placementMap() const;
    DevicePanel* devicePanel() const;
    PlanBar* planBar() const;
    const PlanView& currentPlan() const { return m_plan; }
    // Adds a hypothetical GPU from a profile ("RTX-4090") as the next cuda index.
    void addHypotheticalGpu(const QString& profile);
    bool showErrorDialogs = true; // tests turn the modal dialog off

    // Loads the planned model with the plan's device map and dtype (Ctrl+L); progress and
    // Cancel in the status bar; the result arrives asynchronously (modelLoaded / loadFinished).
    void loadModel();
    void unloadModel(); // Ctrl+U
    void cancelLoad();
    bool isLoaded() const { return m_loaded; }
    ServerPanel* serverPanel() const { return m_serverPanel; }
    bool isLoading() const { return m_loading; }
    const LoadedView& loadedModel() const { return m_loadedView; }
    ChatView* chatView() const;
    LoadProgress* loadProgress() const { return m_loadProgress; }
    // The worker on the engine thread (tests queue work on that thread through it).
    EngineWorker* engineWorker() const { return m_worker; }
    void showChat();
    void showPlan();
    bool isChatShown() const;
    // The model offered to first-time users: when set and there is no recent model, a banner
    // offers "Try <label>", which opens it, loads it with the automatic plan and shows the chat.
    void setDefaultChatModel(const QString& path, const QString& label);
    QPushButton* tryDefaultButton() const;
    bool isDefaultModelOffered() const;
    void tryDefaultModel();
    QStringList recentModelList() const;

    // Map edits (drags, applied maps, strategy and limit changes, imports) as undoable steps;
    // each step holds the hf_device_map before and after, and undo re-plans from the map before.
    QUndoStack* undoStack() const { return m_undo; }
    // The hf_device_map the map shows, as JSON text.
    QString shownDeviceMap() const;
    // Writes the shown map as JSON; false (and a dialog) when the file cannot be written.
    bool exportDeviceMap(const QString& path);
    // Applies a .json map or a .txt holding `print(model.hf_device_map)`; errors (unreadable
    // file, unknown names, unknown devices) in a dialog (objectName "importError"), map unchanged.
    void importDeviceMap(const QString& path);
    // Re-plans from a map without recording a step (what undo and redo do).
    void restoreDeviceMap(const QString& text);
    using PlanSnapshot = layerwise::ui::PlanSnapshot;
    // Shows the snapshot's settings (strategy, context, dtype, quantization, limits) and re-plans
    // with them and its map, without recording a step (what undo and redo do).
    void restoreSnapshot(const PlanSnapshot& snapshot);
    // Other machines running `layerwise worker` (mainwindow_machines.cpp): "Add machine…" asks
    // for the address and token; the machine's devices become cards and lanes grouped under it
    // and the layers are planned in pipeline stages. machinesChanged says it joined (failures go
    // to the usual error dialog).
    void addMachine(const QString& address, const QString& token);
    void chooseMachine();
    void removeMachines();
    QStringList machines() const { return m_machines; }
    // After a machine of the loaded pipeline failed: plans without it and loads again.
    void planWithout(const QString& address);
    // Opens the quantization wizard on the opened model folder (Ctrl+Shift+Q).
    void showQuantizeWizard();
    QuantizeWizard* quantizeWizard() const;
    // The text file the wizard offers as calibration data and the default evaluation text.
    void setDefaultCalibrationText(const QString& path) { m_calibration = path; }

protected:
    void closeEvent(QCloseEvent* event) override;

Q_SIGNALS:
    void requestDescribe(const QString& what);
    void requestDevices(const layerwise::ui::PlanSettings& settings);
    void requestPlan(const layerwise::ui::PlanSettings& settings);
    void requestMove(int first, int last, const QString& key);
    void requestModuleMove(const QString& module, const QString& key);
    void requestDeviceMap(const QString& text);
    void requestRestore(const layerwise::ui::PlanSettings& settings, const QString& map);
    void modelShown(const QString& source);
    void modelFailed(const QString& message);
    void planShown();
    void requestLoad();
    void requestUnload();
    void modelLoaded();
    void modelUnloaded();
    void loadFinished(bool ok); // ok false: failed or cancelled
    void loadErrorShown(const QString& message);
    void machinesChanged(const QStringList& machines);
    // A machine of the loaded pipeline failed; the dialog offering to plan without it is shown.
    void machineFailureShown(const QString& address);

protected:
    void dragEnterEvent(QDragEnterEvent* event) override;
    void dropEvent(QDropEvent* event) override;

private:
    // The constructor's parts, in the order it calls them.
    struct MenuActions {
        QAction *open = nullptr, *undo = nullptr, *redo = nullptr, *exportMap = nullptr, *importMap = nullptr;
    };
    void startEngine(bool probeBandwidth);
    MenuActions createActions();
    void createMenus(const MenuActions& actions);
    void createToolbar(const MenuActions& actions);
    void createViews();
    void connectServer();
    void connectPlanPage();
    void connectChat();
    void connectMachines();
    void addMachineActions(QMenu* menu);
    void onMachineFailed(const QString& address, const QString& message);
    QWidget* createCentralArea();
    void createStatusBar();
    void onDescribed(const ModelSummary& summary);
    void onFailed(const QString& what, const QString& message);
    void onPlanned(const PlanView& plan);
    void onLoaded(const LoadedView& view);
    void onLoadFailed(const QString& message, bool cancelled);
    void onUnloaded();
    void showPlacement();
    void updateActions();
    void rebuildRecentMenu();
    void saveLayout();
    void restoreLayout();
    void chooseFolder();
    void replan();
    PlanSettings settings() const;
    // What each pending plan request is, so that its answer becomes an undo step or not.
    enum class PendingKind { other, edit, restore };
    struct Pending {
        PendingKind kind = PendingKind::other;
        QString label;
        int mergeId = -1;
        PlanSettings settings; // the settings the request was made with
    };
    void expectPlan(PendingKind kind, const QString& label = {}, int mergeId = -1);
    void showMapError(const QString& title, const QString& text, const QString& details);
    void chooseExportFile();
    void chooseImportFile();

    QThread m_engineThread;
    EngineWorker* m_worker = nullptr;
    QLabel* m_status = nullptr;
    PlanPage* m_planPage = nullptr;
    ChatPage* m_chatPage = nullptr;
    ServerPanel* m_serverPanel = nullptr;
    QStringList m_hypothetical;
    PlanView m_plan;
    QString m_source;
    QString m_lastError;

    QTabWidget* m_views = nullptr;
    LoadProgress* m_loadProgress = nullptr;
    QAction* m_loadAction = nullptr;
    QAction* m_unloadAction = nullptr;
    QMenu* m_recentMenu = nullptr;
    DefaultModelBanner* m_banner = nullptr;
    QString m_defaultModelPath;
    bool m_loadWhenPlanned = false; // the default model's one-click path
    QStringList m_machines; // "host2  10.0.0.2:7070", as the engine worker names them
    bool m_chatWhenLoaded = false;
    bool m_loaded = false;
    bool m_loading = false;
    LoadedView m_loadedView;
    QVector<int> m_layerStates;
    QUndoStack* m_undo = nullptr;
    QVector<Pending> m_pending;
    QString m_committedMap; // the map of the last plan shown
    PlanSettings m_committedSettings; // and the settings it was planned with
    QPointer<QuantizeWizard> m_wizard;
    QAction* m_quantizeAction = nullptr;
    QString m_calibration;
    QString m_importing;    // the file being imported, until its plan or error arrives
};

} // namespace layerwise::ui
