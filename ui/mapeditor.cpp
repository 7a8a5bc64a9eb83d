#include "mapeditor.h"

#include <QApplication>
#include <QClipboard>
#include <QFontDatabase>
#include <QHBoxLayout>
#include <QLabel>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QVBoxLayout>

namespace layerwise::ui {

MapEditor::MapEditor(QWidget* parent) : QWidget(parent)
{
    m_text = new QPlainTextEdit(this);
    m_text->setObjectName(QStringLiteral("deviceMap"));
    m_text->setFont(QFontDatabase::systemFont(QFontDatabase::FixedFont));
    m_text->setPlaceholderText(tr("hf_device_map: paste a JSON object or a Python dict printout and Apply"));
    auto* buttons = new QHBoxLayout;
    auto* copy = new QPushButton(tr("Copy"), this);
    auto* apply = new QPushButton(tr("Apply"), this);
    apply->setObjectName(QStringLiteral("applyMap"));
    connect(copy, &QPushButton::clicked, this, [this] { QApplication::clipboard()->setText(m_text->toPlainText()); });
    connect(apply, &QPushButton::clicked, this, [this] { Q_EMIT applyRequested(m_text->toPlainText()); });
    buttons->addWidget(new QLabel(tr("hf_device_map"), this));
    buttons->addStretch(1);
    buttons->addWidget(copy);
    buttons->addWidget(apply);
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->addLayout(buttons);
    layout->addWidget(m_text);
}

void MapEditor::setMap(const QString& text)
{
    m_text->setPlainText(text);
}

QString MapEditor::text() const
{
    return m_text->toPlainText();
}

} // namespace layerwise::ui
