// Chat templates: byte-identical to Python jinja2 as transformers configures it.
// Expected outputs and errors come from tests/reference/make_chat_template_fixtures.py
// (jinja2 through transformers' own environment and apply_chat_template); the shared
// tokenizers' templates are read from ../shared/data at test time, never copied.
#include "testdata.h"

#include "core/error.h"
#include "text/chat_template.h"

#include <QDate>

using namespace layerwise;
using layerwise::test::throws_with;
using ordered_json = nlohmann::ordered_json;

namespace {

const ordered_json& fixture(const char* name)
{
    static std::map<std::string, ordered_json> cache;
    auto it = cache.find(name);
    if (it == cache.end())
        it = cache.emplace(name, ordered_json::parse(test::read_file(test::fixtures() / "chat_templates" / name))).first;
    return it->second;
}

const char* kind_name(ChatTemplateError::Kind k)
{
    switch (k) {
    case ChatTemplateError::Kind::syntax: return "syntax";
    case ChatTemplateError::Kind::runtime: return "runtime";
    case ChatTemplateError::Kind::raised: return "raised";
    }
    return "?";
}

QString shorten(const std::string& s)
{
    QString q = QString::fromStdString(s).replace('\n', "\\n");
    return q.size() > 70 ? q.left(67) + "..." : q;
}

// Runs `render`, then compares with the case's "expected" output or "error"
// ({kind, message, line}); kind "input" is an error transformers raises before rendering.
void check_case(const ordered_json& c, const std::function<std::string()>& render)
{
    std::string output, reason, kind;
    int line = -1;
    try {
        output = render();
        kind = "ok";
    } catch (const ChatTemplateError& e) {
        reason = e.reason();
        kind = kind_name(e.kind());
        line = e.line();
        // the full message names the line, as the house rules ask
        QVERIFY2(std::string(e.what()).rfind("chat template line " + std::to_string(e.line()) + ": ", 0) == 0, e.what());
    } catch (const Error& e) {
        reason = e.what();
        kind = "input";
    }
    if (c.contains("expected")) {
        QVERIFY2(kind == "ok", ("unexpected " + kind + " error at line " + std::to_string(line) + ": " + reason).c_str());
        QCOMPARE(QString::fromStdString(output), QString::fromStdString(c["expected"].get<std::string>()));
        return;
    }
    const auto& err = c["error"];
    QVERIFY2(kind != "ok", ("expected an error, got output: " + output).c_str());
    QCOMPARE(QString::fromStdString(kind), QString::fromStdString(err["kind"].get<std::string>()));
    const std::string message = err["message"].get<std::string>();
    if (kind == "input") {
        QVERIFY2(reason.find(message) != std::string::npos, reason.c_str());
        return;
    }
    QCOMPARE(QString::fromStdString(reason), QString::fromStdString(message));
    if (!err["line"].is_null())
        QCOMPARE(line, err["line"].get<int>());
}

ChatRequest request_for(const ordered_json& chats, const ordered_json& c)
{
    const auto& conv = chats["conversations"][c["conversation"].get<std::string>()];
    ChatRequest r;
    r.messages = conv["messages"];
    if (conv.contains("tools"))
        r.tools = conv["tools"];
    if (conv.contains("documents"))
        r.documents = conv["documents"];
    r.add_generation_prompt = c["add_generation_prompt"].get<bool>();
    r.variables = c["variables"];
    r.continue_final_message = c["continue_final_message"].get<std::string>();
    return r;
}

} // namespace

class TestChatTemplate : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void features_data();
    void features();
    void families_data();
    void families();
    void sharedTokenizers_data();
    void sharedTokenizers();
    void fallbackIsDocumented();
    void errorsNameTheLine();
    void raisedMessageSurfaces();
    void loaderSources();
    void loaderRejects();
    void keyOrderIsKept();
    void strftimeNow();
    void hostileTemplates();
};

// ---------------------------------------------------------------- reference fixtures

void TestChatTemplate::features_data()
{
    QTest::addColumn<int>("index");
    const auto& cases = fixture("features.json")["cases"];
    QVERIFY(cases.size() > 250);
    for (std::size_t i = 0; i < cases.size(); ++i)
        QTest::newRow(qPrintable(QString("%1 %2").arg(i).arg(shorten(cases[i]["template"].get<std::string>())))) << int(i);
}

void TestChatTemplate::features()
{
    QFETCH(int, index);
    const auto& f = fixture("features.json");
    const auto& c = f["cases"][std::size_t(index)];
    const auto& context = f["contexts"][c["context"].get<std::string>()];
    check_case(c, [&] { return ChatTemplate::parse(c["template"].get<std::string>()).render(context); });
}

void TestChatTemplate::families_data()
{
    QTest::addColumn<int>("index");
    const auto& cases = fixture("chats.json")["cases"];
    int rows = 0;
    for (std::size_t i = 0; i < cases.size(); ++i) {
        const auto& c = cases[i];
        if (!c.contains("template"))
            continue;
        QTest::newRow(qPrintable(QString("%1 %2/%3%4%5")
                                     .arg(i)
                                     .arg(QString::fromStdString(c["template"].get<std::string>()))
                                     .arg(QString::fromStdString(c["conversation"].get<std::string>()))
                                     .arg(c["add_generation_prompt"].get<bool>() ? " +prompt" : "")
                                     .arg(c["continue_final_message"].get<std::string>().empty() ? "" : " continue")))
            << int(i);
        ++rows;
    }
    QVERIFY(rows >= 100);
}

void TestChatTemplate::families()
{
    QFETCH(int, index);
    const auto& chats = fixture("chats.json");
    const auto& c = chats["cases"][std::size_t(index)];
    check_case(c, [&] {
        ChatTemplate t = ChatTemplate::parse(chats["templates"][c["template"].get<std::string>()].get<std::string>());
        for (auto it = c["special_tokens"].begin(); it != c["special_tokens"].end(); ++it)
            t.special_tokens[it.key()] = it.value().get<std::string>();
        return t.apply(request_for(chats, c));
    });
}

void TestChatTemplate::sharedTokenizers_data()
{
    QTest::addColumn<int>("index");
    const auto& cases = fixture("chats.json")["cases"];
    int rows = 0;
    for (std::size_t i = 0; i < cases.size(); ++i) {
        const auto& c = cases[i];
        if (!c.contains("shared"))
            continue;
        QTest::newRow(qPrintable(QString("%1 %2/%3%4 %5")
                                     .arg(i)
                                     .arg(QString::fromStdString(c["shared"].get<std::string>()))
                                     .arg(QString::fromStdString(c["conversation"].get<std::string>()))
                                     .arg(c["add_generation_prompt"].get<bool>() ? " +prompt" : "")
                                     .arg(QString::fromStdString(c["variables"].dump()))))
            << int(i);
        ++rows;
    }
    QVERIFY(rows >= 15);
}

void TestChatTemplate::sharedTokenizers()
{
    QFETCH(int, index);
    const auto& chats = fixture("chats.json");
    const auto& c = chats["cases"][std::size_t(index)];
    std::vector<std::string> warnings;
    Logger log([&](LogLevel level, const std::string& m) {
        if (level == LogLevel::warning)
            warnings.push_back(m);
    });
    const ChatTemplate t = load_chat_template(test::shared_data() / c["shared"].get<std::string>(), {}, log);
    // the fallback is flagged and warned about exactly when the tokenizer has no template
    QCOMPARE(t.is_fallback(), c["fallback"].get<bool>());
    QCOMPARE(warnings.size(), std::size_t(t.is_fallback() ? 1 : 0));
    // special tokens as transformers' tokenizer.special_tokens_map has them
    std::map<std::string, std::string> expected;
    for (auto it = c["special_tokens"].begin(); it != c["special_tokens"].end(); ++it)
        expected[it.key()] = it.value().get<std::string>();
    QVERIFY(t.special_tokens == expected);
    check_case(c, [&] { return t.apply(request_for(chats, c)); });
}

// ---------------------------------------------------------------- behaviour

void TestChatTemplate::fallbackIsDocumented()
{
    // the generator renders the fallback with its own copy of the text: both must agree
    QCOMPARE(QString::fromUtf8(chatml_fallback_template().data(), int(chatml_fallback_template().size())),
             QString::fromStdString(fixture("chats.json")["fallback_template"].get<std::string>()));
    test::TempDir dir;
    test::write_file(dir.path() / "tokenizer_config.json", R"({"eos_token": "</s>"})");
    std::string warning;
    const ChatTemplate t = load_chat_template(dir.path(), {}, Logger([&](LogLevel, const std::string& m) { warning = m; }));
    QVERIFY(t.is_fallback());
    QVERIFY(warning.find("ChatML fallback") != std::string::npos);
    ChatRequest r;
    r.messages = ordered_json::parse(R"([{"role": "user", "content": "Hi"}])");
    r.add_generation_prompt = true;
    QCOMPARE(t.apply(r), std::string("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"));
}

void TestChatTemplate::errorsNameTheLine()
{
    QString message;
    QVERIFY(throws_with<ChatTemplateError>([] { ChatTemplate::parse("a\nb\n{% if x %}\nnever closed"); },
                                           {"chat template line 4: Unexpected end of template", "'endif'"}, &message));
    QVERIFY(throws_with<FormatError>([] { ChatTemplate::parse("{{ x | no_such_filter }}"); },
                                     {"chat template line 1: No filter named 'no_such_filter'."}));
    const ChatTemplate t = ChatTemplate::parse("{% for m in messages %}\n{{ m.content.text.upper() }}\n{% endfor %}");
    try {
        t.render(ordered_json::parse(R"({"messages": [{"content": "plain string"}]})"));
        QFAIL("no error");
    } catch (const ChatTemplateError& e) {
        QCOMPARE(e.kind(), ChatTemplateError::Kind::runtime);
        QCOMPARE(e.line(), 2);
        QCOMPARE(e.reason(), std::string("'str object' has no attribute 'text'"));
    }
}

void TestChatTemplate::raisedMessageSurfaces()
{
    test::TempDir dir;
    test::write_file(dir.path() / "tokenizer_config.json", R"({
        "bos_token": {"__type": "AddedToken", "content": "<s>", "lstrip": false},
        "eos_token": "</s>",
        "chat_template": "{{ bos_token }}{% for m in messages %}{% if (m.role == 'user') != (loop.index0 % 2 == 0) %}\n{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}[{{ m.content }}]{% endfor %}"
    })");
    const ChatTemplate t = load_chat_template(dir.path() / "tokenizer_config.json");
    QCOMPARE(t.special_tokens.at("bos_token"), std::string("<s>"));
    ChatRequest ok;
    ok.messages = ordered_json::parse(R"([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}])");
    QCOMPARE(t.apply(ok), std::string("<s>[a][b]"));
    ChatRequest bad;
    bad.messages = ordered_json::parse(R"([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])");
    try {
        t.apply(bad);
        QFAIL("no error");
    } catch (const ChatTemplateError& e) {
        QCOMPARE(e.kind(), ChatTemplateError::Kind::raised);
        QCOMPARE(e.line(), 2);
        QCOMPARE(std::string(e.what()),
                 std::string("chat template line 2: Conversation roles must alternate user/assistant/user/assistant/..."));
    }
}

void TestChatTemplate::loaderSources()
{
    test::TempDir dir;
    const auto config = dir.path() / "tokenizer_config.json";
    test::write_file(config, R"({"chat_template": [
        {"name": "default", "template": "D{{ messages | length }}"},
        {"name": "tool_use", "template": "T{{ tools | length }}"}]})");
    ChatRequest r;
    r.messages = ordered_json::parse(R"([{"role": "user", "content": "x"}])");
    r.tools = ordered_json::parse(R"([{"type": "function"}])");
    QCOMPARE(load_chat_template(dir.path()).apply(r), std::string("D1"));
    QCOMPARE(load_chat_template(dir.path(), "tool_use").apply(r), std::string("T1"));
    QVERIFY(throws_with<FormatError>([&] { load_chat_template(dir.path(), "rag"); }, {"no chat template named 'rag'", "default, tool_use"}));
    // chat_template.jinja takes priority over the config, as in transformers
    test::write_file(dir.path() / "chat_template.jinja", "J{{ add_generation_prompt }}\n");
    const ChatTemplate j = load_chat_template(dir.path());
    QVERIFY(j.origin.find("chat_template.jinja") != std::string::npos);
    QCOMPARE(j.render(ordered_json::parse(R"({"add_generation_prompt": true})")), std::string("JTrue"));
    // several named templates without a default must be chosen explicitly
    test::TempDir several;
    test::write_file(several.path() / "tokenizer_config.json",
                     R"({"chat_template": [{"name": "a", "template": "A"}, {"name": "b", "template": "B"}]})");
    QVERIFY(throws_with<FormatError>([&] { load_chat_template(several.path()); }, {"none is named \"default\"", "a, b"}));
    QCOMPARE(load_chat_template(several.path(), "b").render(ordered_json::object()), std::string("B"));
}

void TestChatTemplate::loaderRejects()
{
    test::TempDir dir;
    QVERIFY(throws_with<IoError>([&] { load_chat_template(dir.path() / "missing"); }, {"does not exist"}));
    test::write_file(dir.path() / "tokenizer_config.json", "{ not json");
    QVERIFY(throws_with<FormatError>([&] { load_chat_template(dir.path()); }, {"tokenizer_config.json", "not valid JSON"}));
    test::write_file(dir.path() / "tokenizer_config.json", R"({"chat_template": 42})");
    QVERIFY(throws_with<FormatError>([&] { load_chat_template(dir.path()); }, {"chat_template must be a string"}));
    test::write_file(dir.path() / "tokenizer_config.json", R"({"chat_template": "{% for %}"})");
    QVERIFY(throws_with<ChatTemplateError>([&] { load_chat_template(dir.path()); }, {"chat template line 1", "tokenizer_config.json"}));
    // inputs transformers refuses
    const ChatTemplate t = ChatTemplate::parse("{{ messages }}");
    ChatRequest empty;
    QVERIFY(throws_with<FormatError>([&] { t.apply(empty); }, {"empty conversation"}));
    ChatRequest not_object;
    not_object.messages = ordered_json::parse(R"(["hello"])");
    QVERIFY(throws_with<FormatError>([&] { t.apply(not_object); }, {"Chat messages should be dicts"}));
    QVERIFY(throws_with<FormatError>([] { ChatTemplate::parse(std::string("{{ '\xff' }}")); }, {"not valid UTF-8"}));
    QVERIFY(throws_with<UnsupportedError>([] { ChatTemplate::parse("{% include 'other.jinja' %}"); }, {"include"}));
}

void TestChatTemplate::keyOrderIsKept()
{
    // Python dicts keep insertion order and transformers' tojson does not sort keys.
    const ChatTemplate t = ChatTemplate::parse("{{ tool | tojson }}|{% for k in tool %}{{ k }}{% endfor %}");
    const auto ordered = ordered_json::parse(R"({"tool": {"zeta": 1, "alpha": {"y": 2, "b": 3}}})");
    QCOMPARE(t.render(ordered), std::string(R"({"zeta": 1, "alpha": {"y": 2, "b": 3}}|zetaalpha)"));
    // a nlohmann::json (sorted) context renders in its own (sorted) order
    QCOMPARE(t.render(nlohmann::json::parse(R"({"tool": {"zeta": 1, "alpha": 2}})")), std::string(R"({"alpha": 2, "zeta": 1}|alphazeta)"));
}

void TestChatTemplate::strftimeNow()
{
    // transformers' strftime_now is datetime.now().strftime(format): compare with Qt's clock.
    const QString before = QDate::currentDate().toString("yyyy-MM-dd");
    const std::string got = ChatTemplate::parse("{{ strftime_now('%Y-%m-%d') }}").render(ordered_json::object());
    const QString after = QDate::currentDate().toString("yyyy-MM-dd");
    QVERIFY2(QString::fromStdString(got) == before || QString::fromStdString(got) == after, got.c_str());
}

void TestChatTemplate::hostileTemplates()
{
    // Bad input is normal input: each of these ends in an error, never a crash or a hang.
    const std::pair<std::string, const char*> cases[] = {
        {"{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}", "nested too deeply"},
        {"{{ " + std::string(3000, '[') + std::string(3000, ']') + " }}", "nested too deeply"},
        {"{{ 1" + [] { std::string s; for (int i = 0; i < 100000; ++i) s += " + 1"; return s; }() + " }}", "nested too deeply"},
        {"{{ x" + [] { std::string s; for (int i = 0; i < 100000; ++i) s += "|trim"; return s; }() + " }}", "nested too deeply"},
        {"{% set ns = namespace(l=[]) %}{% for i in range(100000) %}{% set ns.l = [ns.l] %}{% endfor %}", "nested more than"},
        {"{% set ns = namespace(g=none) %}{% for i in range(100000) %}{% set ns.g = [ns.g] | select %}{% endfor %}", "nested more than"},
        {"{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "maximum recursion depth exceeded"},
        {"{{ 'x' * 1000000000 }}", "larger than Layerwise allows"},
        {"{% for i in range(100001) %}{% endfor %}", "Range too big"},
        {"{{ 9223372036854775807 + 1 }}", "64"},
        {"{% set ns = namespace(l=[]) %}{% for i in range(64) %}{% set ns.l = [ns.l, ns.l] %}{% endfor %}{{ ns.l }}",
         "too large"},
    };
    for (const auto& entry : cases) {
        const std::string& source = entry.first;
        const char* needle = entry.second;
        QString message;
        const bool ok = throws_with<Error>([&] { ChatTemplate::parse(source).render(ordered_json::object()); }, {needle}, &message);
        QVERIFY2(ok, qPrintable(QString::fromStdString(source.substr(0, 60)) + " -> " + message));
    }
    std::string deep;
    for (int i = 0; i < 2000; ++i)
        deep += "{% if true %}";
    QVERIFY(throws_with<ChatTemplateError>([&] { ChatTemplate::parse(deep); }, {"nested too deeply"}));
    // a long chain of namespaces built forwards (each holding the next) is released without recursion
    const std::string chain = "{% set root = namespace(next=none) %}{% set ns = namespace(tail=root) %}"
                              "{% for i in range(100000) %}{% set n = namespace(next=none) %}{% set t = ns.tail %}"
                              "{% set t.next = n %}{% set ns.tail = n %}{% endfor %}{% set root = none %}"
                              "{% set ns.tail = none %}done";
    QCOMPARE(ChatTemplate::parse(chain).render(ordered_json::object()), std::string("done"));
    // cycles (a namespace holding itself, macros and the scope they close over) render fine and are broken afterwards
    QCOMPARE(ChatTemplate::parse("{% set ns = namespace() %}{% set ns.me = ns %}{% macro m() %}m{% endmacro %}{{ m() }}")
                 .render(ordered_json::object()),
             std::string("m"));
}

QTEST_GUILESS_MAIN(TestChatTemplate)
#include "tst_chat_template.moc"
