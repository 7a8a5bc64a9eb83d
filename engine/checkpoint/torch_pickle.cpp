#include "checkpoint/torch_pickle.h"

#include "core/error.h"

#include <cstring>
#include <map>
#include <memory>
#include <optional>

namespace layerwise {
namespace {

struct Value;
using ValuePtr = std::shared_ptr<Value>;

struct Value {
    enum class Kind { none, boolean, integer, real, string, tuple, list, dict, global, storage, tensor, mark };
    Kind kind = Kind::none;
    std::int64_t integer = 0;
    double real = 0;
    std::string text;            // string; global "module.name"; storage key
    std::vector<ValuePtr> items; // tuple/list; dict as key, value, key, value...
    PickledTensor tensor;
    DType dtype = DType::f32;    // storage
    std::uint64_t numel = 0;     // storage
};

ValuePtr make(Value::Kind k)
{
    auto v = std::make_shared<Value>();
    v->kind = k;
    return v;
}

std::optional<DType> storage_dtype(std::string_view name)
{
    static const std::map<std::string_view, DType> table{
        {"FloatStorage", DType::f32},    {"DoubleStorage", DType::f64}, {"HalfStorage", DType::f16},
        {"BFloat16Storage", DType::bf16}, {"LongStorage", DType::i64},  {"IntStorage", DType::i32},
        {"ShortStorage", DType::i16},    {"CharStorage", DType::i8},    {"ByteStorage", DType::u8},
        {"BoolStorage", DType::boolean}, {"Float8_e4m3fnStorage", DType::f8_e4m3},
        {"Float8_e5m2Storage", DType::f8_e5m2}};
    auto it = table.find(name);
    if (it == table.end())
        return std::nullopt;
    return it->second;
}

class Unpickler {
public:
    Unpickler(std::string_view data, const std::string& where) : m_data(data), m_where(where) {}
    // A hostile pickle can put a list or dict inside itself (memo + APPEND/SETITEM): empty every
    // container so such shared_ptr cycles are freed too.
    ~Unpickler()
    {
        for (const auto& c : m_containers)
            c->items.clear();
    }
    Unpickler(const Unpickler&) = delete;
    Unpickler& operator=(const Unpickler&) = delete;

    ValuePtr run()
    {
        while (true) {
            const std::size_t at = m_pos;
            const auto op = static_cast<unsigned char>(byte());
            switch (op) {
            case 0x80: byte(); break;           // PROTO
            case 0x95: bytes(8); break;         // FRAME
            case '}': push(make(Value::Kind::dict)); break;
            case ']': push(make(Value::Kind::list)); break;
            case ')': push(make(Value::Kind::tuple)); break;
            case '(': m_marks.push_back(m_stack.size()); break;
            case 'N': push(make(Value::Kind::none)); break;
            case 0x88: case 0x89: { auto v = make(Value::Kind::boolean); v->integer = op == 0x88; push(v); break; }
            case 'K': push_int(static_cast<unsigned char>(byte())); break;
            case 'M': push_int(static_cast<std::int64_t>(uint_le(2))); break;
            case 'J': push_int(static_cast<std::int32_t>(uint_le(4))); break;
            case 0x8a: { // LONG1
                const auto n = static_cast<unsigned char>(byte());
                if (n > 8) fail(at, "integer wider than 64 bits");
                std::uint64_t v = n ? uint_le(n) : 0;
                if (n && n < 8 && (v >> (8 * n - 1)) & 1) v |= ~0ULL << (8 * n);
                push_int(static_cast<std::int64_t>(v));
                break;
            }
            case 'G': { // BINFLOAT, big-endian
                std::uint64_t bits = 0;
                for (char c : bytes(8)) bits = (bits << 8) | static_cast<unsigned char>(c);
                auto v = make(Value::Kind::real);
                std::memcpy(&v->real, &bits, 8);
                push(v);
                break;
            }
            case 'X': push_string(bytes(uint_le(4))); break;
            case 0x8c: case 'U': push_string(bytes(static_cast<unsigned char>(byte()))); break;
            case 'T': push_string(bytes(uint_le(4))); break;
            case 0x8e: push_string(bytes(uint_le(8))); break; // BINBYTES8 (not expected)
            case 'B': push_string(bytes(uint_le(4))); break;  // BINBYTES
            case 'C': push_string(bytes(static_cast<unsigned char>(byte()))); break; // SHORT_BINBYTES
            case 'q': m_memo[uint_le(1)] = top(at); break;
            case 'r': m_memo[uint_le(4)] = top(at); break;
            case 0x94: m_memo[m_memo.size()] = top(at); break; // MEMOIZE
            case 'h': push(memo(uint_le(1), at)); break;
            case 'j': push(memo(uint_le(4), at)); break;
            case 't': { auto t = make(Value::Kind::tuple); t->items = pop_mark(at); push(t); break; }
            case 0x85: case 0x86: case 0x87: {
                const int n = op - 0x84;
                auto t = make(Value::Kind::tuple);
                t->items.resize(static_cast<std::size_t>(n));
                for (int i = n - 1; i >= 0; --i) t->items[static_cast<std::size_t>(i)] = pop(at);
                push(t);
                break;
            }
            case 'c': { // GLOBAL module\nname\n
                const std::string module = line(at);
                const std::string name = line(at);
                push(global(module, name, at));
                break;
            }
            case 0x93: { // STACK_GLOBAL
                auto name = pop(at), module = pop(at);
                if (name->kind != Value::Kind::string || module->kind != Value::Kind::string) fail(at, "bad STACK_GLOBAL");
                push(global(module->text, name->text, at));
                break;
            }
            case 'Q': push(persistent(pop(at), at)); break; // BINPERSID
            case 'R': { auto args = pop(at); auto fn = pop(at); push(reduce(fn, args, at)); break; }
            case 'b': { pop(at); top(at); break; } // BUILD: state of an OrderedDict (_metadata) is not needed
            case 's': {
                auto v = pop(at), k = pop(at);
                auto d = dict_of(top(at), at);
                d->items.push_back(k);
                d->items.push_back(v);
                break;
            }
            case 'u': {
                auto items = pop_mark(at);
                auto d = dict_of(top(at), at);
                if (items.size() % 2) fail(at, "odd SETITEMS");
                d->items.insert(d->items.end(), items.begin(), items.end());
                break;
            }
            case 'a': { auto v = pop(at); auto l = top(at); if (l->kind != Value::Kind::list) fail(at, "APPEND to non-list"); l->items.push_back(v); break; }
            case 'e': {
                auto items = pop_mark(at);
                auto l = top(at);
                if (l->kind != Value::Kind::list) fail(at, "APPENDS to non-list");
                l->items.insert(l->items.end(), items.begin(), items.end());
                break;
            }
            case '.': return pop(at);
            default: {
                char hex[8];
                std::snprintf(hex, sizeof hex, "0x%02x", op);
                fail(at, std::string("unsupported pickle opcode ") + hex +
                             " (not part of a state dict; Layerwise reads only tensors from .bin files)");
            }
            }
        }
    }

private:
    [[noreturn]] void fail(std::size_t at, const std::string& what) const
    {
        throw FormatError(m_where + ": data.pkl byte " + std::to_string(at) + ": " + what);
    }
    char byte()
    {
        if (m_pos >= m_data.size()) fail(m_pos, "unexpected end of pickle (truncated file?)");
        return m_data[m_pos++];
    }
    std::string bytes(std::uint64_t n)
    {
        if (n > m_data.size() - m_pos) fail(m_pos, "unexpected end of pickle (truncated file?)");
        std::string s(m_data.substr(m_pos, n));
        m_pos += n;
        return s;
    }
    std::uint64_t uint_le(int n)
    {
        const std::string b = bytes(static_cast<std::uint64_t>(n));
        std::uint64_t v = 0;
        for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(b[static_cast<std::size_t>(i)]);
        return v;
    }
    std::string line(std::size_t at)
    {
        const auto nl = m_data.find('\n', m_pos);
        if (nl == std::string_view::npos) fail(at, "unterminated GLOBAL");
        std::string s(m_data.substr(m_pos, nl - m_pos));
        m_pos = nl + 1;
        return s;
    }
    void push(ValuePtr v)
    {
        if (v->kind == Value::Kind::tuple || v->kind == Value::Kind::list || v->kind == Value::Kind::dict)
            m_containers.push_back(v);
        m_stack.push_back(std::move(v));
    }
    void push_int(std::int64_t i) { auto v = make(Value::Kind::integer); v->integer = i; push(v); }
    void push_string(std::string s) { auto v = make(Value::Kind::string); v->text = std::move(s); push(v); }
    ValuePtr pop(std::size_t at)
    {
        if (m_stack.empty() || (!m_marks.empty() && m_stack.size() <= m_marks.back())) fail(at, "stack underflow");
        auto v = m_stack.back();
        m_stack.pop_back();
        return v;
    }
    ValuePtr top(std::size_t at)
    {
        if (m_stack.empty()) fail(at, "stack underflow");
        return m_stack.back();
    }
    std::vector<ValuePtr> pop_mark(std::size_t at)
    {
        if (m_marks.empty()) fail(at, "no MARK");
        const std::size_t m = m_marks.back();
        m_marks.pop_back();
        std::vector<ValuePtr> items(m_stack.begin() + static_cast<std::ptrdiff_t>(m), m_stack.end());
        m_stack.resize(m);
        return items;
    }
    ValuePtr memo(std::uint64_t key, std::size_t at)
    {
        auto it = m_memo.find(key);
        if (it == m_memo.end()) fail(at, "memo key " + std::to_string(key) + " not defined");
        return it->second;
    }
    ValuePtr dict_of(ValuePtr v, std::size_t at)
    {
        if (v->kind != Value::Kind::dict) fail(at, "SETITEM on something that is not a dict");
        return v;
    }
    ValuePtr global(const std::string& module, const std::string& name, std::size_t at)
    {
        const std::string full = module + "." + name;
        static const char* allowed[] = {"collections.OrderedDict", "torch._utils._rebuild_tensor_v2",
                                        "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state"};
        bool ok = module == "torch" && storage_dtype(name).has_value();
        for (const char* a : allowed) ok = ok || full == a;
        if (!ok)
            fail(at, "the pickle calls '" + full + "', which is not part of a tensor state dict; Layerwise never "
                     "runs code from checkpoints — convert the file to safetensors");
        auto v = make(Value::Kind::global);
        v->text = full;
        return v;
    }
    ValuePtr persistent(ValuePtr pid, std::size_t at)
    {
        // ('storage', torch.FloatStorage, key, location, numel)
        if (pid->kind != Value::Kind::tuple || pid->items.size() != 5 || pid->items[0]->text != "storage" ||
            pid->items[1]->kind != Value::Kind::global || pid->items[2]->kind != Value::Kind::string ||
            pid->items[4]->kind != Value::Kind::integer)
            fail(at, "persistent id is not a ('storage', type, key, location, numel) tuple");
        const std::string type = pid->items[1]->text.substr(6);
        auto s = make(Value::Kind::storage);
        s->dtype = *storage_dtype(type);
        s->text = pid->items[2]->text;
        s->numel = static_cast<std::uint64_t>(pid->items[4]->integer);
        return s;
    }
    std::vector<std::int64_t> ints(const ValuePtr& t, std::size_t at, const char* what)
    {
        if (t->kind != Value::Kind::tuple) fail(at, std::string(what) + " is not a tuple");
        std::vector<std::int64_t> out;
        for (auto& i : t->items) {
            if (i->kind != Value::Kind::integer || i->integer < 0) fail(at, std::string(what) + " holds a non-integer");
            out.push_back(i->integer);
        }
        return out;
    }
    ValuePtr reduce(ValuePtr fn, ValuePtr args, std::size_t at)
    {
        if (fn->kind != Value::Kind::global || args->kind != Value::Kind::tuple) fail(at, "REDUCE of a non-callable");
        if (fn->text == "collections.OrderedDict") return make(Value::Kind::dict);
        if (fn->text == "torch._utils._rebuild_tensor_v2") {
            if (args->items.size() < 4 || args->items[0]->kind != Value::Kind::storage ||
                args->items[1]->kind != Value::Kind::integer)
                fail(at, "_rebuild_tensor_v2 with unexpected arguments");
            auto t = make(Value::Kind::tensor);
            const auto& s = *args->items[0];
            t->tensor.dtype = s.dtype;
            t->tensor.storage_key = s.text;
            t->tensor.storage_numel = s.numel;
            t->tensor.storage_offset = args->items[1]->integer;
            t->tensor.shape = ints(args->items[2], at, "tensor size");
            t->tensor.strides = ints(args->items[3], at, "tensor stride");
            if (t->tensor.shape.size() != t->tensor.strides.size()) fail(at, "tensor size and stride differ in rank");
            return t;
        }
        // _rebuild_parameter(data, requires_grad, backward_hooks[, state]): the data is the tensor.
        if (args->items.empty() || args->items[0]->kind != Value::Kind::tensor) fail(at, fn->text + " without a tensor");
        return args->items[0];
    }

    std::string_view m_data;
    const std::string& m_where;
    std::size_t m_pos = 0;
    std::vector<ValuePtr> m_stack;
    std::vector<std::size_t> m_marks;
    std::map<std::uint64_t, ValuePtr> m_memo;
    std::vector<ValuePtr> m_containers;
};

} // namespace

std::vector<PickledTensor> read_state_dict_pickle(std::string_view pickle, const std::string& where)
{
    Unpickler u(pickle, where);
    const ValuePtr root = u.run();
    if (root->kind != Value::Kind::dict)
        throw FormatError(where + ": the pickle is not a state dict (a mapping of names to tensors)");
    std::vector<PickledTensor> out;
    for (std::size_t i = 0; i + 1 < root->items.size(); i += 2) {
        const auto& k = root->items[i];
        const auto& v = root->items[i + 1];
        if (k->kind != Value::Kind::string || v->kind != Value::Kind::tensor)
            throw FormatError(where + ": state dict entry " + std::to_string(i / 2) +
                              (k->kind == Value::Kind::string ? " ('" + k->text + "')" : std::string()) +
                              " is not a name -> tensor pair");
        PickledTensor t = v->tensor;
        t.name = k->text;
        out.push_back(std::move(t));
    }
    return out;
}

} // namespace layerwise
