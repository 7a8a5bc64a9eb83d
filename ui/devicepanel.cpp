#include "devicepanel.h"

#include "api/layerwise.h"
#include "moduletreemodel.h"

#include <QFrame>
#include <algorithm>
#include <QLabel>
#include <QLineEdit>
#include <QPainter>
#include <QSlider>
#include <QVBoxLayout>

namespace layerwise::ui {

namespace {
constexpr qint64 MiB = 1ll << 20;

const QColor weightsColor(0x3b, 0x82, 0xf6), kvColor(0xf5, 0x9e, 0x0b), actColor(0x8b, 0x5c, 0xf6),
    overheadColor(0x94, 0xa3, 0xb8), freeColor(0xe5, 0xe7, 0xeb), overColor(0xdc, 0x26, 0x26);
} // namespace

void MemoryBar::setFootprint(const FootprintRow& row)
{
    m_row = row;
    update();
}

void MemoryBar::paintEvent(QPaintEvent*)
{
    QPainter p(this);
    const QRectF r = rect().adjusted(0, 2, -1, -2);
    p.fillRect(r, freeColor);
    const double scale = r.width() / static_cast<double>(std::max<qint64>({m_row.limit, m_row.used(), 1}));
    double x = r.left();
    for (const auto& [bytes, color] : {std::pair{m_row.weights, weightsColor}, std::pair{m_row.kvCache, kvColor},
                                       std::pair{m_row.activations, actColor}, std::pair{m_row.overhead, overheadColor}}) {
        const double w = static_cast<double>(bytes) * scale;
        p.fillRect(QRectF(x, r.top(), w, r.height()), color);
        x += w;
    }
    if (m_row.used() > m_row.limit && m_row.limit > 0) {
        const double limitX = r.left() + static_cast<double>(m_row.limit) * scale;
        p.setPen(QPen(overColor, 2));
        p.drawLine(QPointF(limitX, r.top() - 2), QPointF(limitX, r.bottom() + 2));
    }
    p.setPen(palette().color(QPalette::Mid));
    p.drawRect(r);
}

DevicePanel::DevicePanel(QWidget* parent) : QWidget(parent)
{
    m_layout = new QVBoxLayout(this);
    m_layout->setContentsMargins(6, 6, 6, 6);
    m_layout->addStretch(1);
}

DevicePanel::Card* DevicePanel::card(const QString& key)
{
    for (auto& c : m_cards)
        if (c.key == key)
            return &c;
    return nullptr;
}

QSlider* DevicePanel::slider(const QString& key) const
{
    for (const auto& c : m_cards)
        if (c.key == key)
            return c.slider;
    return nullptr;
}

void DevicePanel::setDevices(const QVector<DeviceRow>& devices)
{
    for (auto& c : m_cards)
        delete c.frame;
    m_cards.clear();
    qDeleteAll(m_headers);
    m_headers.clear();
    // With other machines (a pipeline), each machine's cards come under a heading of its own.
    const bool machines = std::any_of(devices.begin(), devices.end(), [](const DeviceRow& d) { return !d.machine.isEmpty(); });
    QString group = QStringLiteral("-");
    for (const DeviceRow& d : devices) {
        if (machines && d.machine != group) {
            group = d.machine;
            auto* heading = new QLabel(group.isEmpty() ? tr("<b>This machine</b>") : QStringLiteral("<b>%1</b>").arg(d.machineCaption.toHtmlEscaped()), this);
            heading->setObjectName(QStringLiteral("machine-") + (group.isEmpty() ? QStringLiteral("local") : group));
            heading->setWordWrap(true);
            m_layout->insertWidget(m_layout->count() - 1, heading);
            m_headers.push_back(heading);
        }
        Card c;
        c.key = d.key;
        c.total = static_cast<qint64>(d.total);
        c.available = static_cast<qint64>(d.available);
        auto* frame = new QFrame(this);
        frame->setObjectName(QStringLiteral("device-") + d.key);
        frame->setFrameShape(QFrame::StyledPanel);
        auto* v = new QVBoxLayout(frame);
        auto* title = new QLabel(QStringLiteral("<b>%1</b> %2%3").arg(d.name.toHtmlEscaped(), d.model.toHtmlEscaped(),
                                                                       d.hypothetical ? tr(" (hypothetical)") : QString()),
                                 frame);
        title->setWordWrap(true);
        v->addWidget(title);
        c.bar = new MemoryBar(frame);
        v->addWidget(c.bar);
        c.usage = new QLabel(frame);
        c.usage->setWordWrap(true);
        v->addWidget(c.usage);
        auto* row = new QHBoxLayout;
        c.slider = new QSlider(Qt::Horizontal, frame);
        c.slider->setRange(0, static_cast<int>(std::max<qint64>(c.total / MiB, 1)));
        c.slider->setValue(static_cast<int>(static_cast<qint64>(d.available) / MiB));
        c.slider->setToolTip(tr("Maximum memory the plan may use on %1").arg(d.name));
        c.field = new QLineEdit(QString::fromStdString(format_bytes(d.available)), frame);
        c.field->setMaximumWidth(95);
        c.field->setToolTip(tr("Exact limit: 20GiB, 10GB, 500MiB or bytes"));
        row->addWidget(c.slider, 1);
        row->addWidget(c.field);
        v->addLayout(row);
        c.frame = frame;
        const QString key = d.key;
        connect(c.slider, &QSlider::valueChanged, this, [this, key](int mib) {
            Card* c = card(key);
            c->touched = true;
            c->field->setText(QString::fromStdString(format_bytes(static_cast<std::uint64_t>(mib) * MiB)));
            Q_EMIT limitsChanged();
        });
        connect(c.field, &QLineEdit::editingFinished, this, [this, key] {
            Card* c = card(key);
            if (!setLimitText(key, c->field->text()))
                c->field->setStyleSheet(QStringLiteral("color: #dc2626"));
        });
        m_layout->insertWidget(m_layout->count() - 1, frame);
        m_cards.push_back(c);
    }
}

bool DevicePanel::setLimitText(const QString& key, const QString& text)
{
    Card* c = card(key);
    if (!c)
        return false;
    std::int64_t bytes = 0;
    try {
        bytes = parse_size(text.trimmed().toStdString());
    } catch (const Error&) {
        c->field->setToolTip(tr("'%1' is not a size: use 20GiB, 10GB, 500MiB or bytes").arg(text));
        return false;
    }
    c->field->setStyleSheet(QString());
    c->touched = true;
    {
        const QSignalBlocker block(c->slider);
        c->slider->setMaximum(static_cast<int>(std::max<qint64>(c->total, bytes) / MiB));
        c->slider->setValue(static_cast<int>(bytes / MiB));
    }
    c->field->setProperty("bytes", QVariant::fromValue(bytes));
    Q_EMIT limitsChanged();
    return true;
}

void DevicePanel::setLimits(const QVector<QPair<QString, qint64>>& limits)
{
    for (auto& c : m_cards) {
        qint64 bytes = c.available;
        c.touched = false;
        for (const auto& [key, value] : limits)
            if (key == c.key) {
                bytes = value;
                c.touched = true;
            }
        const QSignalBlocker block(c.slider);
        c.slider->setMaximum(static_cast<int>(std::max<qint64>(c.total, bytes) / MiB));
        c.slider->setValue(static_cast<int>(bytes / MiB));
        c.field->setText(QString::fromStdString(format_bytes(static_cast<std::uint64_t>(bytes))));
        c.field->setStyleSheet(QString());
        c.field->setProperty("bytes", c.touched ? QVariant::fromValue(bytes) : QVariant());
    }
}

QVector<QPair<QString, qint64>> DevicePanel::limits() const
{
    QVector<QPair<QString, qint64>> out;
    for (const auto& c : m_cards) {
        if (!c.touched)
            continue;
        const QVariant exact = c.field->property("bytes");
        const qint64 fromSlider = static_cast<qint64>(c.slider->value()) * MiB;
        const qint64 bytes = exact.isValid() && exact.toLongLong() / MiB == c.slider->value() ? exact.toLongLong() : fromSlider;
        out.push_back({c.key, bytes});
    }
    return out;
}

void DevicePanel::setFootprints(const QVector<FootprintRow>& rows)
{
    for (auto& c : m_cards) {
        FootprintRow row;
        for (const auto& r : rows)
            if (r.key == c.key)
                row = r;
        c.bar->setFootprint(row);
        c.usage->setText(tr("weights %1 · KV %2 · activations %3 · overhead %4 · free %5 · %6 layers")
                             .arg(formatBytes(static_cast<quint64>(row.weights)), formatBytes(static_cast<quint64>(row.kvCache)),
                                  formatBytes(static_cast<quint64>(row.activations)), formatBytes(static_cast<quint64>(row.overhead)),
                                  row.limit >= row.used() ? formatBytes(static_cast<quint64>(row.limit - row.used()))
                                                          : QStringLiteral("−") + formatBytes(static_cast<quint64>(row.used() - row.limit)))
                             .arg(row.layers) +
                         // Held is not read: a mixture of experts reads a token's chosen experts only.
                         (row.readPerToken > 0 && row.readPerToken < row.weights
                              ? tr(" · reads %1 a token").arg(formatBytes(static_cast<quint64>(row.readPerToken)))
                              : QString()) +
                         (row.experts > 0 ? tr(" · %1 experts").arg(row.experts) : QString()));
    }
}

} // namespace layerwise::ui
