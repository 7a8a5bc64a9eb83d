#pragma once
// The placement map: one lane per device, each decoder layer a block sized by its bytes at
// its place in the model; the embeddings, final norm and lm_head are blocks of their own
// (a tied lm_head is linked to the embeddings and moves with them). Drag a block (or a shift-selected range) onto another lane to move
// it; the engine re-plans and the map redraws with the new verdict. While a model is loaded the
// blocks show what each layer is doing (resident, streaming in, computing, evicted) with a legend.
// A mixture of experts' blocks keep the upper part of their lane; their experts are a sub-row in
// the lower part of the lane of the device holding them, movable on their own.
#include "chatwork.h"
#include "enginework.h"

#include <QColor>
#include <QWidget>

class QPainter;

namespace layerwise::ui {

class PlacementMap : public QWidget {
    Q_OBJECT
public:
    explicit PlacementMap(QWidget* parent = nullptr);
    void setPlan(const PlanView& plan);
    // One LayerActivity per decoder block; empty: planned only (no legend).
    void setLayerStates(const QVector<int>& states);
    LayerActivity layerActivity(int layer) const;
    // The weights format of the decoder blocks ("none", "int8", "nf4-dq", ...): quantized blocks
    // carry a stripe of its colour, named in the legend.
    QString quantization() const { return m_plan.quant; }
    static QColor quantColor(const QString& quant);
    QSize sizeHint() const override { return {700, 240}; }

    // The drop logic, also used by tests (offscreen platforms cannot drag and drop).
    bool dropLayers(int first, int last, int lane);
    int laneCount() const { return static_cast<int>(m_plan.devices.size()); }
    int laneOf(int layer) const;
    QRectF blockRect(int layer) const;
    // Mixtures of experts: each block's experts are a sub-row of their own under the block's
    // span, in the lane of the device holding (most of) them; dragged like a module.
    bool hasExperts() const { return !m_plan.expertModules.isEmpty(); }
    QRectF expertsRect(int layer) const;
    QString expertsModule(int layer) const { return m_plan.expertModules.value(layer); }
    int expertsLane(int layer) const;
    QRectF laneRect(int lane) const;
    QPair<int, int> selection() const { return {m_first, m_last}; }
    void select(int first, int last);
    // Modules outside the decoder blocks (PlanView::modules), by name.
    QStringList moduleNames() const;
    int moduleLane(const QString& module) const;
    QRectF moduleRect(const QString& module) const;
    // Moves a module to a lane; false (and a tooltip saying why, lastRefusal()) when refused.
    bool dropModule(const QString& module, int lane);
    QString lastRefusal() const { return m_refusal; }
    static constexpr const char* mimeType = "application/x-layerwise-layers";

Q_SIGNALS:
    void moveRequested(int first, int last, const QString& deviceKey);
    void moduleMoveRequested(const QString& module, const QString& deviceKey);

protected:
    void paintEvent(QPaintEvent*) override;
    void mousePressEvent(QMouseEvent*) override;
    void mouseMoveEvent(QMouseEvent*) override;
    void dragEnterEvent(QDragEnterEvent*) override;
    void dragMoveEvent(QDragMoveEvent*) override;
    void dropEvent(QDropEvent*) override;
    bool event(QEvent*) override;

private:
    int laneAt(qreal y) const;
    // A pipeline: whether `lane` is the first of another machine's group, and the height of the
    // group captions above `lane` (itself included).
    bool startsMachine(int lane) const;
    qreal gapsAbove(int lane) const;
    int layerAt(const QPointF& p) const;
    int moduleAt(const QPointF& p) const;
    int expertsAt(const QPointF& p) const;
    int moduleIndex(const QString& module) const;
    int laneOfKey(const QString& key) const;
    // x offset and width of item i: modules before the layers, layers, modules after.
    QPair<qreal, qreal> span(int item) const;
    QPair<qreal, qreal> layerSpan(int layer) const; // span() of decoder block `layer`
    int itemOfModule(int module) const;

    void paintLegend(QPainter& p);
    bool hasLegend() const;
    void updateMinimumHeight();
    PlanView m_plan;
    QVector<int> m_states;
    int m_first = -1, m_last = -1;
    QPointF m_pressPos;
    QString m_module; // the selected module ("" when layers or nothing)
    QString m_refusal;
};

} // namespace layerwise::ui
