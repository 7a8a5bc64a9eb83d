#pragma once
// Values that cross between the GUI thread and the engine worker for the local server.
#include <QMetaType>
#include <QString>

namespace layerwise::ui {

struct ServerSettings {
    QString host = QStringLiteral("127.0.0.1");
    int port = 8080; // 0: any free port
    QString apiKey;  // required for any host but loopback
    int parallel = 4; // requests decoded together, each with a KV cache of the loaded context
};

struct ServerRequestView {
    QString method, path;
    int status = 0;
    qint64 promptTokens = 0, completionTokens = 0;
    double ttftMs = 0, tokensPerSecond = 0, seconds = 0;
    QString finish; // stop, length, disconnected, error, or empty
};

} // namespace layerwise::ui

Q_DECLARE_METATYPE(layerwise::ui::ServerSettings)
Q_DECLARE_METATYPE(layerwise::ui::ServerRequestView)
