#pragma once
// Value types of the quantization wizard that cross between the GUI thread and the engine
// worker thread (queued signals). Plain data: no engine types, no LibTorch.
#include <QMetaType>
#include <QString>
#include <QStringList>

namespace layerwise::ui {

// One quantization job: the model folder, the method and its parameters, the new folder.
struct QuantizeRequest {
    QString source;          // the model folder to quantize
    QString method;          // "int8", "nf4", "fp4", "gptq"
    bool doubleQuant = false; // 4-bit: the absmax quantized to 8 bits as well
    QStringList skipModules; // module names (or suffixes) kept unquantized
    QString computeDtype = QStringLiteral("auto");
    QString calibration;     // GPTQ: the calibration text file
    int bits = 4;            // GPTQ: 2, 3, 4 or 8
    int groupSize = 128;     // GPTQ: weights per group; -1: one group per row
    bool descAct = false;    // GPTQ: act-order (columns by decreasing Hessian diagonal)
    bool sym = true;         // GPTQ: symmetric (fixed zero point)
    double dampPercent = 0.01; // GPTQ: damping, a fraction of the mean Hessian diagonal
    int samples = 128;       // GPTQ: calibration sequences
    int seqLen = 512;        // GPTQ: tokens per sequence
    bool restart = false;    // GPTQ: discard `<out>.partial` of an interrupted run instead of resuming it
    QString out;             // the new folder (must not exist)
};

struct QuantizeProgressView {
    quint64 done = 0, total = 0;
    QString item;             // the tensor or layer being quantized
    double etaSeconds = -1;   // unknown while < 0
    double layerError = -1;   // GPTQ: the current module's avg loss (< 0: none)
    int layer = -1, layers = 0; // GPTQ: the decoder layer (0-based) and their number
};

struct QuantizeResultView {
    QString folder;
    int quantizedLinears = 0;
    quint64 weightBytes = 0;
    double seconds = 0;
    int keptLinears = 0;      // GPTQ: linears whose shape cannot be packed, kept as stored
    int resumedLayers = 0;    // GPTQ: layers an interrupted run had done
};

// An interrupted GPTQ run of a folder: what `<out>.partial/state.json` says.
struct GptqPartialRun {
    QString folder;           // "" when there is none
    int layersDone = 0;
    int bits = 0, groupSize = 0;
    bool descAct = false, sym = true;
    double dampPercent = 0;
    int samples = 0, seqLen = 0;
    bool rtn = false;
};
// Reads the state of `<out>.partial` (no LibTorch: the JSON the GPTQ job writes).
GptqPartialRun gptqPartialRun(const QString& out);

// Perplexity of one model folder on a text (sliding window, as `layerwise eval`).
struct EvalRequest {
    QString tag;           // "before", "after": echoed in the answer
    QString model;         // the folder
    QString text;          // the text itself
    qint64 context = 0;    // 0: the model's max_position_embeddings, at most 2048
    qint64 stride = 0;     // 0: half the context
};

struct EvalResultView {
    QString tag;
    double perplexity = 0;
    qint64 tokens = 0;
    qint64 windows = 0;
    double seconds = 0;
};

} // namespace layerwise::ui

Q_DECLARE_METATYPE(layerwise::ui::QuantizeRequest)
Q_DECLARE_METATYPE(layerwise::ui::QuantizeProgressView)
Q_DECLARE_METATYPE(layerwise::ui::QuantizeResultView)
Q_DECLARE_METATYPE(layerwise::ui::EvalRequest)
Q_DECLARE_METATYPE(layerwise::ui::EvalResultView)
