#include "api/planning.h"

#include "api/model_access.h"

namespace layerwise {

Plan plan_model(const Model& model, const PlanRequest& request)
{
    return make_plan(model.tree(), model.config(), request);
}

PipelinePlan plan_pipeline(const Model& model, const PlanRequest& request, const std::vector<Machine>& machines)
{
    return make_pipeline_plan(model.tree(), model.config(), request, machines);
}

Plan plan_with_layers_moved(const Model& model, const PlanRequest& request, const Plan& plan, int first, int last,
                            const Device& device)
{
    return move_layers_in_plan(model.tree(), model.config(), request, plan, first, last, device);
}

Plan plan_with_module_moved(const Model& model, PlanRequest& request, const Plan& plan, const std::string& module,
                            const Device& device)
{
    const ModuleTree& tree = model.tree();
    DeviceMap map = move_module(tree, plan.device_map, module, device);
    for (const auto& n : tree.nodes())
        for (const auto& t : n.tensors)
            if (!t.tied_to.empty() && t.tied_to.rfind(module + ".", 0) == 0 && device_of(map, t.full_name))
                map = move_module(tree, map, n.name, device);
    PlanRequest r = request;
    r.strategy = Strategy::custom;
    r.custom_map = std::move(map);
    Plan moved = make_plan(tree, model.config(), r);
    request = std::move(r);
    return moved;
}

WeightFormat weight_format_for(const Model& model, const std::string& quant, DType dtype)
{
    WeightFormat f = parse_weight_format(quant, dtype);
    if (model.gptq() && f.kind == WeightFormat::Kind::plain) {
        f.kind = WeightFormat::Kind::gptq;
        f.bits = model.gptq()->config.bits;
        f.group_size = model.gptq()->config.group_size;
    }
    return f;
}

std::vector<std::uint64_t> layer_bytes(const Model& model, const WeightFormat& format)
{
    const ModuleTree& tree = model.tree();
    std::vector<std::uint64_t> out;
    for (int block : tree.no_split_blocks()) {
        std::uint64_t bytes = 0;
        std::vector<int> stack{block};
        while (!stack.empty()) {
            const ModuleNode& n = tree.nodes()[static_cast<std::size_t>(stack.back())];
            stack.pop_back();
            for (const auto& t : n.tensors)
                bytes += tensor_bytes(tree, t, format);
            stack.insert(stack.end(), n.children.begin(), n.children.end());
        }
        out.push_back(bytes);
    }
    return out;
}

std::uint64_t model_bytes(const Model& model, const WeightFormat& format)
{
    std::uint64_t bytes = 0;
    for (const auto& n : model.tree().nodes())
        for (const auto& t : n.tensors)
            bytes += tensor_bytes(model.tree(), t, format);
    return bytes;
}

} // namespace layerwise
