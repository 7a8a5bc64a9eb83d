// A real mouse drag on a real X server (Xvfb, the xcb platform): xdotool moves the X pointer and
// presses the button, so the drag goes through Qt's own drag-and-drop machinery (QDrag, the X
// selection, drop events) exactly as a person's would. A decoder block dragged from the GPU
// lane onto the CPU lane moves in the plan and in the hf_device_map.
#include "testdata.h"

#include "mainwindow.h"
#include "placementmap.h"

#include <QApplication>
#include <QProcess>
#include <QSignalSpy>
#include <QStandardPaths>

using namespace layerwise::ui;

class TestXcbDrag : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void initTestCase();
    void mouseDragMovesABlock();
};

void TestXcbDrag::initTestCase()
{
    QStandardPaths::setTestModeEnabled(true);
    if (QGuiApplication::platformName() != QLatin1String("xcb"))
        QSKIP("needs the xcb platform on an X server (ctest runs this suite under xvfb-run)");
    if (QStandardPaths::findExecutable(QStringLiteral("xdotool")).isEmpty())
        QSKIP("needs xdotool (packaging/setup.sh installs it)");
}

void TestXcbDrag::mouseDragMovesABlock()
{
    MainWindow w(nullptr, false);
    w.showErrorDialogs = false;
    QSignalSpy planned(&w, &MainWindow::planShown);
    w.addHypotheticalGpu(QStringLiteral("RTX-4090"));
    w.openModel(QStringLiteral("Llama-3.1-8B"));
    QTRY_VERIFY_WITH_TIMEOUT(planned.count() >= 1, 20000);
    w.resize(1300, 850);
    w.move(0, 0);
    w.show();
    QVERIFY(QTest::qWaitForWindowExposed(&w));
    w.activateWindow();
    QTest::qWait(300);

    PlacementMap* map = w.placementMap();
    const auto& devices = w.currentPlan().devices;
    int gpu = -1, cpu = -1;
    for (int i = 0; i < devices.size(); ++i) {
        if (devices[i].key == QLatin1String("0"))
            gpu = i;
        if (devices[i].key == QLatin1String("cpu"))
            cpu = i;
    }
    QVERIFY(gpu >= 0 && cpu >= 0);
    QCOMPARE(map->laneOf(0), gpu);
    QCOMPARE(w.currentPlan().layerDevices[0], QStringLiteral("0"));

    const QPoint from = map->mapToGlobal(map->blockRect(0).center().toPoint());
    const QRectF cpuLane = map->laneRect(cpu);
    const QPoint to = map->mapToGlobal(QPointF(cpuLane.center().x(), cpuLane.center().y()).toPoint());
    const int before = static_cast<int>(planned.count());
    // Press on block 0, move past the drag distance, travel to the CPU lane, release.
    QProcess xdotool;
    const auto xy = [](QPoint p) { return QStringList{QString::number(p.x()), QString::number(p.y())}; };
    QStringList args = QStringList{"mousemove"} + xy(from) + QStringList{"sleep", "0.2", "mousedown", "1", "sleep", "0.2", "mousemove"} +
                       xy(from + QPoint(20, 0)) + QStringList{"sleep", "0.2", "mousemove"} + xy((from + to) / 2) +
                       QStringList{"sleep", "0.2", "mousemove"} + xy(to) + QStringList{"sleep", "0.3", "mouseup", "1"};
    xdotool.start(QStringLiteral("xdotool"), args);
    QVERIFY(xdotool.waitForStarted());
    // The event loop runs (QDrag::exec has its own while the button is down) until the plan changes.
    QTRY_VERIFY_WITH_TIMEOUT(planned.count() > before, 20000);
    if (xdotool.state() != QProcess::NotRunning)
        QVERIFY(xdotool.waitForFinished(10000));
    QCOMPARE(xdotool.exitCode(), 0);
    QCOMPARE(w.currentPlan().layerDevices[0], QStringLiteral("cpu"));
    QCOMPARE(w.currentPlan().mode, QStringLiteral("custom"));
    QCOMPARE(map->laneOf(0), cpu);
    QVERIFY(w.shownDeviceMap().contains(QStringLiteral("\"model.layers.0\": \"cpu\"")));
}

QTEST_MAIN(TestXcbDrag)
#include "tst_xcb_drag.moc"
