#include "mainwindow.h"

#include "devicepanel.h"
#include "engineworker.h"
#include "moduletreemodel.h"
#include "model/presets.h"
#include "placementmap.h"
#include "planbar.h"

#include <QApplication>
#include <QClipboard>
#include <QPushButton>
#include <QScrollArea>
#include <QTabWidget>
#include <QVBoxLayout>

#include <QComboBox>
#include <QDragEnterEvent>
#include <QFileDialog>
#include <QFileInfo>
#include <QFontDatabase>
#include <QHeaderView>
#include <QLabel>
#include <QMessageBox>
#include <QMimeData>
#include <QPlainTextEdit>
#include <QSplitter>
#include <QStatusBar>
#include <QToolBar>
#include <QTreeView>

namespace layerwise::ui {

MainWindow::MainWindow(QWidget* parent, bool probeBandwidth) : QMainWindow(parent)
{
    qRegisterMetaType<ModelSummary>();
    qRegisterMetaType<PlanSettings>();
    qRegisterMetaType<PlanView>();
    qRegisterMetaType<QVector<DeviceRow>>();
    setWindowTitle(tr("Layerwise"));
    setAcceptDrops(true);
    resize(1400, 860);

    m_worker = new EngineWorker;
    m_worker->probeBandwidth = probeBandwidth;
    m_worker->moveToThread(&m_engineThread);
    connect(&m_engineThread, &QThread::finished, m_worker, &QObject::deleteLater);
    connect(this, &MainWindow::requestDescribe, m_worker, &EngineWorker::describe, Qt::QueuedConnection);
    connect(m_worker, &EngineWorker::described, this, &MainWindow::onDescribed, Qt::QueuedConnection);
    connect(m_worker, &EngineWorker::failed, this, &MainWindow::onFailed, Qt::QueuedConnection);
    connect(this, &MainWindow::requestDevices, m_worker, &EngineWorker::detectDevices, Qt::QueuedConnection);
    connect(this, &MainWindow::requestPlan, m_worker, &EngineWorker::plan, Qt::QueuedConnection);
    connect(this, &MainWindow::requestMove, m_worker, &EngineWorker::moveLayers, Qt::QueuedConnection);
    connect(this, &MainWindow::requestDeviceMap, m_worker, &EngineWorker::useDeviceMap, Qt::QueuedConnection);
    connect(m_worker, &EngineWorker::planned, this, &MainWindow::onPlanned, Qt::QueuedConnection);
    connect(m_worker, &EngineWorker::devicesDetected, this, [this](const QVector<DeviceRow>& rows) {
        m_devices->setDevices(rows);
        m_devices->setFootprints(m_plan.devices);
    }, Qt::QueuedConnection);
    m_engineThread.setObjectName(QStringLiteral("engine"));
    m_engineThread.start();

    auto* toolbar = addToolBar(tr("Model"));
    toolbar->setMovable(false);
    toolbar->addAction(tr("Open model folder…"), this, &MainWindow::chooseFolder);
    toolbar->addSeparator();
    toolbar->addWidget(new QLabel(tr(" Preset: "), toolbar));
    m_presets = new QComboBox(toolbar);
    m_presets->setObjectName(QStringLiteral("presets"));
    m_presets->addItem(tr("(choose a well-known model)"), QString());
    for (const auto& p : list_presets())
        m_presets->addItem(QString::fromStdString(p.display_name), QString::fromStdString(p.name));
    connect(m_presets, &QComboBox::activated, this, [this](int index) {
        const QString name = m_presets->itemData(index).toString();
        if (!name.isEmpty())
            openModel(name);
    });
    toolbar->addWidget(m_presets);
    toolbar->addSeparator();
    toolbar->addWidget(new QLabel(tr(" Add a GPU: "), toolbar));
    auto* gpuProfiles = new QComboBox(toolbar);
    gpuProfiles->setObjectName(QStringLiteral("gpuProfiles"));
    gpuProfiles->addItem(tr("(profile)"));
    for (const char* p : {"RTX-3090", "RTX-4090", "RTX-5090", "RTX-4060-Ti-16GB", "A100-40GB", "A100-80GB", "H100-80GB",
                          "H200-141GB", "L4", "L40S", "T4"})
        gpuProfiles->addItem(QString::fromLatin1(p));
    connect(gpuProfiles, &QComboBox::activated, this, [this, gpuProfiles](int index) {
        if (index > 0)
            addHypotheticalGpu(gpuProfiles->itemText(index));
        gpuProfiles->setCurrentIndex(0);
    });
    toolbar->addWidget(gpuProfiles);

    m_summary = new QPlainTextEdit(this);
    m_summary->setObjectName(QStringLiteral("summary"));
    m_summary->setReadOnly(true);
    m_summary->setLineWrapMode(QPlainTextEdit::NoWrap);
    m_summary->setFont(QFontDatabase::systemFont(QFontDatabase::FixedFont));
    m_summary->setPlaceholderText(tr("Open a model folder (or drop one here), or choose a preset."));

    m_model = new ModuleTreeModel(this);
    m_tree = new QTreeView(this);
    m_tree->setObjectName(QStringLiteral("modules"));
    m_tree->setModel(m_model);
    m_tree->setAlternatingRowColors(true);
    m_tree->setUniformRowHeights(true);
    m_tree->header()->setStretchLastSection(false);
    m_tree->header()->setSectionResizeMode(QHeaderView::ResizeToContents);

    m_devices = new DevicePanel(this);
    auto* deviceScroll = new QScrollArea(this);
    deviceScroll->setWidget(m_devices);
    deviceScroll->setWidgetResizable(true);
    deviceScroll->setHorizontalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
    deviceScroll->setMinimumWidth(300);
    connect(m_devices, &DevicePanel::limitsChanged, this, &MainWindow::replan);

    m_planBar = new PlanBar(this);
    connect(m_planBar, &PlanBar::settingsChanged, this, &MainWindow::replan);
    m_placement = new PlacementMap(this);
    m_placement->setObjectName(QStringLiteral("placement"));
    connect(m_placement, &PlacementMap::moveRequested, this, &MainWindow::requestMove);

    m_mapText = new QPlainTextEdit(this);
    m_mapText->setObjectName(QStringLiteral("deviceMap"));
    m_mapText->setFont(QFontDatabase::systemFont(QFontDatabase::FixedFont));
    m_mapText->setPlaceholderText(tr("hf_device_map: paste a JSON object or a Python dict printout and Apply"));
    auto* mapButtons = new QHBoxLayout;
    auto* copy = new QPushButton(tr("Copy"), this);
    auto* apply = new QPushButton(tr("Apply"), this);
    apply->setObjectName(QStringLiteral("applyMap"));
    connect(copy, &QPushButton::clicked, this, [this] { QApplication::clipboard()->setText(m_mapText->toPlainText()); });
    connect(apply, &QPushButton::clicked, this, [this] { Q_EMIT requestDeviceMap(m_mapText->toPlainText()); });
    mapButtons->addWidget(new QLabel(tr("hf_device_map"), this));
    mapButtons->addStretch(1);
    mapButtons->addWidget(copy);
    mapButtons->addWidget(apply);
    auto* mapBox = new QWidget(this);
    auto* mapLayout = new QVBoxLayout(mapBox);
    mapLayout->setContentsMargins(0, 0, 0, 0);
    mapLayout->addLayout(mapButtons);
    mapLayout->addWidget(m_mapText);

    auto* center = new QSplitter(Qt::Vertical, this);
    auto* top = new QWidget(this);
    auto* topLayout = new QVBoxLayout(top);
    topLayout->setContentsMargins(0, 0, 0, 0);
    topLayout->addWidget(m_planBar);
    topLayout->addWidget(m_placement, 1);
    center->addWidget(top);
    center->addWidget(mapBox);
    center->setSizes({520, 200});

    auto* tabs = new QTabWidget(this);
    tabs->addTab(m_summary, tr("Model"));
    tabs->addTab(m_tree, tr("Modules"));

    auto* splitter = new QSplitter(this);
    splitter->addWidget(deviceScroll);
    splitter->addWidget(center);
    splitter->addWidget(tabs);
    splitter->setSizes({340, 640, 420});
    setCentralWidget(splitter);

    m_status = new QLabel(this);
    statusBar()->addWidget(m_status, 1);
}

MainWindow::~MainWindow()
{
    m_engineThread.quit();
    m_engineThread.wait();
}

void MainWindow::openModel(const QString& what)
{
    m_status->setText(tr("Reading %1…").arg(what));
    Q_EMIT requestDescribe(what);
}

void MainWindow::onDescribed(const ModelSummary& summary)
{
    m_source = summary.source;
    m_lastError.clear();
    m_model->setSummary(summary);
    m_summary->setPlainText(summary.text);
    m_tree->expandToDepth(0);
    setWindowTitle(tr("%1 — Layerwise").arg(QFileInfo(summary.source).fileName().isEmpty()
                                              ? summary.source
                                              : QFileInfo(summary.source).fileName()));
    m_status->setText(tr("%1: %2 parameters, %3")
                          .arg(summary.architecture, QLocale().toString(summary.parameters), formatBytes(summary.bytes)));
    Q_EMIT modelShown(summary.source);
    Q_EMIT requestDevices(settings());
    replan();
}

PlanSettings MainWindow::settings() const
{
    PlanSettings s;
    s.limits = m_devices->limits();
    s.hypothetical = m_hypothetical;
    m_planBar->apply(s);
    return s;
}

void MainWindow::replan()
{
    if (!m_source.isEmpty())
        Q_EMIT requestPlan(settings());
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
    m_plan = plan;
    m_placement->setPlan(plan);
    m_devices->setFootprints(plan.devices);
    m_planBar->setPlan(plan);
    m_mapText->setPlainText(plan.deviceMapJson);
    Q_EMIT planShown();
}

void MainWindow::onFailed(const QString& what, const QString& message)
{
    m_lastError = message;
    m_status->setText(tr("Could not open %1").arg(what));
    if (showErrorDialogs)
        QMessageBox::warning(this, tr("Cannot open model"), message);
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
