#pragma once
// The Server tab: a switch that serves the loaded model over OpenAI's HTTP API, its address
// with a copy button, the API key, the number of clients being served and a live request log.
// It asks through signals; the engine worker answers through the slots.
#include "serverwork.h"

#include <QWidget>

class QCheckBox;
class QLabel;
class QLineEdit;
class QPushButton;
class QSpinBox;
class QTableWidget;

namespace layerwise::ui {

class ServerPanel : public QWidget {
    Q_OBJECT
public:
    explicit ServerPanel(QWidget* parent = nullptr);
    QCheckBox* serverSwitch() const { return m_switch; }
    QString address() const { return m_address; }
    int requestRows() const;
    int activeClients() const { return m_clients; }
    QString status() const;

public Q_SLOTS:
    void setModelLoaded(bool loaded);
    void onStarted(const QString& address, const QString& note = QString());
    void onStopped(const QString& message);
    void onRequest(const layerwise::ui::ServerRequestView& request);
    void onClients(int active);

Q_SIGNALS:
    void startRequested(const layerwise::ui::ServerSettings& settings);
    void stopRequested();

private:
    QWidget* createSettings();
    QWidget* createAddressRow();
    void onSwitch(bool on);
    void showState();

    QCheckBox* m_switch = nullptr;
    QLineEdit* m_host = nullptr;
    QSpinBox* m_port = nullptr;
    QSpinBox* m_parallel = nullptr;
    QLineEdit* m_key = nullptr;
    QLabel* m_addressLabel = nullptr;
    QPushButton* m_copy = nullptr;
    QLabel* m_status = nullptr;
    QLabel* m_clientsLabel = nullptr;
    QTableWidget* m_log = nullptr;
    QString m_address;
    QString m_message;
    int m_clients = 0;
    bool m_loaded = false;
    bool m_running = false;
};

} // namespace layerwise::ui
