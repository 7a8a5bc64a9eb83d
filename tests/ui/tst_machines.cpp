// Other machines in the desktop app: a `layerwise worker` on 127.0.0.1 added as a machine
// ("Add machine…") shows its devices as cards and lanes grouped under it; the layers that do not
// fit this machine go there in a pipeline stage; a model loads and answers over it; when the
// worker dies the window offers to plan without it, and loads on this machine alone.
#include "testdata.h"
#include "worker_process.h"

#include "chatview.h"
#include "conversationstore.h"
#include "devicepanel.h"
#include "mainwindow.h"
#include "plan_lanes.h"
#include "placementmap.h"

#include <QFile>
#include <QLabel>
#include <QSignalSpy>
#include <QSlider>
#include <QSpinBox>
#include <QStandardPaths>
#include <QtTest>

using namespace layerwise::ui;
using layerwise::ui::test::laneOf;
using layerwise::test::Worker;

class TestMachines : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void initTestCase()
    {
        QStandardPaths::setTestModeEnabled(true);
        QFile::remove(ConversationStore().filePath()); // conversations of earlier runs
    }
    void addedMachineJoinsThePlan();
    void pipelineLoadsAndSurvivesAFailedMachine();
};

void TestMachines::addedMachineJoinsThePlan()
{
    Worker worker("secret");
    QVERIFY(!worker.address.empty());
    MainWindow w(nullptr, false);
    w.showErrorDialogs = false;
    QSignalSpy planned(&w, &MainWindow::planShown), machines(&w, &MainWindow::machinesChanged);
    w.addHypotheticalGpu(QStringLiteral("RTX-4090"));
    w.openModel(QStringLiteral("Llama-3.1-8B"));
    QTRY_VERIFY_WITH_TIMEOUT(planned.count() >= 1, 20000);
    // A wrong token: refused, nothing added.
    w.addMachine(QString::fromStdString(worker.address), QStringLiteral("wrong"));
    QTRY_VERIFY_WITH_TIMEOUT(w.lastError().contains(QStringLiteral("token")), 20000);
    QCOMPARE(machines.count(), 0);
    w.addMachine(QString::fromStdString(worker.address), QStringLiteral("secret"));
    QTRY_VERIFY_WITH_TIMEOUT(machines.count() == 1, 20000);
    QTRY_VERIFY_WITH_TIMEOUT(w.devicePanel()->slider(QStringLiteral("host2/cpu")) != nullptr, 20000);
    QVERIFY(w.findChild<QLabel*>(QStringLiteral("machine-host2")));
    QVERIFY(w.findChild<QLabel*>(QStringLiteral("machine-local")));
    // 15 GiB of weights fit the 24 GiB GPU here: host2 is shown, empty, and says why.
    QTRY_VERIFY_WITH_TIMEOUT(laneOf(w, QStringLiteral("host2/cpu")) >= 0, 20000);
    QCOMPARE(w.currentPlan().devices[laneOf(w, QStringLiteral("host2/cpu"))].layers, 0);
    QCOMPARE(w.currentPlan().machines.size(), 1);
    QVERIFY(w.currentPlan().machines[0].second.contains(QStringLiteral("not used")));
    QCOMPARE(w.currentPlan().verdict, QStringLiteral("fits_on_gpu"));
    // 8 GiB of GPU, 1 GiB of RAM and no disk here: the blocks that do not fit go to host2's RAM,
    // after this machine's, in one contiguous stage.
    const int before = planned.count();
    QVERIFY(w.devicePanel()->setLimitText(QStringLiteral("disk"), QStringLiteral("0")));
    QVERIFY(w.devicePanel()->setLimitText(QStringLiteral("cpu"), QStringLiteral("1GiB")));
    QVERIFY(w.devicePanel()->setLimitText(QStringLiteral("0"), QStringLiteral("8GiB")));
    QTRY_VERIFY_WITH_TIMEOUT(planned.count() >= before + 3 && w.currentPlan().layerDevices.contains(QStringLiteral("host2/cpu")), 20000);
    const QStringList layers = w.currentPlan().layerDevices;
    const int first = static_cast<int>(layers.indexOf(QStringLiteral("host2/cpu")));
    QVERIFY(first > 0);
    for (int i = 0; i < layers.size(); ++i)
        QCOMPARE(layers[i], i < first ? QStringLiteral("0") : QStringLiteral("host2/cpu"));
    QVERIFY(w.currentPlan().verdict != QStringLiteral("does_not_fit"));
    QCOMPARE(w.placementMap()->laneOf(first), laneOf(w, QStringLiteral("host2/cpu")));
    // Hand moves are the planner's with other machines in the plan: refused, saying so.
    w.placementMap()->dropLayers(0, 0, laneOf(w, QStringLiteral("host2/cpu")));
    QTRY_VERIFY_WITH_TIMEOUT(w.lastError().contains(QStringLiteral("Remove the machines")), 20000);
    // Removed: this machine alone again, offloading to its own RAM... which is 1 GiB: no fit.
    w.removeMachines();
    QTRY_VERIFY_WITH_TIMEOUT(machines.count() == 2 && laneOf(w, QStringLiteral("host2/cpu")) < 0, 20000);
    QVERIFY(w.devicePanel()->slider(QStringLiteral("host2/cpu")) == nullptr);
}

void TestMachines::pipelineLoadsAndSurvivesAFailedMachine()
{
    auto worker = std::make_unique<Worker>("secret");
    QVERIFY(!worker->address.empty());
    const QString address = QString::fromStdString(worker->address);
    MainWindow w(nullptr, false);
    w.showErrorDialogs = false;
    QSignalSpy planned(&w, &MainWindow::planShown), loaded(&w, &MainWindow::loadFinished),
        failed(&w, &MainWindow::machineFailureShown);
    w.openModel(QString::fromStdString((layerwise::test::shared_data() / "models" / "stories260K").string()));
    QTRY_VERIFY_WITH_TIMEOUT(planned.count() >= 1, 20000);
    w.findChild<QSpinBox*>(QStringLiteral("context"))->setValue(1024);
    w.addMachine(address, QStringLiteral("secret"));
    QTRY_VERIFY_WITH_TIMEOUT(w.devicePanel()->slider(QStringLiteral("host2/cpu")) != nullptr, 20000);
    // 20 MiB of RAM here and no disk: the activations of a 1024-token context leave room for
    // three of the five blocks.
    QVERIFY(w.devicePanel()->setLimitText(QStringLiteral("disk"), QStringLiteral("0")));
    QVERIFY(w.devicePanel()->setLimitText(QStringLiteral("cpu"), QStringLiteral("20MiB")));
    QTRY_VERIFY_WITH_TIMEOUT(w.currentPlan().layerDevices.contains(QStringLiteral("host2/cpu")) &&
                                 w.currentPlan().verdict != QStringLiteral("does_not_fit"), 20000);
    w.loadModel();
    QTRY_VERIFY_WITH_TIMEOUT(loaded.count() == 1, 60000);
    QVERIFY2(w.isLoaded(), qPrintable(w.lastError()));
    QVERIFY(w.loadedModel().layerDevices.contains(QStringLiteral("host2/cpu")));
    QCOMPARE(w.placementMap()->layerActivity(4), LayerActivity::resident);
    // What host2 holds, as its worker reports it: the blocks the plan gave it and their KV cache
    // (1024 positions, 4 KV heads of 8 dimensions, float32 keys and values: 256 KiB a block).
    const int remote = static_cast<int>(w.currentPlan().layerDevices.count(QStringLiteral("host2/cpu")));
    bool reported = false;
    for (const FootprintRow& row : w.loadedModel().live)
        if (row.key == QStringLiteral("host2/cpu")) {
            reported = true;
            QCOMPARE(row.layers, remote);
            QCOMPARE(row.kvCache, qint64(remote) * 2 * 1024 * 4 * 8 * 4);
            QVERIFY(row.weights > 0);
        }
    QVERIFY(reported);
    // An answer over the pipeline.
    QSignalSpy answered(w.chatView(), &ChatView::answerDone), answerFailed(w.chatView(), &ChatView::answerFailed);
    w.chatView()->newConversation();
    w.chatView()->send(QStringLiteral("Once upon a time"));
    QTRY_VERIFY_WITH_TIMEOUT(answered.count() + answerFailed.count() == 1, 60000);
    QVERIFY2(answered.count() == 1, qPrintable(answerFailed.value(0).value(0).toString()));
    // The worker dies: the next answer fails naming it, and the window offers to plan without it.
    worker.reset();
    w.chatView()->send(QStringLiteral("The cat"));
    QTRY_VERIFY_WITH_TIMEOUT(failed.count() == 1, 60000);
    QCOMPARE(failed.at(0).at(0).toString(), address);
    // Yes: planned without it (with RAM enough here) and loaded on this machine alone.
    QVERIFY(w.devicePanel()->setLimitText(QStringLiteral("cpu"), QStringLiteral("1GiB")));
    w.planWithout(address);
    QTRY_VERIFY_WITH_TIMEOUT(loaded.count() == 2, 60000);
    QVERIFY2(w.isLoaded(), qPrintable(w.lastError()));
    QVERIFY(w.machines().isEmpty());
    QVERIFY(!w.loadedModel().layerDevices.contains(QStringLiteral("host2/cpu")));
}

QTEST_MAIN(TestMachines)
#include "tst_machines.moc"
