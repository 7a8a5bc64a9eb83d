#include "mainwindow.h"

#include "aboutbox.h"
#include "chatpage.h"
#include "chatview.h"
#include "defaultmodelbanner.h"
#include "devicepanel.h"
#include "engineworker.h"
#include "serverpanel.h"
#include "loadprogress.h"
#include "mapedit.h"
#include "mapeditor.h"
#include "recentmodels.h"
#include "moduletreemodel.h"
#include "placementmap.h"
#include "planbar.h"
#include "planpage.h"
#include "quantizewizard.h"
#include "toolbarchoosers.h"

#include <QPushButton>
#include <QTabWidget>
#include <QVBoxLayout>

#include <QAction>
#include <QCloseEvent>
#include <QMenu>
#include <QDir>
#include <QDragEnterEvent>
#include <QMenuBar>
#include <QSettings>
#include <QStandardPaths>
#include <QFileDialog>
#include <QFileInfo>
#include <QLabel>
#include <QMessageBox>
#include <QMimeData>
#include <QStatusBar>
#include <QToolBar>
#include <QUndoStack>
#include <QFile>
#include <QJsonDocument>
#include <QSaveFile>

namespace layerwise::ui {

namespace {

constexpr int limitMergeId = 1;

} // namespace

MainWindow::MainWindow(QWidget* parent, bool probeBandwidth) : QMainWindow(parent)
{
    qRegisterMetaType<ModelSummary>();
    qRegisterMetaType<PlanSettings>();
    qRegisterMetaType<PlanView>();
    qRegisterMetaType<QVector<DeviceRow>>();
    qRegisterMetaType<ChatTurnRequest>();
    qRegisterMetaType<AnswerStats>();
    qRegisterMetaType<LoadProgressView>();
    qRegisterMetaType<LoadedView>();
    qRegisterMetaType<QVector<int>>();
    setWindowTitle(tr("Layerwise"));
    setAcceptDrops(true);
    resize(1400, 860);

    startEngine(probeBandwidth);
    const MenuActions actions = createActions();
    createMenus(actions);
    createToolbar(actions);
    createViews();
    setCentralWidget(createCentralArea());
    createStatusBar();
    rebuildRecentMenu();
    restoreLayout();
    updateActions();
}


// The engine worker on its own thread, and every queued connection between it and the window.
void MainWindow::startEngine(bool probeBandwidth)
{
    m_worker = new EngineWorker;
    m_worker->probeBandwidth = probeBandwidth;
    m_worker->offloadFolder = QDir(QStandardPaths::writableLocation(QStandardPaths::CacheLocation)).filePath(QStringLiteral("offload"));
    QDir().mkpath(m_worker->offloadFolder);
    m_worker->moveToThread(&m_engineThread);
    connect(&m_engineThread, &QThread::finished, m_worker, &QObject::deleteLater);
    connect(this, &MainWindow::requestDescribe, m_worker, &EngineWorker::describe, Qt::QueuedConnection);
    connect(m_worker, &EngineWorker::described, this, &MainWindow::onDescribed, Qt::QueuedConnection);
    connect(m_worker, &EngineWorker::failed, this, &MainWindow::onFailed, Qt::QueuedConnection);
    connect(this, &MainWindow::requestDevices, m_worker, &EngineWorker::detectDevices, Qt::QueuedConnection);
    connect(this, &MainWindow::requestPlan, m_worker, &EngineWorker::plan, Qt::QueuedConnection);
    connect(this, &MainWindow::requestMove, m_worker, &EngineWorker::moveLayers, Qt::QueuedConnection);
    connect(this, &MainWindow::requestModuleMove, m_worker, &EngineWorker::moveModule, Qt::QueuedConnection);
    connect(this, &MainWindow::requestDeviceMap, m_worker, &EngineWorker::useDeviceMap, Qt::QueuedConnection);
    connect(this, &MainWindow::requestRestore, m_worker, &EngineWorker::restorePlan, Qt::QueuedConnection);
    connect(m_worker, &EngineWorker::planned, this, &MainWindow::onPlanned, Qt::QueuedConnection);
    connect(m_worker, &EngineWorker::devicesDetected, this, [this](const QVector<DeviceRow>& rows) {
        devicePanel()->setDevices(rows);
        devicePanel()->setFootprints(m_plan.devices);
    }, Qt::QueuedConnection);
    connect(this, &MainWindow::requestLoad, m_worker, &EngineWorker::load, Qt::QueuedConnection);
    connect(this, &MainWindow::requestUnload, m_worker, &EngineWorker::unload, Qt::QueuedConnection);
    connect(m_worker, &EngineWorker::loaded, this, &MainWindow::onLoaded, Qt::QueuedConnection);
    connect(m_worker, &EngineWorker::loadFailed, this, &MainWindow::onLoadFailed, Qt::QueuedConnection);
    connect(m_worker, &EngineWorker::unloaded, this, &MainWindow::onUnloaded, Qt::QueuedConnection);
    connect(m_worker, &EngineWorker::layerStates, this, [this](const QVector<int>& states) {
        if (!m_loaded)
            return;
        m_layerStates = states;
        m_planPage->placementMap()->setLayerStates(states);
        m_chatPage->placementMap()->setLayerStates(states);
    }, Qt::QueuedConnection);
    connectMachines();
    m_engineThread.setObjectName(QStringLiteral("engine"));
    m_engineThread.start();

}

// Open, Load, Unload, Quantize, Undo/Redo, import and export of the device map.
MainWindow::MenuActions MainWindow::createActions()
{
    MenuActions a;
    a.open = new QAction(tr("Open model folder…"), this);
    a.open->setShortcut(QKeySequence::Open);
    a.open->setToolTip(tr("Open a Hugging Face model folder (config.json + safetensors) — Ctrl+O"));
    connect(a.open, &QAction::triggered, this, &MainWindow::chooseFolder);
    m_loadAction = new QAction(tr("Load"), this);
    m_loadAction->setObjectName(QStringLiteral("loadAction"));
    m_loadAction->setShortcut(QKeySequence(Qt::CTRL | Qt::Key_L));
    m_loadAction->setToolTip(tr("Load the model's weights with the current plan's device map and dtype (Ctrl+L)"));
    connect(m_loadAction, &QAction::triggered, this, &MainWindow::loadModel);
    m_unloadAction = new QAction(tr("Unload"), this);
    m_unloadAction->setObjectName(QStringLiteral("unloadAction"));
    m_unloadAction->setShortcut(QKeySequence(Qt::CTRL | Qt::Key_U));
    m_unloadAction->setToolTip(tr("Free the loaded weights (Ctrl+U)"));
    connect(m_unloadAction, &QAction::triggered, this, &MainWindow::unloadModel);
    m_quantizeAction = new QAction(tr("&Quantize…"), this);
    m_quantizeAction->setObjectName(QStringLiteral("quantizeAction"));
    m_quantizeAction->setShortcut(QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_Q));
    m_quantizeAction->setToolTip(tr("Write a quantized copy of the opened model folder: int8, nf4, fp4 or GPTQ (Ctrl+Shift+Q)"));
    connect(m_quantizeAction, &QAction::triggered, this, &MainWindow::showQuantizeWizard);
    addAction(m_loadAction);
    addAction(m_unloadAction);
    addAction(m_quantizeAction);

    m_undo = new QUndoStack(this);
    a.undo = m_undo->createUndoAction(this, tr("&Undo"));
    a.undo->setObjectName(QStringLiteral("undoAction"));
    a.undo->setShortcut(QKeySequence::Undo);
    a.undo->setToolTip(tr("Undo the last change of the placement (Ctrl+Z)"));
    a.redo = m_undo->createRedoAction(this, tr("&Redo"));
    a.redo->setObjectName(QStringLiteral("redoAction"));
    a.redo->setShortcuts({QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_Z), QKeySequence(Qt::CTRL | Qt::Key_Y)});
    a.redo->setToolTip(tr("Redo the change undone last (Ctrl+Shift+Z)"));
    a.exportMap = new QAction(tr("&Export device map…"), this);
    a.exportMap->setObjectName(QStringLiteral("exportMapAction"));
    a.exportMap->setToolTip(tr("Save the hf_device_map shown as a JSON file (usable as device_map= in transformers)"));
    connect(a.exportMap, &QAction::triggered, this, &MainWindow::chooseExportFile);
    a.importMap = new QAction(tr("&Import device map…"), this);
    a.importMap->setObjectName(QStringLiteral("importMapAction"));
    a.importMap->setToolTip(tr("Apply a device map from a .json file or a .txt holding print(model.hf_device_map)"));
    connect(a.importMap, &QAction::triggered, this, &MainWindow::chooseImportFile);

    return a;
}

void MainWindow::createMenus(const MenuActions& a)
{
    auto* fileMenu = menuBar()->addMenu(tr("&File"));
    fileMenu->addAction(a.open);
    m_recentMenu = fileMenu->addMenu(tr("Open &Recent"));
    m_recentMenu->setObjectName(QStringLiteral("recentMenu"));
    fileMenu->addSeparator();
    fileMenu->addAction(a.importMap);
    fileMenu->addAction(a.exportMap);
    fileMenu->addSeparator();
    fileMenu->addAction(tr("&Quit"), QKeySequence::Quit, this, &QWidget::close);
    auto* editMenu = menuBar()->addMenu(tr("&Edit"));
    editMenu->addAction(a.undo);
    editMenu->addAction(a.redo);
    auto* modelMenu = menuBar()->addMenu(tr("&Model"));
    modelMenu->addAction(m_loadAction);
    modelMenu->addAction(m_unloadAction);
    modelMenu->addSeparator();
    modelMenu->addAction(m_quantizeAction);
    modelMenu->addSeparator();
    addMachineActions(modelMenu);
    auto* helpMenu = menuBar()->addMenu(tr("&Help"));
    helpMenu->addAction(tr("&About Layerwise"), this, [this] { showAbout(this); });

}

// Model actions, undo/redo, the preset chooser and the hypothetical-GPU chooser.
void MainWindow::createToolbar(const MenuActions& a)
{
    auto* toolbar = addToolBar(tr("Model"));
    toolbar->setObjectName(QStringLiteral("modelToolbar"));
    toolbar->setMovable(false);
    toolbar->addAction(a.open);
    toolbar->addAction(m_loadAction);
    toolbar->addAction(m_unloadAction);
    toolbar->addSeparator();
    toolbar->addAction(a.undo);
    toolbar->addAction(a.redo);
    toolbar->addSeparator();
    toolbar->addWidget(new QLabel(tr(" Preset: "), toolbar));
    auto* presets = new PresetChooser(toolbar);
    connect(presets, &PresetChooser::presetChosen, this, &MainWindow::openModel);
    toolbar->addWidget(presets);
    toolbar->addSeparator();
    toolbar->addWidget(new QLabel(tr(" Add a GPU: "), toolbar));
    auto* gpuProfiles = new GpuProfileChooser(toolbar);
    connect(gpuProfiles, &GpuProfileChooser::profileChosen, this, &MainWindow::addHypotheticalGpu);
    toolbar->addWidget(gpuProfiles);

}

// The Plan and Chat tabs, and the banner that offers the default model on a first start.
void MainWindow::createViews()
{
    m_planPage = new PlanPage(this);
    m_chatPage = new ChatPage(this);
    connectPlanPage();
    connectChat();

    m_views = new QTabWidget(this);
    m_views->setObjectName(QStringLiteral("views"));
    m_views->setDocumentMode(true);
    m_views->addTab(m_planPage, tr("Plan"));
    m_views->addTab(m_chatPage, tr("Chat"));
    m_serverPanel = new ServerPanel(this);
    m_serverPanel->setObjectName(QStringLiteral("serverPanel"));
    connectServer();
    m_views->addTab(m_serverPanel, tr("Server"));
    m_views->setTabToolTip(0, tr("Devices, the placement of every layer, and the device map"));
    m_views->setTabToolTip(1, tr("Chat with the loaded model"));
    m_views->setTabToolTip(2, tr("Serve the loaded model over OpenAI's API to other programs"));

    m_banner = new DefaultModelBanner(this);
    connect(m_banner, &DefaultModelBanner::tryRequested, this, &MainWindow::tryDefaultModel);
    m_banner->hide();
}

// The Server tab: its switch starts and stops the worker's server over the loaded model.
void MainWindow::connectServer()
{
    qRegisterMetaType<ServerSettings>();
    qRegisterMetaType<ServerRequestView>();
    connect(m_serverPanel, &ServerPanel::startRequested, m_worker, &EngineWorker::startServer, Qt::QueuedConnection);
    connect(m_serverPanel, &ServerPanel::stopRequested, m_worker, &EngineWorker::stopServer, Qt::QueuedConnection);
    connect(m_worker, &EngineWorker::serverStarted, m_serverPanel, &ServerPanel::onStarted, Qt::QueuedConnection);
    connect(m_worker, &EngineWorker::serverStopped, m_serverPanel, &ServerPanel::onStopped, Qt::QueuedConnection);
    connect(m_worker, &EngineWorker::serverRequest, m_serverPanel, &ServerPanel::onRequest, Qt::QueuedConnection);
    connect(m_worker, &EngineWorker::serverClients, m_serverPanel, &ServerPanel::onClients, Qt::QueuedConnection);
    connect(m_worker, &EngineWorker::loaded, m_serverPanel, [this] { m_serverPanel->setModelLoaded(true); }, Qt::QueuedConnection);
    connect(m_worker, &EngineWorker::unloaded, m_serverPanel, [this] { m_serverPanel->setModelLoaded(false); }, Qt::QueuedConnection);
    connect(m_worker, &EngineWorker::loadFailed, m_serverPanel, [this] { m_serverPanel->setModelLoaded(false); }, Qt::QueuedConnection);
}

// The Plan tab's edits (limits, settings, drags, an applied map) become plan requests, each
// expected as an undoable step.
void MainWindow::connectPlanPage()
{
    connect(devicePanel(), &DevicePanel::limitsChanged, this, [this] {
        if (m_source.isEmpty())
            return;
        expectPlan(PendingKind::edit, tr("Change a memory limit"), limitMergeId);
        Q_EMIT requestPlan(settings());
    });
    connect(planBar(), &PlanBar::settingsChanged, this, [this] {
        if (m_source.isEmpty())
            return;
        expectPlan(PendingKind::edit, tr("Change the plan settings"));
        Q_EMIT requestPlan(settings());
    });
    connect(placementMap(), &PlacementMap::moveRequested, this, [this](int first, int last, const QString& key) {
        expectPlan(PendingKind::edit, first == last ? tr("Move layer %1").arg(first) : tr("Move layers %1–%2").arg(first).arg(last));
        Q_EMIT requestMove(first, last, key);
    });
    connect(placementMap(), &PlacementMap::moduleMoveRequested, this, [this](const QString& module, const QString& key) {
        expectPlan(PendingKind::edit, tr("Move %1").arg(module));
        Q_EMIT requestModuleMove(module, key);
    });
    connect(m_planPage->mapEditor(), &MapEditor::applyRequested, this, [this](const QString& text) {
        expectPlan(PendingKind::edit, tr("Apply the hf_device_map"));
        Q_EMIT requestDeviceMap(text);
    });
}

// The chat asks the engine worker for answers and prompt previews; the answers come back queued.
void MainWindow::connectChat()
{
    ChatView* chat = m_chatPage->chatView();
    connect(chat, &ChatView::requestAnswer, m_worker, &EngineWorker::chat, Qt::QueuedConnection);
    connect(chat, &ChatView::requestPreview, m_worker, &EngineWorker::previewPrompt, Qt::QueuedConnection);
    // The worker is busy generating: the stop flag is set directly (it is atomic).
    connect(chat, &ChatView::stopRequested, this, [this] { m_worker->stopGeneration(); });
    connect(m_worker, &EngineWorker::answerPiece, chat, &ChatView::onAnswerPiece, Qt::QueuedConnection);
    connect(m_worker, &EngineWorker::answerFinished, chat, &ChatView::onAnswerFinished, Qt::QueuedConnection);
    connect(m_worker, &EngineWorker::answerFailed, chat, &ChatView::onAnswerFailed, Qt::QueuedConnection);
    connect(m_worker, &EngineWorker::promptPreview, chat, &ChatView::onPromptPreview, Qt::QueuedConnection);
}

ModuleTreeModel* MainWindow::moduleModel() const
{
    return m_planPage->moduleModel();
}

PlacementMap* MainWindow::placementMap() const
{
    return m_planPage->placementMap();
}

DevicePanel* MainWindow::devicePanel() const
{
    return m_planPage->devicePanel();
}

PlanBar* MainWindow::planBar() const
{
    return m_planPage->planBar();
}

ChatView* MainWindow::chatView() const
{
    return m_chatPage->chatView();
}

QPushButton* MainWindow::tryDefaultButton() const
{
    return m_banner->tryButton();
}

// The banner above the Plan and Chat tabs.
QWidget* MainWindow::createCentralArea()
{
    auto* central = new QWidget(this);
    auto* centralLayout = new QVBoxLayout(central);
    centralLayout->setContentsMargins(4, 4, 4, 0);
    centralLayout->addWidget(m_banner);
    centralLayout->addWidget(m_views, 1);

    return central;
}

// The status line and the load progress (with its cancel button).
void MainWindow::createStatusBar()
{
    m_status = new QLabel(this);
    statusBar()->addWidget(m_status, 1);
    m_loadProgress = new LoadProgress(this);
    m_loadProgress->hide();
    statusBar()->addPermanentWidget(m_loadProgress);
    connect(m_loadProgress, &LoadProgress::cancelRequested, this, &MainWindow::cancelLoad);
    connect(m_worker, &EngineWorker::loadProgress, m_loadProgress, &LoadProgress::setProgress, Qt::QueuedConnection);

}

MainWindow::~MainWindow()
{
    saveLayout();
    m_worker->cancelLoad();
    m_worker->stopGeneration();
    m_engineThread.quit();
    m_engineThread.wait();
}

void MainWindow::openModel(const QString& what)
{
    if (m_loaded || m_loading)
        unloadModel();
    m_status->setText(tr("Reading %1…").arg(what));
    m_undo->clear(); // the steps were edits of another model's map
    m_committedMap.clear();
    Q_EMIT requestDescribe(what);
}

void MainWindow::onDescribed(const ModelSummary& summary)
{
    m_source = summary.source;
    m_lastError.clear();
    m_planPage->showSummary(summary);
    setWindowTitle(tr("%1 — Layerwise").arg(QFileInfo(summary.source).fileName().isEmpty()
                                              ? summary.source
                                              : QFileInfo(summary.source).fileName()));
    m_status->setText(tr("%1: %2 parameters, %3")
                          .arg(summary.architecture, QLocale().toString(summary.parameters), formatBytes(summary.bytes)));
    if (QFileInfo(summary.source).exists()) {
        QSettings settings;
        addRecentModel(settings, summary.source);
        rebuildRecentMenu();
    }
    updateActions();
    Q_EMIT modelShown(summary.source);
    Q_EMIT requestDevices(settings());
    replan();
}

PlanSettings MainWindow::settings() const
{
    PlanSettings s;
    s.limits = devicePanel()->limits();
    s.hypothetical = m_hypothetical;
    planBar()->apply(s);
    return s;
}

void MainWindow::replan()
{
    if (m_source.isEmpty())
        return;
    expectPlan(PendingKind::other);
    Q_EMIT requestPlan(settings());
}

void MainWindow::expectPlan(PendingKind kind, const QString& label, int mergeId)
{
    m_pending.push_back({kind, label, mergeId, settings()});
}

void MainWindow::restoreSnapshot(const PlanSnapshot& snapshot)
{
    planBar()->setSettings(snapshot.settings);
    devicePanel()->setLimits(snapshot.settings.limits);
    expectPlan(PendingKind::restore);
    Q_EMIT requestRestore(snapshot.settings, snapshot.map);
}

void MainWindow::restoreDeviceMap(const QString& text)
{
    if (text.isEmpty())
        return;
    expectPlan(PendingKind::restore);
    Q_EMIT requestDeviceMap(text);
}

QString MainWindow::shownDeviceMap() const
{
    return m_loaded ? m_loadedView.deviceMapJson : m_plan.deviceMapJson;
}

void MainWindow::showMapError(const QString& title, const QString& text, const QString& details)
{
    m_lastError = details;
    m_status->setText(text);
    if (!showErrorDialogs)
        return;
    auto* box = new QMessageBox(QMessageBox::Warning, title, text, QMessageBox::Ok, this);
    box->setObjectName(QStringLiteral("importError"));
    box->setInformativeText(details);
    box->setAttribute(Qt::WA_DeleteOnClose);
    box->open();
}

bool MainWindow::exportDeviceMap(const QString& path)
{
    const QString map = shownDeviceMap();
    QSaveFile file(path);
    if (map.isEmpty() || !file.open(QIODevice::WriteOnly | QIODevice::Text) || file.write(map.toUtf8() + '\n') < 0 ||
        !file.commit()) {
        showMapError(tr("Cannot export the device map"), tr("The device map was not saved to %1.").arg(path),
                     map.isEmpty() ? tr("There is no map yet: open a model first.")
                                   : tr("%1.\n\nChoose a folder you can write to and export again.").arg(file.errorString()));
        return false;
    }
    m_status->setText(tr("Device map saved to %1").arg(path));
    return true;
}

void MainWindow::importDeviceMap(const QString& path)
{
    if (m_source.isEmpty()) {
        showMapError(tr("Cannot import the device map"), tr("No model is open."),
                     tr("Open the model the map is for first, then import the map."));
        return;
    }
    QFile file(path);
    if (!file.open(QIODevice::ReadOnly | QIODevice::Text)) {
        showMapError(tr("Cannot import the device map"), tr("Cannot read %1.").arg(path),
                     tr("%1.\n\nThe current map is unchanged. Choose a readable .json file (an hf_device_map) or a .txt "
                        "file holding the output of print(model.hf_device_map).")
                         .arg(file.errorString()));
        return;
    }
    const QString text = QString::fromUtf8(file.readAll()).trimmed();
    if (text.isEmpty()) {
        showMapError(tr("Cannot import the device map"), tr("%1 is empty.").arg(path),
                     tr("The current map is unchanged. Choose a .json file (an hf_device_map) or a .txt file holding "
                        "the output of print(model.hf_device_map)."));
        return;
    }
    m_importing = path;
    expectPlan(PendingKind::edit, tr("Import %1").arg(QFileInfo(path).fileName()));
    Q_EMIT requestDeviceMap(text);
}

void MainWindow::chooseExportFile()
{
    const QString path = QFileDialog::getSaveFileName(this, tr("Export the device map"), QStringLiteral("device_map.json"),
                                                      tr("JSON (*.json)"));
    if (!path.isEmpty())
        exportDeviceMap(path);
}

void MainWindow::chooseImportFile()
{
    const QString path = QFileDialog::getOpenFileName(this, tr("Import a device map"), QString(),
                                                      tr("Device maps (*.json *.txt);;All files (*)"));
    if (!path.isEmpty())
        importDeviceMap(path);
}

void MainWindow::addHypotheticalGpu(const QString& profile)
{
    int index = 0;
    for (const QString& h : m_hypothetical)
        index = std::max(index, h.section(QLatin1Char(':'), 1).section(QLatin1Char('='), 0, 0).toInt() + 1);
    m_hypothetical.push_back(QStringLiteral("cuda:%1=%2").arg(index).arg(profile));
    Q_EMIT requestDevices(settings());
    replan();
}

void MainWindow::onPlanned(const PlanView& plan)
{
    const bool hadPending = !m_pending.isEmpty();
    const Pending pending = hadPending ? m_pending.takeFirst() : Pending{};
    const PlanSnapshot before{m_committedSettings, m_committedMap};
    const PlanSnapshot after{hadPending ? pending.settings : settings(), plan.deviceMapJson};
    m_committedMap = after.map;
    m_committedSettings = after.settings;
    const bool settingsChanged = before.settings.strategy != after.settings.strategy ||
                                 before.settings.context != after.settings.context ||
                                 before.settings.dtype != after.settings.dtype || before.settings.quant != after.settings.quant ||
                                 before.settings.accelerate != after.settings.accelerate ||
                                 before.settings.limits != after.settings.limits;
    if (pending.kind == PendingKind::edit && !before.map.isEmpty() && (before.map != after.map || settingsChanged))
        m_undo->push(new MapEdit([this](const PlanSnapshot& s) { restoreSnapshot(s); }, pending.label, before, after, pending.mergeId));
    if (!m_importing.isEmpty()) {
        m_status->setText(tr("Device map imported from %1").arg(m_importing));
        m_importing.clear();
    }
    m_plan = plan;
    devicePanel()->setFootprints(plan.devices);
    planBar()->setPlan(plan);
    showPlacement();
    updateActions();
    Q_EMIT planShown();
    if (m_loadWhenPlanned) {
        m_loadWhenPlanned = false;
        loadModel();
    }
}

void MainWindow::showPlacement()
{
    // While loaded, the map shows where the engine put each layer (its hf_device_map).
    PlanView placed = m_plan;
    QVector<int> states;
    if (m_loaded) {
        placed.layerDevices = m_loadedView.layerDevices;
        placed.deviceMapJson = m_loadedView.deviceMapJson;
        if (m_loadedView.quant != QLatin1String("none"))
            placed.quant = m_loadedView.quant; // quantized while loading (a saved one keeps the plan's)
        states = m_layerStates;
    }
    for (PlacementMap* map : {m_planPage->placementMap(), m_chatPage->placementMap()}) {
        map->setPlan(placed);
        map->setLayerStates(states);
    }
    m_planPage->mapEditor()->setMap(placed.deviceMapJson);
}

void MainWindow::loadModel()
{
    if (m_loading || m_source.isEmpty() || m_plan.devices.isEmpty())
        return;
    if (chatView()->isGenerating())
        m_worker->stopGeneration();
    m_loading = true;
    m_loaded = false;
    m_layerStates.clear();
    showPlacement();
    chatView()->setModel(m_source, false, true, 0);
    m_loadProgress->start(QFileInfo(m_source).fileName());
    m_loadProgress->show();
    m_status->setText(tr("Loading %1…").arg(m_source));
    updateActions();
    m_worker->resetCancel(); // here, not on the worker: a Cancel pressed before it starts still counts
    Q_EMIT requestLoad();
}

void MainWindow::cancelLoad()
{
    if (m_loading)
        m_worker->cancelLoad();
}

void MainWindow::unloadModel()
{
    if (m_loading)
        m_worker->cancelLoad();
    if (chatView()->isGenerating())
        m_worker->stopGeneration();
    Q_EMIT requestUnload();
}

void MainWindow::onLoaded(const LoadedView& view)
{
    m_loading = false;
    m_loaded = true;
    m_loadedView = view;
    m_loadProgress->hide();
    showPlacement();
    // The cards show what the devices hold now: the weights and KV cache measured on the loaded
    // model (and on other machines, as their workers report it), beside the plan's activations.
    QVector<FootprintRow> held = m_plan.devices;
    for (FootprintRow& row : held)
        for (const FootprintRow& live : view.live)
            if (live.key == row.key) {
                row.weights = live.weights;
                row.kvCache = live.kvCache;
            }
    devicePanel()->setFootprints(held);
    chatView()->setModel(view.source, true, view.hasTemplate, view.contextLength);
    m_status->setText(tr("Loaded %1 in %2 s · context %3 tokens%4")
                          .arg(QFileInfo(view.source).fileName())
                          .arg(view.seconds, 0, 'f', 1)
                          .arg(view.contextLength)
                          .arg(view.hasTemplate ? QString() : tr(" · no chat template (raw completion)")));
    updateActions();
    m_banner->hide(); // a model is loaded: the offer to try one has done its work
    if (m_chatWhenLoaded) {
        m_chatWhenLoaded = false;
        showChat();
    }
    Q_EMIT modelLoaded();
    Q_EMIT loadFinished(true);
}

void MainWindow::onLoadFailed(const QString& message, bool cancelled)
{
    m_loading = false;
    m_loaded = false;
    m_chatWhenLoaded = false;
    m_loadProgress->hide();
    m_layerStates.clear();
    showPlacement();
    chatView()->setModel(m_source, false, true, 0);
    updateActions();
    if (cancelled) {
        m_status->setText(message);
    } else {
        m_lastError = message;
        m_status->setText(tr("Loading failed: %1").arg(message.left(200)));
        if (showErrorDialogs) {
            // Window-modal and non-blocking: the event loop (and the engine's signals) keep running.
            auto* box = new QMessageBox(QMessageBox::Warning, tr("Cannot load the model"),
                                        tr("Loading %1 failed.").arg(QFileInfo(m_source).fileName()), QMessageBox::Ok, this);
            box->setObjectName(QStringLiteral("loadError"));
            box->setInformativeText(message + tr("\n\nNothing was loaded; the window stays as it was. Fix the model "
                                                 "folder or change the plan (device map, dtype) and load again."));
            box->setAttribute(Qt::WA_DeleteOnClose);
            box->open();
        }
        Q_EMIT loadErrorShown(message);
    }
    Q_EMIT loadFinished(false);
}

void MainWindow::onUnloaded()
{
    if (m_loading)
        return; // a cancelled load reports through onLoadFailed
    const bool was = m_loaded;
    m_loaded = false;
    m_layerStates.clear();
    showPlacement();
    devicePanel()->setFootprints(m_plan.devices); // the plan's again, not what was held
    chatView()->setModel(m_source, false, true, 0);
    updateActions();
    if (was) {
        m_status->setText(tr("Unloaded"));
        Q_EMIT modelUnloaded();
    }
}

void MainWindow::updateActions()
{
    m_loadAction->setEnabled(!m_loading && !m_source.isEmpty() && !m_plan.devices.isEmpty());
    m_unloadAction->setEnabled(m_loaded || m_loading);
    m_quantizeAction->setEnabled(!m_source.isEmpty() && QFileInfo(m_source).exists() && !m_wizard);
}

QuantizeWizard* MainWindow::quantizeWizard() const
{
    return m_wizard;
}

void MainWindow::showQuantizeWizard()
{
    if (m_wizard) {
        m_wizard->raise();
        m_wizard->activateWindow();
        return;
    }
    if (m_source.isEmpty() || !QFileInfo(m_source).exists()) {
        m_status->setText(tr("Open a model folder with weights to quantize it (a preset has no weights)."));
        return;
    }
    m_wizard = new QuantizeWizard(m_worker, m_source, settings(), m_calibration, this);
    m_wizard->setAttribute(Qt::WA_DeleteOnClose);
    connect(m_wizard, &QDialog::finished, this, [this] {
        m_wizard = nullptr; // it deletes itself once closed
        updateActions();
    });
    connect(m_wizard, &QuantizeWizard::openRequested, this, [this](const QString& folder) {
        m_loadWhenPlanned = true;
        openModel(folder);
    });
    updateActions();
    m_wizard->open();
}

void MainWindow::showChat()
{
    m_views->setCurrentWidget(m_chatPage);
}

void MainWindow::showPlan()
{
    m_views->setCurrentIndex(0);
}

bool MainWindow::isChatShown() const
{
    return m_views->currentWidget() == m_chatPage;
}

void MainWindow::setDefaultChatModel(const QString& path, const QString& label)
{
    m_defaultModelPath = path;
    m_banner->setModel(path, label);
    m_banner->setVisible(!path.isEmpty() && recentModelList().isEmpty());
}

bool MainWindow::isDefaultModelOffered() const
{
    return !m_banner->isHidden();
}

void MainWindow::tryDefaultModel()
{
    if (m_defaultModelPath.isEmpty())
        return;
    m_banner->hide();
    m_loadWhenPlanned = true;
    m_chatWhenLoaded = true;
    openModel(m_defaultModelPath);
}

QStringList MainWindow::recentModelList() const
{
    QSettings settings;
    return recentModels(settings);
}

void MainWindow::rebuildRecentMenu()
{
    m_recentMenu->clear();
    const QStringList recent = recentModelList();
    for (const QString& model : recent)
        m_recentMenu->addAction(model, this, [this, model] { openModel(model); });
    m_recentMenu->setEnabled(!recent.isEmpty());
}

void MainWindow::saveLayout()
{
    QSettings settings;
    settings.setValue(QStringLiteral("window/geometry"), saveGeometry());
    settings.setValue(QStringLiteral("window/state"), saveState());
    m_planPage->saveLayout(settings);
    settings.setValue(QStringLiteral("window/chatSplitter"), chatView()->saveLayout());
}

void MainWindow::restoreLayout()
{
    QSettings settings;
    const QByteArray geometry = settings.value(QStringLiteral("window/geometry")).toByteArray();
    if (!geometry.isEmpty())
        restoreGeometry(geometry);
    restoreState(settings.value(QStringLiteral("window/state")).toByteArray());
    m_planPage->restoreLayout(settings);
    chatView()->restoreLayout(settings.value(QStringLiteral("window/chatSplitter")).toByteArray());
}

void MainWindow::closeEvent(QCloseEvent* event)
{
    saveLayout();
    QMainWindow::closeEvent(event);
}

void MainWindow::onFailed(const QString& what, const QString& message)
{
    // Answers to plan requests (not to describe or device detection) end a pending step.
    const bool planRequest = what == EngineWorker::tr("plan") || what == EngineWorker::tr("move layers") ||
                             what == EngineWorker::tr("move module") || what == EngineWorker::tr("device map");
    if (planRequest && !m_pending.isEmpty())
        m_pending.removeFirst();
    if (planRequest && !m_importing.isEmpty()) {
        const QString file = m_importing;
        m_importing.clear();
        showMapError(tr("Cannot import the device map"), tr("The map in %1 does not fit this model.").arg(file),
                     message + tr("\n\nThe current map is unchanged. Fix the file: keys must name modules of this "
                                  "model (see the Modules tab), devices must be ones the plan has (its lanes: 0, 1, "
                                  "cpu, disk…); then import it again."));
        Q_EMIT modelFailed(message);
        return;
    }
    m_lastError = message;
    m_status->setText(tr("Could not open %1").arg(what));
    m_loadWhenPlanned = m_chatWhenLoaded = false;
    if (showErrorDialogs) {
        auto* box = new QMessageBox(QMessageBox::Warning, tr("Cannot open model"),
                                    tr("Layerwise cannot open %1.").arg(what), QMessageBox::Ok, this);
        box->setObjectName(QStringLiteral("openError"));
        box->setInformativeText(message);
        box->setAttribute(Qt::WA_DeleteOnClose);
        box->open();
    }
    Q_EMIT modelFailed(message);
}

void MainWindow::chooseFolder()
{
    const QString dir = QFileDialog::getExistingDirectory(this, tr("Open a Hugging Face model folder"));
    if (!dir.isEmpty())
        openModel(dir);
}

void MainWindow::dragEnterEvent(QDragEnterEvent* event)
{
    if (event->mimeData()->hasUrls())
        event->acceptProposedAction();
}

void MainWindow::dropEvent(QDropEvent* event)
{
    const auto urls = event->mimeData()->urls();
    if (!urls.isEmpty() && urls.first().isLocalFile())
        openModel(urls.first().toLocalFile());
}

} // namespace layerwise::ui
