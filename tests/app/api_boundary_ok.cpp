// Built only by ctest api_boundary_ok: the same target setup as api_boundary_probe, including
// the API alone, compiles — so api_boundary fails for the internal include and nothing else.
#include "api/layerwise.h"

int main()
{
    layerwise::PlanRequest request;
    return request.context > 0 ? 0 : 1;
}
