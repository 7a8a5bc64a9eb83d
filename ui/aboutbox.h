#pragma once
// The About box: versions of Qt and LibTorch, and whether CUDA is usable here.
#include <QString>

class QWidget;

namespace layerwise::ui {

QString aboutText();
void showAbout(QWidget* parent);

} // namespace layerwise::ui
