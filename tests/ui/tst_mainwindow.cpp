// The main window offscreen: a real folder and a preset arrive through the engine
// worker thread; a bad folder gives an error without breaking the window.
#include "testdata.h"

#include "devicepanel.h"
#include "mainwindow.h"
#include "plan_lanes.h"
#include "moduletreemodel.h"
#include "placementmap.h"
#include "planbar.h"

#include <QAbstractItemModelTester>
#include <QAction>
#include <QFile>
#include <QJsonDocument>
#include <QJsonObject>
#include <QMessageBox>
#include <QUndoStack>
#include <QComboBox>
#include <QPlainTextEdit>
#include <QSignalSpy>
#include <QPushButton>
#include <QSlider>
#include <QStandardPaths>
#include <QSpinBox>
#include <QLineEdit>

using namespace layerwise::ui;
using layerwise::ui::test::laneOf;

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
    void mapModulesMoveUndoAndFiles();
    void sliderDragIsOneUndoStep();
    void undoRestoresSettings();
    void narrowWindow();
    void quantizationColoursTheMap();
    void expertsAreASubRow();
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


// The device an hf_device_map gives a module: the key equal to it or the longest key that is a
// parent of it ("" covers everything), as accelerate resolves it; "" when no key covers it.
QString deviceIn(const QString& mapJson, const QString& module)
{
    const QJsonObject map = QJsonDocument::fromJson(mapJson.toUtf8()).object();
    QString best;
    bool found = false;
    for (auto it = map.begin(); it != map.end(); ++it) {
        const QString& key = it.key();
        const bool covers = key.isEmpty() || module == key || module.startsWith(key + QLatin1Char('.'));
        if (covers && (!found || key.size() > best.size())) {
            best = key;
            found = true;
        }
    }
    if (!found)
        return {};
    const QJsonValue v = map.value(best);
    return v.isString() ? v.toString() : QString::number(v.toInt());
}

QString stories()
{
    return QString::fromStdString((layerwise::test::shared_data() / "models" / "stories260K").string());
}

void writeFile(const QString& path, const QByteArray& text)
{
    QFile f(path);
    QVERIFY(f.open(QIODevice::WriteOnly));
    f.write(text);
}

} // namespace

void TestMainWindow::mapModulesMoveUndoAndFiles()
{
    MainWindow w(nullptr, false);
    QSignalSpy planned(&w, &MainWindow::planShown);
    openPlanned(w, planned, stories());
    PlacementMap* map = w.placementMap();
    const QString embed = QStringLiteral("model.embed_tokens"), norm = QStringLiteral("model.norm"),
                  head = QStringLiteral("lm_head");
    // The modules outside the decoder blocks are blocks in the lane of the device the map gives them.
    for (const QString& m : {embed, norm, head}) {
        QVERIFY2(map->moduleNames().contains(m), qPrintable(map->moduleNames().join(u',')));
        QCOMPARE(map->moduleLane(m), laneOf(w, deviceIn(w.shownDeviceMap(), m)));
        QVERIFY(!map->moduleRect(m).isEmpty());
    }
    QCOMPARE(deviceIn(w.shownDeviceMap(), embed), QStringLiteral("0"));
    const int cpu = laneOf(w, QStringLiteral("cpu"));
    QVERIFY(cpu >= 0);
    // lm_head shares the embeddings' weights (tie_word_embeddings): dropping it alone is refused.
    QVERIFY(!map->dropModule(head, cpu));
    QVERIFY(map->lastRefusal().contains(embed));
    // Dropping the embeddings moves them, and the tied head with them.
    const QString before = w.shownDeviceMap();
    int count = planned.count();
    QVERIFY(map->dropModule(embed, cpu));
    QTRY_VERIFY_WITH_TIMEOUT(planned.count() > count, 20000);
    const QString after = w.shownDeviceMap();
    QCOMPARE(deviceIn(after, embed), QStringLiteral("cpu"));
    QCOMPARE(deviceIn(after, head), QStringLiteral("cpu"));
    QCOMPARE(deviceIn(after, QStringLiteral("model.layers.0")), QStringLiteral("0"));
    QCOMPARE(deviceIn(after, norm), QStringLiteral("0"));
    QCOMPARE(map->moduleLane(embed), cpu);
    QCOMPARE(map->moduleLane(head), cpu);
    QCOMPARE(w.findChild<QPlainTextEdit*>(QStringLiteral("deviceMap"))->toPlainText(), after);
    QCOMPARE(w.undoStack()->count(), 1);
    // Undo restores exactly the map before, redo the one after.
    count = planned.count();
    w.undoStack()->undo();
    QTRY_VERIFY_WITH_TIMEOUT(planned.count() > count, 20000);
    QCOMPARE(w.shownDeviceMap(), before);
    QCOMPARE(map->moduleLane(embed), laneOf(w, QStringLiteral("0")));
    count = planned.count();
    w.undoStack()->redo();
    QTRY_VERIFY_WITH_TIMEOUT(planned.count() > count, 20000);
    QCOMPARE(w.shownDeviceMap(), after);
    QCOMPARE(w.undoStack()->count(), 1);

    // Export: the file holds the map shown.
    layerwise::test::TempDir tmp;
    const QString exported = QString::fromStdString((tmp.path() / "device_map.json").string());
    QVERIFY(w.exportDeviceMap(exported));
    QFile file(exported);
    QVERIFY(file.open(QIODevice::ReadOnly));
    QJsonParseError error{};
    const QJsonDocument doc = QJsonDocument::fromJson(file.readAll(), &error);
    QCOMPARE(error.error, QJsonParseError::NoError);
    QCOMPARE(doc, QJsonDocument::fromJson(after.toUtf8()));

    // Import a Python dict printout, as print(model.hf_device_map) writes it.
    const QString printout = QString::fromStdString((tmp.path() / "map.txt").string());
    writeFile(printout, "{'model': 'cpu', 'lm_head': 'cpu'}\n");
    count = planned.count();
    w.importDeviceMap(printout);
    QTRY_VERIFY_WITH_TIMEOUT(planned.count() > count, 20000);
    for (const QString& m : {embed, norm, head, QStringLiteral("model.layers.4")})
        QCOMPARE(deviceIn(w.shownDeviceMap(), m), QStringLiteral("cpu"));
    QCOMPARE(map->moduleLane(norm), cpu);
    QCOMPARE(map->laneOf(0), cpu);
    QCOMPARE(w.undoStack()->count(), 2);

    // A map naming a module the model lacks: a dialog says so, the map stays as it was.
    w.showErrorDialogs = true;
    const QString imported = w.shownDeviceMap();
    const QString unknown = QString::fromStdString((tmp.path() / "unknown.json").string());
    writeFile(unknown, R"({"model": 0, "lm_head": 0, "vision_tower": "cpu"})");
    QSignalSpy failed(&w, &MainWindow::modelFailed);
    w.importDeviceMap(unknown);
    QTRY_COMPARE_WITH_TIMEOUT(failed.count(), 1, 20000);
    QMessageBox* box = w.findChild<QMessageBox*>(QStringLiteral("importError"));
    QVERIFY(box);
    QVERIFY2(box->informativeText().contains(QStringLiteral("vision_tower")), qPrintable(box->informativeText()));
    QVERIFY(box->informativeText().contains(QStringLiteral("unchanged")));
    box->close();
    QTRY_VERIFY(!w.findChild<QMessageBox*>(QStringLiteral("importError")));
    QCOMPARE(w.shownDeviceMap(), imported);
    QCOMPARE(w.undoStack()->count(), 2);
    // A map naming a device the plan lacks: the same.
    const QString otherGpu = QString::fromStdString((tmp.path() / "gpu3.json").string());
    writeFile(otherGpu, R"({"model": 3, "lm_head": 3})");
    w.importDeviceMap(otherGpu);
    QTRY_COMPARE_WITH_TIMEOUT(failed.count(), 2, 20000);
    box = w.findChild<QMessageBox*>(QStringLiteral("importError"));
    QVERIFY(box);
    QVERIFY2(box->informativeText().contains(QStringLiteral("cuda:3")), qPrintable(box->informativeText()));
    box->close();
    QTRY_VERIFY(!w.findChild<QMessageBox*>(QStringLiteral("importError")));
    QCOMPARE(w.shownDeviceMap(), imported);
    // An unreadable file: the same dialog at once.
    w.importDeviceMap(QString::fromStdString((tmp.path() / "missing.json").string()));
    box = w.findChild<QMessageBox*>(QStringLiteral("importError"));
    QVERIFY(box);
    QVERIFY(box->text().contains(QStringLiteral("missing.json")));
    box->close();
    QCOMPARE(w.shownDeviceMap(), imported);
    // Undo walks back through the import to the dragged map.
    count = planned.count();
    w.undoStack()->undo();
    QTRY_VERIFY_WITH_TIMEOUT(planned.count() > count, 20000);
    QCOMPARE(w.shownDeviceMap(), after);
}

void TestMainWindow::sliderDragIsOneUndoStep()
{
    MainWindow w(nullptr, false);
    QSignalSpy planned(&w, &MainWindow::planShown);
    openPlanned(w, planned);
    QCOMPARE(w.undoStack()->count(), 0); // opening and planning are not edits
    const QString before = w.shownDeviceMap();
    // One drag: the slider passes through several values in quick succession.
    const int count = planned.count();
    for (int gib : {12, 10, 8})
        w.devicePanel()->slider(QStringLiteral("0"))->setValue(gib * 1024);
    QTRY_VERIFY_WITH_TIMEOUT(planned.count() >= count + 3, 20000);
    QVERIFY(w.shownDeviceMap() != before);
    QCOMPARE(w.undoStack()->count(), 1);
    const QString dragged = w.shownDeviceMap();
    // The Edit menu's actions, with the usual shortcuts, step back and forth.
    auto* undo = w.findChild<QAction*>(QStringLiteral("undoAction"));
    auto* redo = w.findChild<QAction*>(QStringLiteral("redoAction"));
    QVERIFY(undo && redo);
    QCOMPARE(undo->shortcut(), QKeySequence(QKeySequence::Undo));
    QVERIFY(redo->shortcuts().contains(QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_Z)));
    QVERIFY(undo->isEnabled() && !redo->isEnabled());
    int now = planned.count();
    undo->trigger();
    QTRY_VERIFY_WITH_TIMEOUT(planned.count() > now, 20000);
    QCOMPARE(w.shownDeviceMap(), before);
    QVERIFY(redo->isEnabled());
    now = planned.count();
    redo->trigger();
    QTRY_VERIFY_WITH_TIMEOUT(planned.count() > now, 20000);
    QCOMPARE(w.shownDeviceMap(), dragged);
}

void TestMainWindow::undoRestoresSettings()
{
    // Undo and redo of a strategy, context or limit change put the controls back too.
    MainWindow w(nullptr, false);
    QSignalSpy planned(&w, &MainWindow::planShown);
    openPlanned(w, planned);
    auto* strategy = w.planBar()->findChild<QComboBox*>(QStringLiteral("strategy"));
    auto* context = w.planBar()->findChild<QSpinBox*>(QStringLiteral("context"));
    QVERIFY(strategy && context);
    QCOMPARE(strategy->currentText(), QStringLiteral("auto"));
    auto step = [&](const std::function<void()>& change) {
        const int count = static_cast<int>(planned.count());
        change();
        QTRY_VERIFY_WITH_TIMEOUT(planned.count() > count, 20000);
    };
    step([&] { strategy->setCurrentText(QStringLiteral("sequential")); });
    QCOMPARE(w.undoStack()->count(), 1);
    step([&] { context->setValue(8192); });
    QCOMPARE(w.undoStack()->count(), 2);
    const QString afterContext = w.shownDeviceMap();
    QSlider* slider = w.devicePanel()->slider(QStringLiteral("0"));
    auto* field = slider->parentWidget()->findChild<QLineEdit*>();
    const int sliderBefore = slider->value();
    const QString fieldBefore = field->text();
    step([&] { slider->setValue(10 * 1024); });
    QCOMPARE(w.undoStack()->count(), 3);
    QVERIFY(w.shownDeviceMap() != afterContext);
    QCOMPARE(field->text(), QStringLiteral("10.00 GiB"));

    step([&] { w.undoStack()->undo(); }); // the slider
    QCOMPARE(slider->value(), sliderBefore);
    QCOMPARE(field->text(), fieldBefore);
    QVERIFY(w.devicePanel()->limits().isEmpty());
    QCOMPARE(w.shownDeviceMap(), afterContext);
    QCOMPARE(context->value(), 8192);
    step([&] { w.undoStack()->undo(); }); // the context
    QCOMPARE(context->value(), 4096);
    QCOMPARE(strategy->currentText(), QStringLiteral("sequential"));
    step([&] { w.undoStack()->undo(); }); // the strategy
    QCOMPARE(strategy->currentText(), QStringLiteral("auto"));
    QCOMPARE(w.undoStack()->count(), 3); // undone steps stay for redo
    step([&] { w.undoStack()->redo(); });
    QCOMPARE(strategy->currentText(), QStringLiteral("sequential"));
    QCOMPARE(context->value(), 4096);
    step([&] { w.undoStack()->redo(); });
    step([&] { w.undoStack()->redo(); });
    QCOMPARE(context->value(), 8192);
    QCOMPARE(slider->value(), 10 * 1024);
    QCOMPARE(w.devicePanel()->limits().value(0).second, qint64(10) << 30);
    // Restoring the controls asked for no new step.
    QCOMPARE(w.undoStack()->count(), 3);
    QCOMPARE(w.undoStack()->index(), 3);
}

void TestMainWindow::narrowWindow()
{
    // The window works at 1000 px: toolbars collapse, the plan bar wraps, the columns shrink.
    MainWindow w(nullptr, false);
    QSignalSpy planned(&w, &MainWindow::planShown);
    openPlanned(w, planned);
    w.resize(1000, 700);
    w.show();
    QVERIFY(QTest::qWaitForWindowExposed(&w));
    qInfo("minimum width: %d px", w.minimumSizeHint().width());
    QVERIFY2(w.minimumSizeHint().width() <= 1000, qPrintable(QString::number(w.minimumSizeHint().width())));
    QVERIFY2(w.minimumWidth() <= 1000, qPrintable(QString::number(w.minimumWidth())));
    QTRY_COMPARE(w.width(), 1000);
    w.showChat();
    QVERIFY2(w.minimumSizeHint().width() <= 1000, qPrintable(QString::number(w.minimumSizeHint().width())));
    // The placement map and the plan bar fit in what the window gives them.
    w.showPlan();
    QVERIFY(w.placementMap()->width() > 200);
    QVERIFY(w.planBar()->width() <= w.width());
}

void TestMainWindow::quantizationColoursTheMap()
{
    MainWindow w(nullptr, false);
    QSignalSpy planned(&w, &MainWindow::planShown);
    openPlanned(w, planned, stories());
    w.resize(1200, 800);
    w.show();
    QVERIFY(QTest::qWaitForWindowExposed(&w));
    PlacementMap* map = w.placementMap();
    QCOMPARE(map->quantization(), QStringLiteral("none"));
    const qint64 plain = w.currentPlan().weightBytes();
    auto* quant = w.planBar()->findChild<QComboBox*>(QStringLiteral("quant"));
    for (const char* q : {"int8", "nf4-dq"}) {
        const int count = static_cast<int>(planned.count());
        quant->setCurrentText(QLatin1String(q));
        QTRY_VERIFY_WITH_TIMEOUT(planned.count() > count, 20000);
        QCOMPARE(map->quantization(), QLatin1String(q));
        QVERIFY(w.currentPlan().weightBytes() < plain);
        // Every decoder block carries a stripe of the format's colour.
        const QImage image = map->grab().toImage();
        const QColor expected = PlacementMap::quantColor(QLatin1String(q));
        QVERIFY(expected.isValid());
        for (int layer = 0; layer < 5; ++layer) {
            const QRectF r = map->blockRect(layer);
            const QColor got = image.pixelColor(QPoint(static_cast<int>(r.center().x()), static_cast<int>(r.bottom() - 3)));
            QVERIFY2(got == expected, qPrintable(got.name() + QLatin1Char(' ') + expected.name()));
        }
    }
    QVERIFY(PlacementMap::quantColor(QStringLiteral("int8")) != PlacementMap::quantColor(QStringLiteral("nf4")));
    // A saved checkpoint shows its own quantization: bitsandbytes' quantization_config, GPTQ's quantize config.
    for (const auto& [folder, expected] : {std::pair<const char*, const char*>{"llama-quant-nf4-dq", "nf4-dq"},
                                           {"llama-gptq-4bit-32g", "gptq-4bit-32g"}}) {
        quant->setCurrentText(QStringLiteral("none"));
        w.openModel(QString::fromStdString((layerwise::test::fixtures() / "quant" / folder).string()));
        QTRY_VERIFY_WITH_TIMEOUT(w.currentSource().endsWith(QLatin1String(folder)), 20000);
        QTRY_COMPARE_WITH_TIMEOUT(map->quantization(), QLatin1String(expected), 20000);
    }
    QVERIFY(!PlacementMap::quantColor(QStringLiteral("none")).isValid());
}

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
    // The refused map left no step; the applied one is one.
    QCOMPARE(w.undoStack()->count(), 1);
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
void TestMainWindow::expertsAreASubRow()
{
    // Qwen3-30B-A3B on one 24 GiB GPU: every block on the GPU, the first blocks' experts in RAM
    // (or the mapped checkpoint), drawn as a sub-row in those lanes; dragging a block's experts
    // moves them alone.
    MainWindow w(nullptr, false);
    QSignalSpy planned(&w, &MainWindow::planShown);
    openPlanned(w, planned, QStringLiteral("Qwen3-30B-A3B"));
    PlacementMap* map = w.placementMap();
    QVERIFY(map->hasExperts());
    const int gpu = laneOf(w, QStringLiteral("0")), cpu = laneOf(w, QStringLiteral("cpu"));
    QVERIFY(gpu >= 0 && cpu >= 0);
    QCOMPARE(map->laneOf(0), gpu);
    QCOMPARE(map->expertsModule(0), QStringLiteral("model.layers.0.mlp.experts"));
    QCOMPARE(map->expertsLane(0), cpu);
    QCOMPARE(map->expertsLane(47), gpu);
    QCOMPARE(deviceIn(w.shownDeviceMap(), QStringLiteral("model.layers.0.mlp.experts.0")), QStringLiteral("cpu"));
    QVERIFY(!map->expertsRect(47).isEmpty() && !map->expertsRect(47).intersects(map->blockRect(47)));
    const int count = planned.count();
    QVERIFY(map->dropModule(map->expertsModule(47), cpu));
    QTRY_VERIFY_WITH_TIMEOUT(planned.count() > count, 20000);
    QCOMPARE(map->expertsLane(47), cpu);
    QCOMPARE(map->laneOf(47), gpu);
    QCOMPARE(deviceIn(w.shownDeviceMap(), QStringLiteral("model.layers.47.mlp.experts.5")), QStringLiteral("cpu"));
    QCOMPARE(deviceIn(w.shownDeviceMap(), QStringLiteral("model.layers.47.self_attn")), QStringLiteral("0"));
}

#include "tst_mainwindow.moc"
