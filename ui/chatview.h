#pragma once
// The chat: saved conversations (new, rename, delete, search, export), the messages with the
// answer streaming in, Stop (Esc), Regenerate, edit-and-resend, the system prompt, sampling
// settings per model, a raw-completion switch and the exact prompt text that will be fed.
// It asks for answers through signals; MainWindow forwards them to the engine worker.
#include "chatwork.h"
#include "conversationstore.h"

#include <QWidget>

class QCheckBox;
class QHBoxLayout;
class QLabel;
class QLineEdit;
class QListView;
class QPlainTextEdit;
class QPushButton;
class QScrollArea;
class QSortFilterProxyModel;
class QSplitter;
class QTabWidget;
class QTimer;
class QVBoxLayout;

namespace layerwise::ui {

class ChatModel;
class ConversationListModel;
class MessageBubble;
class SamplingForm;

class ChatView : public QWidget {
    Q_OBJECT
public:
    explicit ChatView(ConversationStore store, QWidget* parent = nullptr);

    // The model answers come from (its folder keys the sampling settings); loaded: can answer.
    void setModel(const QString& source, bool loaded, bool hasTemplate, int contextLength);
    bool isLoaded() const { return m_loaded; }
    bool isGenerating() const { return m_generating; }

    ChatModel* chatModel() const { return m_chat; }
    ConversationListModel* conversationModel() const { return m_conversations; }
    QSortFilterProxyModel* filterModel() const { return m_filter; }
    SamplingForm* samplingForm() const { return m_sampling; }
    int currentConversation() const; // row in conversationModel(), -1 when none
    QString promptPreview() const;
    int bubbleCount() const;
    MessageBubble* bubble(int row) const;

    void send(const QString& text);
    void regenerate();
    // Replaces user message `row` by `text`, drops everything after it and asks again.
    void editMessage(int row, const QString& text);
    void stop();
    void newConversation();
    void selectConversation(int row);
    void renameConversation(int row, const QString& title);
    void deleteConversation(int row);
    void setSearch(const QString& text);
    void setRaw(bool raw);
    void setSystemPrompt(const QString& text);
    bool exportConversation(const QString& file, QString* error = nullptr) const;

    QByteArray saveLayout() const;
    void restoreLayout(const QByteArray& state);

protected:
    bool eventFilter(QObject* watched, QEvent* event) override;

Q_SIGNALS:
    void requestAnswer(const layerwise::ui::ChatTurnRequest& request);
    void requestPreview(const layerwise::ui::ChatTurnRequest& request);
    void stopRequested();
    void answerDone(const QString& stopReason);
    void answerFailed(const QString& message);

public Q_SLOTS:
    void onAnswerPiece(const QString& text);
    void onAnswerFinished(const QString& text, const layerwise::ui::AnswerStats& stats);
    void onAnswerFailed(const QString& message);
    void onPromptPreview(const QString& text, int tokens);

private:
    // The constructor's parts: the three columns and the chat model's wiring.
    QWidget* createConversationList();
    QWidget* createConversationPane();
    QHBoxLayout* createInputButtons(QWidget* centre);
    QTabWidget* createSettingsTabs();
    void connectChatModel();
    // The conversation buttons: ask, then act on the current conversation.
    void askRename();
    void askDelete();
    void askExport();
    ChatTurnRequest requestFor(bool withDraft) const;
    void ask();
    void persist();
    void rebuildBubbles();
    void updateBubble(int row);
    void updateControls();
    void schedulePreview();
    void sendFromInput();

    ConversationStore m_store;
    ChatModel* m_chat = nullptr;
    ConversationListModel* m_conversations = nullptr;
    QSortFilterProxyModel* m_filter = nullptr;
    QString m_currentId;
    QString m_source;
    bool m_loaded = false;
    bool m_hasTemplate = true;
    int m_contextLength = 0;
    bool m_generating = false;
    int m_editRow = -1;

    QSplitter* m_splitter = nullptr;
    QLineEdit* m_search = nullptr;
    QListView* m_list = nullptr;
    QScrollArea* m_scroll = nullptr;
    QWidget* m_messages = nullptr;
    QVBoxLayout* m_messagesLayout = nullptr;
    QVector<MessageBubble*> m_bubbles;
    QLabel* m_notice = nullptr;
    QPlainTextEdit* m_input = nullptr;
    QPushButton* m_send = nullptr;
    QPushButton* m_stop = nullptr;
    QLabel* m_status = nullptr;
    QPlainTextEdit* m_system = nullptr;
    QCheckBox* m_raw = nullptr;
    SamplingForm* m_sampling = nullptr;
    QPlainTextEdit* m_preview = nullptr;
    QLabel* m_previewTokens = nullptr;
    QTimer* m_previewTimer = nullptr;
    QTimer* m_streamTimer = nullptr; // coalesces repaints of the streaming answer
    int m_dirtyRow = -1;
};

} // namespace layerwise::ui
