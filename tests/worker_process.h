#pragma once
// A `layerwise worker` process for tests of pipelines across machines ($LAYERWISE_BIN).
#include <QProcess>
#include <QRegularExpression>
#include <QtGlobal>
#include <chrono>
#include <string>

namespace layerwise::test {

// One `layerwise worker` on 127.0.0.1 (port chosen by the system), stopped with the object.
struct Worker {
    QProcess process;
    std::string address;

    explicit Worker(const std::string& token)
    {
        process.setProcessChannelMode(QProcess::SeparateChannels);
        process.start(QString::fromLocal8Bit(qgetenv("LAYERWISE_BIN")),
                      {"worker", "--listen", "127.0.0.1:0", "--token", QString::fromStdString(token), "--threads", "1"});
        QString out;
        const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
        static const QRegularExpression listening(R"(listening on (127\.0\.0\.1:\d+))");
        while (std::chrono::steady_clock::now() < until) {
            process.waitForReadyRead(200);
            out += QString::fromLocal8Bit(process.readAllStandardOutput());
            const auto m = listening.match(out);
            if (m.hasMatch()) {
                address = m.captured(1).toStdString();
                return;
            }
            if (process.state() == QProcess::NotRunning)
                break;
        }
        qWarning("worker did not start: %s %s", qPrintable(out), process.readAllStandardError().constData());
    }
    ~Worker()
    {
        process.kill();
        process.waitForFinished(5000);
    }
};

} // namespace layerwise::test
