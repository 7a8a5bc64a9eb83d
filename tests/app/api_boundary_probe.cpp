// Built only by ctest api_boundary, which expects it NOT to compile: it is linked like app/ and
// ui/ (layerwise_engine alone) and includes an engine internal. If this ever compiles, the
// build no longer keeps programs outside the engine on the engine API.
#include "api/layerwise.h"
#include "runtime/runner.h"

int main()
{
    return 0;
}
