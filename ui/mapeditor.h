#pragma once
// The hf_device_map editor under the placement map: the map as JSON text, Copy, and Apply for a
// map pasted or typed in (JSON or a Python dict printout).
#include <QWidget>

class QPlainTextEdit;

namespace layerwise::ui {

class MapEditor : public QWidget {
    Q_OBJECT
public:
    explicit MapEditor(QWidget* parent = nullptr);
    void setMap(const QString& text);
    QString text() const;

Q_SIGNALS:
    // Apply: the text as it stands.
    void applyRequested(const QString& text);

private:
    QPlainTextEdit* m_text = nullptr;
};

} // namespace layerwise::ui
