#include "core/error.h"

namespace layerwise {

void rethrow_with_context(const std::string& context)
{
    try {
        throw;
    } catch (const FormatError& e) {
        throw FormatError(context + ": " + e.what());
    } catch (const IoError& e) {
        throw IoError(context + ": " + e.what());
    } catch (const UnsupportedError& e) {
        throw UnsupportedError(context + ": " + e.what());
    } catch (const PlanError& e) {
        throw PlanError(context + ": " + e.what());
    } catch (const OutOfMemoryError& e) {
        throw OutOfMemoryError(context + ": " + e.what());
    } catch (const CancelledError&) {
        throw; // cancellation needs no location
    } catch (const Error& e) {
        throw Error(context + ": " + e.what());
    }
}

} // namespace layerwise
