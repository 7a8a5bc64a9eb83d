#include "mainwindow.h"

#include "engineworker.h"
#include "moduletreemodel.h"
#include "model/presets.h"

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

MainWindow::MainWindow(QWidget* parent) : QMainWindow(parent)
{
    qRegisterMetaType<ModelSummary>();
    setWindowTitle(tr("Layerwise"));
    setAcceptDrops(true);
    resize(1200, 760);

    m_worker = new EngineWorker;
    m_worker->moveToThread(&m_engineThread);
    connect(&m_engineThread, &QThread::finished, m_worker, &QObject::deleteLater);
    connect(this, &MainWindow::requestDescribe, m_worker, &EngineWorker::describe, Qt::QueuedConnection);
    connect(m_worker, &EngineWorker::described, this, &MainWindow::onDescribed, Qt::QueuedConnection);
    connect(m_worker, &EngineWorker::failed, this, &MainWindow::onFailed, Qt::QueuedConnection);
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

    auto* splitter = new QSplitter(this);
    splitter->addWidget(m_summary);
    splitter->addWidget(m_tree);
    splitter->setSizes({560, 640});
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
