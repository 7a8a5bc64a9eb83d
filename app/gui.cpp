// The desktop application. Opens the model given by LAYERWISE_MODEL, else the default chat
// model (SmolLM2-135M-Instruct, installed by the set-up script; see default_model.h), else the
// Llama 3.1 8B preset, planned for this machine's devices (plus LAYERWISE_GPUS hypothetical ones).
// The default chat model is offered to first-time users ("Try SmolLM2-135M-Instruct").
#include "commands.h"
#include "default_model.h"

#include "chatview.h"
#include "mainwindow.h"
#include "quantizewizard.h"
#include "samplingform.h"

#include <QApplication>
#include <QComboBox>
#include <QDir>
#include <QFile>
#include <QLineEdit>
#include <QRadioButton>
#include <QSpinBox>
#include <QTemporaryDir>
#include <QTimer>
#include <memory>

namespace layerwise::app {

namespace {

// The default calibration text (GPTQ) and evaluation text of the quantization wizard: the path
// the set-up script recorded in <virtualenv>/default_calibration.txt; "" when absent.
QString defaultCalibrationText()
{
#ifdef LAYERWISE_VENV_DIR
    QFile recorded(QDir(QStringLiteral(LAYERWISE_VENV_DIR)).filePath(QStringLiteral("default_calibration.txt")));
    if (recorded.open(QIODevice::ReadOnly)) {
        const QString path = QString::fromUtf8(recorded.readLine()).trimmed();
        if (QFile::exists(path))
            return path;
    }
#endif
    return {};
}

// LAYERWISE_SCREENSHOT_WIZARD=DIR: once the model is planned, walks the quantization wizard
// through int8 (LAYERWISE_SCREENSHOT_WIZARD_METHOD: another method, e.g. gptq with groups of 32
// and 8 samples of 64 tokens) written to a temporary folder, saves each page as
// DIR/wizard-<page>.png, then the main window with the quantized model loaded as the screenshot.
void screenshotWizard(ui::MainWindow& window, const QString& dir, const QString& screenshot)
{
    auto tmp = std::make_shared<QTemporaryDir>();
    auto once = std::make_shared<bool>(false);
    auto shot = [dir](QWidget* w, const QString& name) {
        QApplication::processEvents();
        w->grab().save(QDir(dir).filePath(QStringLiteral("wizard-%1.png").arg(name)));
    };
    QObject::connect(&window, &ui::MainWindow::planShown, &window, [&window, tmp, once, shot, screenshot] {
        if (*once)
            return;
        *once = true;
        window.showQuantizeWizard();
        ui::QuantizeWizard* wiz = window.quantizeWizard();
        if (!wiz) {
            QApplication::exit(1);
            return;
        }
        const QString method = qEnvironmentVariable("LAYERWISE_SCREENSHOT_WIZARD_METHOD", QStringLiteral("int8"));
        if (auto* button = wiz->findChild<QRadioButton*>(QStringLiteral("method-") + method))
            button->setChecked(true);
        QTimer::singleShot(300, wiz, [wiz, tmp, shot, method] {
            shot(wiz, QStringLiteral("1-method"));
            QObject::connect(wiz, &ui::QuantizeWizard::previewShown, wiz, [wiz, tmp, shot, method] {
                static bool done = false;
                if (done)
                    return;
                done = true;
                const bool gptq = method == QLatin1String("gptq");
                if (gptq) { // seconds on a tiny model
                    auto* group = wiz->findChild<QComboBox*>(QStringLiteral("gptqGroupSize"));
                    group->setCurrentIndex(group->findData(32));
                    wiz->findChild<QSpinBox*>(QStringLiteral("gptqSamples"))->setValue(8);
                    wiz->findChild<QSpinBox*>(QStringLiteral("gptqSeqLen"))->setValue(64);
                }
                wiz->findChild<QLineEdit*>(QStringLiteral("outputFolder"))->setText(tmp->filePath(QStringLiteral("stories260K-") + method));
                QTimer::singleShot(gptq ? 600 : 200, wiz, [wiz, shot, gptq] {
                    shot(wiz, QStringLiteral("2-parameters"));
                    wiz->next();
                    if (gptq)
                        QTimer::singleShot(200, wiz, [wiz, shot] {
                            shot(wiz, QStringLiteral("2b-calibration"));
                            wiz->next();
                        });
                });
            });
            wiz->next();
        });
        QObject::connect(wiz, &ui::QuantizeWizard::runFinished, wiz, [wiz, shot](bool ok) {
            shot(wiz, QStringLiteral("3-run"));
            if (!ok) {
                QApplication::exit(1);
                return;
            }
            wiz->next();
            const QString text = qEnvironmentVariable("LAYERWISE_SCREENSHOT_EVAL_TEXT");
            if (!text.isEmpty()) {
                wiz->findChild<QRadioButton*>(QStringLiteral("evalFile"))->setChecked(true);
                wiz->findChild<QLineEdit*>(QStringLiteral("evalPath"))->setText(text);
                wiz->findChild<QSpinBox*>(QStringLiteral("evalContext"))->setValue(64);
                wiz->findChild<QSpinBox*>(QStringLiteral("evalStride"))->setValue(32);
            }
            wiz->evaluate();
        });
        QObject::connect(wiz, &ui::QuantizeWizard::evaluationFinished, wiz, [wiz, shot] {
            shot(wiz, QStringLiteral("4-evaluation"));
            wiz->next();
            QTimer::singleShot(200, wiz, [wiz, shot] {
                shot(wiz, QStringLiteral("5-done"));
                wiz->openResult();
            });
        });
        QObject::connect(&window, &ui::MainWindow::modelLoaded, &window, [&window, screenshot, tmp] {
            QTimer::singleShot(500, &window, [&window, screenshot, tmp] {
                const bool ok = window.grab().save(screenshot);
                QApplication::exit(ok ? 0 : 1);
            });
        });
    });
}

} // namespace

int runGui(int argc, char** argv)
{
    QApplication application(argc, argv);
    QApplication::setApplicationName(QStringLiteral("Layerwise"));
    QApplication::setOrganizationName(QStringLiteral("Layerwise"));
    ui::MainWindow window;
    const QString defaultModel = QString::fromStdString(defaultChatModelPath());
    if (!defaultModel.isEmpty())
        window.setDefaultChatModel(defaultModel, QString::fromStdString(defaultChatModelLabel(defaultModel.toStdString())));
    window.setDefaultCalibrationText(defaultCalibrationText());
    // LAYERWISE_SCREENSHOT_SIZE=1000x700: the window's size for a screenshot.
    if (const QStringList size = qEnvironmentVariable("LAYERWISE_SCREENSHOT_SIZE").split(QLatin1Char('x')); size.size() == 2)
        window.resize(size[0].toInt(), size[1].toInt());
    window.show();
    const QString model = qEnvironmentVariable("LAYERWISE_MODEL", defaultModel.isEmpty() ? QStringLiteral("Llama-3.1-8B") : defaultModel);
    // LAYERWISE_SCREENSHOT=file.png: save the window once the model is shown, then quit.
    // With LAYERWISE_SCREENSHOT_CHAT=PROMPT: load the model, send PROMPT (raw completion when the
    // model has no chat template, greedy) and save the Chat tab once the answer is complete.
    const QString screenshot = qEnvironmentVariable("LAYERWISE_SCREENSHOT");
    const QString chatPrompt = qEnvironmentVariable("LAYERWISE_SCREENSHOT_CHAT");
    // LAYERWISE_SCREENSHOT_VIEW=plan: after the answer, show the Plan tab (the loaded layers) instead.
    const bool planView = qEnvironmentVariable("LAYERWISE_SCREENSHOT_VIEW") == QLatin1String("plan");
    const QString wizardShots = qEnvironmentVariable("LAYERWISE_SCREENSHOT_WIZARD");
    if (!screenshot.isEmpty() && !wizardShots.isEmpty()) {
        screenshotWizard(window, wizardShots, screenshot);
        QObject::connect(&window, &ui::MainWindow::modelFailed, &window, [] { QApplication::exit(1); });
    } else if (!screenshot.isEmpty()) {
        auto save = [&window, screenshot, planView] {
            if (planView)
                window.showPlan();
            QTimer::singleShot(500, &window, [&window, screenshot] {
                const bool ok = window.grab().save(screenshot);
                QApplication::exit(ok ? 0 : 1);
            });
        };
        if (chatPrompt.isEmpty()) {
            // With LAYERWISE_MACHINES, the plan shown once they joined.
            auto ready = std::make_shared<bool>(qEnvironmentVariableIsEmpty("LAYERWISE_MACHINES"));
            QObject::connect(&window, &ui::MainWindow::machinesChanged, &window, [ready] { *ready = true; });
            QObject::connect(&window, &ui::MainWindow::planShown, &window, [ready, save] {
                if (*ready)
                    save();
            });
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
    // LAYERWISE_MACHINES=HOST:PORT,HOST:PORT: machines running `layerwise worker` in the plan from
    // the start (as Model > Add machine...), with the token in LAYERWISE_TOKEN.
    for (const QString& m : qEnvironmentVariable("LAYERWISE_MACHINES").split(QLatin1Char(','), Qt::SkipEmptyParts))
        window.addMachine(m.trimmed(), qEnvironmentVariable("LAYERWISE_TOKEN"));
    return QApplication::exec();
}

} // namespace layerwise::app
