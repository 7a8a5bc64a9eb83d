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

struct DeviceRow {
    QString key;        // "0", "cpu", "disk" (hf_device_map spelling); "host2/0", "host2/cpu" on another machine
    QString name;       // "cuda:0  NVIDIA GeForce RTX 4090"
    QString model;
    bool hypothetical = false;
    quint64 total = 0;
    quint64 available = 0;
    double bandwidth = 0;
    QString machine;    // "" for this machine, "host2"... for another (its group in the device panel)
    QString machineCaption; // "host2 · 10.0.0.2:7070 · link 9.4 Gb/s, 0.1 ms"
};

// What the user set: limits per device, strategy, context, weights format.
struct PlanSettings {
    QVector<QPair<QString, qint64>> limits; // device key -> bytes (only the ones the user set)
    QStringList hypothetical;               // --device specs: "cuda:0=RTX-4090"
    QString strategy = QStringLiteral("auto");
    qint64 context = 4096;
    qint64 batch = 1;
    QString dtype = QStringLiteral("auto");
    QString quant = QStringLiteral("none");
    bool accelerate = false;
};

struct FootprintRow {
    QString key;
    QString name;
    QString machine; // "" for this machine; "host2"... for another one (a pipeline stage)
    qint64 limit = 0, weights = 0, kvCache = 0, activations = 0, overhead = 0;
    int layers = 0;
    qint64 readPerToken = 0; // weight bytes a decode step reads here (a mixture of experts: its chosen experts)
    int experts = 0;         // experts held here
    qint64 used() const { return weights + kvCache + activations + overhead; }
};

// A module outside the decoder blocks (embeddings, final norm, lm_head) as the map shows it.
struct MapModule {
    QString name;           // "model.embed_tokens"
    QString device;         // device key where the plan puts it
    qint64 bytes = 0;       // 0 for a module whose weights are tied to another
    QString dtype;
    QString tiedTo;         // the module whose weights it shares ("" when none)
    bool beforeLayers = true; // drawn before the decoder blocks (embeddings) or after (norm, head)
};

struct PlanView {
    QString verdict;   // fits_on_gpu ...
    QString reason;
    QString mode;
    double decodeTokensPerSecond = 0;
    double prefillTokensPerSecond = 0;
    QVector<FootprintRow> devices;
    QStringList layerDevices; // device key of each decoder block
    QVector<qint64> layerBytes;
    QString deviceMapJson;
    QVector<MapModule> modules; // in model order
    // Mixtures of experts, per decoder block (empty for dense models): the module holding its
    // experts ("model.layers.3.mlp.experts"), the device key most of them are on, whether they
    // are split over several devices, and their bytes.
    QStringList expertModules, expertDevices;
    QVector<bool> expertsSplit;
    QVector<qint64> expertBytes;
    QString quant = QStringLiteral("none"); // weights format of the decoder linears ("int8", "nf4-dq", ...)
    // A pipeline over several machines: each other machine's caption ("host2 · 10.0.0.2:7070 ·
    // link 9.4 Gb/s, 0.1 ms"), by name; the map groups its lanes under it.
    QVector<QPair<QString, QString>> machines;
    qint64 weightBytes() const
    {
        qint64 sum = 0;
        for (const auto& d : devices)
            sum += d.weights;
        return sum;
    }
};

} // namespace layerwise::ui

Q_DECLARE_METATYPE(layerwise::ui::ModelSummary)
Q_DECLARE_METATYPE(layerwise::ui::PlanSettings)
Q_DECLARE_METATYPE(layerwise::ui::PlanView)
Q_DECLARE_METATYPE(QVector<layerwise::ui::DeviceRow>)
