// The main window's side of other machines in the plan: "Add machine…" (address and token),
// "Remove machines", and the offer to plan without a machine of the loaded pipeline that failed.
#include "mainwindow.h"

#include "engineworker.h"

#include <QDialog>
#include <QDialogButtonBox>
#include <QFormLayout>
#include <QLabel>
#include <QLineEdit>
#include <QMenu>
#include <QMessageBox>

namespace layerwise::ui {

void MainWindow::connectMachines()
{
    connect(m_worker, &EngineWorker::machinesChanged, this, [this](const QStringList& machines) {
        m_machines = machines;
        Q_EMIT requestDevices(settings());
        replan();
        m_status->setText(machines.isEmpty() ? tr("Planning on this machine alone")
                                             : tr("Planning over this machine and %1").arg(machines.join(QStringLiteral(", "))));
        Q_EMIT machinesChanged(machines);
    }, Qt::QueuedConnection);
    connect(m_worker, &EngineWorker::machineFailed, this, &MainWindow::onMachineFailed, Qt::QueuedConnection);
}

void MainWindow::addMachineActions(QMenu* menu)
{
    auto* add = menu->addAction(tr("Add &machine…"), this, &MainWindow::chooseMachine);
    add->setObjectName(QStringLiteral("addMachineAction"));
    add->setToolTip(tr("Plan over another computer running `layerwise worker`: its devices join the plan and the layers "
                       "are split in pipeline stages"));
    auto* remove = menu->addAction(tr("Remove machines"), this, &MainWindow::removeMachines);
    remove->setObjectName(QStringLiteral("removeMachinesAction"));
    remove->setToolTip(tr("Plan on this machine alone again"));
}

void MainWindow::addMachine(const QString& address, const QString& token)
{
    QMetaObject::invokeMethod(m_worker, "addMachine", Qt::QueuedConnection, Q_ARG(QString, address), Q_ARG(QString, token));
}

void MainWindow::chooseMachine()
{
    QDialog dialog(this);
    dialog.setWindowTitle(tr("Add a machine"));
    auto* form = new QFormLayout(&dialog);
    auto* intro = new QLabel(tr("Start <tt>layerwise worker --listen HOST:PORT --token TOKEN</tt> on the other computer, with "
                                "the same model folder at the same path, then give its address and token here. The token "
                                "proves membership and signs every message; nothing is encrypted, so use a network you trust."),
                             &dialog);
    intro->setWordWrap(true);
    form->addRow(intro);
    auto* address = new QLineEdit(&dialog);
    address->setObjectName(QStringLiteral("machineAddress"));
    address->setPlaceholderText(QStringLiteral("192.168.1.20:7070"));
    auto* token = new QLineEdit(&dialog);
    token->setObjectName(QStringLiteral("machineToken"));
    token->setEchoMode(QLineEdit::Password);
    form->addRow(tr("Address"), address);
    form->addRow(tr("Token"), token);
    auto* buttons = new QDialogButtonBox(QDialogButtonBox::Ok | QDialogButtonBox::Cancel, &dialog);
    connect(buttons, &QDialogButtonBox::accepted, &dialog, &QDialog::accept);
    connect(buttons, &QDialogButtonBox::rejected, &dialog, &QDialog::reject);
    form->addRow(buttons);
    if (dialog.exec() == QDialog::Accepted && !address->text().trimmed().isEmpty()) {
        m_status->setText(tr("Asking %1 for its devices and measuring the link…").arg(address->text().trimmed()));
        addMachine(address->text().trimmed(), token->text());
    }
}

void MainWindow::removeMachines()
{
    QMetaObject::invokeMethod(m_worker, "removeAllMachines", Qt::QueuedConnection);
}

void MainWindow::planWithout(const QString& address)
{
    m_loadWhenPlanned = true; // the plan that answers the machine's removal loads again
    QMetaObject::invokeMethod(m_worker, "removeMachine", Qt::QueuedConnection, Q_ARG(QString, address));
}

void MainWindow::onMachineFailed(const QString& address, const QString& message)
{
    Q_EMIT machineFailureShown(address);
    if (!showErrorDialogs)
        return;
    auto* box = new QMessageBox(QMessageBox::Warning, tr("A machine stopped answering"),
                                tr("The machine at %1 failed while the model ran.").arg(address), QMessageBox::Yes | QMessageBox::No, this);
    box->setObjectName(QStringLiteral("machineFailed"));
    box->setInformativeText(message + tr("\n\nPlan again without it and load the model on the other machines?"));
    box->setAttribute(Qt::WA_DeleteOnClose);
    connect(box, &QMessageBox::finished, this, [this, address](int result) {
        if (result == QMessageBox::Yes)
            planWithout(address);
    });
    box->open();
}

} // namespace layerwise::ui
