#pragma once
// Value types that cross from the engine worker thread to the GUI thread.
#include <QMetaType>
#include <QString>
#include <QVector>

namespace layerwise::ui {

struct ModuleRow {
    QString name;      // "model.layers.0"
    QString className; // "LlamaDecoderLayer"
    quint64 bytes = 0;
    quint64 parameters = 0;
    QString dtype;     // dtype of its own tensors, "" when it has none
    int parent = -1;
    QVector<int> children;
    bool noSplit = false;
    QString tiedTo;    // its weights share storage with this tensor
};

struct ModelSummary {
    QString source;
    QString architecture;
    QString text;                // the same description `layerwise inspect` prints
    quint64 parameters = 0;
    quint64 bytes = 0;
    QVector<ModuleRow> modules;  // preorder; modules[0] is the root
};

} // namespace layerwise::ui

Q_DECLARE_METATYPE(layerwise::ui::ModelSummary)
