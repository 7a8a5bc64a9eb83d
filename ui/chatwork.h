#pragma once
// Value types for loading and chatting that cross from the engine worker thread to the GUI
// thread (queued signals). Plain data: no engine types, no LibTorch.
#include "enginework.h"

#include <QMetaType>
#include <QString>
#include <QStringList>
#include <QVector>

namespace layerwise::ui {

// Sampling settings as the chat view edits them (stored per model in QSettings).
struct SamplingSettings {
    bool greedy = false;
    double temperature = 0.7;
    int topK = 0;        // 0: off
    double topP = 0.9;   // 1: off
    double minP = 0.0;   // 0: off
    double repetitionPenalty = 1.0;
    int maxNewTokens = 256;
    quint64 seed = 0;
};

struct ChatLine {
    QString role; // "user", "assistant"
    QString content;
};

// One request to answer the last message of a conversation.
struct ChatTurnRequest {
    QString system;
    QVector<ChatLine> messages;
    bool raw = false; // raw completion: the text as it is, with BOS, no template
    SamplingSettings sampling;
};

// What an answer cost: shown under it.
struct AnswerStats {
    int tokens = 0;
    double ttftMs = 0;
    double tokensPerSecond = 0;
    int promptTokens = 0;
    int contextUsed = 0;
    int contextLength = 0;
    QString stopReason; // "eos", "max_new_tokens", "stopped", "context_full"
    bool isValid() const { return contextLength > 0; }
};

struct LoadProgressView {
    quint64 done = 0;
    quint64 total = 0;
    QString item;          // the tensor being read
    double etaSeconds = -1; // unknown while < 0
};

// The loaded model as the engine placed it.
struct LoadedView {
    QString source;
    QString deviceMapJson;     // hf_device_map of the loaded model
    QStringList layerDevices;  // device key per decoder block
    int contextLength = 0;
    QString quant = QStringLiteral("none"); // the load-time quantization ("int8", "nf4-dq", ...)
    bool hasTemplate = false;  // false: chat uses the ChatML fallback; raw completion suits better
    double seconds = 0;
    // What each device holds now, as measured on the loaded model (other machines' as their
    // workers report it): keys as FootprintRow's, weights and KV cache filled.
    QVector<FootprintRow> live;
};

// What a decoder block is doing now (PlacementMap draws it).
enum class LayerActivity : int { planned = 0, resident, streamingIn, computing, evicted };

} // namespace layerwise::ui

Q_DECLARE_METATYPE(layerwise::ui::ChatTurnRequest)
Q_DECLARE_METATYPE(layerwise::ui::AnswerStats)
Q_DECLARE_METATYPE(layerwise::ui::LoadProgressView)
Q_DECLARE_METATYPE(layerwise::ui::LoadedView)
