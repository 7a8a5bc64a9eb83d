#include "checkpoint/gguf.h"

#include "core/mapped_file.h"

#include "core/error.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <unordered_set>

namespace layerwise::gguf {

std::string_view value_type_name(ValueType type)
{
    switch (type) {
    case ValueType::u8: return "uint8";
    case ValueType::i8: return "int8";
    case ValueType::u16: return "uint16";
    case ValueType::i16: return "int16";
    case ValueType::u32: return "uint32";
    case ValueType::i32: return "int32";
    case ValueType::f32: return "float32";
    case ValueType::boolean: return "bool";
    case ValueType::string: return "string";
    case ValueType::array: return "array";
    case ValueType::u64: return "uint64";
    case ValueType::i64: return "int64";
    case ValueType::f64: return "float64";
    }
    return "?";
}

std::string_view tensor_type_name(TensorType type)
{
    switch (type) {
    case TensorType::F32: return "F32";
    case TensorType::F16: return "F16";
    case TensorType::Q4_0: return "Q4_0";
    case TensorType::Q4_1: return "Q4_1";
    case TensorType::Q5_0: return "Q5_0";
    case TensorType::Q5_1: return "Q5_1";
    case TensorType::Q8_0: return "Q8_0";
    case TensorType::Q8_1: return "Q8_1";
    case TensorType::Q2_K: return "Q2_K";
    case TensorType::Q3_K: return "Q3_K";
    case TensorType::Q4_K: return "Q4_K";
    case TensorType::Q5_K: return "Q5_K";
    case TensorType::Q6_K: return "Q6_K";
    case TensorType::Q8_K: return "Q8_K";
    case TensorType::I8: return "I8";
    case TensorType::I16: return "I16";
    case TensorType::I32: return "I32";
    case TensorType::I64: return "I64";
    case TensorType::F64: return "F64";
    case TensorType::BF16: return "BF16";
    case TensorType::MXFP4: return "MXFP4";
    }
    return "?";
}

std::optional<BlockLayout> block_layout(std::uint32_t type)
{
    // Bytes per block as ggml defines them (ggml-common.h).
    switch (static_cast<TensorType>(type)) {
    case TensorType::F32: return BlockLayout{1, 4};
    case TensorType::F16: return BlockLayout{1, 2};
    case TensorType::BF16: return BlockLayout{1, 2};
    case TensorType::F64: return BlockLayout{1, 8};
    case TensorType::I8: return BlockLayout{1, 1};
    case TensorType::I16: return BlockLayout{1, 2};
    case TensorType::I32: return BlockLayout{1, 4};
    case TensorType::I64: return BlockLayout{1, 8};
    case TensorType::Q4_0: return BlockLayout{32, 2 + 16};
    case TensorType::Q4_1: return BlockLayout{32, 2 + 2 + 16};
    case TensorType::Q5_0: return BlockLayout{32, 2 + 4 + 16};
    case TensorType::Q5_1: return BlockLayout{32, 2 + 2 + 4 + 16};
    case TensorType::Q8_0: return BlockLayout{32, 2 + 32};
    case TensorType::MXFP4: return BlockLayout{32, 1 + 16};
    case TensorType::Q2_K: return BlockLayout{256, 16 + 64 + 2 + 2};
    case TensorType::Q3_K: return BlockLayout{256, 32 + 64 + 12 + 2};
    case TensorType::Q4_K: return BlockLayout{256, 2 + 2 + 12 + 128};
    case TensorType::Q5_K: return BlockLayout{256, 2 + 2 + 12 + 32 + 128};
    case TensorType::Q6_K: return BlockLayout{256, 128 + 64 + 16 + 2};
    case TensorType::Q8_K: return BlockLayout{256, 4 + 256 + 32};
    case TensorType::Q8_1: break; // an in-memory type of ggml: never in files
    }
    return std::nullopt;
}

std::uint64_t TensorInfo::numel() const
{
    std::uint64_t n = 1;
    for (auto d : dims)
        n *= static_cast<std::uint64_t>(d);
    return n;
}

// ---- Metadata -------------------------------------------------------------------------------

Metadata::Metadata(std::vector<KeyValue> entries, std::string where)
    : m_entries(std::move(entries)), m_where(std::move(where))
{
}

const Value* Metadata::find(std::string_view key) const
{
    for (const auto& kv : m_entries)
        if (kv.key == key)
            return &kv.value;
    return nullptr;
}

namespace {

bool is_integer(ValueType t)
{
    switch (t) {
    case ValueType::u8: case ValueType::i8: case ValueType::u16: case ValueType::i16:
    case ValueType::u32: case ValueType::i32: case ValueType::u64: case ValueType::i64: return true;
    default: return false;
    }
}

std::string type_text(const Value& v)
{
    if (v.type == ValueType::array)
        return "array of " + std::string(value_type_name(v.element_type));
    return std::string(value_type_name(v.type));
}

std::optional<std::int64_t> as_int(const Value& v)
{
    if (const auto* u = std::get_if<std::uint64_t>(&v.data)) {
        if (*u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
            return std::nullopt;
        return static_cast<std::int64_t>(*u);
    }
    if (const auto* i = std::get_if<std::int64_t>(&v.data))
        return *i;
    return std::nullopt;
}

std::optional<double> as_float(const Value& v)
{
    if (const auto* d = std::get_if<double>(&v.data))
        return *d;
    if (const auto* u = std::get_if<std::uint64_t>(&v.data))
        return static_cast<double>(*u);
    if (const auto* i = std::get_if<std::int64_t>(&v.data))
        return static_cast<double>(*i);
    return std::nullopt;
}

} // namespace

#define LAYERWISE_GGUF_WRONG_TYPE(expected)                                                                     \
    throw FormatError(m_where + ": metadata key '" + std::string(key) + "' is " + type_text(*v) + ", expected " + \
                      (expected) + "; the file does not follow the GGUF conventions for this key")

std::optional<std::string> Metadata::get_string(std::string_view key) const
{
    const Value* v = find(key);
    if (!v)
        return std::nullopt;
    if (v->type != ValueType::string)
        LAYERWISE_GGUF_WRONG_TYPE("a string");
    return std::get<std::string>(v->data);
}

std::optional<std::int64_t> Metadata::get_int(std::string_view key) const
{
    const Value* v = find(key);
    if (!v)
        return std::nullopt;
    if (!is_integer(v->type))
        LAYERWISE_GGUF_WRONG_TYPE("an integer");
    auto i = as_int(*v);
    if (!i)
        throw FormatError(m_where + ": metadata key '" + std::string(key) + "' = " +
                          std::to_string(std::get<std::uint64_t>(v->data)) + " is too large");
    return i;
}

std::optional<double> Metadata::get_float(std::string_view key) const
{
    const Value* v = find(key);
    if (!v)
        return std::nullopt;
    if (v->type != ValueType::f32 && v->type != ValueType::f64 && !is_integer(v->type))
        LAYERWISE_GGUF_WRONG_TYPE("a number");
    return as_float(*v);
}

std::optional<bool> Metadata::get_bool(std::string_view key) const
{
    const Value* v = find(key);
    if (!v)
        return std::nullopt;
    if (v->type != ValueType::boolean)
        LAYERWISE_GGUF_WRONG_TYPE("a bool");
    return std::get<bool>(v->data);
}

std::optional<std::vector<std::string>> Metadata::get_strings(std::string_view key) const
{
    const Value* v = find(key);
    if (!v)
        return std::nullopt;
    if (v->type != ValueType::array || v->element_type != ValueType::string)
        LAYERWISE_GGUF_WRONG_TYPE("an array of strings");
    std::vector<std::string> out;
    for (const auto& e : std::get<Array>(v->data))
        out.push_back(std::get<std::string>(e.data));
    return out;
}

std::optional<std::vector<std::int64_t>> Metadata::get_ints(std::string_view key) const
{
    const Value* v = find(key);
    if (!v)
        return std::nullopt;
    if (v->type != ValueType::array || !is_integer(v->element_type))
        LAYERWISE_GGUF_WRONG_TYPE("an array of integers");
    std::vector<std::int64_t> out;
    for (const auto& e : std::get<Array>(v->data)) {
        auto i = as_int(e);
        if (!i)
            throw FormatError(m_where + ": metadata key '" + std::string(key) + "' holds a value too large for int64");
        out.push_back(*i);
    }
    return out;
}

std::optional<std::vector<double>> Metadata::get_floats(std::string_view key) const
{
    const Value* v = find(key);
    if (!v)
        return std::nullopt;
    if (v->type != ValueType::array ||
        (v->element_type != ValueType::f32 && v->element_type != ValueType::f64 && !is_integer(v->element_type)))
        LAYERWISE_GGUF_WRONG_TYPE("an array of numbers");
    std::vector<double> out;
    for (const auto& e : std::get<Array>(v->data))
        out.push_back(*as_float(e));
    return out;
}

#undef LAYERWISE_GGUF_WRONG_TYPE

// ---- Parser ---------------------------------------------------------------------------------

namespace {

// Thrown when the header reaches past the bytes given but not past the file: read more.
struct NeedMoreBytes {};

class Parser {
public:
    Parser(const std::uint8_t* data, std::uint64_t available, std::uint64_t file_size, const std::string& where)
        : m_data(data), m_available(available), m_file_size(file_size), m_where(where)
    {
    }

    File parse()
    {
        File f;
        m_context = "the header";
        read_magic();
        f.version = read_version();
        const std::uint64_t tensor_count = u64();
        const std::uint64_t kv_count = u64();
        // Each key/value takes at least 8 (key length) + 4 (type) + 1 bytes, each tensor info 8 + 4 + 4 + 8.
        if (kv_count > (m_file_size - m_pos) / 13)
            fail(16, "claims " + std::to_string(kv_count) + " metadata entries, more than the file of " +
                         std::to_string(m_file_size) + " bytes can hold; the file is corrupt");
        if (tensor_count > (m_file_size - m_pos) / 24)
            fail(8, "claims " + std::to_string(tensor_count) + " tensors, more than the file of " +
                        std::to_string(m_file_size) + " bytes can hold; the file is corrupt");
        read_metadata(f, kv_count);
        std::unordered_set<std::string> names;
        f.tensors.reserve(static_cast<std::size_t>(tensor_count));
        for (std::uint64_t i = 0; i < tensor_count; ++i)
            f.tensors.push_back(tensor_info(i, f.alignment, names));
        place_tensor_data(f);
        check_no_overlap(f);
        f.tensors.shrink_to_fit();
        return f;
    }

private:
    void read_magic()
    {
        const std::uint32_t magic = u32();
        if (std::memcmp(m_data, "GGUF", 4) != 0) {
            std::string seen;
            for (int i = 0; i < 4; ++i) {
                const char c = static_cast<char>(m_data[i]);
                seen += (c >= 32 && c < 127) ? std::string(1, c) : "\\x" + hex(m_data[i]);
            }
            (void)magic;
            fail(0, "starts with '" + seen + "', not the GGUF magic 'GGUF'; this is not a GGUF file");
        }
    }

    std::uint32_t read_version()
    {
        const std::uint32_t version = u32();
        if (version != 2 && version != 3) {
            const std::uint32_t swapped = __builtin_bswap32(version);
            if (swapped == 2 || swapped == 3)
                fail(4, "is a big-endian GGUF (version " + std::to_string(swapped) +
                            "); only little-endian files are supported: convert it again without --bigendian");
            fail(4, "GGUF version " + std::to_string(version) +
                        " is not supported (supported: 2 and 3)" +
                        (version == 1 ? "; version 1 files are obsolete: convert the model again with a current llama.cpp"
                                      : "; the file is corrupt or newer than this program"));
        }
        return version;
    }

    // The key/value entries (unique keys), then the alignment they may set.
    void read_metadata(File& f, std::uint64_t kv_count)
    {
        std::vector<KeyValue> entries;
        std::unordered_set<std::string> keys;
        std::uint64_t alignment_at = 0;
        for (std::uint64_t i = 0; i < kv_count; ++i) {
            const std::uint64_t at = m_pos;
            m_context = "metadata entry " + std::to_string(i);
            KeyValue kv;
            kv.key = string();
            m_context = "metadata key '" + kv.key + "'";
            if (!keys.insert(kv.key).second)
                fail(at, "appears twice; keys must be unique");
            if (kv.key == "general.alignment")
                alignment_at = m_pos + 4;
            kv.value = value(type(), 0);
            entries.push_back(std::move(kv));
        }
        f.metadata = Metadata(std::move(entries), m_where);
        if (const Value* a = f.metadata.find("general.alignment")) {
            m_context = "metadata key 'general.alignment'";
            const auto al = f.metadata.get_int("general.alignment");
            if (!al || *al <= 0 || (*al & (*al - 1)) != 0)
                fail(alignment_at, "is " + (al ? std::to_string(*al) : type_text(*a)) +
                                       "; it must be a power of two (the file is corrupt)");
            f.alignment = static_cast<std::uint64_t>(*al);
        }
    }

    // Tensor info `i`: a unique name, its dimensions, type and offset (relative to the data section).
    TensorInfo tensor_info(std::uint64_t i, std::uint64_t alignment, std::unordered_set<std::string>& names)
    {
        const std::uint64_t at = m_pos;
        m_context = "tensor info " + std::to_string(i);
        TensorInfo t;
        t.name = string();
        m_context = "tensor '" + t.name + "'";
        if (!names.insert(t.name).second)
            fail(at, "appears twice; each tensor name must be unique");
        const std::uint64_t dims_at = m_pos;
        const std::uint64_t numel = read_dims(t);
        const std::uint64_t type_at = m_pos;
        const std::uint32_t type = u32();
        const auto layout = block_layout(type);
        if (!layout)
            fail(type_at, "has tensor type " + std::to_string(type) +
                              ", which this program does not know (known: F32, F16, BF16, F64, I8-I64, Q4_0, "
                              "Q4_1, Q5_0, Q5_1, Q8_0, MXFP4, Q2_K-Q8_K); convert or quantize the model to one of "
                              "those types");
        t.type = static_cast<TensorType>(type);
        if (static_cast<std::uint64_t>(t.dims[0]) % layout->block_elements != 0)
            fail(dims_at, "has " + std::to_string(t.dims[0]) + " elements per row, not a multiple of the " +
                              std::to_string(layout->block_elements) + "-element blocks of " +
                              std::string(tensor_type_name(t.type)) + "; the file is corrupt");
        t.size = numel / layout->block_elements * layout->block_bytes;
        const std::uint64_t offset_at = m_pos;
        t.offset = u64();
        if (t.offset % alignment != 0)
            fail(offset_at, "has data offset " + std::to_string(t.offset) + ", not a multiple of the alignment " +
                                std::to_string(alignment) + "; the file is corrupt");
        m_offsets.push_back(offset_at);
        return t;
    }

    // A tensor's dimensions, each possible for the file's size; returns the element count.
    std::uint64_t read_dims(TensorInfo& t)
    {
        const std::uint64_t dims_at = m_pos;
        const std::uint32_t n_dims = u32();
        if (n_dims == 0 || n_dims > max_dims)
            fail(dims_at, "has " + std::to_string(n_dims) + " dimensions; GGUF tensors have 1 to " + std::to_string(max_dims));
        std::uint64_t numel = 1;
        for (std::uint32_t d = 0; d < n_dims; ++d) {
            const std::uint64_t dim_at = m_pos;
            const std::uint64_t dim = u64();
            if (dim == 0 || dim > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) ||
                (numel != 0 && dim > m_file_size * 256 / numel + 1))
                fail(dim_at, "has dimension " + std::to_string(d) + " = " + std::to_string(dim) +
                                 ", impossible for a file of " + std::to_string(m_file_size) + " bytes");
            numel *= dim;
            t.dims.push_back(static_cast<std::int64_t>(dim));
        }
        return numel;
    }

    // The data section after the aligned header; every tensor's offset made absolute and checked
    // to lie inside the file.
    void place_tensor_data(File& f)
    {
        m_context = "the tensor data";
        f.data_offset = (m_pos + f.alignment - 1) / f.alignment * f.alignment;
        if (f.data_offset > m_file_size && !f.tensors.empty())
            fail(m_pos, "the data section would start at byte " + std::to_string(f.data_offset) +
                            ", past the end of the file (" + std::to_string(m_file_size) + " bytes); the file is truncated");
        for (std::size_t i = 0; i < f.tensors.size(); ++i) {
            TensorInfo& t = f.tensors[i];
            const std::uint64_t relative = t.offset;
            if (relative > m_file_size || t.size > m_file_size || f.data_offset + relative > m_file_size - t.size) {
                m_context = "tensor '" + t.name + "'";
                fail(m_offsets[i], "needs bytes " + std::to_string(f.data_offset + relative) + ".." +
                                       std::to_string(f.data_offset + relative + t.size) + " (" +
                                       shape_text(t) + " " + std::string(tensor_type_name(t.type)) + " = " +
                                       std::to_string(t.size) + " bytes) but the file has only " +
                                       std::to_string(m_file_size) + " bytes; the file is truncated or corrupt");
            }
            t.offset = f.data_offset + relative;
        }
    }

    // No two tensors may share bytes: a tensor whose type was changed to a wider one (Q4_0 to
    // F32, say) would otherwise read its neighbour's data and load without complaint.
    void check_no_overlap(const File& f)
    {
        std::vector<std::size_t> by_offset(f.tensors.size());
        for (std::size_t i = 0; i < by_offset.size(); ++i)
            by_offset[i] = i;
        std::sort(by_offset.begin(), by_offset.end(),
                  [&](std::size_t a, std::size_t b) { return f.tensors[a].offset < f.tensors[b].offset; });
        for (std::size_t k = 1; k < by_offset.size(); ++k) {
            const TensorInfo& before = f.tensors[by_offset[k - 1]];
            const TensorInfo& t = f.tensors[by_offset[k]];
            if (t.offset < before.offset + before.size) {
                m_context = "tensor '" + before.name + "'";
                fail(m_offsets[by_offset[k - 1]],
                     "(" + shape_text(before) + " " + std::string(tensor_type_name(before.type)) + ", bytes " +
                         std::to_string(before.offset) + ".." + std::to_string(before.offset + before.size) +
                         ") overlaps tensor '" + t.name + "' (from byte " + std::to_string(t.offset) +
                         "); its type or shape does not match its data — the file is corrupt");
            }
        }
    }

private:
    static std::string hex(std::uint8_t b)
    {
        const char* digits = "0123456789abcdef";
        return {digits[b >> 4], digits[b & 15]};
    }

    static std::string shape_text(const TensorInfo& t)
    {
        std::string s = "[";
        for (std::size_t i = 0; i < t.dims.size(); ++i)
            s += (i ? ", " : "") + std::to_string(t.dims[i]);
        return s + "]";
    }

    [[noreturn]] void fail(std::uint64_t at, const std::string& what) const
    {
        throw FormatError(m_where + ": " + m_context + " (byte " + std::to_string(at) + ") " + what);
    }

    const std::uint8_t* take(std::uint64_t n)
    {
        if (n > m_file_size || m_pos > m_file_size - n)
            fail(m_pos, "needs " + std::to_string(n) + " more bytes but the file ends at byte " +
                            std::to_string(m_file_size) + "; the file is truncated (download it again)");
        if (m_pos + n > m_available)
            throw NeedMoreBytes{};
        const std::uint8_t* p = m_data + m_pos;
        m_pos += n;
        return p;
    }

    template <typename T>
    T scalar()
    {
        T v;
        std::memcpy(&v, take(sizeof(T)), sizeof(T));
        return v;
    }
    std::uint32_t u32() { return scalar<std::uint32_t>(); }
    std::uint64_t u64() { return scalar<std::uint64_t>(); }

    std::string string()
    {
        const std::uint64_t at = m_pos;
        const std::uint64_t length = u64();
        if (length > m_file_size - m_pos)
            fail(at, "has a string of " + std::to_string(length) + " bytes, past the end of the file (" +
                         std::to_string(m_file_size) + " bytes); the file is truncated or corrupt");
        const auto* p = take(length);
        return std::string(reinterpret_cast<const char*>(p), static_cast<std::size_t>(length));
    }

    ValueType type()
    {
        const std::uint64_t at = m_pos;
        const std::uint32_t t = u32();
        if (t > static_cast<std::uint32_t>(ValueType::f64))
            fail(at, "has value type " + std::to_string(t) +
                         ", which GGUF does not define (0-12); the file is corrupt or from a newer GGUF version");
        return static_cast<ValueType>(t);
    }

    // The fewest bytes one value of `t` takes: bounds an array's count by the bytes left.
    static std::uint64_t min_bytes(ValueType t)
    {
        switch (t) {
        case ValueType::u8: case ValueType::i8: case ValueType::boolean: return 1;
        case ValueType::u16: case ValueType::i16: return 2;
        case ValueType::u32: case ValueType::i32: case ValueType::f32: return 4;
        case ValueType::u64: case ValueType::i64: case ValueType::f64: case ValueType::string: return 8;
        case ValueType::array: return 12;
        }
        return 1;
    }

    Value value(ValueType t, int depth)
    {
        Value v;
        v.type = t;
        switch (t) {
        case ValueType::u8: v.data = std::uint64_t{scalar<std::uint8_t>()}; break;
        case ValueType::u16: v.data = std::uint64_t{scalar<std::uint16_t>()}; break;
        case ValueType::u32: v.data = std::uint64_t{scalar<std::uint32_t>()}; break;
        case ValueType::u64: v.data = std::uint64_t{scalar<std::uint64_t>()}; break;
        case ValueType::i8: v.data = std::int64_t{scalar<std::int8_t>()}; break;
        case ValueType::i16: v.data = std::int64_t{scalar<std::int16_t>()}; break;
        case ValueType::i32: v.data = std::int64_t{scalar<std::int32_t>()}; break;
        case ValueType::i64: v.data = std::int64_t{scalar<std::int64_t>()}; break;
        case ValueType::f32: v.data = double{scalar<float>()}; break;
        case ValueType::f64: v.data = scalar<double>(); break;
        case ValueType::boolean: {
            const std::uint64_t at = m_pos;
            const std::uint8_t b = scalar<std::uint8_t>();
            if (b > 1)
                fail(at, "has the bool value " + std::to_string(b) + " (must be 0 or 1); the file is corrupt");
            v.data = b == 1;
            break;
        }
        case ValueType::string: v.data = string(); break;
        case ValueType::array: {
            const std::uint64_t at = m_pos;
            if (depth >= max_array_depth)
                fail(at, "nests arrays more than " + std::to_string(max_array_depth) + " deep; the file is corrupt");
            v.element_type = type();
            const std::uint64_t count_at = m_pos;
            const std::uint64_t count = u64();
            if (count > (m_file_size - m_pos) / min_bytes(v.element_type))
                fail(count_at, "has an array of " + std::to_string(count) + " " +
                                   std::string(value_type_name(v.element_type)) +
                                   " values, more than the rest of the file can hold; the file is truncated or corrupt");
            Array a;
            a.reserve(static_cast<std::size_t>(count));
            for (std::uint64_t i = 0; i < count; ++i)
                a.push_back(value(v.element_type, depth + 1));
            v.data = std::move(a);
            break;
        }
        }
        return v;
    }

    const std::uint8_t* m_data;
    std::uint64_t m_available;
    std::uint64_t m_file_size;
    const std::string& m_where;
    std::uint64_t m_pos = 0;
    std::string m_context;
    std::vector<std::uint64_t> m_offsets; // where each tensor's offset field is
};

} // namespace

std::optional<File> parse_prefix(const std::uint8_t* data, std::uint64_t available, std::uint64_t file_size,
                                 const std::string& where)
{
    if (available > file_size)
        available = file_size;
    try {
        return Parser(data, available, file_size, where).parse();
    } catch (const NeedMoreBytes&) {
        return std::nullopt;
    }
}

File parse(const std::uint8_t* data, std::uint64_t size, const std::string& where)
{
    return *parse_prefix(data, size, size, where);
}

File read_header(const MappedFile& file, const std::string& where)
{
    for (std::uint64_t want = std::uint64_t{1} << 20;; want *= 4) {
        const std::string prefix = file.read(0, std::min(want, file.size()));
        auto parsed = parse_prefix(reinterpret_cast<const std::uint8_t*>(prefix.data()), prefix.size(), file.size(), where);
        if (parsed)
            return std::move(*parsed);
        if (want >= file.size()) // cannot happen: the whole file was available
            throw FormatError(where + ": the GGUF header could not be read");
    }
}

} // namespace layerwise::gguf
