#pragma once
// The error a chat template reports: where in the template (1-based line) and
// what jinja2 would have said. what() reads "chat template line N: <reason>".
#include "core/error.h"

#include <string>

namespace layerwise {

class ChatTemplateError : public FormatError {
public:
    enum class Kind {
        syntax,  // the template does not parse (jinja2's TemplateSyntaxError)
        runtime, // rendering failed (undefined attribute, type error...)
        raised,  // the template called raise_exception(message)
    };
    ChatTemplateError(Kind kind, int line, std::string reason)
        : FormatError("chat template line " + std::to_string(line) + ": " + reason), m_kind(kind), m_line(line),
          m_reason(std::move(reason))
    {
    }
    Kind kind() const { return m_kind; }
    int line() const { return m_line; }
    // The message without the location, as jinja2 words it.
    const std::string& reason() const { return m_reason; }

private:
    Kind m_kind;
    int m_line;
    std::string m_reason;
};

} // namespace layerwise
