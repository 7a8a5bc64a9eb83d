#pragma once
// The banner that offers the default chat model on a first start: "Try <label>" and "Not now".
#include <QFrame>

class QLabel;
class QPushButton;

namespace layerwise::ui {

class DefaultModelBanner : public QFrame {
    Q_OBJECT
public:
    explicit DefaultModelBanner(QWidget* parent = nullptr);
    // The model offered: its folder and the name shown.
    void setModel(const QString& path, const QString& label);
    QPushButton* tryButton() const { return m_try; }

Q_SIGNALS:
    void tryRequested();

private:
    QLabel* m_text = nullptr;
    QPushButton* m_try = nullptr;
};

} // namespace layerwise::ui
