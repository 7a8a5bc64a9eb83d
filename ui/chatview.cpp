#include "chatview.h"

#include "chatmodel.h"
#include "conversationlistmodel.h"
#include "messagebubble.h"
#include "samplingform.h"

#include <QApplication>
#include <QCheckBox>
#include <QClipboard>
#include <QFileDialog>
#include <QFontDatabase>
#include <QGridLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QInputDialog>
#include <QKeyEvent>
#include <QLabel>
#include <QLineEdit>
#include <QListView>
#include <QMessageBox>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QScrollArea>
#include <QScrollBar>
#include <QSettings>
#include <QShortcut>
#include <QSortFilterProxyModel>
#include <QSplitter>
#include <QTabWidget>
#include <QTimer>
#include <QUuid>
#include <QVBoxLayout>

namespace layerwise::ui {

ChatView::ChatView(ConversationStore store, QWidget* parent) : QWidget(parent), m_store(std::move(store))
{
    m_chat = new ChatModel(this);
    m_conversations = new ConversationListModel(this);
    m_filter = new QSortFilterProxyModel(this);
    m_filter->setSourceModel(m_conversations);
    m_filter->setFilterCaseSensitivity(Qt::CaseInsensitive);

    m_splitter = new QSplitter(this);
    m_splitter->addWidget(createConversationList());
    m_splitter->addWidget(createConversationPane());
    m_splitter->addWidget(createSettingsTabs());
    m_splitter->setStretchFactor(0, 0);
    m_splitter->setStretchFactor(1, 1);
    m_splitter->setStretchFactor(2, 0);
    m_splitter->setSizes({220, 700, 300});
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(4, 4, 4, 4);
    layout->addWidget(m_splitter);

    m_previewTimer = new QTimer(this);
    m_previewTimer->setSingleShot(true);
    m_previewTimer->setInterval(150);
    connect(m_previewTimer, &QTimer::timeout, this, [this] { Q_EMIT requestPreview(requestFor(true)); });
    connectChatModel();

    QString error;
    m_conversations->setConversations(m_store.load(&error));
    if (!error.isEmpty())
        m_status->setText(error);
    if (m_conversations->rowCount() > 0)
        selectConversation(0);
    updateControls();
}

// Left: the conversations (search, list, New, Rename, Delete, Export).
QWidget* ChatView::createConversationList()
{
    auto* left = new QWidget(this);
    auto* leftLayout = new QVBoxLayout(left);
    leftLayout->setContentsMargins(0, 0, 0, 0);
    m_search = new QLineEdit(left);
    m_search->setObjectName(QStringLiteral("conversationSearch"));
    m_search->setPlaceholderText(tr("Search conversations"));
    m_search->setClearButtonEnabled(true);
    connect(m_search, &QLineEdit::textChanged, this, &ChatView::setSearch);
    m_list = new QListView(left);
    m_list->setObjectName(QStringLiteral("conversations"));
    m_list->setModel(m_filter);
    m_list->setEditTriggers(QAbstractItemView::EditKeyPressed | QAbstractItemView::DoubleClicked);
    m_list->setToolTip(tr("Double-click a conversation to rename it"));
    connect(m_list, &QListView::clicked, this,
            [this](const QModelIndex& index) { selectConversation(m_filter->mapToSource(index).row()); });
    auto* listButtons = new QGridLayout;
    auto* newButton = new QPushButton(tr("New"), left);
    newButton->setObjectName(QStringLiteral("newConversation"));
    newButton->setToolTip(tr("Start a new conversation (the model's cache is reused where the prompt matches)"));
    auto* renameButton = new QPushButton(tr("Rename"), left);
    auto* deleteButton = new QPushButton(tr("Delete"), left);
    auto* exportButton = new QPushButton(tr("Export…"), left);
    exportButton->setToolTip(tr("Save the conversation as Markdown (.md) or JSON (.json)"));
    listButtons->addWidget(newButton, 0, 0);
    listButtons->addWidget(renameButton, 0, 1);
    listButtons->addWidget(deleteButton, 1, 0);
    listButtons->addWidget(exportButton, 1, 1);
    connect(newButton, &QPushButton::clicked, this, &ChatView::newConversation);
    connect(renameButton, &QPushButton::clicked, this, &ChatView::askRename);
    connect(deleteButton, &QPushButton::clicked, this, &ChatView::askDelete);
    connect(exportButton, &QPushButton::clicked, this, &ChatView::askExport);
    connect(m_conversations, &ConversationListModel::renamed, this, [this] { persist(); });
    leftLayout->addWidget(m_search);
    leftLayout->addWidget(m_list, 1);
    leftLayout->addLayout(listButtons);
    return left;
}

void ChatView::askRename()
{
    const int row = currentConversation();
    if (row < 0)
        return;
    bool ok = false;
    const QString title = QInputDialog::getText(this, tr("Rename conversation"), tr("Title:"), QLineEdit::Normal,
                                                m_conversations->at(row).title, &ok);
    if (ok)
        renameConversation(row, title);
}

void ChatView::askDelete()
{
    const int row = currentConversation();
    if (row >= 0 && QMessageBox::question(this, tr("Delete conversation"),
                                          tr("Delete “%1”? This cannot be undone.").arg(m_conversations->at(row).title)) ==
                        QMessageBox::Yes)
        deleteConversation(row);
}

void ChatView::askExport()
{
    if (currentConversation() < 0)
        return;
    const QString file = QFileDialog::getSaveFileName(this, tr("Export conversation"), QString(),
                                                      tr("Markdown (*.md);;JSON (*.json)"));
    QString error;
    if (!file.isEmpty() && !exportConversation(file, &error))
        QMessageBox::warning(this, tr("Export failed"), error + tr("\nChoose another folder and try again."));
}

// Centre: the messages, then the input with Send and Stop (and their shortcuts).
QWidget* ChatView::createConversationPane()
{
    auto* centre = new QWidget(this);
    auto* centreLayout = new QVBoxLayout(centre);
    centreLayout->setContentsMargins(0, 0, 0, 0);
    m_messages = new QWidget;
    m_messagesLayout = new QVBoxLayout(m_messages);
    m_messagesLayout->addStretch(1);
    m_scroll = new QScrollArea(centre);
    m_scroll->setObjectName(QStringLiteral("messages"));
    m_scroll->setWidget(m_messages);
    m_scroll->setWidgetResizable(true);
    m_scroll->setHorizontalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
    connect(m_scroll->verticalScrollBar(), &QScrollBar::rangeChanged, this, [this](int, int max) {
        if (m_generating)
            m_scroll->verticalScrollBar()->setValue(max); // follow the answer as it streams
    });
    m_notice = new QLabel(centre);
    m_notice->setObjectName(QStringLiteral("chatNotice"));
    m_notice->setWordWrap(true);
    m_notice->setStyleSheet(QStringLiteral("color: #92400e; background: #fef3c7; padding: 4px; border-radius: 4px;"));
    m_input = new QPlainTextEdit(centre);
    m_input->setObjectName(QStringLiteral("chatInput"));
    m_input->setPlaceholderText(tr("Write a message — Ctrl+Enter sends, Esc stops the answer"));
    m_input->setMaximumHeight(110);
    connect(m_input, &QPlainTextEdit::textChanged, this, &ChatView::schedulePreview);
    m_input->installEventFilter(this);
    centreLayout->addWidget(m_scroll, 1);
    centreLayout->addWidget(m_notice);
    centreLayout->addWidget(m_input);
    centreLayout->addLayout(createInputButtons(centre));
    for (const auto& keys : {QKeySequence(Qt::CTRL | Qt::Key_Return), QKeySequence(Qt::CTRL | Qt::Key_Enter)}) {
        auto* sendShortcut = new QShortcut(keys, this);
        sendShortcut->setContext(Qt::WidgetWithChildrenShortcut);
        connect(sendShortcut, &QShortcut::activated, this, &ChatView::sendFromInput);
    }
    auto* stopShortcut = new QShortcut(QKeySequence(Qt::Key_Escape), this);
    stopShortcut->setContext(Qt::WidgetWithChildrenShortcut);
    connect(stopShortcut, &QShortcut::activated, this, &ChatView::stop);
    return centre;
}

// The status line, Stop and Send under the input.
QHBoxLayout* ChatView::createInputButtons(QWidget* centre)
{
    auto* inputButtons = new QHBoxLayout;
    m_status = new QLabel(centre);
    m_status->setObjectName(QStringLiteral("chatStatus"));
    m_status->setWordWrap(true);
    m_send = new QPushButton(tr("Send"), centre);
    m_send->setObjectName(QStringLiteral("send"));
    m_send->setToolTip(tr("Send the message (Ctrl+Enter)"));
    m_send->setDefault(true);
    m_stop = new QPushButton(tr("Stop"), centre);
    m_stop->setObjectName(QStringLiteral("stop"));
    m_stop->setToolTip(tr("Stop the answer where it is (Esc)"));
    connect(m_send, &QPushButton::clicked, this, &ChatView::sendFromInput);
    connect(m_stop, &QPushButton::clicked, this, &ChatView::stop);
    inputButtons->addWidget(m_status, 1);
    inputButtons->addWidget(m_stop);
    inputButtons->addWidget(m_send);
    return inputButtons;
}

// Right: the system prompt, sampling, and the prompt text that will be fed.
QTabWidget* ChatView::createSettingsTabs()
{
    auto* right = new QTabWidget(this);
    auto* settingsPage = new QWidget(right);
    auto* settingsLayout = new QVBoxLayout(settingsPage);
    settingsLayout->addWidget(new QLabel(tr("System prompt"), settingsPage));
    m_system = new QPlainTextEdit(settingsPage);
    m_system->setObjectName(QStringLiteral("systemPrompt"));
    m_system->setPlaceholderText(tr("Instructions the model sees before the conversation (optional)"));
    m_system->setMaximumHeight(90);
    connect(m_system, &QPlainTextEdit::textChanged, this, &ChatView::schedulePreview);
    m_raw = new QCheckBox(tr("Raw completion (no template)"), settingsPage);
    m_raw->setObjectName(QStringLiteral("rawCompletion"));
    m_raw->setToolTip(tr("Feed the messages' text as it is (with the tokenizer's BOS) and let the model continue it. "
                         "For base models without a chat template."));
    connect(m_raw, &QCheckBox::toggled, this, [this] {
        schedulePreview();
        updateControls();
    });
    m_sampling = new SamplingForm(settingsPage);
    connect(m_sampling, &SamplingForm::changed, this, [this] {
        if (!m_source.isEmpty()) {
            QSettings settings;
            SamplingForm::save(settings, m_source, m_sampling->settings());
        }
    });
    settingsLayout->addWidget(m_system);
    settingsLayout->addWidget(m_raw);
    auto* samplingBox = new QGroupBox(tr("Sampling"), settingsPage);
    auto* samplingLayout = new QVBoxLayout(samplingBox);
    samplingLayout->addWidget(m_sampling);
    settingsLayout->addWidget(samplingBox);
    settingsLayout->addStretch(1);
    auto* previewPage = new QWidget(right);
    auto* previewLayout = new QVBoxLayout(previewPage);
    m_previewTokens = new QLabel(previewPage);
    m_previewTokens->setWordWrap(true);
    m_preview = new QPlainTextEdit(previewPage);
    m_preview->setObjectName(QStringLiteral("promptPreview"));
    m_preview->setReadOnly(true);
    m_preview->setFont(QFontDatabase::systemFont(QFontDatabase::FixedFont));
    m_preview->setToolTip(tr("Exactly the text the model is fed for the next answer (the chat template applied)"));
    previewLayout->addWidget(m_previewTokens);
    previewLayout->addWidget(m_preview, 1);
    right->addTab(settingsPage, tr("Settings"));
    right->addTab(previewPage, tr("Prompt"));
    return right;
}

// The bubbles follow the chat model; a streaming answer re-renders at most every 40 ms.
void ChatView::connectChatModel()
{
    connect(m_chat, &QAbstractItemModel::modelReset, this, &ChatView::rebuildBubbles);
    connect(m_chat, &QAbstractItemModel::rowsInserted, this, &ChatView::rebuildBubbles);
    connect(m_chat, &QAbstractItemModel::rowsRemoved, this, &ChatView::rebuildBubbles);
    m_streamTimer = new QTimer(this);
    m_streamTimer->setSingleShot(true);
    m_streamTimer->setInterval(40);
    connect(m_streamTimer, &QTimer::timeout, this, [this] {
        updateBubble(m_dirtyRow);
        m_dirtyRow = -1;
    });
    connect(m_chat, &QAbstractItemModel::dataChanged, this,
            [this](const QModelIndex& from, const QModelIndex& to, const QList<int>& roles) {
                // Streamed pieces arrive per token: re-render the Markdown at most every 40 ms.
                if (from.row() == to.row() && from.row() == m_chat->streamingRow() && roles.contains(ChatModel::ContentRole)) {
                    if (m_dirtyRow != from.row())
                        updateBubble(m_dirtyRow);
                    m_dirtyRow = from.row();
                    if (!m_streamTimer->isActive())
                        m_streamTimer->start();
                    return;
                }
                for (int r = from.row(); r <= to.row(); ++r)
                    updateBubble(r);
            });
}

void ChatView::setModel(const QString& source, bool loaded, bool hasTemplate, int contextLength)
{
    const bool newModel = source != m_source;
    const bool justLoaded = loaded && !m_loaded;
    m_source = source;
    m_loaded = loaded;
    m_hasTemplate = hasTemplate;
    m_contextLength = contextLength;
    if (newModel && !source.isEmpty()) {
        QSettings settings;
        m_sampling->setSettings(SamplingForm::load(settings, source));
    }
    if (justLoaded && !hasTemplate)
        m_raw->setChecked(true); // a model without a template continues text; it does not chat
    if (!loaded && m_generating)
        onAnswerFailed(tr("The model was unloaded."));
    updateControls();
    schedulePreview();
}

int ChatView::currentConversation() const
{
    return m_conversations->rowOf(m_currentId);
}

QString ChatView::promptPreview() const
{
    return m_preview->toPlainText();
}

int ChatView::bubbleCount() const
{
    return static_cast<int>(m_bubbles.size());
}

MessageBubble* ChatView::bubble(int row) const
{
    return m_bubbles.value(row);
}

ChatTurnRequest ChatView::requestFor(bool withDraft) const
{
    ChatTurnRequest r;
    r.system = m_system->toPlainText();
    r.raw = m_raw->isChecked();
    r.sampling = m_sampling->settings();
    for (const auto& m : m_chat->messages())
        r.messages.push_back({m.role, m.content});
    if (withDraft && !m_generating && !m_input->toPlainText().isEmpty()) {
        if (m_editRow >= 0 && m_editRow < r.messages.size())
            r.messages.resize(m_editRow);
        r.messages.push_back({QStringLiteral("user"), m_input->toPlainText()});
    }
    return r;
}

void ChatView::sendFromInput()
{
    const QString text = m_input->toPlainText();
    if (text.trimmed().isEmpty() || m_generating || !m_loaded)
        return;
    if (m_editRow >= 0) {
        const int row = m_editRow;
        m_editRow = -1;
        m_input->clear();
        editMessage(row, text);
        return;
    }
    m_input->clear();
    send(text);
}

void ChatView::send(const QString& text)
{
    if (m_generating || !m_loaded || text.isEmpty())
        return;
    if (currentConversation() < 0) {
        newConversation();
        StoredConversation c = m_conversations->at(currentConversation());
        c.title = text.simplified().left(40);
        m_conversations->replace(currentConversation(), c);
    }
    m_chat->append(QStringLiteral("user"), text);
    ask();
}

void ChatView::ask()
{
    const ChatTurnRequest request = requestFor(false);
    const int row = m_chat->append(QStringLiteral("assistant"), QString());
    m_generating = true;
    m_chat->setStreaming(row);
    m_status->setText(tr("Answering…"));
    updateControls();
    Q_EMIT requestAnswer(request);
}

void ChatView::regenerate()
{
    if (m_generating || !m_loaded)
        return;
    const auto& messages = m_chat->messages();
    if (messages.isEmpty())
        return;
    if (messages.last().role == QLatin1String("assistant"))
        m_chat->truncate(static_cast<int>(messages.size()) - 1);
    if (!m_chat->messages().isEmpty() && m_chat->messages().last().role == QLatin1String("user"))
        ask();
}

void ChatView::editMessage(int row, const QString& text)
{
    if (m_generating || !m_loaded || row < 0 || row >= m_chat->rowCount() ||
        m_chat->messages()[row].role != QLatin1String("user") || text.isEmpty())
        return;
    m_chat->truncate(row + 1);
    m_chat->setContent(row, text);
    ask();
}

void ChatView::stop()
{
    if (m_generating) {
        m_status->setText(tr("Stopping…"));
        Q_EMIT stopRequested();
    }
}

void ChatView::onAnswerPiece(const QString& text)
{
    m_chat->appendText(m_chat->streamingRow(), text);
}

void ChatView::onAnswerFinished(const QString& text, const AnswerStats& stats)
{
    const int row = m_chat->streamingRow();
    m_chat->setContent(row, text);
    m_chat->setStats(row, stats);
    m_chat->setStreaming(-1);
    m_generating = false;
    m_status->setText(ChatModel::statsText(stats));
    persist();
    updateControls();
    schedulePreview();
    Q_EMIT answerDone(stats.stopReason);
}

void ChatView::onAnswerFailed(const QString& message)
{
    const int row = m_chat->streamingRow();
    m_chat->setStreaming(-1);
    if (row >= 0 && m_chat->messages()[row].content.isEmpty())
        m_chat->truncate(row);
    m_generating = false;
    m_status->setText(tr("<span style='color:#b91c1c'>No answer: %1</span>").arg(message.toHtmlEscaped()));
    persist();
    updateControls();
    Q_EMIT answerFailed(message);
}

void ChatView::onPromptPreview(const QString& text, int tokens)
{
    m_preview->setPlainText(text);
    m_previewTokens->setText(tokens > 0 ? tr("%1 tokens of %2 in the context").arg(tokens).arg(m_contextLength)
                                        : QString());
}

void ChatView::schedulePreview()
{
    if (m_loaded)
        m_previewTimer->start();
}

void ChatView::newConversation()
{
    if (m_generating)
        return;
    StoredConversation c;
    c.id = QUuid::createUuid().toString(QUuid::WithoutBraces);
    c.title = tr("New conversation");
    c.model = m_source;
    c.raw = m_raw->isChecked();
    c.system = m_system->toPlainText();
    c.updated = QDateTime::currentDateTimeUtc();
    m_conversations->prepend(c);
    m_currentId = c.id;
    m_editRow = -1;
    m_chat->setMessages({});
    m_list->setCurrentIndex(m_filter->mapFromSource(m_conversations->index(0)));
    persist();
    updateControls();
}

void ChatView::selectConversation(int row)
{
    if (m_generating || row < 0 || row >= m_conversations->rowCount())
        return;
    const StoredConversation& c = m_conversations->at(row);
    m_currentId = c.id;
    m_editRow = -1;
    m_chat->setMessages(c.messages);
    {
        const QSignalBlocker block(m_system);
        m_system->setPlainText(c.system);
    }
    m_raw->setChecked(c.raw);
    m_list->setCurrentIndex(m_filter->mapFromSource(m_conversations->index(row)));
    updateControls();
    schedulePreview();
}

void ChatView::renameConversation(int row, const QString& title)
{
    m_conversations->setData(m_conversations->index(row), title); // saves through `renamed`
}

void ChatView::deleteConversation(int row)
{
    if (m_generating || row < 0 || row >= m_conversations->rowCount())
        return;
    const bool current = m_conversations->at(row).id == m_currentId;
    m_conversations->remove(row);
    if (current) {
        m_currentId.clear();
        m_chat->setMessages({});
        if (m_conversations->rowCount() > 0)
            selectConversation(0);
    }
    persist();
    updateControls();
}

void ChatView::setSearch(const QString& text)
{
    if (m_search->text() != text)
        m_search->setText(text);
    m_filter->setFilterFixedString(text);
}

void ChatView::setRaw(bool raw)
{
    m_raw->setChecked(raw);
}

void ChatView::setSystemPrompt(const QString& text)
{
    m_system->setPlainText(text);
}

bool ChatView::exportConversation(const QString& file, QString* error) const
{
    const int row = currentConversation();
    if (row < 0) {
        if (error)
            *error = tr("There is no conversation to export.");
        return false;
    }
    return ConversationStore::exportTo(m_conversations->at(row), file, error);
}

void ChatView::persist()
{
    const int row = currentConversation();
    if (row >= 0) {
        StoredConversation c = m_conversations->at(row);
        c.messages = m_chat->messages();
        c.system = m_system->toPlainText();
        c.raw = m_raw->isChecked();
        if (!m_source.isEmpty())
            c.model = m_source;
        c.updated = QDateTime::currentDateTimeUtc();
        m_conversations->replace(row, c);
    }
    QString error;
    if (!m_store.save(m_conversations->conversations(), &error))
        m_status->setText(error);
}

void ChatView::rebuildBubbles()
{
    for (auto* b : m_bubbles)
        b->deleteLater();
    m_bubbles.clear();
    for (int row = 0; row < m_chat->rowCount(); ++row) {
        auto* b = new MessageBubble(m_chat->messages()[row].role, m_messages);
        m_messagesLayout->insertWidget(m_messagesLayout->count() - 1, b);
        connect(b, &MessageBubble::copyRequested, this,
                [b] { QApplication::clipboard()->setText(b->content()); });
        connect(b, &MessageBubble::editRequested, this, [this, b] {
            const int r = static_cast<int>(m_bubbles.indexOf(b));
            if (r < 0 || m_generating)
                return;
            m_editRow = r;
            m_input->setPlainText(m_chat->messages()[r].content);
            m_input->setFocus();
            m_status->setText(tr("Editing message %1: Send replaces it and drops the answers after it.").arg(r + 1));
            updateControls();
        });
        connect(b, &MessageBubble::regenerateRequested, this, &ChatView::regenerate);
        m_bubbles.push_back(b);
        updateBubble(row);
    }
    updateControls();
}

void ChatView::updateBubble(int row)
{
    if (row < 0 || row >= m_bubbles.size())
        return;
    const QModelIndex index = m_chat->index(row);
    MessageBubble* b = m_bubbles[row];
    b->setStreaming(index.data(ChatModel::StreamingRole).toBool());
    b->setContent(index.data(ChatModel::ContentRole).toString());
    b->setStatsText(index.data(ChatModel::StatsTextRole).toString());
}

void ChatView::updateControls()
{
    m_send->setEnabled(m_loaded && !m_generating);
    m_send->setText(m_editRow >= 0 ? tr("Resend edited") : tr("Send"));
    m_stop->setEnabled(m_generating);
    const int last = m_chat->rowCount() - 1;
    for (int i = 0; i < m_bubbles.size(); ++i)
        m_bubbles[i]->setCanRegenerate(i == last && m_loaded && !m_generating);
    QString notice;
    if (!m_loaded)
        notice = tr("No model is loaded. Open a model folder and press Load (Ctrl+L) to chat with it.");
    else if (!m_hasTemplate && !m_raw->isChecked())
        notice = tr("This model has no chat template: answers use the ChatML fallback. Turn on “Raw completion” "
                    "to let it continue your text instead.");
    m_notice->setText(notice);
    m_notice->setVisible(!notice.isEmpty());
}

bool ChatView::eventFilter(QObject* watched, QEvent* event)
{
    // The input box handles Ctrl+Enter (send) and Esc (stop) itself, focus or not.
    if (watched == m_input && event->type() == QEvent::KeyPress) {
        auto* key = static_cast<QKeyEvent*>(event);
        if ((key->key() == Qt::Key_Return || key->key() == Qt::Key_Enter) && (key->modifiers() & Qt::ControlModifier)) {
            sendFromInput();
            return true;
        }
        if (key->key() == Qt::Key_Escape && m_generating) {
            stop();
            return true;
        }
    }
    return QWidget::eventFilter(watched, event);
}

QByteArray ChatView::saveLayout() const
{
    return m_splitter->saveState();
}

void ChatView::restoreLayout(const QByteArray& state)
{
    m_splitter->restoreState(state);
}

} // namespace layerwise::ui
