#pragma once
// Conversations on disk: one JSON file in the app's data folder, replaced atomically
// (QSaveFile writes a temporary file and renames it), so a crash mid-write leaves the last
// saved file intact. Export to Markdown or JSON.
#include "chatwork.h"

#include <QDateTime>
#include <QJsonObject>
#include <QString>
#include <QVector>

namespace layerwise::ui {

struct StoredMessage {
    QString role; // "user", "assistant"
    QString content;
    AnswerStats stats; // answers only
};

struct StoredConversation {
    QString id; // stable, unique
    QString title;
    QString system;
    bool raw = false;
    QString model; // the model folder it was held with
    QDateTime updated;
    QVector<StoredMessage> messages;
};

class ConversationStore {
public:
    // `folder` empty: QStandardPaths::AppDataLocation.
    explicit ConversationStore(QString folder = {});
    QString filePath() const;

    // The saved conversations; empty when there is no file yet. A file that does not parse
    // yields nothing and `error` says why (the file is left as it is).
    QVector<StoredConversation> load(QString* error = nullptr) const;
    bool save(const QVector<StoredConversation>& conversations, QString* error = nullptr) const;

    static QByteArray toJson(const StoredConversation& c);
    static StoredConversation fromJson(const QJsonObject& o);
    static QString toMarkdown(const StoredConversation& c);
    // Writes `c` to `file`: Markdown when it ends in .md, JSON otherwise (atomically).
    static bool exportTo(const StoredConversation& c, const QString& file, QString* error = nullptr);

private:
    QString m_folder;
};

} // namespace layerwise::ui
