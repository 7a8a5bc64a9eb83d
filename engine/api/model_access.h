#pragma once
// Inside the engine API: the description a Model wraps (not a public header).
#include "api/model.h"
#include "inspect.h"

namespace layerwise {

struct ModelAccess {
    static ModelDescription& description(Model& m) { return *m.m_description; }
    static const ModelDescription& description(const Model& m) { return *m.m_description; }
};

} // namespace layerwise
