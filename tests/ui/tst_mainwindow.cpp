// The main window offscreen: a real folder and a preset arrive through the engine
// worker thread; a bad folder gives an error without breaking the window.
#include "testdata.h"

#include "mainwindow.h"
#include "moduletreemodel.h"

#include <QAbstractItemModelTester>
#include <QComboBox>
#include <QPlainTextEdit>
#include <QSignalSpy>
#include <QStandardPaths>

using namespace layerwise::ui;

class TestMainWindow : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void initTestCase() { QStandardPaths::setTestModeEnabled(true); }
    void opensSharedModel();
    void presetsListed();
    void badFolderReportsError();
};

void TestMainWindow::opensSharedModel()
{
    MainWindow w;
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
    MainWindow w;
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
    MainWindow w;
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
