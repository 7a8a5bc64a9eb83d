#include "planpage.h"

#include "devicepanel.h"
#include "mapeditor.h"
#include "moduletreemodel.h"
#include "placementmap.h"
#include "planbar.h"

#include <QFontDatabase>
#include <QHeaderView>
#include <QPlainTextEdit>
#include <QScrollArea>
#include <QSettings>
#include <QTabWidget>
#include <QTreeView>
#include <QVBoxLayout>

namespace layerwise::ui {

PlanPage::PlanPage(QWidget* parent) : QSplitter(parent)
{
    addWidget(createDeviceColumn());
    addWidget(createMapColumn());
    addWidget(createModelColumn());
    setSizes({340, 640, 420});
}

// The device cards, scrolling when there are many.
QWidget* PlanPage::createDeviceColumn()
{
    m_devices = new DevicePanel(this);
    auto* scroll = new QScrollArea(this);
    scroll->setWidget(m_devices);
    scroll->setWidgetResizable(true);
    scroll->setHorizontalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
    scroll->setMinimumWidth(220);
    return scroll;
}

// The plan bar and the placement map over the device-map editor.
QWidget* PlanPage::createMapColumn()
{
    m_planBar = new PlanBar(this);
    m_placement = new PlacementMap(this);
    m_placement->setObjectName(QStringLiteral("placement"));
    m_mapEditor = new MapEditor(this);
    m_centerSplitter = new QSplitter(Qt::Vertical, this);
    auto* top = new QWidget(this);
    auto* topLayout = new QVBoxLayout(top);
    topLayout->setContentsMargins(0, 0, 0, 0);
    topLayout->addWidget(m_planBar);
    topLayout->addWidget(m_placement, 1);
    m_centerSplitter->addWidget(top);
    m_centerSplitter->addWidget(m_mapEditor);
    m_centerSplitter->setSizes({520, 200});
    return m_centerSplitter;
}

// The model's summary and its module tree, as tabs.
QWidget* PlanPage::createModelColumn()
{
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

    auto* tabs = new QTabWidget(this);
    tabs->addTab(m_summary, tr("Model"));
    tabs->addTab(m_tree, tr("Modules"));
    return tabs;
}

void PlanPage::showSummary(const ModelSummary& summary)
{
    m_model->setSummary(summary);
    m_summary->setPlainText(summary.text);
    m_tree->expandToDepth(0);
}

void PlanPage::saveLayout(QSettings& settings) const
{
    settings.setValue(QStringLiteral("window/mainSplitter"), saveState());
    settings.setValue(QStringLiteral("window/centerSplitter"), m_centerSplitter->saveState());
}

void PlanPage::restoreLayout(const QSettings& settings)
{
    restoreState(settings.value(QStringLiteral("window/mainSplitter")).toByteArray());
    m_centerSplitter->restoreState(settings.value(QStringLiteral("window/centerSplitter")).toByteArray());
}

} // namespace layerwise::ui
