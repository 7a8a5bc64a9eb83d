#pragma once
// One card per device: name, a memory bar split into weights / KV cache / activations /
// overhead / free, and a max-memory slider with an exact field ("20GiB"). Moving a slider
// asks for a new plan at once.
#include "enginework.h"

#include <QWidget>

class QLineEdit;
class QSlider;
class QLabel;
class QVBoxLayout;

namespace layerwise::ui {

class MemoryBar : public QWidget {
    Q_OBJECT
public:
    using QWidget::QWidget;
    void setFootprint(const FootprintRow& row);
    QSize sizeHint() const override { return {240, 18}; }

protected:
    void paintEvent(QPaintEvent*) override;

private:
    FootprintRow m_row;
};

class DevicePanel : public QWidget {
    Q_OBJECT
public:
    explicit DevicePanel(QWidget* parent = nullptr);
    void setDevices(const QVector<DeviceRow>& devices);
    void setFootprints(const QVector<FootprintRow>& rows);
    // The limits the user changed (device key -> bytes).
    QVector<QPair<QString, qint64>> limits() const;
    // Sets a device's limit as if the user typed it ("20GiB"); false for a bad size.
    bool setLimitText(const QString& key, const QString& text);
    // Shows `limits` (undo, redo): the devices not in it go back to their available memory.
    // Emits nothing.
    void setLimits(const QVector<QPair<QString, qint64>>& limits);
    int cardCount() const { return static_cast<int>(m_cards.size()); }
    QSlider* slider(const QString& key) const;

Q_SIGNALS:
    void limitsChanged();

private:
    struct Card {
        QString key;
        qint64 total = 0;
        qint64 available = 0;
        bool touched = false;
        QWidget* frame = nullptr;
        QSlider* slider = nullptr;
        QLineEdit* field = nullptr;
        QLabel* usage = nullptr;
        MemoryBar* bar = nullptr;
    };
    Card* card(const QString& key);
    QVBoxLayout* m_layout = nullptr;
    QVector<Card> m_cards;
    QVector<QWidget*> m_headers; // one per machine when there are several
};

} // namespace layerwise::ui
