// EngineWorker: the local OpenAI-compatible server over the loaded model (server/api_server.h).
// It serves the session the chat uses: the server's requests decode together in their own KV
// caches, and the chat's turns take turns with the server's decode steps.
#include "engineworker.h"

#include "workerstate.h"

namespace layerwise::ui {

void EngineWorker::startServer(const ServerSettings& settings)
{
    if (!m_state->session) {
        Q_EMIT serverStopped(tr("Load a model first: the server serves the loaded model."));
        return;
    }
    stopServer();
    try {
        server::ServerOptions o;
        o.host = settings.host.trimmed().toStdString();
        o.port = settings.port;
        o.api_key = settings.apiKey.trimmed().toStdString();
        o.parallel = static_cast<std::size_t>(std::max(1, settings.parallel));
        o.model_name = m_state->model ? std::filesystem::path(m_state->model->source()).filename().string() : "layerwise";
        o.on_request = [this](const server::RequestLog& l) {
            ServerRequestView v;
            v.method = QString::fromStdString(l.method);
            v.path = QString::fromStdString(l.path);
            v.status = l.status;
            v.promptTokens = l.prompt_tokens;
            v.completionTokens = l.completion_tokens;
            v.ttftMs = l.ttft_s * 1000.0;
            v.tokensPerSecond = l.tokens_per_s;
            v.seconds = l.seconds;
            v.finish = QString::fromStdString(l.finish);
            Q_EMIT serverRequest(v);
        };
        o.on_clients = [this](int n) { Q_EMIT serverClients(n); };
        // Generation steps run here, between this thread's other jobs (a chat answer, a plan),
        // not on a thread of the server's own: server/batch_loop.h says why.
        o.own_generation_thread = false;
        o.on_generation_work = [this] { schedulePump(); };
        auto server = std::make_unique<server::ApiServer>(*m_state->session, o);
        const int port = server->bind();
        server::ApiServer* running = server.get();
        m_state->server = std::move(server);
        m_state->serverThread = std::thread([running] { running->run(); });
        // The requests' KV caches are allocated now: say what they hold beside the chat's own.
        std::uint64_t kv = 0;
        for (const LoadedFootprint& f : m_state->session->footprint())
            kv += f.kv_cache_bytes;
        const QString note = (o.parallel == 1 ? tr("1 request at once") : tr("%1 requests at once").arg(o.parallel)) +
                             tr(", each with a KV cache of %1 tokens; KV caches now %2 in all")
                                 .arg(m_state->session->context_length())
                                 .arg(QString::fromStdString(format_bytes(kv)));
        Q_EMIT serverStarted(QStringLiteral("http://%1:%2/v1").arg(settings.host.trimmed()).arg(port), note);
    } catch (const std::exception& e) {
        m_state->stopServer();
        Q_EMIT serverStopped(QString::fromUtf8(e.what()));
    }
}

void EngineWorker::schedulePump()
{
    if (!m_pumpQueued.exchange(true))
        QMetaObject::invokeMethod(this, [this] { pumpServer(); }, Qt::QueuedConnection);
}

void EngineWorker::pumpServer()
{
    m_pumpQueued = false;
    if (m_state->server && m_state->server->pump_generation())
        schedulePump();
}

void EngineWorker::stopServer()
{
    stopServerBecause(QString());
}

void EngineWorker::stopServerBecause(const QString& reason)
{
    if (!m_state->server)
        return;
    m_state->stopServer();
    Q_EMIT serverStopped(reason);
}

} // namespace layerwise::ui
