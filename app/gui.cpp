// The desktop application. Opens the model given by LAYERWISE_MODEL, else the default preset,
// planned for this machine's devices (plus LAYERWISE_GPUS hypothetical ones).
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
        QObject::connect(&window, &ui::MainWindow::planShown, &window, save);
        QObject::connect(&window, &ui::MainWindow::modelFailed, &window, save);
    }
    // LAYERWISE_GPUS=RTX-4090,RTX-4090: hypothetical GPUs to plan for from the start.
    for (const QString& gpu : qEnvironmentVariable("LAYERWISE_GPUS").split(QLatin1Char(','), Qt::SkipEmptyParts))
        window.addHypotheticalGpu(gpu.trimmed());
    window.openModel(model);
    return QApplication::exec();
}

} // namespace layerwise::app
