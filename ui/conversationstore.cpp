#include "conversationstore.h"

#include <QDir>
#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QSaveFile>
#include <QStandardPaths>

namespace layerwise::ui {

namespace {

QJsonObject statsToJson(const AnswerStats& s)
{
    return {{QStringLiteral("tokens"), s.tokens},
            {QStringLiteral("ttft_ms"), s.ttftMs},
            {QStringLiteral("tokens_per_s"), s.tokensPerSecond},
            {QStringLiteral("prompt_tokens"), s.promptTokens},
            {QStringLiteral("context_used"), s.contextUsed},
            {QStringLiteral("context_length"), s.contextLength},
            {QStringLiteral("stop_reason"), s.stopReason}};
}

AnswerStats statsFromJson(const QJsonObject& o)
{
    AnswerStats s;
    s.tokens = o.value(QStringLiteral("tokens")).toInt();
    s.ttftMs = o.value(QStringLiteral("ttft_ms")).toDouble();
    s.tokensPerSecond = o.value(QStringLiteral("tokens_per_s")).toDouble();
    s.promptTokens = o.value(QStringLiteral("prompt_tokens")).toInt();
    s.contextUsed = o.value(QStringLiteral("context_used")).toInt();
    s.contextLength = o.value(QStringLiteral("context_length")).toInt();
    s.stopReason = o.value(QStringLiteral("stop_reason")).toString();
    return s;
}

QJsonObject toObject(const StoredConversation& c)
{
    QJsonArray messages;
    for (const auto& m : c.messages) {
        QJsonObject o{{QStringLiteral("role"), m.role}, {QStringLiteral("content"), m.content}};
        if (m.stats.isValid())
            o.insert(QStringLiteral("stats"), statsToJson(m.stats));
        messages.append(o);
    }
    return {{QStringLiteral("id"), c.id},
            {QStringLiteral("title"), c.title},
            {QStringLiteral("system"), c.system},
            {QStringLiteral("raw"), c.raw},
            {QStringLiteral("model"), c.model},
            {QStringLiteral("updated"), c.updated.toString(Qt::ISODateWithMs)},
            {QStringLiteral("messages"), messages}};
}

bool writeAtomically(const QString& file, const QByteArray& bytes, QString* error)
{
    QSaveFile out(file);
    if (!out.open(QIODevice::WriteOnly) || out.write(bytes) != bytes.size() || !out.commit()) {
        if (error)
            *error = QObject::tr("Cannot write %1: %2").arg(file, out.errorString());
        return false;
    }
    return true;
}

} // namespace

ConversationStore::ConversationStore(QString folder) : m_folder(std::move(folder))
{
    if (m_folder.isEmpty())
        m_folder = QStandardPaths::writableLocation(QStandardPaths::AppDataLocation);
}

QString ConversationStore::filePath() const
{
    return QDir(m_folder).filePath(QStringLiteral("conversations.json"));
}

StoredConversation ConversationStore::fromJson(const QJsonObject& o)
{
    StoredConversation c;
    c.id = o.value(QStringLiteral("id")).toString();
    c.title = o.value(QStringLiteral("title")).toString();
    c.system = o.value(QStringLiteral("system")).toString();
    c.raw = o.value(QStringLiteral("raw")).toBool();
    c.model = o.value(QStringLiteral("model")).toString();
    c.updated = QDateTime::fromString(o.value(QStringLiteral("updated")).toString(), Qt::ISODateWithMs);
    for (const auto& v : o.value(QStringLiteral("messages")).toArray()) {
        const QJsonObject m = v.toObject();
        c.messages.push_back({m.value(QStringLiteral("role")).toString(), m.value(QStringLiteral("content")).toString(),
                              statsFromJson(m.value(QStringLiteral("stats")).toObject())});
    }
    return c;
}

QVector<StoredConversation> ConversationStore::load(QString* error) const
{
    QVector<StoredConversation> result;
    QFile in(filePath());
    if (!in.exists())
        return result;
    if (!in.open(QIODevice::ReadOnly)) {
        if (error)
            *error = QObject::tr("Cannot read %1: %2").arg(filePath(), in.errorString());
        return result;
    }
    QJsonParseError parse;
    const QJsonDocument doc = QJsonDocument::fromJson(in.readAll(), &parse);
    if (parse.error != QJsonParseError::NoError || !doc.isObject()) {
        if (error)
            *error = QObject::tr("%1 is not valid JSON (%2 at byte %3); it was left as it is.")
                         .arg(filePath(), parse.errorString())
                         .arg(parse.offset);
        return result;
    }
    for (const auto& v : doc.object().value(QStringLiteral("conversations")).toArray())
        result.push_back(fromJson(v.toObject()));
    return result;
}

bool ConversationStore::save(const QVector<StoredConversation>& conversations, QString* error) const
{
    if (!QDir().mkpath(m_folder)) {
        if (error)
            *error = QObject::tr("Cannot create the folder %1").arg(m_folder);
        return false;
    }
    QJsonArray list;
    for (const auto& c : conversations)
        list.append(toObject(c));
    const QJsonObject root{{QStringLiteral("version"), 1}, {QStringLiteral("conversations"), list}};
    return writeAtomically(filePath(), QJsonDocument(root).toJson(QJsonDocument::Indented), error);
}

QByteArray ConversationStore::toJson(const StoredConversation& c)
{
    return QJsonDocument(toObject(c)).toJson(QJsonDocument::Indented);
}

QString ConversationStore::toMarkdown(const StoredConversation& c)
{
    QString md = QStringLiteral("# %1\n\n").arg(c.title);
    if (!c.model.isEmpty())
        md += QStringLiteral("Model: `%1`\n\n").arg(c.model);
    if (!c.system.isEmpty())
        md += QStringLiteral("**System:** %1\n\n").arg(c.system);
    for (const auto& m : c.messages)
        md += QStringLiteral("## %1\n\n%2\n\n").arg(m.role == QLatin1String("user") ? QObject::tr("User") : QObject::tr("Assistant"),
                                                  m.content);
    return md;
}

bool ConversationStore::exportTo(const StoredConversation& c, const QString& file, QString* error)
{
    const QByteArray bytes = file.endsWith(QLatin1String(".md"), Qt::CaseInsensitive) ? toMarkdown(c).toUtf8() : toJson(c);
    return writeAtomically(file, bytes, error);
}

} // namespace layerwise::ui
