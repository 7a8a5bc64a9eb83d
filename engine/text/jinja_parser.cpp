#include "text/jinja_parser.h"

#include "text/jinja_builtins.h"
#include "text/jinja_error.h"
#include "text/jinja_lexer.h"
#include "text/jinja_strings.h"

#include <algorithm>
#include <set>

namespace layerwise::jinja {

namespace {

using EndTokens = std::vector<std::string>; // tag names ("endfor", "else"...)

constexpr int max_parse_nesting = 256;

ExprPtr make_expr(ExprKind kind, int line)
{
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = line;
    return e;
}

bool can_assign(const Expr& e)
{
    switch (e.kind) {
    case ExprKind::name:
        return e.name != "true" && e.name != "false" && e.name != "none" && e.name != "True" && e.name != "False" &&
               e.name != "None";
    case ExprKind::nsref: return true;
    case ExprKind::tuple:
        return std::all_of(e.items.begin(), e.items.end(), [](const ExprPtr& i) { return can_assign(*i); });
    default: return false;
    }
}

const char* node_type_name(const Expr& e)
{
    switch (e.kind) {
    case ExprKind::constant: return "const";
    case ExprKind::tuple: return "tuple";
    case ExprKind::list: return "list";
    case ExprKind::dict: return "dict";
    case ExprKind::getattr: return "getattr";
    case ExprKind::getitem: return "getitem";
    case ExprKind::call: return "call";
    case ExprKind::filter: return "filter";
    case ExprKind::test: return "test";
    case ExprKind::cond: return "condexpr";
    default: return "expr";
    }
}

// Names read anywhere in a macro body (jinja2's find_undeclared for varargs/kwargs/caller).
void collect_names(const Expr* e, std::set<std::string>& out);
void collect_names(const Body& body, std::set<std::string>& out);

void collect_call(const CallSpec& c, std::set<std::string>& out)
{
    for (const auto& a : c.args)
        collect_names(a.get(), out);
    for (const auto& [k, v] : c.kwargs)
        collect_names(v.get(), out);
    collect_names(c.dyn_args.get(), out);
    collect_names(c.dyn_kwargs.get(), out);
}

void collect_names(const Expr* e, std::set<std::string>& out)
{
    if (!e)
        return;
    if (e->kind == ExprKind::name)
        out.insert(e->name);
    collect_names(e->a.get(), out);
    collect_names(e->b.get(), out);
    collect_names(e->c.get(), out);
    for (const auto& i : e->items)
        collect_names(i.get(), out);
    collect_call(e->call, out);
}

void collect_names(const Body& body, std::set<std::string>& out)
{
    for (const auto& s : body) {
        collect_names(s->expr.get(), out);
        collect_names(s->test.get(), out);
        for (const auto& br : s->branches) {
            collect_names(br.test.get(), out);
            collect_names(br.body, out);
        }
        collect_names(s->body, out);
        collect_names(s->else_body, out);
        for (const auto& d : s->defaults)
            collect_names(d.get(), out);
        for (const auto& [t, v] : s->assignments)
            collect_names(v.get(), out);
    }
}

// jinja2 refuses unknown filters and tests when it compiles the template, except in
// "soft" frames (if statements and inline if-expressions), where only running them fails.
void validate(const Expr* e, bool soft);

void validate_call(const CallSpec& c, bool soft)
{
    for (const auto& a : c.args)
        validate(a.get(), soft);
    for (const auto& [k, v] : c.kwargs)
        validate(v.get(), soft);
    validate(c.dyn_args.get(), soft);
    validate(c.dyn_kwargs.get(), soft);
}

void validate(const Expr* e, bool soft)
{
    if (!e)
        return;
    if (e->kind == ExprKind::cond)
        soft = true;
    if ((e->kind == ExprKind::filter || e->kind == ExprKind::test) && !soft) {
        const bool filter = e->kind == ExprKind::filter;
        if (!(filter ? is_jinja_filter(e->name) : is_jinja_test(e->name)))
            throw ChatTemplateError(ChatTemplateError::Kind::syntax, e->line,
                                    std::string("No ") + (filter ? "filter" : "test") + " named " +
                                        py_repr_string(e->name) + ".");
    }
    validate(e->a.get(), soft);
    validate(e->b.get(), soft);
    validate(e->c.get(), soft);
    for (const auto& i : e->items)
        validate(i.get(), soft);
    validate_call(e->call, soft);
}

void validate(const Body& body, bool soft)
{
    for (const auto& s : body) {
        switch (s->kind) {
        case StmtKind::if_:
            for (const auto& br : s->branches) {
                validate(br.test.get(), true);
                validate(br.body, true);
            }
            validate(s->else_body, true);
            break;
        case StmtKind::for_:
            validate(s->expr.get(), soft);
            validate(s->test.get(), false);
            validate(s->body, false);
            validate(s->else_body, false);
            break;
        case StmtKind::with:
            for (const auto& [t, v] : s->assignments)
                validate(v.get(), soft);
            validate(s->body, false);
            break;
        case StmtKind::call_block:
            validate(s->expr.get(), soft);
            for (const auto& d : s->defaults)
                validate(d.get(), false);
            validate(s->body, false);
            break;
        case StmtKind::macro:
            for (const auto& d : s->defaults)
                validate(d.get(), false);
            validate(s->body, false);
            break;
        case StmtKind::set_block:
        case StmtKind::filter_block:
            validate(s->expr.get(), false);
            validate(s->body, false);
            break;
        case StmtKind::scope: validate(s->body, false); break;
        default:
            validate(s->expr.get(), soft);
            validate(s->target.get(), soft);
            break;
        }
    }
}

class Parser {
public:
    explicit Parser(std::string_view source) : m_tokens(tokenize(source)) {}

    Body parse()
    {
        Body body = subparse(nullptr);
        validate(body, false);
        return body;
    }

private:
    // ---- token stream
    const Token& current() const { return m_tokens[m_pos]; }
    const Token& look() const { return m_tokens[std::min(m_pos + 1, m_tokens.size() - 1)]; }
    const Token& next()
    {
        const Token& t = m_tokens[m_pos];
        if (m_pos + 1 < m_tokens.size())
            ++m_pos;
        return t;
    }
    bool at(Tok t) const { return current().type == t; }
    bool at_name(std::string_view n) const { return current().type == Tok::name && current().text == n; }
    bool skip_if(Tok t)
    {
        if (!at(t))
            return false;
        next();
        return true;
    }
    bool skip_if_name(std::string_view n)
    {
        if (!at_name(n))
            return false;
        next();
        return true;
    }

    [[noreturn]] void fail(const std::string& message, int line) const
    {
        throw ChatTemplateError(ChatTemplateError::Kind::syntax, line, message);
    }
    [[noreturn]] void fail(const std::string& message) const { fail(message, current().line); }

    static std::string quote(const std::string& s) { return py_repr_string(s); }

    const Token& expect(Tok t)
    {
        if (!at(t)) {
            if (at(Tok::eof))
                fail("unexpected end of template, expected " + quote(describe(t)) + ".");
            fail("expected token " + quote(describe(t)) + ", got " + quote(describe(current())));
        }
        return next();
    }
    const Token& expect_name(std::string_view n)
    {
        if (!at_name(n)) {
            if (at(Tok::eof))
                fail("unexpected end of template, expected " + quote(std::string(n)) + ".");
            fail("expected token " + quote(std::string(n)) + ", got " + quote(describe(current())));
        }
        return next();
    }

    // ---- error helpers (jinja2's _fail_ut_eof)
    [[noreturn]] void fail_ut_eof(const std::string* name, const std::vector<EndTokens>& stack, int line)
    {
        std::set<std::string> expected;
        for (const auto& tokens : stack)
            expected.insert(tokens.begin(), tokens.end());
        std::string currently_looking;
        if (!stack.empty()) {
            for (std::size_t i = 0; i < stack.back().size(); ++i) {
                if (i)
                    currently_looking += " or ";
                currently_looking += quote(stack.back()[i]);
            }
        }
        std::string message = name ? "Encountered unknown tag " + quote(*name) + "." : "Unexpected end of template.";
        if (!currently_looking.empty()) {
            if (name && expected.count(*name))
                message += " You probably made a nesting mistake. Jinja is expecting this tag, but currently looking "
                           "for " +
                           currently_looking + ".";
            else
                message += " Jinja was looking for the following tags: " + currently_looking + ".";
        }
        if (!m_tag_stack.empty())
            message += " The innermost block that needs to be closed is " + quote(m_tag_stack.back()) + ".";
        fail(message, line);
    }
    [[noreturn]] void fail_eof(const EndTokens* end_tokens, int line)
    {
        auto stack = m_end_token_stack;
        if (end_tokens)
            stack.push_back(*end_tokens);
        fail_ut_eof(nullptr, stack, line);
    }

    bool at_any_name(const EndTokens& names) const
    {
        if (current().type != Tok::name)
            return false;
        return std::find(names.begin(), names.end(), current().text) != names.end();
    }

    // ---- statements
    Body subparse(const EndTokens* end_tokens)
    {
        Body body;
        if (end_tokens)
            m_end_token_stack.push_back(*end_tokens);
        struct Pop {
            Parser* p;
            bool active;
            ~Pop()
            {
                if (active)
                    p->m_end_token_stack.pop_back();
            }
        } pop{this, end_tokens != nullptr};
        while (!at(Tok::eof)) {
            const Token& token = current();
            if (token.type == Tok::data) {
                auto s = std::make_unique<Stmt>();
                s->kind = StmtKind::data;
                s->line = token.line;
                s->text = token.text;
                body.push_back(std::move(s));
                next();
            } else if (token.type == Tok::variable_begin) {
                next();
                auto s = std::make_unique<Stmt>();
                s->kind = StmtKind::output;
                s->expr = parse_tuple(false, true, nullptr, false, false);
                s->line = s->expr->line;
                body.push_back(std::move(s));
                expect(Tok::variable_end);
            } else if (token.type == Tok::block_begin) {
                next();
                if (end_tokens && at_any_name(*end_tokens))
                    return body;
                parse_statement(body);
                expect(Tok::block_end);
            } else {
                fail("internal parsing error");
            }
        }
        return body;
    }

    Body parse_statements(const EndTokens& end_tokens, bool drop_needle)
    {
        skip_if(Tok::colon);
        expect(Tok::block_end);
        Body body = subparse(&end_tokens);
        if (at(Tok::eof))
            fail_eof(&end_tokens, current().line);
        if (drop_needle)
            next();
        return body;
    }

    // Python's own recursion limit stops jinja2 on very deep nesting; Layerwise stops earlier
    // than its stack would, with a syntax error.
    struct NestingGuard {
        Parser* p;
        NestingGuard(Parser* parser, const char* what) : p(parser)
        {
            if (++p->m_nesting > max_parse_nesting)
                p->fail(std::string(what) + " nested too deeply (more than " + std::to_string(max_parse_nesting) +
                        " levels)");
        }
        ~NestingGuard() { --p->m_nesting; }
    };

    // Left-associative chains (a + b + c, x|f|g, a.b.c) build trees as deep as they are
    // long: each link counts as one level of nesting while the chain is parsed.
    struct ChainGuard {
        Parser* p;
        int links = 0;
        explicit ChainGuard(Parser* parser) : p(parser) {}
        void link()
        {
            ++links;
            if (++p->m_nesting > max_parse_nesting)
                p->fail("expressions nested too deeply (more than " + std::to_string(max_parse_nesting) + " levels)");
        }
        ~ChainGuard() { p->m_nesting -= links; }
    };

    void parse_statement(Body& out)
    {
        const NestingGuard guard(this, "statements");
        const Token& token = current();
        if (token.type != Tok::name)
            fail("tag name expected", token.line);
        const std::string name = token.text;
        m_tag_stack.push_back(name);
        struct Pop {
            Parser* p;
            bool active = true;
            ~Pop()
            {
                if (active)
                    p->m_tag_stack.pop_back();
            }
        } pop{this};
        if (name == "for")
            out.push_back(parse_for());
        else if (name == "if")
            out.push_back(parse_if());
        else if (name == "set")
            out.push_back(parse_set());
        else if (name == "macro")
            out.push_back(parse_macro());
        else if (name == "call")
            out.push_back(parse_call_block());
        else if (name == "filter")
            out.push_back(parse_filter_block());
        else if (name == "with")
            out.push_back(parse_with());
        else if (name == "print")
            parse_print(out);
        else if (name == "block")
            out.push_back(parse_block());
        else if (name == "generation")
            out.push_back(parse_generation());
        else if (name == "break" || name == "continue") {
            if (m_loop_depth == 0)
                fail("'" + name + "' outside loop", token.line);
            auto s = std::make_unique<Stmt>();
            s->kind = name == "break" ? StmtKind::break_ : StmtKind::continue_;
            s->line = next().line;
            out.push_back(std::move(s));
        } else if (name == "extends" || name == "include" || name == "import" || name == "from") {
            throw UnsupportedError("chat template line " + std::to_string(token.line) + ": {% " + name +
                                   " %} needs other template files, which chat templates cannot have");
        } else if (name == "autoescape") {
            throw UnsupportedError("chat template line " + std::to_string(token.line) +
                                   ": {% autoescape %} (HTML escaping) is not supported in Layerwise chat templates");
        } else {
            m_tag_stack.pop_back();
            pop.active = false;
            fail_ut_eof(&name, m_end_token_stack, token.line);
        }
    }

    StmtPtr parse_for()
    {
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::for_;
        s->line = expect_name("for").line;
        const EndTokens in_rule{"in"};
        s->target = parse_assign_target(true, false, &in_rule, false);
        expect_name("in");
        const EndTokens recursive_rule{"recursive"};
        s->expr = parse_tuple(false, false, &recursive_rule, false, false);
        if (skip_if_name("if")) {
            s->test = parse_expression(true);
        }
        s->recursive = skip_if_name("recursive");
        ++m_loop_depth;
        s->body = parse_statements({"endfor", "else"}, false);
        --m_loop_depth;
        if (next().text != "endfor")
            s->else_body = parse_statements({"endfor"}, true);
        return s;
    }

    StmtPtr parse_if()
    {
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::if_;
        s->line = expect_name("if").line;
        int line = s->line;
        while (true) {
            IfBranch branch;
            branch.line = line;
            branch.test = parse_tuple(false, false, nullptr, false, false);
            branch.body = parse_statements({"elif", "else", "endif"}, false);
            s->branches.push_back(std::move(branch));
            const Token& token = next();
            if (token.type == Tok::name && token.text == "elif") {
                line = current().line;
                continue;
            }
            if (token.type == Tok::name && token.text == "else")
                s->else_body = parse_statements({"endif"}, true);
            break;
        }
        return s;
    }

    StmtPtr parse_set()
    {
        auto s = std::make_unique<Stmt>();
        s->line = next().line;
        s->target = parse_assign_target(true, false, nullptr, true);
        if (skip_if(Tok::assign)) {
            s->kind = StmtKind::set;
            s->expr = parse_tuple(false, true, nullptr, false, false);
            return s;
        }
        s->kind = StmtKind::set_block;
        s->expr = parse_filter(nullptr, false);
        s->body = parse_statements({"endset"}, true);
        return s;
    }

    void parse_signature(Stmt& s)
    {
        expect(Tok::lparen);
        while (!at(Tok::rparen)) {
            if (!s.params.empty())
                expect(Tok::comma);
            auto arg = parse_assign_target(false, true, nullptr, false);
            if (skip_if(Tok::assign))
                s.defaults.push_back(parse_expression(true));
            else if (!s.defaults.empty())
                fail("non-default argument follows default argument");
            s.params.push_back(arg->name);
        }
        expect(Tok::rparen);
    }

    void analyse_macro(Stmt& s)
    {
        std::set<std::string> names;
        collect_names(s.body, names);
        s.catch_varargs = names.count("varargs") > 0;
        s.catch_kwargs = names.count("kwargs") > 0;
        s.catch_caller = names.count("caller") > 0;
    }

    StmtPtr parse_macro()
    {
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::macro;
        s->line = next().line;
        s->text = parse_assign_target(false, true, nullptr, false)->name;
        const int loops = m_loop_depth;
        m_loop_depth = 0;
        parse_signature(*s);
        s->body = parse_statements({"endmacro"}, true);
        m_loop_depth = loops;
        analyse_macro(*s);
        return s;
    }

    StmtPtr parse_call_block()
    {
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::call_block;
        s->line = next().line;
        if (at(Tok::lparen))
            parse_signature(*s);
        s->expr = parse_expression(true);
        if (s->expr->kind != ExprKind::call)
            fail("expected call", s->line);
        const int loops = m_loop_depth;
        m_loop_depth = 0;
        s->body = parse_statements({"endcall"}, true);
        m_loop_depth = loops;
        analyse_macro(*s);
        return s;
    }

    StmtPtr parse_filter_block()
    {
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::filter_block;
        s->line = next().line;
        s->expr = parse_filter(nullptr, true);
        s->body = parse_statements({"endfilter"}, true);
        return s;
    }

    StmtPtr parse_with()
    {
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::with;
        s->line = next().line;
        while (!at(Tok::block_end)) {
            if (!s->assignments.empty())
                expect(Tok::comma);
            auto target = parse_assign_target(true, false, nullptr, false);
            expect(Tok::assign);
            auto value = parse_expression(true);
            s->assignments.emplace_back(std::move(target), std::move(value));
        }
        s->body = parse_statements({"endwith"}, true);
        return s;
    }

    void parse_print(Body& out)
    {
        next();
        bool first = true;
        while (!at(Tok::block_end)) {
            if (!first)
                expect(Tok::comma);
            first = false;
            auto s = std::make_unique<Stmt>();
            s->kind = StmtKind::output;
            s->expr = parse_expression(true);
            s->line = s->expr->line;
            out.push_back(std::move(s));
        }
    }

    StmtPtr parse_block()
    {
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::scope;
        s->line = next().line;
        s->text = expect(Tok::name).text;
        skip_if_name("scoped");
        skip_if_name("required");
        if (at(Tok::sub))
            fail("Block names in Jinja have to be valid Python identifiers and may not contain hyphens, use an "
                 "underscore instead.");
        const int loops = m_loop_depth;
        m_loop_depth = 0;
        s->body = parse_statements({"endblock"}, true);
        m_loop_depth = loops;
        skip_if_name(s->text);
        return s;
    }

    StmtPtr parse_generation()
    {
        // transformers' AssistantTracker: {% generation %}...{% endgeneration %} renders its body in place.
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::scope;
        s->line = next().line;
        s->text = "generation";
        const int loops = m_loop_depth;
        m_loop_depth = 0;
        s->body = parse_statements({"endgeneration"}, true);
        m_loop_depth = loops;
        return s;
    }

    // ---- assignment targets
    ExprPtr parse_assign_target(bool with_tuple, bool name_only, const EndTokens* extra_end, bool with_namespace)
    {
        ExprPtr target;
        if (name_only) {
            const Token& t = expect(Tok::name);
            target = make_expr(ExprKind::name, t.line);
            target->name = t.text;
        } else if (with_tuple) {
            target = parse_tuple(true, true, extra_end, false, with_namespace);
        } else {
            target = parse_primary(with_namespace);
        }
        if (!can_assign(*target))
            fail(std::string("can't assign to ") + quote(node_type_name(*target)), target->line);
        return target;
    }

    // ---- expressions
    ExprPtr parse_expression(bool with_condexpr) { return with_condexpr ? parse_condexpr() : parse_or(); }

    ExprPtr parse_condexpr()
    {
        int line = current().line;
        ExprPtr expr1 = parse_or();
        ChainGuard chain(this);
        while (skip_if_name("if")) {
            chain.link();
            ExprPtr expr2 = parse_or();
            ExprPtr expr3;
            if (skip_if_name("else"))
                expr3 = parse_condexpr();
            auto node = make_expr(ExprKind::cond, line);
            node->a = std::move(expr2);
            node->b = std::move(expr1);
            node->c = std::move(expr3);
            expr1 = std::move(node);
            line = current().line;
        }
        return expr1;
    }

    ExprPtr parse_or()
    {
        int line = current().line;
        ExprPtr left = parse_and();
        ChainGuard chain(this);
        while (skip_if_name("or")) {
            chain.link();
            auto node = make_expr(ExprKind::logical_or, line);
            node->a = std::move(left);
            node->b = parse_and();
            left = std::move(node);
            line = current().line;
        }
        return left;
    }

    ExprPtr parse_and()
    {
        int line = current().line;
        ExprPtr left = parse_not();
        ChainGuard chain(this);
        while (skip_if_name("and")) {
            chain.link();
            auto node = make_expr(ExprKind::logical_and, line);
            node->a = std::move(left);
            node->b = parse_not();
            left = std::move(node);
            line = current().line;
        }
        return left;
    }

    ExprPtr parse_not()
    {
        const NestingGuard guard(this, "expressions");
        if (at_name("not")) {
            const int line = next().line;
            auto node = make_expr(ExprKind::logical_not, line);
            node->a = parse_not();
            return node;
        }
        return parse_compare();
    }

    ExprPtr parse_compare()
    {
        int line = current().line;
        ExprPtr expr = parse_math1();
        std::vector<CmpOp> ops;
        std::vector<ExprPtr> operands;
        while (true) {
            const Tok t = current().type;
            if (t == Tok::eq || t == Tok::ne || t == Tok::lt || t == Tok::lteq || t == Tok::gt || t == Tok::gteq) {
                next();
                ops.push_back(t == Tok::eq     ? CmpOp::eq
                              : t == Tok::ne   ? CmpOp::ne
                              : t == Tok::lt   ? CmpOp::lt
                              : t == Tok::lteq ? CmpOp::lteq
                              : t == Tok::gt   ? CmpOp::gt
                                               : CmpOp::gteq);
                operands.push_back(parse_math1());
            } else if (skip_if_name("in")) {
                ops.push_back(CmpOp::in);
                operands.push_back(parse_math1());
            } else if (at_name("not") && look().type == Tok::name && look().text == "in") {
                next();
                next();
                ops.push_back(CmpOp::notin);
                operands.push_back(parse_math1());
            } else {
                break;
            }
            line = current().line;
        }
        if (ops.empty())
            return expr;
        auto node = make_expr(ExprKind::compare, line);
        node->a = std::move(expr);
        node->ops = std::move(ops);
        node->items = std::move(operands);
        return node;
    }

    ExprPtr binary(BinOp op, ExprPtr left, ExprPtr right, int line)
    {
        auto node = make_expr(ExprKind::binary, line);
        node->op = op;
        node->a = std::move(left);
        node->b = std::move(right);
        return node;
    }

    ExprPtr parse_math1()
    {
        int line = current().line;
        ExprPtr left = parse_concat();
        ChainGuard chain(this);
        while (at(Tok::add) || at(Tok::sub)) {
            chain.link();
            const BinOp op = at(Tok::add) ? BinOp::add : BinOp::sub;
            next();
            left = binary(op, std::move(left), parse_concat(), line);
            line = current().line;
        }
        return left;
    }

    ExprPtr parse_concat()
    {
        const int line = current().line;
        std::vector<ExprPtr> args;
        args.push_back(parse_math2());
        while (at(Tok::tilde)) {
            next();
            args.push_back(parse_math2());
        }
        if (args.size() == 1)
            return std::move(args[0]);
        auto node = make_expr(ExprKind::concat, line);
        node->items = std::move(args);
        return node;
    }

    ExprPtr parse_math2()
    {
        int line = current().line;
        ExprPtr left = parse_pow();
        ChainGuard chain(this);
        while (at(Tok::mul) || at(Tok::div) || at(Tok::floordiv) || at(Tok::mod)) {
            chain.link();
            const Tok t = next().type;
            const BinOp op = t == Tok::mul ? BinOp::mul : t == Tok::div ? BinOp::div : t == Tok::floordiv ? BinOp::floordiv : BinOp::mod;
            left = binary(op, std::move(left), parse_pow(), line);
            line = current().line;
        }
        return left;
    }

    ExprPtr parse_pow()
    {
        int line = current().line;
        ExprPtr left = parse_unary(true);
        ChainGuard chain(this);
        while (at(Tok::pow)) {
            chain.link();
            next();
            left = binary(BinOp::pow, std::move(left), parse_unary(true), line);
            line = current().line;
        }
        return left;
    }

    ExprPtr parse_unary(bool with_filter)
    {
        const NestingGuard guard(this, "expressions");
        const int line = current().line;
        ExprPtr node;
        if (at(Tok::sub)) {
            next();
            node = make_expr(ExprKind::negate, line);
            node->a = parse_unary(false);
        } else if (at(Tok::add)) {
            next();
            node = make_expr(ExprKind::plus, line);
            node->a = parse_unary(false);
        } else {
            node = parse_primary(false);
        }
        node = parse_postfix(std::move(node));
        if (with_filter)
            node = parse_filter_expr(std::move(node));
        return node;
    }

    ExprPtr parse_primary(bool with_namespace)
    {
        const Token& token = current();
        ExprPtr node;
        if (token.type == Tok::name) {
            next();
            if (token.text == "true" || token.text == "True" || token.text == "false" || token.text == "False") {
                node = make_expr(ExprKind::constant, token.line);
                node->value = Value::boolean(token.text == "true" || token.text == "True");
            } else if (token.text == "none" || token.text == "None") {
                node = make_expr(ExprKind::constant, token.line);
                node->value = Value::none();
            } else if (with_namespace && at(Tok::dot)) {
                next();
                const Token& attr = expect(Tok::name);
                node = make_expr(ExprKind::nsref, token.line);
                node->ns_name = token.text;
                node->name = attr.text;
            } else {
                node = make_expr(ExprKind::name, token.line);
                node->name = token.text;
            }
        } else if (token.type == Tok::string) {
            const int line = token.line;
            std::string buf = next().text;
            while (at(Tok::string))
                buf += next().text;
            node = make_expr(ExprKind::constant, line);
            node->value = Value::string(std::move(buf));
        } else if (token.type == Tok::integer) {
            node = make_expr(ExprKind::constant, token.line);
            node->value = Value::integer(next().integer);
        } else if (token.type == Tok::floating) {
            node = make_expr(ExprKind::constant, token.line);
            node->value = Value::floating(next().floating);
        } else if (token.type == Tok::lparen) {
            next();
            node = parse_tuple(false, true, nullptr, true, false);
            expect(Tok::rparen);
        } else if (token.type == Tok::lbracket) {
            node = parse_list();
        } else if (token.type == Tok::lbrace) {
            node = parse_dict();
        } else {
            fail("unexpected " + quote(describe(token)), token.line);
        }
        return node;
    }

    bool is_tuple_end(const EndTokens* extra) const
    {
        const Tok t = current().type;
        if (t == Tok::variable_end || t == Tok::block_end || t == Tok::rparen)
            return true;
        return extra && at_any_name(*extra);
    }

    ExprPtr parse_tuple(bool simplified, bool with_condexpr, const EndTokens* extra_end, bool explicit_parentheses,
                        bool with_namespace)
    {
        int line = current().line;
        std::vector<ExprPtr> args;
        bool is_tuple = false;
        while (true) {
            if (!args.empty())
                expect(Tok::comma);
            if (is_tuple_end(extra_end))
                break;
            args.push_back(simplified ? parse_primary(with_namespace) : parse_expression(with_condexpr));
            if (at(Tok::comma))
                is_tuple = true;
            else
                break;
            line = current().line;
        }
        if (!is_tuple) {
            if (!args.empty())
                return std::move(args[0]);
            if (!explicit_parentheses)
                fail("Expected an expression, got " + quote(describe(current())));
        }
        auto node = make_expr(ExprKind::tuple, line);
        node->items = std::move(args);
        return node;
    }

    ExprPtr parse_list()
    {
        const Token& token = expect(Tok::lbracket);
        auto node = make_expr(ExprKind::list, token.line);
        while (!at(Tok::rbracket)) {
            if (!node->items.empty())
                expect(Tok::comma);
            if (at(Tok::rbracket))
                break;
            node->items.push_back(parse_expression(true));
        }
        expect(Tok::rbracket);
        return node;
    }

    ExprPtr parse_dict()
    {
        const Token& token = expect(Tok::lbrace);
        auto node = make_expr(ExprKind::dict, token.line);
        while (!at(Tok::rbrace)) {
            if (!node->items.empty())
                expect(Tok::comma);
            if (at(Tok::rbrace))
                break;
            node->items.push_back(parse_expression(true));
            expect(Tok::colon);
            node->items.push_back(parse_expression(true));
        }
        expect(Tok::rbrace);
        return node;
    }

    ExprPtr parse_postfix(ExprPtr node)
    {
        ChainGuard chain(this);
        while (true) {
            chain.link();
            if (at(Tok::dot) || at(Tok::lbracket))
                node = parse_subscript(std::move(node));
            else if (at(Tok::lparen))
                node = parse_call(std::move(node));
            else
                break;
        }
        return node;
    }

    ExprPtr parse_filter_expr(ExprPtr node)
    {
        ChainGuard chain(this);
        while (true) {
            chain.link();
            if (at(Tok::pipe))
                node = parse_filter(std::move(node), false);
            else if (at_name("is"))
                node = parse_test(std::move(node));
            else if (at(Tok::lparen))
                node = parse_call(std::move(node));
            else
                break;
        }
        return node;
    }

    ExprPtr parse_subscript(ExprPtr node)
    {
        const Token& token = next();
        if (token.type == Tok::dot) {
            const Token& attr = current();
            next();
            if (attr.type == Tok::name) {
                auto g = make_expr(ExprKind::getattr, token.line);
                g->a = std::move(node);
                g->name = attr.text;
                return g;
            }
            if (attr.type != Tok::integer)
                fail("expected name or number", attr.line);
            auto key = make_expr(ExprKind::constant, attr.line);
            key->value = Value::integer(attr.integer);
            auto g = make_expr(ExprKind::getitem, token.line);
            g->a = std::move(node);
            g->b = std::move(key);
            return g;
        }
        // lbracket
        std::vector<ExprPtr> args;
        while (!at(Tok::rbracket)) {
            if (!args.empty())
                expect(Tok::comma);
            args.push_back(parse_subscribed());
        }
        expect(Tok::rbracket);
        auto g = make_expr(ExprKind::getitem, token.line);
        g->a = std::move(node);
        if (args.size() == 1) {
            g->b = std::move(args[0]);
        } else {
            auto tuple = make_expr(ExprKind::tuple, token.line);
            tuple->items = std::move(args);
            g->b = std::move(tuple);
        }
        return g;
    }

    ExprPtr parse_subscribed()
    {
        const int line = current().line;
        ExprPtr start;
        if (at(Tok::colon)) {
            next();
        } else {
            ExprPtr node = parse_expression(true);
            if (!at(Tok::colon))
                return node;
            next();
            start = std::move(node);
        }
        auto slice = make_expr(ExprKind::slice, line);
        slice->a = std::move(start);
        if (!at(Tok::colon) && !at(Tok::rbracket) && !at(Tok::comma))
            slice->b = parse_expression(true);
        if (at(Tok::colon)) {
            next();
            if (!at(Tok::rbracket) && !at(Tok::comma))
                slice->c = parse_expression(true);
        }
        return slice;
    }

    void parse_call_args(CallSpec& spec)
    {
        const Token& token = expect(Tok::lparen);
        const int line = token.line;
        bool require_comma = false;
        auto ensure = [&](bool ok) {
            if (!ok)
                fail("invalid syntax for function call expression", line);
        };
        while (!at(Tok::rparen)) {
            if (require_comma) {
                expect(Tok::comma);
                if (at(Tok::rparen))
                    break;
            }
            if (at(Tok::mul)) {
                ensure(!spec.dyn_args && !spec.dyn_kwargs);
                next();
                spec.dyn_args = parse_expression(true);
            } else if (at(Tok::pow)) {
                ensure(!spec.dyn_kwargs);
                next();
                spec.dyn_kwargs = parse_expression(true);
            } else if (at(Tok::name) && look().type == Tok::assign) {
                ensure(!spec.dyn_kwargs);
                std::string key = current().text;
                next();
                next();
                spec.kwargs.emplace_back(std::move(key), parse_expression(true));
            } else {
                ensure(!spec.dyn_args && !spec.dyn_kwargs && spec.kwargs.empty());
                spec.args.push_back(parse_expression(true));
            }
            require_comma = true;
        }
        expect(Tok::rparen);
    }

    ExprPtr parse_call(ExprPtr node)
    {
        const int line = current().line;
        auto call = make_expr(ExprKind::call, line);
        call->a = std::move(node);
        parse_call_args(call->call);
        return call;
    }

    ExprPtr parse_filter(ExprPtr node, bool start_inline)
    {
        ChainGuard chain(this);
        while (at(Tok::pipe) || start_inline) {
            chain.link();
            if (!start_inline)
                next();
            const Token& token = expect(Tok::name);
            const int line = token.line;
            std::string name = token.text;
            while (at(Tok::dot)) {
                next();
                name += "." + expect(Tok::name).text;
            }
            auto f = make_expr(ExprKind::filter, line);
            f->a = std::move(node);
            f->name = name;
            if (at(Tok::lparen))
                parse_call_args(f->call);
            node = std::move(f);
            start_inline = false;
        }
        return node;
    }

    ExprPtr parse_test(ExprPtr node)
    {
        const int line = next().line;
        const bool negated = skip_if_name("not");
        std::string name = expect(Tok::name).text;
        while (at(Tok::dot)) {
            next();
            name += "." + expect(Tok::name).text;
        }
        auto t = make_expr(ExprKind::test, line);
        t->a = std::move(node);
        t->name = name;
        const Tok ct = current().type;
        if (ct == Tok::lparen) {
            parse_call_args(t->call);
        } else if ((ct == Tok::name || ct == Tok::string || ct == Tok::integer || ct == Tok::floating ||
                    ct == Tok::lbracket || ct == Tok::lbrace) &&
                   !at_name("else") && !at_name("or") && !at_name("and")) {
            if (at_name("is"))
                fail("You cannot chain multiple tests with is");
            ExprPtr arg = parse_primary(false);
            arg = parse_postfix(std::move(arg));
            t->call.args.push_back(std::move(arg));
        }
        if (!negated)
            return t;
        auto n = make_expr(ExprKind::logical_not, line);
        n->a = std::move(t);
        return n;
    }

    std::vector<Token> m_tokens;
    std::size_t m_pos = 0;
    std::vector<std::string> m_tag_stack;
    std::vector<EndTokens> m_end_token_stack;
    int m_loop_depth = 0;
    int m_nesting = 0;
};

} // namespace

Body parse_template(std::string_view source)
{
    return Parser(source).parse();
}

} // namespace layerwise::jinja
