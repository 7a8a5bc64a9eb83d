#include "serverpanel.h"

#include <QApplication>
#include <QCheckBox>
#include <QClipboard>
#include <QDateTime>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>
#include <QRandomGenerator>
#include <QSpinBox>
#include <QTableWidget>
#include <QVBoxLayout>

namespace layerwise::ui {

namespace {

constexpr int kLogRows = 500; // the oldest rows go first

QString randomKey()
{
    static const char digits[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    QString key = QStringLiteral("lw-");
    for (int i = 0; i < 32; ++i)
        key += QLatin1Char(digits[QRandomGenerator::global()->bounded(36)]);
    return key;
}

} // namespace

ServerPanel::ServerPanel(QWidget* parent) : QWidget(parent)
{
    auto* layout = new QVBoxLayout(this);
    m_switch = new QCheckBox(tr("Local server: serve the loaded model over OpenAI's API"), this);
    m_switch->setObjectName(QStringLiteral("serverSwitch"));
    connect(m_switch, &QCheckBox::toggled, this, &ServerPanel::onSwitch);
    layout->addWidget(m_switch);
    layout->addWidget(createSettings());
    layout->addWidget(createAddressRow());
    m_log = new QTableWidget(0, 8, this);
    m_log->setObjectName(QStringLiteral("serverLog"));
    m_log->setHorizontalHeaderLabels({tr("Time"), tr("Request"), tr("Status"), tr("Prompt"), tr("Answer"),
                                      tr("First token"), tr("Tokens/s"), tr("End")});
    m_log->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
    m_log->horizontalHeader()->setStretchLastSection(true);
    m_log->verticalHeader()->hide();
    m_log->setEditTriggers(QAbstractItemView::NoEditTriggers);
    layout->addWidget(m_log, 1);
    showState();
}

QWidget* ServerPanel::createSettings()
{
    auto* box = new QWidget(this);
    auto* form = new QFormLayout(box);
    m_host = new QLineEdit(QStringLiteral("127.0.0.1"), box);
    m_host->setToolTip(tr("127.0.0.1: this computer only. Any other address needs an API key."));
    m_port = new QSpinBox(box);
    m_port->setObjectName(QStringLiteral("serverPort"));
    m_port->setRange(0, 65535);
    m_port->setValue(8080);
    m_port->setSpecialValueText(tr("any free port"));
    m_parallel = new QSpinBox(box);
    m_parallel->setObjectName(QStringLiteral("serverParallel"));
    m_parallel->setRange(1, 64);
    m_parallel->setValue(4);
    m_parallel->setToolTip(tr("Requests decoded together. Each has its own KV cache of the loaded context, "
                              "allocated when the server starts; more requests wait for a free one."));
    auto* keyRow = new QWidget(box);
    auto* keyLayout = new QHBoxLayout(keyRow);
    keyLayout->setContentsMargins(0, 0, 0, 0);
    m_key = new QLineEdit(keyRow);
    m_key->setPlaceholderText(tr("none (loopback only)"));
    auto* generate = new QPushButton(tr("New key"), keyRow);
    connect(generate, &QPushButton::clicked, this, [this] { m_key->setText(randomKey()); });
    keyLayout->addWidget(m_key, 1);
    keyLayout->addWidget(generate);
    form->addRow(tr("Address"), m_host);
    form->addRow(tr("Port"), m_port);
    form->addRow(tr("Requests at once"), m_parallel);
    form->addRow(tr("API key"), keyRow);
    return box;
}

QWidget* ServerPanel::createAddressRow()
{
    auto* row = new QWidget(this);
    auto* h = new QHBoxLayout(row);
    h->setContentsMargins(0, 0, 0, 0);
    m_addressLabel = new QLabel(row);
    m_addressLabel->setTextInteractionFlags(Qt::TextSelectableByMouse);
    m_copy = new QPushButton(tr("Copy"), row);
    connect(m_copy, &QPushButton::clicked, this, [this] { QApplication::clipboard()->setText(m_address); });
    m_clientsLabel = new QLabel(row);
    m_status = new QLabel(row);
    m_status->setWordWrap(true);
    h->addWidget(m_addressLabel);
    h->addWidget(m_copy);
    h->addSpacing(16);
    h->addWidget(m_clientsLabel);
    h->addWidget(m_status, 1);
    return row;
}

void ServerPanel::onSwitch(bool on)
{
    if (on == m_running)
        return;
    if (on) {
        ServerSettings s;
        s.host = m_host->text().trimmed();
        s.port = m_port->value();
        s.apiKey = m_key->text().trimmed();
        s.parallel = m_parallel->value();
        m_message = tr("starting…");
        showState();
        Q_EMIT startRequested(s);
    } else {
        Q_EMIT stopRequested();
    }
}

void ServerPanel::setModelLoaded(bool loaded)
{
    m_loaded = loaded;
    showState();
}

void ServerPanel::onStarted(const QString& address, const QString& note)
{
    m_running = true;
    m_address = address;
    m_message = note;
    m_clients = 0;
    showState();
}

void ServerPanel::onStopped(const QString& message)
{
    m_running = false;
    m_address.clear();
    m_message = message;
    m_clients = 0;
    showState();
}

void ServerPanel::onClients(int active)
{
    m_clients = active;
    showState();
}

void ServerPanel::onRequest(const ServerRequestView& r)
{
    if (m_log->rowCount() >= kLogRows)
        m_log->removeRow(0);
    const int row = m_log->rowCount();
    m_log->insertRow(row);
    const bool generated = r.promptTokens > 0 || r.completionTokens > 0;
    const QStringList cells{QDateTime::currentDateTime().toString(QStringLiteral("HH:mm:ss")),
                            r.method + QLatin1Char(' ') + r.path,
                            QString::number(r.status),
                            generated ? QString::number(r.promptTokens) : QString(),
                            generated ? QString::number(r.completionTokens) : QString(),
                            generated ? tr("%1 ms").arg(r.ttftMs, 0, 'f', 0) : QString(),
                            generated ? QString::number(r.tokensPerSecond, 'f', 1) : QString(),
                            r.finish};
    for (int c = 0; c < cells.size(); ++c)
        m_log->setItem(row, c, new QTableWidgetItem(cells[c]));
    m_log->scrollToBottom();
}

int ServerPanel::requestRows() const { return m_log->rowCount(); }

QString ServerPanel::status() const { return m_status->text(); }

void ServerPanel::showState()
{
    const QSignalBlocker block(m_switch);
    m_switch->setChecked(m_running);
    m_switch->setEnabled(m_loaded || m_running);
    for (QWidget* w : {static_cast<QWidget*>(m_host), static_cast<QWidget*>(m_port), static_cast<QWidget*>(m_parallel),
                       static_cast<QWidget*>(m_key)})
        w->setEnabled(!m_running);
    m_addressLabel->setText(m_running ? m_address : tr("not serving"));
    m_copy->setEnabled(m_running);
    m_clientsLabel->setText(m_running ? tr("%n client(s) being served", nullptr, m_clients) : QString());
    if (!m_message.isEmpty())
        m_status->setText(m_message);
    else
        m_status->setText(m_loaded || m_running ? QString() : tr("Load a model to serve it."));
}

} // namespace layerwise::ui
