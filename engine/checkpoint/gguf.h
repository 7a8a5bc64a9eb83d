#pragma once
// GGUF (llama.cpp's single-file format, versions 2 and 3): header, metadata key/values,
// tensor infos and the aligned data section. Parsing reads the header only; tensor data
// stays in the mapping. Every field is validated: truncation, a wrong magic, an unknown
// value or tensor type, counts or offsets beyond the file each throw FormatError naming the
// file, the key or tensor, and the byte offset.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace layerwise {
class MappedFile;
}

namespace layerwise::gguf {

enum class ValueType : std::uint32_t {
    u8 = 0, i8 = 1, u16 = 2, i16 = 3, u32 = 4, i32 = 5, f32 = 6, boolean = 7,
    string = 8, array = 9, u64 = 10, i64 = 11, f64 = 12,
};
std::string_view value_type_name(ValueType type);

struct Value;
using Array = std::vector<Value>;

// One metadata value. Integers keep their signedness; floats are widened to double.
struct Value {
    ValueType type = ValueType::u32;
    ValueType element_type = ValueType::u32; // arrays only
    std::variant<std::uint64_t, std::int64_t, double, bool, std::string, Array> data;
};

struct KeyValue {
    std::string key;
    Value value;
};

// The metadata of a file, in file order, with typed lookups. A getter returns nullopt when the
// key is absent and throws FormatError (naming the key and the type found) when it has the
// wrong type. Integer getters accept any integer type whose value fits.
class Metadata {
public:
    explicit Metadata(std::vector<KeyValue> entries = {}, std::string where = {});

    const std::vector<KeyValue>& entries() const { return m_entries; }
    const Value* find(std::string_view key) const;

    std::optional<std::string> get_string(std::string_view key) const;
    std::optional<std::int64_t> get_int(std::string_view key) const;
    std::optional<double> get_float(std::string_view key) const; // f32/f64 (or an integer)
    std::optional<bool> get_bool(std::string_view key) const;
    std::optional<std::vector<std::string>> get_strings(std::string_view key) const;
    std::optional<std::vector<std::int64_t>> get_ints(std::string_view key) const;
    std::optional<std::vector<double>> get_floats(std::string_view key) const;

private:
    std::vector<KeyValue> m_entries;
    std::string m_where;
};

// ggml tensor types (the numbering of ggml.h).
enum class TensorType : std::uint32_t {
    F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
    Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
    I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, BF16 = 30, MXFP4 = 39,
};
std::string_view tensor_type_name(TensorType type); // "Q4_1"
// Elements per block and bytes per block (1 and the element size for plain types);
// nullopt for a type number this reader does not know.
struct BlockLayout {
    std::uint32_t block_elements = 1;
    std::uint32_t block_bytes = 4;
};
std::optional<BlockLayout> block_layout(std::uint32_t type);

struct TensorInfo {
    std::string name;                 // "blk.0.attn_q.weight"
    std::vector<std::int64_t> dims;   // ggml order: dims[0] is the innermost (contiguous) one
    TensorType type = TensorType::F32;
    std::uint64_t offset = 0;         // absolute byte offset in the file
    std::uint64_t size = 0;           // bytes
    std::uint64_t numel() const;
};

struct File {
    std::uint32_t version = 3;
    std::uint64_t alignment = 32;     // general.alignment or 32
    std::uint64_t data_offset = 0;    // start of the (aligned) tensor data section
    Metadata metadata;
    std::vector<TensorInfo> tensors;
};

// Parses the header of a GGUF file of `size` bytes at `data`; `where` (the path) names it in
// errors. Checks that every tensor lies inside the file, is aligned and has the size its type
// and dims imply, and that names are unique.
File parse(const std::uint8_t* data, std::uint64_t size, const std::string& where);

// The same from the first `available` bytes of a file of `file_size` bytes: nullopt when the
// header reaches past `available` (read more and call again), so a caller can read the header
// with pread() without touching the tensor data.
std::optional<File> parse_prefix(const std::uint8_t* data, std::uint64_t available, std::uint64_t file_size,
                                 const std::string& where);

// The header of a mapped GGUF file, read with pread() in growing prefixes (1 MiB, then ×4)
// so that no page of tensor data is touched.
File read_header(const MappedFile& file, const std::string& where);

// Limits that keep a corrupt file from asking for absurd work.
inline constexpr std::uint32_t max_dims = 4;          // GGML_MAX_DIMS
inline constexpr int max_array_depth = 16;            // arrays of arrays of ...

} // namespace layerwise::gguf
