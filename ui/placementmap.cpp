#include "placementmap.h"

#include "moduletreemodel.h"

#include <QDrag>
#include <QHelpEvent>
#include <QMimeData>
#include <QMouseEvent>
#include <QPainter>
#include <QToolTip>

namespace layerwise::ui {

namespace {
constexpr qreal labelWidth = 120, laneHeight = 44, top = 8;

QColor laneColor(const QString& key)
{
    if (key == QLatin1String("cpu"))
        return {0x10, 0xb9, 0x81};
    if (key == QLatin1String("disk"))
        return {0x94, 0xa3, 0xb8};
    static const QColor gpus[] = {{0x3b, 0x82, 0xf6}, {0x63, 0x66, 0xf1}, {0x0e, 0xa5, 0xe9}, {0x8b, 0x5c, 0xf6}};
    return gpus[key.toInt() % 4];
}
QString activityName(LayerActivity a)
{
    switch (a) {
    case LayerActivity::resident: return PlacementMap::tr("resident");
    case LayerActivity::streamingIn: return PlacementMap::tr("streaming in");
    case LayerActivity::computing: return PlacementMap::tr("computing");
    case LayerActivity::evicted: return PlacementMap::tr("evicted");
    case LayerActivity::planned: break;
    }
    return PlacementMap::tr("planned");
}
} // namespace

PlacementMap::PlacementMap(QWidget* parent) : QWidget(parent)
{
    setAcceptDrops(true);
    setMouseTracking(true);
    setMinimumHeight(120);
}

void PlacementMap::setPlan(const PlanView& plan)
{
    m_plan = plan;
    setMinimumHeight(static_cast<int>(top * 2 + laneHeight * std::max(1, laneCount())));
    update();
}

void PlacementMap::setLayerStates(const QVector<int>& states)
{
    m_states = states;
    const int legend = m_states.isEmpty() ? 0 : 24;
    setMinimumHeight(static_cast<int>(top * 2 + laneHeight * std::max(1, laneCount())) + legend);
    update();
}

LayerActivity PlacementMap::layerActivity(int layer) const
{
    return layer >= 0 && layer < m_states.size() ? static_cast<LayerActivity>(m_states[layer]) : LayerActivity::planned;
}

namespace {

// How a block looks in each state: resident solid, streaming in hatched with an amber outline,
// computing with a thick red outline, evicted faded with a dashed outline.
void paintBlock(QPainter& p, const QRectF& r, QColor c, LayerActivity a)
{
    switch (a) {
    case LayerActivity::planned:
    case LayerActivity::resident:
        p.fillRect(r, c);
        break;
    case LayerActivity::streamingIn:
        p.fillRect(r, c.lighter(140));
        p.fillRect(r, QBrush(c.darker(160), Qt::BDiagPattern));
        p.setPen(QPen(QColor(0xf5, 0x9e, 0x0b), 2));
        p.drawRect(r.adjusted(1, 1, -1, -1));
        break;
    case LayerActivity::computing:
        p.fillRect(r, c);
        p.setPen(QPen(QColor(0xdc, 0x26, 0x26), 3));
        p.drawRect(r.adjusted(1.5, 1.5, -1.5, -1.5));
        break;
    case LayerActivity::evicted:
        c.setAlpha(70);
        p.fillRect(r, c);
        p.setPen(QPen(QColor(0x64, 0x74, 0x8b), 1, Qt::DashLine));
        p.drawRect(r.adjusted(0.5, 0.5, -0.5, -0.5));
        break;
    }
}

} // namespace

void PlacementMap::paintLegend(QPainter& p)
{
    const qreal y = top + laneHeight * laneCount() + 2;
    qreal x = labelWidth;
    const QColor c = laneColor(m_plan.layerDevices.value(0, QStringLiteral("0")));
    const std::pair<LayerActivity, QString> items[] = {{LayerActivity::resident, tr("resident")},
                                                       {LayerActivity::streamingIn, tr("streaming in")},
                                                       {LayerActivity::computing, tr("computing")},
                                                       {LayerActivity::evicted, tr("evicted")}};
    p.setPen(palette().color(QPalette::Text));
    p.drawText(QRectF(4, y, labelWidth - 8, 16), Qt::AlignVCenter | Qt::AlignLeft, tr("Loaded:"));
    for (const auto& [activity, label] : items) {
        p.save();
        paintBlock(p, QRectF(x, y + 2, 22, 12), c, activity);
        p.restore();
        p.setPen(palette().color(QPalette::Text));
        const qreal w = p.fontMetrics().horizontalAdvance(label) + 12;
        p.drawText(QRectF(x + 26, y, w, 16), Qt::AlignVCenter | Qt::AlignLeft, label);
        x += 26 + w + 8;
    }
}

void PlacementMap::select(int first, int last)
{
    m_first = std::min(first, last);
    m_last = std::max(first, last);
    update();
}

int PlacementMap::laneOf(int layer) const
{
    if (layer < 0 || layer >= m_plan.layerDevices.size())
        return -1;
    for (int i = 0; i < laneCount(); ++i)
        if (m_plan.devices[i].key == m_plan.layerDevices[layer])
            return i;
    return -1;
}

QRectF PlacementMap::laneRect(int lane) const
{
    return {labelWidth, top + lane * laneHeight, width() - labelWidth - 8, laneHeight - 6};
}

QRectF PlacementMap::blockRect(int layer) const
{
    const int lane = laneOf(layer);
    if (lane < 0)
        return {};
    qint64 total = 0, before = 0;
    for (int i = 0; i < m_plan.layerBytes.size(); ++i) {
        total += m_plan.layerBytes[i];
        if (i < layer)
            before += m_plan.layerBytes[i];
    }
    const QRectF lr = laneRect(lane);
    const qreal scale = lr.width() / static_cast<qreal>(std::max<qint64>(total, 1));
    return {lr.left() + static_cast<qreal>(before) * scale, lr.top() + 3,
            std::max<qreal>(2.0, static_cast<qreal>(m_plan.layerBytes[layer]) * scale - 1), lr.height() - 6};
}

int PlacementMap::laneAt(qreal y) const
{
    const int lane = static_cast<int>((y - top) / laneHeight);
    return lane >= 0 && lane < laneCount() ? lane : -1;
}

int PlacementMap::layerAt(const QPointF& p) const
{
    for (int i = 0; i < m_plan.layerDevices.size(); ++i)
        if (blockRect(i).contains(p))
            return i;
    return -1;
}

void PlacementMap::paintEvent(QPaintEvent*)
{
    QPainter p(this);
    p.setRenderHint(QPainter::Antialiasing);
    if (m_plan.devices.isEmpty()) {
        p.drawText(rect(), Qt::AlignCenter, tr("The placement appears once a model is planned."));
        return;
    }
    for (int lane = 0; lane < laneCount(); ++lane) {
        const FootprintRow& d = m_plan.devices[lane];
        const QRectF lr = laneRect(lane);
        p.fillRect(lr, palette().color(QPalette::AlternateBase));
        p.setPen(d.used() > d.limit ? QColor(0xdc, 0x26, 0x26) : palette().color(QPalette::Text));
        p.drawText(QRectF(4, lr.top(), labelWidth - 8, lr.height()), Qt::AlignVCenter | Qt::AlignLeft,
                   QStringLiteral("%1\n%2 layers").arg(d.key == QLatin1String("cpu") || d.key == QLatin1String("disk")
                                                           ? d.key
                                                           : QStringLiteral("cuda:") + d.key)
                       .arg(d.layers));
    }
    for (int i = 0; i < m_plan.layerDevices.size(); ++i) {
        const QRectF r = blockRect(i);
        QColor c = laneColor(m_plan.layerDevices[i]);
        if (i >= m_first && i <= m_last && m_first >= 0)
            c = c.darker(150);
        p.save();
        paintBlock(p, r, c, layerActivity(i));
        p.restore();
    }
    if (!m_states.isEmpty())
        paintLegend(p);
}

void PlacementMap::mousePressEvent(QMouseEvent* e)
{
    const int layer = layerAt(e->position());
    m_pressPos = e->position();
    if (layer < 0) {
        select(-1, -1);
        return;
    }
    if ((e->modifiers() & Qt::ShiftModifier) && m_first >= 0)
        select(std::min(m_first, layer), std::max(m_last, layer));
    else if (!(layer >= m_first && layer <= m_last))
        select(layer, layer);
}

void PlacementMap::mouseMoveEvent(QMouseEvent* e)
{
    if (!(e->buttons() & Qt::LeftButton) || m_first < 0 ||
        (e->position() - m_pressPos).manhattanLength() < 6)
        return;
    auto* mime = new QMimeData;
    mime->setData(QString::fromLatin1(mimeType), QStringLiteral("%1-%2").arg(m_first).arg(m_last).toLatin1());
    auto* drag = new QDrag(this);
    drag->setMimeData(mime);
    drag->exec(Qt::MoveAction);
}

void PlacementMap::dragEnterEvent(QDragEnterEvent* e)
{
    if (e->mimeData()->hasFormat(QString::fromLatin1(mimeType)))
        e->acceptProposedAction();
}

void PlacementMap::dragMoveEvent(QDragMoveEvent* e)
{
    if (laneAt(e->position().y()) >= 0)
        e->acceptProposedAction();
    else
        e->ignore();
}

void PlacementMap::dropEvent(QDropEvent* e)
{
    const QList<QByteArray> parts = e->mimeData()->data(QString::fromLatin1(mimeType)).split('-');
    if (parts.size() == 2 && dropLayers(parts[0].toInt(), parts[1].toInt(), laneAt(e->position().y())))
        e->acceptProposedAction();
}

bool PlacementMap::dropLayers(int first, int last, int lane)
{
    if (lane < 0 || lane >= laneCount() || first < 0 || last >= m_plan.layerDevices.size() || first > last)
        return false;
    bool changes = false;
    for (int i = first; i <= last; ++i)
        changes = changes || m_plan.layerDevices[i] != m_plan.devices[lane].key;
    if (!changes)
        return false;
    Q_EMIT moveRequested(first, last, m_plan.devices[lane].key);
    return true;
}

bool PlacementMap::event(QEvent* e)
{
    if (e->type() == QEvent::ToolTip) {
        auto* help = static_cast<QHelpEvent*>(e);
        const int layer = layerAt(help->pos());
        if (layer >= 0)
            QToolTip::showText(help->globalPos(),
                               tr("layer %1 · %2 · on %3%4\nDrag it (shift-click for a range) onto another lane to move it.")
                                   .arg(layer)
                                   .arg(formatBytes(static_cast<quint64>(m_plan.layerBytes.value(layer))))
                                   .arg(m_plan.layerDevices[layer])
                                   .arg(m_states.isEmpty() ? QString() : QStringLiteral(" · ") + activityName(layerActivity(layer))),
                               this);
        else
            QToolTip::hideText();
        return true;
    }
    return QWidget::event(e);
}

} // namespace layerwise::ui
