// The desktop application. Opens the model given by LAYERWISE_MODEL, else the default preset.
#include "commands.h"

#include "mainwindow.h"

#include <QApplication>

namespace layerwise::app {

int runGui(int argc, char** argv)
{
    QApplication application(argc, argv);
    QApplication::setApplicationName(QStringLiteral("Layerwise"));
    QApplication::setOrganizationName(QStringLiteral("Layerwise"));
    ui::MainWindow window;
    window.show();
    const QString model = qEnvironmentVariable("LAYERWISE_MODEL", QStringLiteral("Llama-3.1-8B"));
    window.openModel(model);
    return QApplication::exec();
}

} // namespace layerwise::app
