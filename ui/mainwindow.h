#pragma once
// The main window: pick a model (folder, dropped folder or preset) and see what it is
// made of, module by module, before anything is loaded.
#include "enginework.h"

#include <QMainWindow>
#include <QThread>

class QComboBox;
class QLabel;
class QPlainTextEdit;
class QTreeView;

namespace layerwise::ui {

class EngineWorker;
class ModuleTreeModel;

class MainWindow : public QMainWindow {
    Q_OBJECT
public:
    explicit MainWindow(QWidget* parent = nullptr);
    ~MainWindow() override;

    // A folder, config.json or preset name; the result arrives asynchronously.
    void openModel(const QString& what);
    ModuleTreeModel* moduleModel() const { return m_model; }
    QString currentSource() const { return m_source; }
    QString lastError() const { return m_lastError; }
    bool showErrorDialogs = true; // tests turn the modal dialog off

Q_SIGNALS:
    void requestDescribe(const QString& what);
    void modelShown(const QString& source);
    void modelFailed(const QString& message);

protected:
    void dragEnterEvent(QDragEnterEvent* event) override;
    void dropEvent(QDropEvent* event) override;

private:
    void onDescribed(const ModelSummary& summary);
    void onFailed(const QString& what, const QString& message);
    void chooseFolder();

    QThread m_engineThread;
    EngineWorker* m_worker = nullptr;
    ModuleTreeModel* m_model = nullptr;
    QComboBox* m_presets = nullptr;
    QPlainTextEdit* m_summary = nullptr;
    QTreeView* m_tree = nullptr;
    QLabel* m_status = nullptr;
    QString m_source;
    QString m_lastError;
};

} // namespace layerwise::ui
