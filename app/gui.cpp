// The desktop application. Opens the model given by LAYERWISE_MODEL, else the default preset.
#include "commands.h"

#include "mainwindow.h"

#include <QApplication>
#include <QTimer>

namespace layerwise::app {

int runGui(int argc, char** argv)
{
    QApplication application(argc, argv);
    QApplication::setApplicationName(QStringLiteral("Layerwise"));
    QApplication::setOrganizationName(QStringLiteral("Layerwise"));
    ui::MainWindow window;
    window.show();
    const QString model = qEnvironmentVariable("LAYERWISE_MODEL", QStringLiteral("Llama-3.1-8B"));
    // LAYERWISE_SCREENSHOT=file.png: save the window once the model is shown, then quit.
    const QString screenshot = qEnvironmentVariable("LAYERWISE_SCREENSHOT");
    if (!screenshot.isEmpty()) {
        auto save = [&window, screenshot] {
            QTimer::singleShot(500, &window, [&window, screenshot] {
                const bool ok = window.grab().save(screenshot);
                QApplication::exit(ok ? 0 : 1);
            });
        };
        QObject::connect(&window, &ui::MainWindow::modelShown, &window, save);
        QObject::connect(&window, &ui::MainWindow::modelFailed, &window, save);
    }
    window.openModel(model);
    return QApplication::exec();
}

} // namespace layerwise::app
