#pragma once
// Planning a model on devices: pure functions of a Model and a PlanRequest (plan/plan.h holds
// the request, the plan and the planner's vocabulary). The devices of this machine come from
// detect_devices() (devices/inventory.h).
#include "api/model.h"
#include "devices/inventory.h"
#include "plan/pipeline.h"
#include "plan/plan.h"
#include "plan/weight_format.h"

#include <cstdint>
#include <string>
#include <vector>

namespace layerwise {

Plan plan_model(const Model& model, const PlanRequest& request);

// The model's layers over this machine (`request`'s devices) and `machines` running
// `layerwise worker` (describe_machine() in api/remote.h gives them): plan/pipeline.h.
PipelinePlan plan_pipeline(const Model& model, const PlanRequest& request, const std::vector<Machine>& machines);

// Layers first..last (decoder blocks) moved to `device` in `plan`, re-judged.
Plan plan_with_layers_moved(const Model& model, const PlanRequest& request, const Plan& plan, int first, int last,
                            const Device& device);
// One module moved to `device` (with the weights tied to it: tied weights are one storage on
// one device), re-judged. `request` becomes the custom request of the new plan.
Plan plan_with_module_moved(const Model& model, PlanRequest& request, const Plan& plan, const std::string& module,
                            const Device& device);

// The format the planner sizes for loading `model` with `quant` ("none", "int8", "nf4-dq"...):
// for a GPTQ checkpoint loaded as it is, its own ("gptq-4bit-128g").
WeightFormat weight_format_for(const Model& model, const std::string& quant, DType dtype);

// Bytes of each decoder block in `format`, in order.
std::vector<std::uint64_t> layer_bytes(const Model& model, const WeightFormat& format);
// Bytes of all the model's tensors in `format`.
std::uint64_t model_bytes(const Model& model, const WeightFormat& format);

} // namespace layerwise
