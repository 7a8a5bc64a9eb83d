#include "engineworker.h"

#include "engine.h"

namespace layerwise::ui {

namespace {

ModelSummary summarize(const ModelDescription& d)
{
    ModelSummary s;
    s.source = QString::fromStdString(d.source);
    s.architecture = QString::fromStdString(d.config.architecture);
    s.text = QString::fromStdString(description_to_text(d));
    s.parameters = d.tree.num_parameters();
    const auto bytes = d.tree.all_module_bytes(SizeRule::stored());
    s.bytes = bytes.front();
    const auto& nodes = d.tree.nodes();
    // Parameters per node, accumulated bottom-up (nodes are in preorder).
    std::vector<quint64> params(nodes.size(), 0);
    for (std::size_t i = nodes.size(); i-- > 0;) {
        for (const auto& t : nodes[i].tensors)
            if (t.is_parameter() && t.tied_to.empty())
                params[i] += t.numel();
        if (nodes[i].parent >= 0)
            params[static_cast<std::size_t>(nodes[i].parent)] += params[i];
    }
    for (std::size_t i = 0; i < nodes.size(); ++i) {
        ModuleRow r;
        r.name = QString::fromStdString(nodes[i].name);
        r.className = QString::fromStdString(nodes[i].class_name);
        r.bytes = bytes[i];
        r.parameters = params[i];
        r.parent = nodes[i].parent;
        r.children = QVector<int>(nodes[i].children.begin(), nodes[i].children.end());
        r.noSplit = nodes[i].no_split;
        for (const auto& t : nodes[i].tensors)
            if (!t.tied_to.empty())
                r.tiedTo = QString::fromStdString(t.tied_to);
        if (!nodes[i].tensors.empty())
            r.dtype = QString::fromLatin1(torch_name(nodes[i].tensors.front().dtype).data());
        s.modules.push_back(std::move(r));
    }
    return s;
}

} // namespace

void EngineWorker::describe(const QString& what)
{
    try {
        const ModelDescription d = describe_model(what.toStdString());
        Q_EMIT described(summarize(d));
    } catch (const std::exception& e) {
        Q_EMIT failed(what, QString::fromUtf8(e.what()));
    }
}

} // namespace layerwise::ui
