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

// ---- a symbol both libsentencepiece and LibTorch's libc10 export ---------------------------
// Debian's libsentencepiece and libc10 each define a global FLAGS_minloglevel: sentencepiece's
// is a 32-byte flag object (a vtable, the value, a pointer), c10's a 4-byte int. The dynamic
// linker binds every reference to the first definition in load order, libc10's, so
// sentencepiece's static constructor built its object over libc10's int and the bytes after it,
// among them FLAGS_caffe2_use_fatal_for_enforce: every failed CAFFE_ENFORCE in LibTorch (a CPU
// allocation that fails, for one) then aborted the process instead of throwing. This
// definition, exported from every program that links the engine (engine/CMakeLists.txt), comes
// first in load order: both libraries bind to it and sentencepiece's object has room of its own.
// libc10 only reads it back as an int (its logging level is FLAGS_caffe2_log_level).
alignas(64) unsigned char FLAGS_minloglevel[64] = {};
