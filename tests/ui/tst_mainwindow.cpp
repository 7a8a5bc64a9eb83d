// The main window offscreen: a real folder and a preset arrive through the engine
// worker thread; a bad folder gives an error without breaking the window.
#include "testdata.h"

#include "devicepanel.h"
#include "mainwindow.h"
#include "moduletreemodel.h"
#include "placementmap.h"
#include "planbar.h"

#include <QAbstractItemModelTester>
#include <QComboBox>
#include <QPlainTextEdit>
#include <QSignalSpy>
#include <QPushButton>
#include <QSlider>
#include <QStandardPaths>

using namespace layerwise::ui;

class TestMainWindow : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void initTestCase() { QStandardPaths::setTestModeEnabled(true); }
    void opensSharedModel();
    void presetsListed();
    void badFolderReportsError();
    void plansForHypotheticalGpus();
    void sliderReplans();
    void dragMovesLayers();
    void badDeviceMapIsReported();
};

namespace {

// A window on a preset, planned for one hypothetical 24 GiB GPU.
void openPlanned(MainWindow& w, QSignalSpy& planned, const QString& model = QStringLiteral("Llama-3.1-8B"))
{
    w.showErrorDialogs = false;
    w.addHypotheticalGpu(QStringLiteral("RTX-4090"));
    w.openModel(model);
    QTRY_VERIFY_WITH_TIMEOUT(planned.count() >= 1 && w.devicePanel()->cardCount() >= 3, 20000);
}

int laneOf(const MainWindow& w, const QString& key)
{
    const auto& devices = w.currentPlan().devices;
    for (int i = 0; i < devices.size(); ++i)
        if (devices[i].key == key)
            return i;
    return -1;
}

} // namespace

void TestMainWindow::plansForHypotheticalGpus()
{
    MainWindow w(nullptr, false);
    QSignalSpy planned(&w, &MainWindow::planShown);
    openPlanned(w, planned);
    QCOMPARE(w.currentPlan().verdict, QStringLiteral("fits_on_gpu"));
    QCOMPARE(w.currentPlan().layerDevices.size(), 32);
    QVERIFY(w.placementMap()->laneCount() >= 2);
    QCOMPARE(w.placementMap()->laneOf(0), laneOf(w, QStringLiteral("0")));
    QVERIFY(w.planBar()->verdictText().contains(QStringLiteral("Fits on the GPU")));
    auto* mapText = w.findChild<QPlainTextEdit*>(QStringLiteral("deviceMap"));
    QVERIFY(mapText->toPlainText().contains(QStringLiteral("\"\": 0")));
}

void TestMainWindow::sliderReplans()
{
    MainWindow w(nullptr, false);
    QSignalSpy planned(&w, &MainWindow::planShown);
    openPlanned(w, planned);
    const int before = planned.count();
    // An exact limit typed in: 8 GiB cannot hold 15 GiB of weights; the rest is offloaded.
    QVERIFY(w.devicePanel()->setLimitText(QStringLiteral("0"), QStringLiteral("8GiB")));
    QTRY_VERIFY_WITH_TIMEOUT(planned.count() > before, 20000);
    QCOMPARE(w.currentPlan().verdict, QStringLiteral("fits_with_cpu_offload"));
    const auto& gpu = w.currentPlan().devices[laneOf(w, QStringLiteral("0"))];
    QCOMPARE(gpu.limit, qint64(8) << 30);
    QVERIFY(gpu.used() <= gpu.limit);
    QVERIFY(w.currentPlan().layerDevices.contains(QStringLiteral("cpu")));
    // Moving the slider re-plans too; a bad size is refused.
    const int now = planned.count();
    w.devicePanel()->slider(QStringLiteral("0"))->setValue(20 * 1024);
    QTRY_VERIFY_WITH_TIMEOUT(planned.count() > now, 20000);
    QCOMPARE(w.currentPlan().devices[laneOf(w, QStringLiteral("0"))].limit, qint64(20) << 30);
    QVERIFY(!w.devicePanel()->setLimitText(QStringLiteral("0"), QStringLiteral("20XB")));
}

void TestMainWindow::dragMovesLayers()
{
    MainWindow w(nullptr, false);
    QSignalSpy planned(&w, &MainWindow::planShown);
    openPlanned(w, planned);
    PlacementMap* map = w.placementMap();
    QSignalSpy moves(map, &PlacementMap::moveRequested);
    // Dropping on the lane the blocks are already on changes nothing.
    QVERIFY(!map->dropLayers(0, 3, laneOf(w, QStringLiteral("0"))));
    QCOMPARE(moves.count(), 0);
    const int before = planned.count();
    QVERIFY(map->dropLayers(0, 3, laneOf(w, QStringLiteral("cpu"))));
    QCOMPARE(moves.count(), 1);
    QTRY_VERIFY_WITH_TIMEOUT(planned.count() > before, 20000);
    const auto& layers = w.currentPlan().layerDevices;
    for (int i = 0; i < 4; ++i)
        QCOMPARE(layers[i], QStringLiteral("cpu"));
    QCOMPARE(layers[4], QStringLiteral("0"));
    QCOMPARE(w.currentPlan().mode, QStringLiteral("custom"));
    QCOMPARE(w.currentPlan().verdict, QStringLiteral("fits_with_cpu_offload"));
    QCOMPARE(map->laneOf(0), laneOf(w, QStringLiteral("cpu")));
}

void TestMainWindow::badDeviceMapIsReported()
{
    MainWindow w(nullptr, false);
    QSignalSpy planned(&w, &MainWindow::planShown);
    QSignalSpy failed(&w, &MainWindow::modelFailed);
    openPlanned(w, planned);
    auto* mapText = w.findChild<QPlainTextEdit*>(QStringLiteral("deviceMap"));
    mapText->setPlainText(QStringLiteral("{'model.layers.0.mlp': 0, 'model.layers.0.self_attn': 'cpu'}"));
    QTest::mouseClick(w.findChild<QPushButton*>(QStringLiteral("applyMap")), Qt::LeftButton);
    QTRY_COMPARE_WITH_TIMEOUT(failed.count(), 1, 20000);
    QVERIFY(w.lastError().contains(QStringLiteral("splits model.layers.0")) || w.lastError().contains(QStringLiteral("no device")));
    // A good map (a Python dict printout) is applied.
    const int before = planned.count();
    mapText->setPlainText(QStringLiteral("{'model': 'cpu', 'lm_head': 0}"));
    QTest::mouseClick(w.findChild<QPushButton*>(QStringLiteral("applyMap")), Qt::LeftButton);
    QTRY_VERIFY_WITH_TIMEOUT(planned.count() > before, 20000);
    QCOMPARE(w.currentPlan().layerDevices[0], QStringLiteral("cpu"));
}

void TestMainWindow::opensSharedModel()
{
    MainWindow w(nullptr, false);
    w.showErrorDialogs = false;
    QAbstractItemModelTester tester(w.moduleModel(), QAbstractItemModelTester::FailureReportingMode::QtTest);
    QSignalSpy shown(&w, &MainWindow::modelShown);
    const auto folder = QString::fromStdString((layerwise::test::shared_data() / "models" / "stories260K").string());
    w.openModel(folder);
    QTRY_COMPARE_WITH_TIMEOUT(shown.count(), 1, 20000);
    ModuleTreeModel* m = w.moduleModel();
    QCOMPARE(m->rowCount(), 2); // model, lm_head
    const QModelIndex model = m->index(0, ModuleTreeModel::NameColumn);
    QCOMPARE(m->data(model).toString(), QStringLiteral("model"));
    const QModelIndex layers = m->index(1, 0, model);
    QCOMPARE(m->data(layers).toString(), QStringLiteral("layers"));
    QCOMPARE(m->rowCount(layers), 5);
    const QModelIndex block = m->index(0, 0, layers);
    QVERIFY(m->data(block, ModuleTreeModel::NoSplitRole).toBool());
    QCOMPARE(m->data(m->index(0, ModuleTreeModel::ClassColumn, layers)).toString(), QStringLiteral("LlamaDecoderLayer"));
    QCOMPARE(m->summary().parameters, quint64(260032));
    auto* summary = w.findChild<QPlainTextEdit*>(QStringLiteral("summary"));
    QVERIFY(summary->toPlainText().contains(QStringLiteral("260,032")));
}

void TestMainWindow::presetsListed()
{
    MainWindow w(nullptr, false);
    w.showErrorDialogs = false;
    auto* presets = w.findChild<QComboBox*>(QStringLiteral("presets"));
    QVERIFY(presets->count() > 10);
    QSignalSpy shown(&w, &MainWindow::modelShown);
    const int index = presets->findData(QStringLiteral("Qwen3-8B"));
    QVERIFY(index > 0);
    presets->setCurrentIndex(index);
    Q_EMIT presets->activated(index);
    QTRY_COMPARE_WITH_TIMEOUT(shown.count(), 1, 20000);
    QCOMPARE(w.moduleModel()->summary().parameters, quint64(8190735360));
}

void TestMainWindow::badFolderReportsError()
{
    MainWindow w(nullptr, false);
    w.showErrorDialogs = false;
    QSignalSpy failed(&w, &MainWindow::modelFailed);
    layerwise::test::TempDir tmp;
    w.openModel(QString::fromStdString(tmp.path().string()));
    QTRY_COMPARE_WITH_TIMEOUT(failed.count(), 1, 20000);
    QVERIFY(w.lastError().contains(QStringLiteral("is empty")));
    // The window still works afterwards.
    QSignalSpy shown(&w, &MainWindow::modelShown);
    w.openModel(QStringLiteral("gpt2"));
    QTRY_COMPARE_WITH_TIMEOUT(shown.count(), 1, 20000);
}

QTEST_MAIN(TestMainWindow)
#include "tst_mainwindow.moc"
