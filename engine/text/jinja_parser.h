#pragma once
// jinja2's recursive-descent parser over the token stream: the same grammar,
// precedence and error messages (TemplateSyntaxError texts) as jinja2 3.1.
#include "text/jinja_ast.h"

#include <string_view>

namespace layerwise::jinja {

// Throws ChatTemplateError(syntax) with jinja2's message and line.
Body parse_template(std::string_view source);

} // namespace layerwise::jinja
