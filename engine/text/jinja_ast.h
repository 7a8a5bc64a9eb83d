#pragma once
// The syntax tree of a parsed template: jinja2's node types, reduced to what the
// interpreter needs. Every node keeps the line jinja2 assigns it, so runtime errors
// name the same template line Python's traceback would.
#include "text/jinja_value.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace layerwise::jinja {

struct Expr;
struct Stmt;
using ExprPtr = std::unique_ptr<Expr>;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

enum class ExprKind : std::uint8_t {
    constant, // value
    name,     // name
    nsref,    // ns_name.name (assignment target only)
    tuple,    // items
    list,     // items
    dict,     // items: key, value, key, value...
    getattr,  // a.name
    getitem,  // a[b]
    slice,    // a:b:c (each may be null)
    call,     // a(call)
    filter,   // a | name(call); a is null inside {% filter %} and {% set %} blocks
    test,     // a is name(call)
    cond,     // b if a else c (c may be null)
    logical_and,
    logical_or, // a and/or b
    logical_not, // not a
    negate,      // -a
    plus,        // +a
    binary,      // a op b
    concat,      // items joined with ~
    compare,     // a ops[0] items[0] ops[1] items[1]...
};

enum class BinOp : std::uint8_t { add, sub, mul, div, floordiv, mod, pow };
enum class CmpOp : std::uint8_t { eq, ne, lt, lteq, gt, gteq, in, notin };

struct CallSpec {
    std::vector<ExprPtr> args;
    std::vector<std::pair<std::string, ExprPtr>> kwargs;
    ExprPtr dyn_args;   // *args
    ExprPtr dyn_kwargs; // **kwargs
};

struct Expr {
    ExprKind kind = ExprKind::constant;
    int line = 1;
    Value value;
    std::string name;
    std::string ns_name;
    ExprPtr a, b, c;
    std::vector<ExprPtr> items;
    std::vector<CmpOp> ops;
    BinOp op = BinOp::add;
    CallSpec call;
};

enum class StmtKind : std::uint8_t {
    data,         // text
    output,       // {{ expr }}
    if_,          // branches, else_body
    for_,         // target in expr [if test] [recursive]: body else else_body
    set,          // target = expr
    set_block,    // {% set target %}body{% endset %}, optional filter chain in expr
    macro,        // text(params = defaults): body
    call_block,   // {% call(params) expr %}body{% endcall %}
    filter_block, // {% filter expr %}body{% endfilter %}
    with,         // assignments: body
    scope,        // body rendered in place in an inner scope ({% generation %}, {% block %})
    break_,
    continue_,
};

struct IfBranch {
    int line = 1;
    ExprPtr test;
    Body body;
};

struct Stmt {
    StmtKind kind = StmtKind::data;
    int line = 1;
    std::string text;
    ExprPtr expr;
    ExprPtr target;
    ExprPtr test;
    bool recursive = false;
    std::vector<IfBranch> branches;
    Body body;
    Body else_body;
    // macros and call blocks
    std::vector<std::string> params;
    std::vector<ExprPtr> defaults; // for the last defaults.size() params
    bool catch_varargs = false;
    bool catch_kwargs = false;
    bool catch_caller = false;
    std::vector<std::pair<ExprPtr, ExprPtr>> assignments; // with
};

} // namespace layerwise::jinja
