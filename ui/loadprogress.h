#pragma once
// Loading in progress: a bar with bytes done / total, the tensor being read, the time left,
// and Cancel.
#include "chatwork.h"

#include <QWidget>

class QLabel;
class QProgressBar;
class QPushButton;

namespace layerwise::ui {

class LoadProgress : public QWidget {
    Q_OBJECT
public:
    explicit LoadProgress(QWidget* parent = nullptr);
    void start(const QString& model);
    void setProgress(const LoadProgressView& p);
    int percent() const; // 0..100
    QString text() const;

Q_SIGNALS:
    void cancelRequested();

private:
    QProgressBar* m_bar = nullptr;
    QLabel* m_text = nullptr;
    QPushButton* m_cancel = nullptr;
};

} // namespace layerwise::ui
