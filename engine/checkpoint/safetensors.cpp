#include "checkpoint/safetensors.h"

#include "core/error.h"
#include "core/json_read.h"
#include "core/mapped_file.h"

#include <algorithm>
#include <nlohmann/json.hpp>

namespace layerwise {

std::string shape_string(const std::vector<std::int64_t>& shape)
{
    std::string s = "[";
    for (std::size_t i = 0; i < shape.size(); ++i) {
        if (i)
            s += ", ";
        s += std::to_string(shape[i]);
    }
    return s + "]";
}

namespace {

// ordered_json keeps the header's order (tensor order matters for dtype="auto").
using json = nlohmann::ordered_json;

json parse_rejecting_duplicates(std::string_view text, const std::string& where)
{
    // nlohmann keeps the last of duplicate keys silently; a parser callback sees every key.
    std::vector<std::vector<std::string>> keys_per_level;
    std::string duplicate;
    auto cb = [&](int depth, json::parse_event_t event, json& parsed) {
        if (event == json::parse_event_t::object_start) {
            keys_per_level.resize(static_cast<std::size_t>(depth) + 1);
            keys_per_level[static_cast<std::size_t>(depth)].clear();
        } else if (event == json::parse_event_t::key && depth == 1 && duplicate.empty()) {
            auto& keys = keys_per_level[0];
            const std::string key = parsed.get<std::string>();
            if (std::find(keys.begin(), keys.end(), key) != keys.end())
                duplicate = key;
            keys.push_back(key);
        }
        return true;
    };
    json j;
    try {
        j = json::parse(text.begin(), text.end(), cb);
    } catch (const json::exception& e) {
        throw_json_parse_error(e, text, where + " (its JSON header, which starts at byte 8)");
    }
    if (!duplicate.empty())
        throw FormatError(where + ": tensor '" + duplicate +
                          "' appears twice in the header; the file is corrupt (re-export it)");
    return j;
}

std::uint64_t checked_mul(std::uint64_t a, std::uint64_t b, const std::string& what)
{
    if (a != 0 && b > UINT64_MAX / a)
        throw FormatError(what + ": shape overflows 64-bit element count");
    return a * b;
}

} // namespace

SafetensorsHeader parse_safetensors_header(std::string_view header_json, std::uint64_t file_size,
                                           const std::string& where)
{
    const json j = parse_rejecting_duplicates(header_json, where);
    try {
        if (!j.is_object())
            throw FormatError(where + ": the header is JSON but not an object ({...}); not a safetensors file");

        SafetensorsHeader out;
        out.data_start = 8 + header_json.size();
        const std::uint64_t buffer_size = file_size - out.data_start;

        for (auto it = j.begin(); it != j.end(); ++it) {
            const std::string& name = it.key();
            const json& v = it.value();
            if (name == "__metadata__") {
                if (!v.is_object())
                    throw FormatError(where + ": __metadata__ must be an object of strings");
                for (auto m = v.begin(); m != v.end(); ++m) {
                    if (!m.value().is_string())
                        throw FormatError(where + ": __metadata__['" + m.key() + "'] is not a string");
                    out.metadata[m.key()] = m.value().get<std::string>();
                }
                continue;
            }
            const std::string what = where + ": tensor '" + name + "'";
            if (!v.is_object())
                throw FormatError(what + ": entry is not an object with dtype, shape, data_offsets");
            if (!v.contains("dtype") || !v["dtype"].is_string())
                throw FormatError(what + ": missing or non-string 'dtype'");
            if (!v.contains("shape") || !v["shape"].is_array())
                throw FormatError(what + ": missing or non-array 'shape'");
            if (!v.contains("data_offsets") || !v["data_offsets"].is_array() || v["data_offsets"].size() != 2)
                throw FormatError(what + ": 'data_offsets' must be an array [begin, end]");

            TensorEntry t;
            t.name = name;
            const std::string dtype_name = v["dtype"].get<std::string>();
            const auto dtype = dtype_from_safetensors(dtype_name);
            if (!dtype)
                throw FormatError(what + ": unknown dtype '" + dtype_name +
                                  "' (known: F64 F32 F16 BF16 F8_E4M3 F8_E5M2 I64 I32 I16 I8 U64 U32 U16 U8 BOOL)");
            t.dtype = *dtype;
            std::uint64_t numel = 1;
            for (const json& d : v["shape"]) {
                if (!d.is_number_unsigned())
                    throw FormatError(what + ": shape " + v["shape"].dump() + " must hold non-negative integers");
                const auto dim = d.get<std::uint64_t>();
                if (dim > static_cast<std::uint64_t>(INT64_MAX))
                    throw FormatError(what + ": shape dimension " + std::to_string(dim) + " is too large");
                t.shape.push_back(static_cast<std::int64_t>(dim));
                numel = checked_mul(numel, dim, what);
            }
            const json& off = v["data_offsets"];
            if (!off[0].is_number_unsigned() || !off[1].is_number_unsigned())
                throw FormatError(what + ": data_offsets " + off.dump() + " must be non-negative integers");
            const auto begin = off[0].get<std::uint64_t>();
            const auto end = off[1].get<std::uint64_t>();
            if (begin > end)
                throw FormatError(what + ": data_offsets " + off.dump() + " end before they begin");
            if (end > buffer_size)
                throw FormatError(what + ": data_offsets " + off.dump() + " reach byte " +
                                  std::to_string(out.data_start + end) + " of the file but it has only " +
                                  std::to_string(file_size) + " bytes (truncated file?)");
            const std::uint64_t expected = checked_mul(numel, static_cast<std::uint64_t>(dtype_bits(t.dtype)), what) / 8;
            if (end - begin != expected)
                throw FormatError(what + ": data_offsets " + off.dump() + " hold " + std::to_string(end - begin) +
                                  " bytes but shape " + shape_string(t.shape) + " x " + dtype_name + " needs " +
                                  std::to_string(expected));
            t.offset = out.data_start + begin;
            t.size = end - begin;
            out.tensors.push_back(std::move(t));
        }

        // The format requires the buffer to be covered exactly: no overlap, no hole.
        std::vector<const TensorEntry*> by_offset;
        for (const auto& t : out.tensors)
            by_offset.push_back(&t);
        std::stable_sort(by_offset.begin(), by_offset.end(), [](auto* a, auto* b) {
            return a->offset != b->offset ? a->offset < b->offset : a->size < b->size;
        });
        std::uint64_t cursor = out.data_start;
        const TensorEntry* previous = nullptr;
        for (const TensorEntry* t : by_offset) {
            if (t->offset < cursor)
                throw FormatError(where + ": tensor '" + t->name + "' (bytes " + std::to_string(t->offset) + ".." +
                                  std::to_string(t->offset + t->size) + ") overlaps tensor '" +
                                  (previous ? previous->name : std::string("?")) + "' (ending at byte " +
                                  std::to_string(cursor) + "); the file is corrupt");
            if (t->offset > cursor)
                throw FormatError(where + ": bytes " + std::to_string(cursor) + ".." + std::to_string(t->offset) +
                                  " before tensor '" + t->name +
                                  "' belong to no tensor; the file is corrupt (safetensors leaves no holes)");
            cursor = t->offset + t->size;
            previous = t;
        }
        if (cursor != file_size)
            throw FormatError(where + ": the tensors end at byte " + std::to_string(cursor) + " but the file has " +
                              std::to_string(file_size) + " bytes; the file is corrupt or has trailing data");
        return out;
    } catch (const nlohmann::json::exception& e) {
        throw_json_value_error(e, where + " (its JSON header)");
    }
}

SafetensorsHeader read_safetensors_header(const MappedFile& file, std::size_t file_index)
{
    const std::string where = file.path().string();
    if (file.size() < 8)
        throw FormatError(where + ": file has " + std::to_string(file.size()) +
                          " bytes, fewer than the 8-byte header length (truncated or empty file)");
    const std::string len_bytes = file.read(0, 8);
    std::uint64_t n = 0;
    for (int i = 7; i >= 0; --i)
        n = (n << 8) | static_cast<unsigned char>(len_bytes[static_cast<std::size_t>(i)]);
    if (n > max_safetensors_header)
        throw FormatError(where + ": header length " + std::to_string(n) + " exceeds the " +
                          std::to_string(max_safetensors_header) + "-byte limit; not a safetensors file?");
    if (n > file.size() - 8)
        throw FormatError(where + ": header length " + std::to_string(n) + " at byte 0 is larger than the " +
                          std::to_string(file.size() - 8) + " bytes that follow (truncated file?)");
    const std::string header = file.read(8, n);
    if (n == 0 || header.front() != '{')
        throw FormatError(where + ": the header (bytes 8.." + std::to_string(8 + n) +
                          ") does not start with '{'; not a safetensors file");
    SafetensorsHeader h = parse_safetensors_header(header, file.size(), where);
    for (auto& t : h.tensors)
        t.file = file_index;
    return h;
}

} // namespace layerwise
