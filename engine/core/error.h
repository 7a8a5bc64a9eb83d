#pragma once
// Typed exceptions the engine throws. Each message says what is wrong, where
// (file, tensor, byte offset) and what to do. Exactly one boundary catches them:
// the CLI prints "error: ..." and exits non-zero; the UI's worker turns them into a dialog.
#include <stdexcept>
#include <string>

namespace layerwise {

class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// A file or folder whose content is malformed or contradicts itself.
class FormatError : public Error {
public:
    using Error::Error;
};

// A file or folder that cannot be opened or read (missing, no permission).
class IoError : public Error {
public:
    using Error::Error;
};

// Something well-formed that Layerwise does not handle (an unknown architecture, dtype...).
class UnsupportedError : public Error {
public:
    using Error::Error;
};

class PlanError : public Error {
public:
    using Error::Error;
};

class OutOfMemoryError : public Error {
public:
    using Error::Error;
};

// Another machine of a pipeline (a `layerwise worker`) cannot be reached, refused to join, or
// stopped answering; the message names it.
class RemoteError : public Error {
public:
    RemoteError(const std::string& what, std::string address = {}) : Error(what), m_address(std::move(address)) {}
    // "host:port" of the worker at fault ("" when none is known).
    const std::string& address() const { return m_address; }

private:
    std::string m_address;
};

class CancelledError : public Error {
public:
    using Error::Error;
};

// Re-throws the active exception of the same type with `context` prefixed, so each
// stage of a pipeline can say where it was ("reading model.safetensors: ...").
[[noreturn]] void rethrow_with_context(const std::string& context);

} // namespace layerwise
