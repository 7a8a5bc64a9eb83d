#include "text/jinja_eval.h"

#include "text/jinja_builtins.h"
#include "text/jinja_error.h"
#include "text/jinja_strings.h"

#include <climits>

namespace layerwise::jinja {

namespace {

constexpr int max_call_depth = 200; // Python's recursion limit is reached at about this many nested macros
constexpr std::size_t max_output_bytes = 256u << 20;

std::string py_quoted(const std::string& s) { return py_repr_string(s); }

Value undefined_name(const std::string& name) { return Value::undefined(py_quoted(name) + " is undefined"); }

Value undefined_attribute(const Value& obj, const std::string& name)
{
    return Value::undefined(py_quoted(object_type_repr(obj)) + " has no attribute " + py_quoted(name));
}

Value undefined_element(const Value& obj, const Value& key)
{
    if (key.is_string())
        return undefined_attribute(obj, key.as_string());
    return Value::undefined(object_type_repr(obj) + " has no element " + repr(key));
}

Value unsafe_attribute(const Value& obj, const std::string& name)
{
    return Value::undefined("access to attribute " + py_quoted(name) + " of " + py_quoted(type_name(obj)) +
                            " object is unsafe.");
}

void check_namespace_name(const std::string& name)
{
    if (!name.empty() && name[0] == '_')
        throw RenderFailure("Chat templates cannot store underscore-prefixed attributes on a namespace, but got " +
                            py_quoted(name) + ". Please rename the attribute.");
}

// A macro (or the `caller` of a call block) as a callable value.
class MacroObject : public Object {
public:
    MacroObject(Interpreter::MacroDef def) : m_def(std::move(def)) {}
    std::string type_name() const override { return "Macro"; }
    std::string module_name() const override { return "jinja2.runtime"; }
    std::string repr() const override { return "<Macro " + py_quoted(m_def.name) + ">"; }
    bool is_callable() const override { return true; }
    Value call(Interpreter& interp, CallArgs& args) override { return interp.invoke_macro(m_def, args); }
    std::optional<Value> attribute(const std::string& name) override
    {
        const Stmt& s = *m_def.stmt;
        if (name == "name")
            return Value::string(m_def.name);
        if (name == "arguments") {
            ValueList names;
            for (const auto& p : s.params)
                names.push_back(Value::string(p));
            return Value::tuple(std::move(names));
        }
        if (name == "catch_kwargs")
            return Value::boolean(s.catch_kwargs);
        if (name == "catch_varargs")
            return Value::boolean(s.catch_varargs);
        if (name == "caller")
            return Value::boolean(s.catch_caller);
        return std::nullopt;
    }

private:
    Interpreter::MacroDef m_def;
};

// jinja2.runtime.LoopContext over a materialised sequence.
class LoopObject : public Object, public std::enable_shared_from_this<LoopObject> {
public:
    LoopObject(ValueList items, int depth0, const Stmt* recursive_loop, ScopePtr scope)
        : m_items(std::move(items)), m_depth0(depth0), m_recursive(recursive_loop), m_scope(std::move(scope))
    {
        m_nesting = nesting_of(m_items) + 1;
        check_nesting(m_nesting);
    }
    std::int64_t index0 = 0;

    std::string type_name() const override { return "LoopContext"; }
    std::string module_name() const override { return "jinja2.runtime"; }
    std::string repr() const override
    {
        return "<LoopContext " + std::to_string(index0 + 1) + "/" + std::to_string(m_items.size()) + ">";
    }
    bool truthy() const override { return !m_items.empty(); }
    std::optional<std::int64_t> length() const override { return static_cast<std::int64_t>(m_items.size()); }
    bool is_callable() const override { return true; }
    Value call(Interpreter& interp, CallArgs& args) override
    {
        if (!m_recursive)
            throw RenderFailure("The loop must have the 'recursive' marker to be called recursively.");
        ArgBinder a("loop", args, {{"iterable", std::nullopt}});
        return Value::string(interp.render_loop(*m_recursive, m_scope, a[0], m_depth0 + 1));
    }
    std::optional<Value> attribute(const std::string& name) override
    {
        const auto n = static_cast<std::int64_t>(m_items.size());
        if (name == "index")
            return Value::integer(index0 + 1);
        if (name == "index0")
            return Value::integer(index0);
        if (name == "revindex")
            return Value::integer(n - index0);
        if (name == "revindex0")
            return Value::integer(n - index0 - 1);
        if (name == "first")
            return Value::boolean(index0 == 0);
        if (name == "last")
            return Value::boolean(index0 == n - 1);
        if (name == "length")
            return Value::integer(n);
        if (name == "depth")
            return Value::integer(m_depth0 + 1);
        if (name == "depth0")
            return Value::integer(m_depth0);
        if (name == "previtem")
            return index0 > 0 ? m_items[static_cast<std::size_t>(index0 - 1)]
                              : Value::undefined("there is no previous item");
        if (name == "nextitem")
            return index0 + 1 < n ? m_items[static_cast<std::size_t>(index0 + 1)]
                                  : Value::undefined("there is no next item");
        if (name == "cycle") {
            auto self = shared_from_this();
            return Value::object(std::make_shared<NativeFunction>(
                "cycle",
                [self](Interpreter&, CallArgs& args) -> Value {
                    if (!args.keyword.empty())
                        throw RenderFailure("cycle() got an unexpected keyword argument " +
                                            py_quoted(args.keyword.front().first));
                    if (args.positional.empty())
                        throw RenderFailure("no items for cycling given");
                    const auto count = static_cast<std::int64_t>(args.positional.size());
                    return args.positional[static_cast<std::size_t>(self->index0 % count)];
                },
                "method", m_nesting + 1));
        }
        if (name == "changed") {
            auto self = shared_from_this();
            return Value::object(std::make_shared<NativeFunction>(
                "changed",
                [self](Interpreter&, CallArgs& args) -> Value {
                    Value current = Value::tuple(args.positional);
                    if (self->m_has_last && py_equal(self->m_last_changed, current))
                        return Value::boolean(false);
                    self->m_last_changed = current;
                    self->m_has_last = true;
                    return Value::boolean(true);
                },
                "method", m_nesting + 1));
        }
        return std::nullopt;
    }

private:
    ValueList m_items;
    int m_depth0;
    const Stmt* m_recursive;
    ScopePtr m_scope;
    Value m_last_changed;
    bool m_has_last = false;
};

ScopePtr child_of(const ScopePtr& parent)
{
    auto s = std::make_shared<Scope>();
    s->parent = parent;
    return s;
}

bool is_dunder(const std::string& name) { return name.size() > 4 && name.rfind("__", 0) == 0; }

} // namespace

// ---------------------------------------------------------------- objects declared in the header

Scope::~Scope()
{
    std::vector<Value> values;
    take_vars(values);
    release_deferred(std::move(values));
}

void Scope::take_vars(std::vector<Value>& out)
{
    for (auto& [name, value] : vars)
        out.push_back(std::move(value));
    vars.clear();
}

NamespaceObject::~NamespaceObject()
{
    std::vector<Value> values;
    for (auto& [k, v] : attrs.entries)
        values.push_back(std::move(v));
    attrs.entries.clear();
    release_deferred(std::move(values));
}

std::string NamespaceObject::repr() const { return "<Namespace " + jinja::repr(Value::dict(std::make_shared<DictData>(attrs))) + ">"; }

std::optional<Value> NamespaceObject::attribute(const std::string& name)
{
    if (const Value* v = attrs.find(name))
        return *v;
    return std::nullopt;
}

void NamespaceObject::set(const std::string& name, Value value)
{
    check_namespace_name(name);
    attrs.set(Value::string(name), std::move(value));
}

Value BoundMethod::call(Interpreter& interp, CallArgs& args) { return call_method(interp, m_self, m_name, args); }

// ---------------------------------------------------------------- Interpreter

Interpreter::Interpreter(const Body& root, Value context, const DictData& globals) : m_root(root)
{
    m_globals = std::make_shared<Scope>();
    for (const auto& [k, v] : globals.entries)
        m_globals->vars[k.as_string()] = v;
    m_context = child_of(m_globals);
    if (context.is_dict())
        for (const auto& [k, v] : context.as_dict().entries)
            if (k.is_string())
                m_context->vars[k.as_string()] = v;
}

Interpreter::~Interpreter()
{
    // Break the cycles a render can leave behind (a macro held by the scope it closes
    // over, a namespace holding itself): empty them all first, then release the values.
    std::vector<Value> values;
    for (const auto& weak : m_captured)
        if (auto scope = weak.lock())
            scope->take_vars(values);
    for (const auto& weak : m_namespaces)
        if (auto ns = weak.lock()) {
            for (auto& [k, v] : ns->attrs.entries)
                values.push_back(std::move(v));
            ns->attrs = DictData();
        }
    release_deferred(std::move(values));
}

std::string Interpreter::render()
{
    std::string out;
    auto root = child_of(m_context);
    try {
        exec(m_root, root, out);
    } catch (const TemplateRaised& e) {
        throw ChatTemplateError(ChatTemplateError::Kind::raised, m_line, e.what());
    } catch (const RenderFailure& e) {
        throw ChatTemplateError(ChatTemplateError::Kind::runtime, m_line, e.what());
    } catch (const Error&) {
        throw;
    } catch (const std::bad_alloc&) {
        throw;
    } catch (const std::exception& e) {
        throw ChatTemplateError(ChatTemplateError::Kind::runtime, m_line, e.what());
    }
    return out;
}

Value Interpreter::lookup(const std::string& name, const ScopePtr& scope) const
{
    for (const Scope* s = scope.get(); s; s = s->parent.get()) {
        const auto it = s->vars.find(name);
        if (it != s->vars.end())
            return it->second;
    }
    return undefined_name(name);
}

Interpreter::Flow Interpreter::exec(const Body& body, const ScopePtr& scope, std::string& out)
{
    for (const auto& s : body) {
        const Flow flow = exec_stmt(*s, scope, out);
        if (flow != Flow::normal)
            return flow;
    }
    return Flow::normal;
}

Interpreter::Flow Interpreter::exec_stmt(const Stmt& s, const ScopePtr& scope, std::string& out)
{
    switch (s.kind) {
    case StmtKind::data: out += s.text; return Flow::normal;
    case StmtKind::output: {
        m_line = s.line;
        const Value v = eval(*s.expr, scope);
        if (v.is_string())
            out += v.as_string();
        else
            out += to_str(v);
        if (out.size() > max_output_bytes)
            throw RenderFailure("the rendered text is too large (more than 256 MiB)");
        return Flow::normal;
    }
    case StmtKind::if_:
        for (const auto& branch : s.branches) {
            m_line = branch.line;
            if (truthy(eval(*branch.test, scope)))
                return exec(branch.body, scope, out);
        }
        return exec(s.else_body, scope, out);
    case StmtKind::for_: {
        m_line = s.line;
        const Value iterable = eval(*s.expr, scope);
        exec_for(s, scope, out, iterable, 0);
        return Flow::normal;
    }
    case StmtKind::set: {
        m_line = s.line;
        // jinja2 checks namespace targets before evaluating the value
        std::vector<const Expr*> refs;
        if (s.target->kind == ExprKind::nsref)
            refs.push_back(s.target.get());
        else if (s.target->kind == ExprKind::tuple)
            for (const auto& t : s.target->items)
                if (t->kind == ExprKind::nsref)
                    refs.push_back(t.get());
        for (const Expr* r : refs)
            if (!lookup(r->ns_name, scope).object_as<NamespaceObject>())
                throw RenderFailure("cannot assign attribute on non-namespace object");
        const Value v = eval(*s.expr, scope);
        assign(*s.target, v, scope);
        return Flow::normal;
    }
    case StmtKind::set_block: {
        auto inner = child_of(scope);
        std::string buffer;
        // jinja2 compiles these blocks inline: a break/continue inside leaves them unfinished
        if (const Flow flow = exec(s.body, inner, buffer); flow != Flow::normal)
            return flow;
        m_line = s.line;
        Value v = Value::string(std::move(buffer));
        if (s.expr) {
            // the filter chain's innermost input is the block's output
            std::vector<const Expr*> chain;
            for (const Expr* f = s.expr.get(); f; f = f->a.get())
                chain.push_back(f);
            for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
                CallArgs args;
                eval_args((*it)->call, inner, args);
                v = filter_node((*it)->name, v, args);
            }
        }
        if (s.target->kind == ExprKind::nsref && !lookup(s.target->ns_name, scope).object_as<NamespaceObject>())
            throw RenderFailure("cannot assign attribute on non-namespace object");
        assign(*s.target, v, scope);
        return Flow::normal;
    }
    case StmtKind::macro: scope->vars[s.text] = make_macro(s, scope, s.text); return Flow::normal;
    case StmtKind::call_block: {
        m_line = s.line;
        const Expr& call_expr = *s.expr;
        const Value callee = eval(*call_expr.a, scope);
        CallArgs args;
        eval_args(call_expr.call, scope, args);
        args.keyword.emplace_back("caller", make_macro(s, scope, "caller"));
        const Value result = call(callee, args);
        out += to_str(result);
        return Flow::normal;
    }
    case StmtKind::filter_block: {
        auto inner = child_of(scope);
        std::string buffer;
        if (const Flow flow = exec(s.body, inner, buffer); flow != Flow::normal)
            return flow;
        m_line = s.line;
        std::vector<const Expr*> chain;
        for (const Expr* f = s.expr.get(); f; f = f->a.get())
            chain.push_back(f);
        Value v = Value::string(std::move(buffer));
        for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
            CallArgs args;
            eval_args((*it)->call, inner, args);
            v = filter_node((*it)->name, v, args);
        }
        out += to_str(v);
        return Flow::normal;
    }
    case StmtKind::with: {
        m_line = s.line;
        auto inner = child_of(scope);
        for (const auto& [target, value] : s.assignments)
            assign(*target, eval(*value, scope), inner);
        return exec(s.body, inner, out);
    }
    case StmtKind::scope: {
        auto inner = child_of(scope);
        exec(s.body, inner, out);
        return Flow::normal;
    }
    case StmtKind::break_: return Flow::break_loop;
    case StmtKind::continue_: return Flow::continue_loop;
    }
    return Flow::normal;
}

void Interpreter::exec_for(const Stmt& s, const ScopePtr& scope, std::string& out, const Value& iterable, int depth0)
{
    if (!is_iterable(iterable))
        throw RenderFailure(py_quoted(type_name(iterable)) + " object is not iterable");
    ValueList items = iterate(iterable);
    if (s.test) {
        ValueList kept;
        for (auto& item : items) {
            auto test_scope = child_of(scope);
            m_line = s.line;
            assign(*s.target, item, test_scope);
            m_line = s.test->line;
            if (truthy(eval(*s.test, test_scope)))
                kept.push_back(std::move(item));
        }
        items = std::move(kept);
    }
    // jinja2 runs the else block unless an iteration reached the end of the body
    bool completed_iteration = false;
    if (!items.empty()) {
        if (s.recursive)
            track(scope);
        auto loop = std::make_shared<LoopObject>(items, depth0, s.recursive ? &s : nullptr,
                                                 s.recursive ? scope : ScopePtr());
        const Value loop_value = Value::object(loop);
        for (std::size_t i = 0; i < items.size(); ++i) {
            loop->index0 = static_cast<std::int64_t>(i);
            auto iteration = child_of(scope);
            iteration->vars["loop"] = loop_value;
            m_line = s.line;
            assign(*s.target, items[i], iteration);
            const Flow flow = exec(s.body, iteration, out);
            if (flow == Flow::break_loop)
                break;
            if (flow == Flow::normal)
                completed_iteration = true;
        }
    }
    if (!s.else_body.empty() && !completed_iteration) {
        auto else_scope = child_of(scope);
        exec(s.else_body, else_scope, out);
    }
}

std::string Interpreter::render_loop(const Stmt& loop, const ScopePtr& scope, const Value& iterable, int depth0)
{
    if (++m_depth > max_call_depth)
        throw RenderFailure("maximum recursion depth exceeded");
    const int saved_line = m_line;
    std::string out;
    exec_for(loop, scope, out, iterable, depth0);
    m_line = saved_line;
    --m_depth;
    return out;
}

void Interpreter::assign(const Expr& target, const Value& value, const ScopePtr& scope)
{
    switch (target.kind) {
    case ExprKind::name: scope->vars[target.name] = value; return;
    case ExprKind::nsref: {
        const Value ns = lookup(target.ns_name, scope);
        auto* obj = ns.object_as<NamespaceObject>();
        if (!obj)
            throw RenderFailure("cannot assign attribute on non-namespace object");
        obj->set(target.name, value);
        return;
    }
    case ExprKind::tuple: {
        if (!is_iterable(value) || value.is_undefined()) {
            if (value.is_undefined())
                throw RenderFailure(value.undefined_message());
            throw RenderFailure("cannot unpack non-iterable " + type_name(value) + " object");
        }
        const ValueList items = iterate(value);
        const std::size_t n = target.items.size();
        if (items.size() < n)
            throw RenderFailure("not enough values to unpack (expected " + std::to_string(n) + ", got " +
                                std::to_string(items.size()) + ")");
        if (items.size() > n)
            throw RenderFailure("too many values to unpack (expected " + std::to_string(n) + ")");
        for (std::size_t i = 0; i < n; ++i)
            assign(*target.items[i], items[i], scope);
        return;
    }
    default: throw RenderFailure("can't assign to this expression");
    }
}

Value Interpreter::make_macro(const Stmt& s, const ScopePtr& scope, const std::string& name)
{
    track(scope);
    return Value::object(std::make_shared<MacroObject>(MacroDef{&s, scope, name}));
}

Value Interpreter::invoke_macro(const MacroDef& def, CallArgs& args)
{
    const Stmt& s = *def.stmt;
    const std::size_t n = s.params.size();
    std::vector<std::optional<Value>> bound;
    for (std::size_t i = 0; i < n && i < args.positional.size(); ++i)
        bound.emplace_back(args.positional[i]);
    auto take_keyword = [&](const std::string& name) -> std::optional<Value> {
        for (auto it = args.keyword.begin(); it != args.keyword.end(); ++it)
            if (it->first == name) {
                Value v = it->second;
                args.keyword.erase(it);
                return v;
            }
        return std::nullopt;
    };
    bool found_caller = false;
    const bool explicit_caller = std::find(s.params.begin(), s.params.end(), "caller") != s.params.end();
    if (bound.size() != n) {
        for (std::size_t i = bound.size(); i < n; ++i) {
            bound.push_back(take_keyword(s.params[i]));
            if (s.params[i] == "caller")
                found_caller = true;
        }
    } else {
        found_caller = explicit_caller;
    }
    std::optional<Value> caller;
    if (s.catch_caller && !found_caller) {
        caller = take_keyword("caller");
        if (!caller || caller->is_none())
            caller = Value::undefined("No caller defined");
    }
    Value kwargs_value;
    if (s.catch_kwargs) {
        auto d = std::make_shared<DictData>();
        for (auto& [k, v] : args.keyword)
            d->set(Value::string(k), v);
        kwargs_value = Value::dict(std::move(d));
    } else if (!args.keyword.empty()) {
        for (const auto& [k, v] : args.keyword)
            if (k == "caller")
                throw RenderFailure("macro " + py_quoted(def.name) +
                                    " was invoked with two values for the special caller argument. This is most "
                                    "likely a bug.");
        throw RenderFailure("macro " + py_quoted(def.name) + " takes no keyword argument " +
                            py_quoted(args.keyword.front().first));
    }
    Value varargs_value;
    if (s.catch_varargs) {
        ValueList rest;
        for (std::size_t i = n; i < args.positional.size(); ++i)
            rest.push_back(args.positional[i]);
        varargs_value = Value::tuple(std::move(rest));
    } else if (args.positional.size() > n) {
        throw RenderFailure("macro " + py_quoted(def.name) + " takes not more than " + std::to_string(n) +
                            " argument(s)");
    }

    if (++m_depth > max_call_depth)
        throw RenderFailure("maximum recursion depth exceeded");
    const int saved_line = m_line;
    auto frame = child_of(def.closure);
    if (s.catch_varargs)
        frame->vars["varargs"] = varargs_value;
    if (s.catch_kwargs)
        frame->vars["kwargs"] = kwargs_value;
    if (caller)
        frame->vars["caller"] = *caller;
    const std::size_t first_default = n - s.defaults.size();
    for (std::size_t i = 0; i < n; ++i) {
        if (bound[i]) {
            frame->vars[s.params[i]] = *bound[i];
        } else if (i >= first_default) {
            frame->vars[s.params[i]] = eval(*s.defaults[i - first_default], frame);
        } else {
            frame->vars[s.params[i]] = Value::undefined("parameter " + py_quoted(s.params[i]) + " was not provided");
        }
    }
    std::string out;
    exec(s.body, frame, out);
    m_line = saved_line;
    --m_depth;
    return Value::string(std::move(out));
}

void Interpreter::eval_args(const CallSpec& spec, const ScopePtr& scope, CallArgs& out)
{
    for (const auto& a : spec.args)
        out.positional.push_back(eval(*a, scope));
    for (const auto& [k, v] : spec.kwargs)
        out.keyword.emplace_back(k, eval(*v, scope));
    if (spec.dyn_args) {
        const Value extra = eval(*spec.dyn_args, scope);
        if (!is_iterable(extra))
            throw RenderFailure("argument after * must be an iterable, not " + type_name(extra));
        for (auto& v : iterate(extra))
            out.positional.push_back(std::move(v));
    }
    if (spec.dyn_kwargs) {
        const Value extra = eval(*spec.dyn_kwargs, scope);
        if (!extra.is_dict())
            throw RenderFailure("argument after ** must be a mapping, not " + type_name(extra));
        for (const auto& [k, v] : extra.as_dict().entries) {
            if (!k.is_string())
                throw RenderFailure("keywords must be strings");
            out.keyword.emplace_back(k.as_string(), v);
        }
    }
}

Value Interpreter::getattr(const Value& obj, const std::string& name)
{
    if (obj.is_undefined()) {
        if (is_dunder(name))
            return unsafe_attribute(obj, name);
        throw RenderFailure(obj.undefined_message());
    }
    if (is_dunder(name))
        return unsafe_attribute(obj, name);
    if (obj.is_object()) {
        if (auto v = obj.as_object().attribute(name)) {
            if (!name.empty() && name[0] == '_')
                return unsafe_attribute(obj, name);
            return *v;
        }
        if (auto v = obj.as_object().item(Value::string(name)))
            return *v;
        return undefined_attribute(obj, name);
    }
    bool unsafe = false;
    if (auto v = builtin_attribute(obj, name, unsafe)) {
        if (unsafe || name[0] == '_')
            return unsafe_attribute(obj, name);
        return *v;
    }
    if (obj.is_dict())
        if (const Value* v = obj.as_dict().find(name))
            return *v;
    return undefined_attribute(obj, name);
}

Value Interpreter::getitem(const Value& obj, const Value& key)
{
    if (obj.is_undefined())
        throw RenderFailure(obj.undefined_message());
    switch (obj.type()) {
    case Value::Type::dict: {
        bool hashable = true;
        try {
            require_hashable(key);
        } catch (const RenderFailure&) {
            hashable = false;
        }
        if (hashable)
            if (const Value* v = obj.as_dict().find(key))
                return *v;
        break;
    }
    case Value::Type::list:
        if (obj.is_sequence_list() && key.is_integral()) {
            const auto& items = obj.items();
            std::int64_t i = key.as_int();
            const auto n = static_cast<std::int64_t>(items.size());
            if (i < 0)
                i += n;
            if (i >= 0 && i < n)
                return items[static_cast<std::size_t>(i)];
        }
        break;
    case Value::Type::string:
        if (key.is_integral()) {
            const std::string& s = obj.as_string();
            std::int64_t i = key.as_int();
            if (is_ascii(s)) {
                const auto n = static_cast<std::int64_t>(s.size());
                if (i < 0)
                    i += n;
                if (i >= 0 && i < n)
                    return Value::string(std::string(1, s[static_cast<std::size_t>(i)]));
            } else {
                const std::u32string u = to_u32(s);
                const auto n = static_cast<std::int64_t>(u.size());
                if (i < 0)
                    i += n;
                if (i >= 0 && i < n)
                    return Value::string(to_utf8(std::u32string_view(u).substr(static_cast<std::size_t>(i), 1)));
            }
        }
        break;
    case Value::Type::object:
        if (auto v = obj.as_object().item(key))
            return *v;
        break;
    default: break;
    }
    if (key.is_string()) {
        const std::string& name = key.as_string();
        if (is_dunder(name))
            return unsafe_attribute(obj, name);
        if (obj.is_object()) {
            if (auto v = obj.as_object().attribute(name))
                return name[0] == '_' ? unsafe_attribute(obj, name) : *v;
        } else {
            bool unsafe = false;
            if (auto v = builtin_attribute(obj, name, unsafe))
                return (unsafe || name[0] == '_') ? unsafe_attribute(obj, name) : *v;
        }
    }
    return undefined_element(obj, key);
}

Value Interpreter::call(const Value& callee, CallArgs& args)
{
    if (callee.is_undefined())
        throw RenderFailure(callee.undefined_message());
    if (callee.is_object() && callee.as_object().is_callable())
        return callee.as_object().call(*this, args);
    throw RenderFailure(py_quoted(type_name(callee)) + " object is not callable");
}

Value Interpreter::filter(const std::string& name, const Value& input, CallArgs& args)
{
    return apply_filter(*this, name, input, args);
}

Value Interpreter::filter_node(const std::string& name, const Value& input, CallArgs& args)
{
    // jinja2 compiles a reference to an unknown filter in an if/inline-if into a runtime error
    if (!is_jinja_filter(name))
        throw RenderFailure("No filter named " + py_quoted(name) + " found.");
    return apply_filter(*this, name, input, args);
}

bool Interpreter::test_node(const std::string& name, const Value& input, CallArgs& args)
{
    if (!is_jinja_test(name))
        throw RenderFailure("No test named " + py_quoted(name) + " found.");
    return apply_test(*this, name, input, args);
}

bool Interpreter::test(const std::string& name, const Value& input, CallArgs& args)
{
    return apply_test(*this, name, input, args);
}

Value Interpreter::eval_compare(const Expr& e, const ScopePtr& scope)
{
    Value left = eval(*e.a, scope);
    for (std::size_t i = 0; i < e.ops.size(); ++i) {
        Value right = eval(*e.items[i], scope);
        bool ok = false;
        switch (e.ops[i]) {
        case CmpOp::eq: ok = py_equal(left, right); break;
        case CmpOp::ne: ok = !py_equal(left, right); break;
        case CmpOp::lt: ok = py_compare(left, right, "<") < 0; break;
        case CmpOp::lteq: ok = py_compare(left, right, "<=") <= 0; break;
        case CmpOp::gt: ok = py_compare(left, right, ">") > 0; break;
        case CmpOp::gteq: ok = py_compare(left, right, ">=") >= 0; break;
        case CmpOp::in: ok = python_contains(right, left); break;
        case CmpOp::notin: ok = !python_contains(right, left); break;
        }
        if (!ok)
            return Value::boolean(false);
        left = std::move(right);
    }
    return Value::boolean(true);
}

Value Interpreter::eval(const Expr& e, const ScopePtr& scope)
{
    switch (e.kind) {
    case ExprKind::constant: return e.value;
    case ExprKind::name: return lookup(e.name, scope);
    case ExprKind::nsref: return getattr(lookup(e.ns_name, scope), e.name);
    case ExprKind::tuple:
    case ExprKind::list: {
        ValueList items;
        items.reserve(e.items.size());
        for (const auto& i : e.items)
            items.push_back(eval(*i, scope));
        return Value::list(std::move(items), e.kind == ExprKind::tuple ? ListKind::tuple : ListKind::list);
    }
    case ExprKind::dict: {
        auto d = std::make_shared<DictData>();
        for (std::size_t i = 0; i + 1 < e.items.size(); i += 2) {
            Value k = eval(*e.items[i], scope);
            Value v = eval(*e.items[i + 1], scope);
            require_hashable(k);
            d->set(std::move(k), std::move(v));
        }
        return Value::dict(std::move(d));
    }
    case ExprKind::getattr: return getattr(eval(*e.a, scope), e.name);
    case ExprKind::getitem: {
        const Value obj = eval(*e.a, scope);
        if (e.b->kind == ExprKind::slice) {
            const Expr& sl = *e.b;
            const Value start = sl.a ? eval(*sl.a, scope) : Value::none();
            const Value stop = sl.b ? eval(*sl.b, scope) : Value::none();
            const Value step = sl.c ? eval(*sl.c, scope) : Value::none();
            return python_slice(obj, start, stop, step);
        }
        return getitem(obj, eval(*e.b, scope));
    }
    case ExprKind::slice: throw RenderFailure("a slice is only valid inside []");
    case ExprKind::call: {
        const Value callee = eval(*e.a, scope);
        CallArgs args;
        eval_args(e.call, scope, args);
        return call(callee, args);
    }
    case ExprKind::filter: {
        const Value input = e.a ? eval(*e.a, scope) : Value();
        CallArgs args;
        eval_args(e.call, scope, args);
        return filter_node(e.name, input, args);
    }
    case ExprKind::test: {
        const Value input = eval(*e.a, scope);
        CallArgs args;
        eval_args(e.call, scope, args);
        return Value::boolean(test_node(e.name, input, args));
    }
    case ExprKind::cond:
        if (truthy(eval(*e.a, scope)))
            return eval(*e.b, scope);
        if (e.c)
            return eval(*e.c, scope);
        return Value::undefined("the inline if-expression on line " + std::to_string(e.line) +
                                " evaluated to false and no else section was defined.");
    case ExprKind::logical_and: {
        Value left = eval(*e.a, scope);
        if (!truthy(left))
            return left;
        return eval(*e.b, scope);
    }
    case ExprKind::logical_or: {
        Value left = eval(*e.a, scope);
        if (truthy(left))
            return left;
        return eval(*e.b, scope);
    }
    case ExprKind::logical_not: return Value::boolean(!truthy(eval(*e.a, scope)));
    case ExprKind::negate:
    case ExprKind::plus: {
        const Value v = eval(*e.a, scope);
        if (v.is_undefined())
            throw RenderFailure(v.undefined_message());
        const char* op = e.kind == ExprKind::negate ? "-" : "+";
        if (v.is_integral()) {
            if (e.kind == ExprKind::negate && v.as_int() == INT64_MIN)
                throw RenderFailure("integer result does not fit in 64 bits (Layerwise chat templates use 64-bit integers)");
            return Value::integer(e.kind == ExprKind::negate ? -v.as_int() : v.as_int());
        }
        if (v.is_float())
            return Value::floating(e.kind == ExprKind::negate ? -v.as_float() : v.as_float());
        throw RenderFailure(std::string("bad operand type for unary ") + op + ": " + py_quoted(type_name(v)));
    }
    case ExprKind::binary: {
        const Value a = eval(*e.a, scope);
        const Value b = eval(*e.b, scope);
        ArithOp op = ArithOp::add;
        switch (e.op) {
        case BinOp::add: op = ArithOp::add; break;
        case BinOp::sub: op = ArithOp::sub; break;
        case BinOp::mul: op = ArithOp::mul; break;
        case BinOp::div: op = ArithOp::div; break;
        case BinOp::floordiv: op = ArithOp::floordiv; break;
        case BinOp::mod: op = ArithOp::mod; break;
        case BinOp::pow: op = ArithOp::pow; break;
        }
        return arithmetic(*this, op, a, b);
    }
    case ExprKind::concat: {
        std::string out;
        for (const auto& i : e.items) {
            const Value v = eval(*i, scope);
            out += v.is_string() ? v.as_string() : to_str(v);
        }
        return Value::string(std::move(out));
    }
    case ExprKind::compare: return eval_compare(e, scope);
    }
    return Value();
}

} // namespace layerwise::jinja
