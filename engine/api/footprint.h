#pragma once
// What a loaded model holds where (Session::footprint, and a pipeline worker's own share): its
// weights by their home device (tied weights once), its decoder blocks, and the KV caches given.
// Layers another machine runs (LoadedModel::remote) are not counted here, nor, without
// `with_globals`, the tensors outside the decoder blocks (a pipeline worker's are never read).
#include "api/session.h"

#include <vector>

namespace layerwise {

struct KvCache;
struct LoadedModel;

std::vector<LoadedFootprint> model_footprint(const LoadedModel& model, const std::vector<const KvCache*>& caches,
                                             bool with_globals = true);

} // namespace layerwise
