// The desktop application. Opens the model given by LAYERWISE_MODEL, else the default chat
// model (SmolLM2-135M-Instruct, installed by the set-up script; see default_model.h), else the
// Llama 3.1 8B preset, planned for this machine's devices (plus LAYERWISE_GPUS hypothetical ones).
// The default chat model is offered to first-time users ("Try SmolLM2-135M-Instruct").
#include "commands.h"
#include "default_model.h"

#include "chatview.h"
#include "mainwindow.h"
#include "samplingform.h"

#include <QApplication>
#include <QTimer>
#include <memory>

namespace layerwise::app {

int runGui(int argc, char** argv)
{
    QApplication application(argc, argv);
    QApplication::setApplicationName(QStringLiteral("Layerwise"));
    QApplication::setOrganizationName(QStringLiteral("Layerwise"));
    ui::MainWindow window;
    const QString defaultModel = QString::fromStdString(defaultChatModelPath());
    if (!defaultModel.isEmpty())
        window.setDefaultChatModel(defaultModel, QString::fromStdString(defaultChatModelLabel(defaultModel.toStdString())));
    window.show();
    const QString model = qEnvironmentVariable("LAYERWISE_MODEL", defaultModel.isEmpty() ? QStringLiteral("Llama-3.1-8B") : defaultModel);
    // LAYERWISE_SCREENSHOT=file.png: save the window once the model is shown, then quit.
    // With LAYERWISE_SCREENSHOT_CHAT=PROMPT: load the model, send PROMPT (raw completion when the
    // model has no chat template, greedy) and save the Chat tab once the answer is complete.
    const QString screenshot = qEnvironmentVariable("LAYERWISE_SCREENSHOT");
    const QString chatPrompt = qEnvironmentVariable("LAYERWISE_SCREENSHOT_CHAT");
    // LAYERWISE_SCREENSHOT_VIEW=plan: after the answer, show the Plan tab (the loaded layers) instead.
    const bool planView = qEnvironmentVariable("LAYERWISE_SCREENSHOT_VIEW") == QLatin1String("plan");
    if (!screenshot.isEmpty()) {
        auto save = [&window, screenshot, planView] {
            if (planView)
                window.showPlan();
            QTimer::singleShot(500, &window, [&window, screenshot] {
                const bool ok = window.grab().save(screenshot);
                QApplication::exit(ok ? 0 : 1);
            });
        };
        if (chatPrompt.isEmpty()) {
            QObject::connect(&window, &ui::MainWindow::planShown, &window, save);
        } else {
            auto once = std::make_shared<bool>(false);
            QObject::connect(&window, &ui::MainWindow::planShown, &window, [&window, once] {
                if (!*once) {
                    *once = true;
                    window.loadModel();
                }
            });
            QObject::connect(&window, &ui::MainWindow::modelLoaded, &window, [&window, chatPrompt] {
                window.showChat();
                auto s = window.chatView()->samplingForm()->settings();
                s.greedy = true;
                s.maxNewTokens = 80;
                window.chatView()->samplingForm()->setSettings(s);
                window.chatView()->send(chatPrompt);
            });
            QObject::connect(window.chatView(), &ui::ChatView::answerDone, &window, save);
            QObject::connect(window.chatView(), &ui::ChatView::answerFailed, &window, save);
            QObject::connect(&window, &ui::MainWindow::loadErrorShown, &window, save);
        }
        QObject::connect(&window, &ui::MainWindow::modelFailed, &window, save);
    }
    // LAYERWISE_GPUS=RTX-4090,RTX-4090: hypothetical GPUs to plan for from the start.
    for (const QString& gpu : qEnvironmentVariable("LAYERWISE_GPUS").split(QLatin1Char(','), Qt::SkipEmptyParts))
        window.addHypotheticalGpu(gpu.trimmed());
    window.openModel(model);
    return QApplication::exec();
}

} // namespace layerwise::app
