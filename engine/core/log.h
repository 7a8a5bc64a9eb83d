#pragma once
// The engine reports warnings and information through a callback the host installs
// (the CLI prints to stderr, the UI shows a log pane). No global state: a Logger is
// passed to whoever needs it; a default-constructed one discards messages.
#include <functional>
#include <string>

namespace layerwise {

enum class LogLevel { debug, info, warning };

class Logger {
public:
    using Sink = std::function<void(LogLevel, const std::string&)>;
    Logger() = default;
    explicit Logger(Sink sink) : m_sink(std::move(sink)) {}
    void info(const std::string& message) const { emit(LogLevel::info, message); }
    void warning(const std::string& message) const { emit(LogLevel::warning, message); }
    void debug(const std::string& message) const { emit(LogLevel::debug, message); }

private:
    void emit(LogLevel level, const std::string& message) const
    {
        if (m_sink)
            m_sink(level, message);
    }
    Sink m_sink;
};

} // namespace layerwise
