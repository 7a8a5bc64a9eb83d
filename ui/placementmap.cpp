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
constexpr qreal machineGap = 18; // above each other machine's group of lanes: its caption

// Another machine's devices ("host2/0", "host2/cpu") take their kind's colour, a shade darker.
QColor laneColor(const QString& key)
{
    if (key.contains(QLatin1Char('/')))
        return laneColor(key.section(QLatin1Char('/'), 1)).darker(125);
    if (key == QLatin1String("cpu"))
        return {0x10, 0xb9, 0x81};
    if (key == QLatin1String("disk"))
        return {0x94, 0xa3, 0xb8};
    static const QColor gpus[] = {{0x3b, 0x82, 0xf6}, {0x63, 0x66, 0xf1}, {0x0e, 0xa5, 0xe9}, {0x8b, 0x5c, 0xf6}};
    return gpus[key.toInt() % 4];
}
// "cuda:0", "cpu", "disk"; another machine's "host2/cuda:0".
QString laneName(const QString& key)
{
    const QString machine = key.contains(QLatin1Char('/')) ? key.section(QLatin1Char('/'), 0, 0) + QLatin1Char('/') : QString();
    const QString device = key.section(QLatin1Char('/'), -1);
    return machine + (device == QLatin1String("cpu") || device == QLatin1String("disk") ? device : QStringLiteral("cuda:") + device);
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
    updateMinimumHeight();
    update();
}

void PlacementMap::setLayerStates(const QVector<int>& states)
{
    if (states == m_states)
        return;
    m_states = states;
    updateMinimumHeight();
    update();
}

bool PlacementMap::hasLegend() const
{
    return !m_states.isEmpty() || (!m_plan.quant.isEmpty() && m_plan.quant != QLatin1String("none"));
}

void PlacementMap::updateMinimumHeight()
{
    const int legend = hasLegend() ? 24 : 0;
    setMinimumHeight(static_cast<int>(top * 2 + laneHeight * std::max(1, laneCount()) + gapsAbove(laneCount())) + legend);
}

QColor PlacementMap::quantColor(const QString& quant)
{
    // Colours no lane uses (lanes: green CPU, grey disk, blues and violet GPUs).
    if (quant.startsWith(QLatin1String("int8")))
        return {0xea, 0xb3, 0x08}; // yellow
    if (quant.startsWith(QLatin1String("nf4")))
        return {0xea, 0x58, 0x0c}; // orange
    if (quant.startsWith(QLatin1String("fp4")))
        return {0xdb, 0x27, 0x77}; // pink
    if (quant.startsWith(QLatin1String("gptq")))
        return {0x1f, 0x29, 0x37}; // near black
    return {};
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
    const qreal y = top + laneHeight * laneCount() + gapsAbove(laneCount()) + 2;
    qreal x = labelWidth;
    const QColor c = laneColor(m_plan.layerDevices.value(0, QStringLiteral("0")));
    const std::pair<LayerActivity, QString> items[] = {{LayerActivity::resident, tr("resident")},
                                                       {LayerActivity::streamingIn, tr("streaming in")},
                                                       {LayerActivity::computing, tr("computing")},
                                                       {LayerActivity::evicted, tr("evicted")}};
    p.setPen(palette().color(QPalette::Text));
    p.drawText(QRectF(4, y, labelWidth - 8, 16), Qt::AlignVCenter | Qt::AlignLeft,
               m_states.isEmpty() ? tr("Weights:") : tr("Loaded:"));
    for (const auto& [activity, label] : items) {
        if (m_states.isEmpty())
            break;
        p.save();
        paintBlock(p, QRectF(x, y + 2, 22, 12), c, activity);
        p.restore();
        p.setPen(palette().color(QPalette::Text));
        const qreal w = p.fontMetrics().horizontalAdvance(label) + 12;
        p.drawText(QRectF(x + 26, y, w, 16), Qt::AlignVCenter | Qt::AlignLeft, label);
        x += 26 + w + 8;
    }
    const QColor q = quantColor(m_plan.quant);
    if (q.isValid()) {
        p.fillRect(QRectF(x, y + 2, 22, 12), c);
        p.fillRect(QRectF(x, y + 9, 22, 5), q);
        const QString label = tr("%1 layers").arg(m_plan.quant);
        p.setPen(palette().color(QPalette::Text));
        p.drawText(QRectF(x + 26, y, p.fontMetrics().horizontalAdvance(label) + 12, 16), Qt::AlignVCenter | Qt::AlignLeft, label);
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

bool PlacementMap::startsMachine(int lane) const
{
    return lane >= 0 && lane < laneCount() && !m_plan.devices[lane].machine.isEmpty() &&
           (lane == 0 || m_plan.devices[lane - 1].machine != m_plan.devices[lane].machine);
}

qreal PlacementMap::gapsAbove(int lane) const
{
    int gaps = 0;
    for (int i = 0; i <= lane && i < laneCount(); ++i)
        gaps += startsMachine(i);
    return gaps * machineGap;
}

QRectF PlacementMap::laneRect(int lane) const
{
    return {labelWidth, top + lane * laneHeight + gapsAbove(lane), width() - labelWidth - 8, laneHeight - 6};
}

int PlacementMap::laneOfKey(const QString& key) const
{
    for (int i = 0; i < laneCount(); ++i)
        if (m_plan.devices[i].key == key)
            return i;
    return -1;
}

namespace {
constexpr qreal moduleMinWidth = 40;
}

int PlacementMap::itemOfModule(int module) const
{
    int before = 0;
    for (const MapModule& m : m_plan.modules)
        before += m.beforeLayers ? 1 : 0;
    int item = 0;
    for (int i = 0; i < m_plan.modules.size(); ++i) {
        if (m_plan.modules[i].beforeLayers != m_plan.modules[module].beforeLayers)
            continue;
        if (i == module)
            return m_plan.modules[module].beforeLayers ? item : before + static_cast<int>(m_plan.layerBytes.size()) + item;
        ++item;
    }
    return -1;
}

QPair<qreal, qreal> PlacementMap::span(int item) const
{
    // Widths proportional to bytes; modules get a minimum width so a norm or a tied head stays visible.
    QVector<qint64> bytes;
    QVector<bool> isModule;
    for (const MapModule& m : m_plan.modules)
        if (m.beforeLayers) {
            bytes.push_back(m.bytes);
            isModule.push_back(true);
        }
    for (qint64 b : m_plan.layerBytes) {
        bytes.push_back(b);
        isModule.push_back(false);
    }
    for (const MapModule& m : m_plan.modules)
        if (!m.beforeLayers) {
            bytes.push_back(m.bytes);
            isModule.push_back(true);
        }
    qint64 total = 0;
    int modules = 0;
    for (int i = 0; i < bytes.size(); ++i) {
        total += bytes[i];
        modules += isModule[i] ? 1 : 0;
    }
    const qreal width = laneRect(0).width() - modules * moduleMinWidth;
    const qreal scale = std::max<qreal>(0, width) / static_cast<qreal>(std::max<qint64>(total, 1));
    qreal x = 0;
    for (int i = 0; i < bytes.size(); ++i) {
        const qreal w = static_cast<qreal>(bytes[i]) * scale + (isModule[i] ? moduleMinWidth : 0);
        if (i == item)
            return {x, w};
        x += w;
    }
    return {0, 0};
}

QPair<qreal, qreal> PlacementMap::layerSpan(int layer) const
{
    int before = 0;
    for (const MapModule& m : m_plan.modules)
        before += m.beforeLayers ? 1 : 0;
    return span(before + layer);
}

QRectF PlacementMap::blockRect(int layer) const
{
    const int lane = laneOf(layer);
    if (lane < 0)
        return {};
    const auto [x, w] = layerSpan(layer);
    const QRectF lr = laneRect(lane);
    const qreal height = hasExperts() ? (lr.height() - 6) * 0.55 : lr.height() - 6;
    return {lr.left() + x, lr.top() + 3, std::max<qreal>(2.0, w - 1), height};
}

int PlacementMap::expertsLane(int layer) const
{
    return layer >= 0 && layer < m_plan.expertDevices.size() ? laneOfKey(m_plan.expertDevices[layer]) : -1;
}

QRectF PlacementMap::expertsRect(int layer) const
{
    const int lane = expertsLane(layer);
    if (lane < 0)
        return {};
    const auto [x, w] = layerSpan(layer);
    const QRectF lr = laneRect(lane);
    const qreal top = lr.top() + 3 + (lr.height() - 6) * 0.6;
    return {lr.left() + x, top, std::max<qreal>(2.0, w - 1), lr.bottom() - 3 - top};
}

int PlacementMap::expertsAt(const QPointF& p) const
{
    for (int i = 0; i < m_plan.expertModules.size(); ++i)
        if (expertsRect(i).contains(p))
            return i;
    return -1;
}

QStringList PlacementMap::moduleNames() const
{
    QStringList names;
    for (const MapModule& m : m_plan.modules)
        names << m.name;
    return names;
}

int PlacementMap::moduleIndex(const QString& module) const
{
    for (int i = 0; i < m_plan.modules.size(); ++i)
        if (m_plan.modules[i].name == module)
            return i;
    return -1;
}

int PlacementMap::moduleLane(const QString& module) const
{
    const int i = moduleIndex(module);
    return i < 0 ? -1 : laneOfKey(m_plan.modules[i].device);
}

QRectF PlacementMap::moduleRect(const QString& module) const
{
    const int i = moduleIndex(module);
    const int lane = moduleLane(module);
    if (i < 0 || lane < 0)
        return {};
    const auto [x, w] = span(itemOfModule(i));
    const QRectF lr = laneRect(lane);
    return {lr.left() + x + 1, lr.top() + 5, std::max<qreal>(2.0, w - 2), lr.height() - 10};
}

int PlacementMap::moduleAt(const QPointF& p) const
{
    for (int i = 0; i < m_plan.modules.size(); ++i)
        if (moduleRect(m_plan.modules[i].name).contains(p))
            return i;
    return -1;
}

int PlacementMap::laneAt(qreal y) const
{
    if (y < top)
        return -1;
    int lane = 0;
    while (lane < laneCount() && y >= laneRect(lane).top() + laneHeight)
        ++lane;
    return lane < laneCount() ? lane : -1;
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
                   QStringLiteral("%1\n%2 layers").arg(laneName(d.key)).arg(d.layers));
        // A pipeline: each other machine's lanes are a group, under a rule with its caption.
        if (startsMachine(lane)) {
            const QRectF caption(4, lr.top() - machineGap, lr.right() - 4, machineGap - 2);
            p.setPen(QPen(palette().color(QPalette::Mid), 1.5));
            p.drawLine(caption.topLeft() + QPointF(0, 2), caption.topRight() + QPointF(0, 2));
            for (const auto& [name, text] : m_plan.machines)
                if (name == d.machine) {
                    p.setPen(palette().color(QPalette::Text));
                    p.drawText(caption, Qt::AlignBottom | Qt::AlignLeft, text);
                }
        }
    }
    for (int i = 0; i < m_plan.layerDevices.size(); ++i) {
        const QRectF r = blockRect(i);
        QColor c = laneColor(m_plan.layerDevices[i]);
        if (i >= m_first && i <= m_last && m_first >= 0)
            c = c.darker(150);
        p.save();
        paintBlock(p, r, c, layerActivity(i));
        p.restore();
        // Quantized weights: a stripe of the format's colour along the bottom of the block.
        const QColor q = quantColor(m_plan.quant);
        if (q.isValid())
            p.fillRect(QRectF(r.left() + 1, r.bottom() - 6, r.width() - 2, 5), q);
    }
    // The experts' sub-row: hatched, the lane's colour; split experts dashed.
    for (int i = 0; i < m_plan.expertModules.size(); ++i) {
        const QRectF r = expertsRect(i);
        if (r.isEmpty())
            continue;
        QColor c = laneColor(m_plan.expertDevices[i]);
        if (m_plan.expertModules[i] == m_module)
            c = c.darker(150);
        p.setPen(QPen(c.darker(160), 1, m_plan.expertsSplit.value(i) ? Qt::DashLine : Qt::SolidLine));
        p.setBrush(QBrush(c, Qt::Dense4Pattern));
        p.drawRect(r);
    }
    for (const MapModule& m : m_plan.modules) {
        const QRectF r = moduleRect(m.name);
        if (r.isEmpty())
            continue;
        QColor c = laneColor(m.device).lighter(125);
        if (m.name == m_module || (!m.tiedTo.isEmpty() && m.tiedTo == m_module))
            c = c.darker(150);
        p.setPen(QPen(c.darker(170), 1, m.tiedTo.isEmpty() ? Qt::SolidLine : Qt::DashLine));
        p.setBrush(m.tiedTo.isEmpty() ? c : c.lighter(150));
        p.drawRoundedRect(r, 3, 3);
        // "embed_tokens", or where the block is narrow a word of it: "embed", "head" (of lm_head).
        const QString name = m.name.section(QLatin1Char('.'), -1);
        const QString word = name.section(QLatin1Char('_'), m.beforeLayers ? 0 : -1, m.beforeLayers ? 0 : -1);
        for (const QString& label : {name, word}) {
            if (p.fontMetrics().horizontalAdvance(label) + 4 < r.width()) {
                const QColor fill = m.tiedTo.isEmpty() ? c : c.lighter(150);
                p.setPen(qGray(fill.rgb()) > 150 ? QColor(0x11, 0x18, 0x27) : QColor(Qt::white));
                p.drawText(r, Qt::AlignCenter, label);
                break;
            }
        }
        // A tied module: a link from the top of its block to the block whose weights it shares.
        const QRectF to = moduleRect(m.tiedTo);
        if (!to.isEmpty()) {
            p.setPen(QPen(palette().color(QPalette::Text), 1, Qt::DashLine));
            p.setBrush(Qt::NoBrush);
            const qreal y = std::min(r.top(), to.top()) - 4;
            p.drawPolyline(QPolygonF{QPointF(r.center().x(), r.top()), QPointF(r.center().x(), y),
                                     QPointF(to.center().x(), y), QPointF(to.center().x(), to.top())});
        }
    }
    if (hasLegend())
        paintLegend(p);
}

void PlacementMap::mousePressEvent(QMouseEvent* e)
{
    const int layer = layerAt(e->position());
    m_pressPos = e->position();
    const int module = moduleAt(e->position());
    if (module >= 0) {
        m_module = m_plan.modules[module].name;
        select(-1, -1);
        return;
    }
    if (const int experts = expertsAt(e->position()); experts >= 0) {
        m_module = m_plan.expertModules[experts];
        select(-1, -1);
        return;
    }
    m_module.clear();
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
    if (!(e->buttons() & Qt::LeftButton) || (m_first < 0 && m_module.isEmpty()) ||
        (e->position() - m_pressPos).manhattanLength() < 6)
        return;
    auto* mime = new QMimeData;
    mime->setData(QString::fromLatin1(mimeType), m_module.isEmpty()
                                                    ? QStringLiteral("%1-%2").arg(m_first).arg(m_last).toLatin1()
                                                    : QByteArray("module:") + m_module.toUtf8());
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
    const QByteArray data = e->mimeData()->data(QString::fromLatin1(mimeType));
    if (data.startsWith("module:")) {
        if (dropModule(QString::fromUtf8(data.mid(7)), laneAt(e->position().y())))
            e->acceptProposedAction();
        return;
    }
    const QList<QByteArray> parts = data.split('-');
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

bool PlacementMap::dropModule(const QString& module, int lane)
{
    m_refusal.clear();
    if (const int layer = static_cast<int>(m_plan.expertModules.indexOf(module)); layer >= 0) {
        if (lane < 0 || lane >= laneCount() ||
            (m_plan.expertDevices[layer] == m_plan.devices[lane].key && !m_plan.expertsSplit.value(layer)))
            return false;
        Q_EMIT moduleMoveRequested(module, m_plan.devices[lane].key);
        return true;
    }
    const int i = moduleIndex(module);
    if (i < 0 || lane < 0 || lane >= laneCount() || m_plan.modules[i].device == m_plan.devices[lane].key)
        return false;
    const MapModule& m = m_plan.modules[i];
    if (!m.tiedTo.isEmpty()) {
        m_refusal = tr("%1 shares its weights with %2, and tied weights stay on one device.\n"
                       "Drag %2 instead: both move together.")
                        .arg(m.name, m.tiedTo);
        QToolTip::showText(mapToGlobal(moduleRect(module).center().toPoint()), m_refusal, this);
        return false;
    }
    Q_EMIT moduleMoveRequested(module, m_plan.devices[lane].key);
    return true;
}

bool PlacementMap::event(QEvent* e)
{
    if (e->type() == QEvent::ToolTip) {
        auto* help = static_cast<QHelpEvent*>(e);
        const int layer = layerAt(help->pos());
        const int module = moduleAt(help->pos());
        const int experts = expertsAt(help->pos());
        if (experts >= 0) {
            QToolTip::showText(help->globalPos(),
                               tr("%1 · %2 · on %3%4\nA token reads only the experts it is routed to. Drag them onto another lane to move them "
                                  "(layer %5 itself stays where it is).")
                                   .arg(m_plan.expertModules[experts], formatBytes(static_cast<quint64>(m_plan.expertBytes.value(experts))),
                                        m_plan.expertDevices[experts],
                                        m_plan.expertsSplit.value(experts) ? tr(" (most; some elsewhere)") : QString())
                                   .arg(experts),
                               this);
        } else if (module >= 0) {
            const MapModule& m = m_plan.modules[module];
            QStringList tied;
            for (const MapModule& other : m_plan.modules)
                if (other.tiedTo == m.name)
                    tied << other.name;
            QString text = tr("%1 · %2 · %3 · on %4").arg(m.name, m.dtype, formatBytes(static_cast<quint64>(m.bytes)), m.device);
            if (!m.tiedTo.isEmpty())
                text += tr("\nTied to %1 (same weights): it moves with it.").arg(m.tiedTo);
            else
                text += (tied.isEmpty() ? QString() : tr("\nTied: %1 shares these weights and moves with them.").arg(tied.join(QStringLiteral(", ")))) +
                        tr("\nDrag it onto another lane to move it.");
            QToolTip::showText(help->globalPos(), text, this);
        } else if (layer >= 0)
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
