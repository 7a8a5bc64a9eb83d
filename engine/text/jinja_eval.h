#pragma once
// The tree-walking interpreter: jinja2's runtime semantics as transformers sets
// them up (ImmutableSandboxedEnvironment, default Undefined, loop controls).
// Scopes follow jinja2: `for` bodies, macros, `with` and set-blocks get their own
// scope; `if` does not; namespaces are the one mutable object.
#include "text/jinja_ast.h"
#include "text/jinja_value.h"

#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

namespace layerwise::jinja {

struct Scope {
    std::unordered_map<std::string, Value> vars;
    std::shared_ptr<Scope> parent;
    Scope() = default;
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;
    ~Scope(); // releases its variables without deep recursion
    // Moves the variables into `out` (used to break reference cycles after a render).
    void take_vars(std::vector<Value>& out);
};
using ScopePtr = std::shared_ptr<Scope>;

// jinja2's Namespace, as transformers' TemplateNamespace (underscore names refused).
class NamespaceObject : public Object {
public:
    ~NamespaceObject() override;
    DictData attrs;
    std::string type_name() const override { return "TemplateNamespace"; }
    std::string module_name() const override { return "transformers.utils.chat_template_utils"; }
    std::string repr() const override;
    std::optional<Value> attribute(const std::string& name) override;
    void set(const std::string& name, Value value);
};

// A callable implemented in C++ (globals such as range(), loop.cycle...).
class NativeFunction : public Object {
public:
    using Fn = std::function<Value(Interpreter&, CallArgs&)>;
    // `nesting`: how deep the values the function holds nest (see Object::nesting).
    NativeFunction(std::string name, Fn fn, std::string type = "function", int nesting = 1)
        : m_name(std::move(name)), m_fn(std::move(fn)), m_type(std::move(type))
    {
        m_nesting = nesting;
        check_nesting(m_nesting);
    }
    std::string type_name() const override { return m_type; }
    std::string repr() const override { return "<" + m_type + " " + m_name + ">"; }
    bool is_callable() const override { return true; }
    Value call(Interpreter& interp, CallArgs& args) override { return m_fn(interp, args); }
    const std::string& name() const { return m_name; }

private:
    std::string m_name;
    Fn m_fn;
    std::string m_type;
};

// A method of a builtin value bound to it ("abc".upper, d.get...).
class BoundMethod : public Object {
public:
    BoundMethod(Value self, std::string name) : m_self(std::move(self)), m_name(std::move(name))
    {
        m_nesting = nesting_of(m_self) + 1;
        check_nesting(m_nesting);
    }
    std::string type_name() const override { return "builtin_function_or_method"; }
    std::string repr() const override { return "<built-in method " + m_name + " of " + jinja::type_name(m_self) + " object>"; }
    bool is_callable() const override { return true; }
    Value call(Interpreter& interp, CallArgs& args) override;

private:
    Value m_self;
    std::string m_name;
};

class Interpreter {
public:
    // `context` holds the render variables; `globals` the environment's functions.
    Interpreter(const Body& root, Value context, const DictData& globals);
    ~Interpreter();
    Interpreter(const Interpreter&) = delete;
    Interpreter& operator=(const Interpreter&) = delete;
    std::string render();

    // ---- used by the builtins
    Value getattr(const Value& obj, const std::string& name);
    Value getitem(const Value& obj, const Value& key);
    Value call(const Value& callee, CallArgs& args);
    Value filter(const std::string& name, const Value& input, CallArgs& args);
    bool test(const std::string& name, const Value& input, CallArgs& args);
    int line() const { return m_line; }
    // Objects that can close reference cycles (namespaces, scopes captured by macros and
    // recursive loops) are emptied when the render ends, so nothing leaks.
    void track(const std::shared_ptr<NamespaceObject>& ns) { m_namespaces.push_back(ns); }
    void track(const ScopePtr& scope) { m_captured.push_back(scope); }

    // Internal: called by macro and loop objects.
    struct MacroDef {
        const Stmt* stmt;
        ScopePtr closure;
        std::string name;
    };
    Value invoke_macro(const MacroDef& def, CallArgs& args);
    std::string render_loop(const Stmt& loop, const ScopePtr& scope, const Value& iterable, int depth0);

private:
    enum class Flow { normal, break_loop, continue_loop };

    Flow exec(const Body& body, const ScopePtr& scope, std::string& out);
    Flow exec_stmt(const Stmt& s, const ScopePtr& scope, std::string& out);
    void exec_for(const Stmt& s, const ScopePtr& scope, std::string& out, const Value& iterable, int depth0);
    Value eval(const Expr& e, const ScopePtr& scope);
    Value lookup(const std::string& name, const ScopePtr& scope) const;
    void assign(const Expr& target, const Value& value, const ScopePtr& scope);
    void eval_args(const CallSpec& spec, const ScopePtr& scope, CallArgs& out);
    Value eval_compare(const Expr& e, const ScopePtr& scope);
    Value filter_node(const std::string& name, const Value& input, CallArgs& args);
    bool test_node(const std::string& name, const Value& input, CallArgs& args);
    Value make_macro(const Stmt& s, const ScopePtr& scope, const std::string& name);

    const Body& m_root;
    ScopePtr m_globals;
    ScopePtr m_context;
    int m_line = 1;
    int m_depth = 0;
    std::vector<std::weak_ptr<NamespaceObject>> m_namespaces;
    std::vector<std::weak_ptr<Scope>> m_captured;
};

} // namespace layerwise::jinja
