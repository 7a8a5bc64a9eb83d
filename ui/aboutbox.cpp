#include "aboutbox.h"

#include "api/engine_info.h"

#include <QMessageBox>
#include <QtGlobal>

namespace layerwise::ui {

QString aboutText()
{
    const EngineInfo info = engine_info();
    const auto& gpus = info.gpus;
    QString cuda = gpus.empty() ? QObject::tr("not available (no CUDA device or driver): models run on the CPU")
                                : QObject::tr("available, %n device(s)", nullptr, static_cast<int>(gpus.size()));
    for (const auto& g : gpus)
        cuda += QStringLiteral("<br>&nbsp;&nbsp;cuda:%1 %2").arg(g.index).arg(QString::fromStdString(g.name).toHtmlEscaped());
    return QObject::tr("<h3>Layerwise</h3>"
                       "<p>Plans and runs Hugging Face language models on the hardware you have: "
                       "see which layer sits where, load it, and chat with it.</p>"
                       "<p>Qt %1<br>LibTorch %2<br>CUDA: %3</p>")
        .arg(QString::fromLatin1(qVersion()), QString::fromStdString(info.torch_version), cuda);
}

void showAbout(QWidget* parent)
{
    QMessageBox::about(parent, QObject::tr("About Layerwise"), aboutText());
}

} // namespace layerwise::ui
