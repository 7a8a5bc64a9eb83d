#include "checkpoint/checkpoint.h"

#include "checkpoint/safetensors.h"
#include "checkpoint/sharded_index.h"
#include "checkpoint/torch_pickle.h"
#include "checkpoint/torch_zip.h"
#include "core/error.h"

#include <algorithm>
#include <set>

namespace layerwise {

namespace fs = std::filesystem;

std::string_view format_name(CheckpointFormat format)
{
    switch (format) {
    case CheckpointFormat::safetensors: return "safetensors";
    case CheckpointFormat::safetensors_sharded: return "safetensors (sharded)";
    case CheckpointFormat::torch_bin: return "pytorch .bin";
    case CheckpointFormat::torch_bin_sharded: return "pytorch .bin (sharded)";
    case CheckpointFormat::gguf: return "gguf";
    }
    return "?";
}

namespace {

bool ends_with(const std::string& s, std::string_view suffix)
{
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

void check_folder_readable(const fs::path& folder)
{
    std::error_code ec;
    fs::directory_iterator it(folder, ec);
    if (ec)
        throw IoError("cannot read folder " + folder.string() + ": " + ec.message() +
                      (ec == std::errc::permission_denied ? " (check the folder's permissions)" : ""));
}

} // namespace

std::unique_ptr<Checkpoint> Checkpoint::open(const fs::path& path)
{
    std::unique_ptr<Checkpoint> ck(new Checkpoint());
    std::error_code ec;
    const auto status = fs::status(path, ec);
    if (ec || !fs::exists(status))
        throw IoError(path.string() + " does not exist");
    if (fs::is_regular_file(status)) {
        ck->m_folder = path.parent_path();
        const std::string name = path.filename().string();
        if (ends_with(name, ".safetensors")) {
            ck->m_format = CheckpointFormat::safetensors;
            ck->add_safetensors(path);
        } else if (ends_with(name, ".index.json")) {
            const bool st = ends_with(name, ".safetensors.index.json");
            ck->m_format = st ? CheckpointFormat::safetensors_sharded : CheckpointFormat::torch_bin_sharded;
            ck->add_index(path, st);
        } else if (ends_with(name, ".gguf")) {
            ck->m_format = CheckpointFormat::gguf;
            ck->add_gguf(path);
        } else if (ends_with(name, ".bin") || ends_with(name, ".pt") || ends_with(name, ".pth")) {
            ck->m_format = CheckpointFormat::torch_bin;
            ck->add_torch_bin(path);
        } else {
            throw UnsupportedError(path.string() + ": not a weights file (expected .safetensors, .bin, .gguf or .index.json)");
        }
        return ck;
    }
    ck->m_folder = path;
    check_folder_readable(path);
    struct Candidate {
        const char* file;
        CheckpointFormat format;
    };
    const Candidate candidates[] = {
        {"model.safetensors", CheckpointFormat::safetensors},
        {"model.safetensors.index.json", CheckpointFormat::safetensors_sharded},
        {"pytorch_model.bin", CheckpointFormat::torch_bin},
        {"pytorch_model.bin.index.json", CheckpointFormat::torch_bin_sharded},
    };
    for (const auto& c : candidates) {
        const fs::path file = path / c.file;
        if (!fs::exists(file, ec))
            continue;
        ck->m_format = c.format;
        switch (c.format) {
        case CheckpointFormat::safetensors: ck->add_safetensors(file); break;
        case CheckpointFormat::safetensors_sharded: ck->add_index(file, true); break;
        case CheckpointFormat::torch_bin: ck->add_torch_bin(file); break;
        case CheckpointFormat::torch_bin_sharded: ck->add_index(file, false); break;
        case CheckpointFormat::gguf: break; // never a fixed file name
        }
        return ck;
    }
    // A folder with exactly one .safetensors file of another name is still a checkpoint.
    std::vector<fs::path> st, gg;
    for (const auto& e : fs::directory_iterator(path, ec)) {
        if (e.is_regular_file() && e.path().extension() == ".safetensors")
            st.push_back(e.path());
        if (e.is_regular_file() && e.path().extension() == ".gguf")
            gg.push_back(e.path());
    }
    if (st.size() == 1) {
        ck->m_format = CheckpointFormat::safetensors;
        ck->add_safetensors(st.front());
        return ck;
    }
    // A folder with one .gguf file (and no safetensors): llama.cpp's single-file format.
    if (st.empty() && gg.size() == 1) {
        ck->m_format = CheckpointFormat::gguf;
        ck->add_gguf(gg.front());
        return ck;
    }
    throw FormatError(path.string() + " holds no weights: expected model.safetensors, model.safetensors.index.json, "
                      "pytorch_model.bin, pytorch_model.bin.index.json or one .gguf file" +
                      (st.size() > 1 ? std::string(" (found several .safetensors files but no index)") : "") +
                      (gg.size() > 1 ? std::string(" (found several .gguf files: name the one to open)") : ""));
}

std::filesystem::path Checkpoint::text_source() const
{
    if (m_format == CheckpointFormat::gguf && !m_files.empty())
        return m_files.front()->path();
    return m_folder;
}

std::size_t Checkpoint::add_file(const fs::path& file)
{
    m_files.push_back(std::make_unique<MappedFile>(file));
    return m_files.size() - 1;
}

void Checkpoint::add_entry(TensorEntry entry)
{
    if (m_by_name.count(entry.name))
        throw FormatError(m_files[entry.file]->path().string() + ": tensor '" + entry.name + "' is also in " +
                          m_files[m_tensors[m_by_name[entry.name]].file]->path().string() +
                          "; a checkpoint must hold each tensor once");
    m_by_name[entry.name] = m_tensors.size();
    m_tensors.push_back(std::move(entry));
}

void Checkpoint::add_safetensors(const fs::path& file)
{
    const std::size_t index = add_file(file);
    SafetensorsHeader h = read_safetensors_header(*m_files[index], index);
    if (index == 0)
        m_metadata = h.metadata;
    for (auto& t : h.tensors)
        add_entry(std::move(t));
}

void Checkpoint::add_torch_bin(const fs::path& file)
{
    const std::size_t index = add_file(file);
    const MappedFile& mf = *m_files[index];
    const std::string where = file.string();
    const auto records = read_zip_directory(mf);
    std::string prefix;
    for (const auto& [name, rec] : records) {
        if (ends_with(name, "/data.pkl") && name.find('/') == name.size() - 9) {
            prefix = name.substr(0, name.size() - 8);
            break;
        }
    }
    if (prefix.empty())
        throw FormatError(where + ": zip archive without <name>/data.pkl; not a torch.save checkpoint");
    const ZipRecord pkl = records.at(prefix + "data.pkl");
    const auto tensors = read_state_dict_pickle(mf.read(pkl.offset, pkl.size), where);
    for (const auto& p : tensors) {
        const std::string what = where + ": tensor '" + p.name + "'";
        auto rec = records.find(prefix + "data/" + p.storage_key);
        if (rec == records.end())
            throw FormatError(what + ": its storage record '" + prefix + "data/" + p.storage_key + "' is missing");
        const std::uint64_t elem = static_cast<std::uint64_t>(dtype_bits(p.dtype)) / 8;
        if (rec->second.size < p.storage_numel * elem)
            throw FormatError(what + ": storage record holds " + std::to_string(rec->second.size) + " bytes but " +
                              std::to_string(p.storage_numel) + " elements of " + std::string(torch_name(p.dtype)) +
                              " need " + std::to_string(p.storage_numel * elem));
        std::uint64_t extent = 0; // elements the view spans, past its offset
        bool empty = false;
        for (std::size_t d = 0; d < p.shape.size(); ++d) {
            empty = empty || p.shape[d] == 0;
            extent += static_cast<std::uint64_t>(p.shape[d] - 1) * static_cast<std::uint64_t>(p.strides[d]);
        }
        if (!empty && static_cast<std::uint64_t>(p.storage_offset) + extent + 1 > p.storage_numel)
            throw FormatError(what + ": shape " + shape_string(p.shape) + " at storage offset " +
                              std::to_string(p.storage_offset) + " reaches past its storage of " +
                              std::to_string(p.storage_numel) + " elements");
        TensorEntry t;
        t.name = p.name;
        t.dtype = p.dtype;
        t.shape = p.shape;
        t.file = index;
        t.offset = rec->second.offset + static_cast<std::uint64_t>(p.storage_offset) * elem;
        t.size = empty ? 0 : (extent + 1) * elem;
        // Record strides only when the view is not plain row-major.
        std::int64_t expect = 1;
        bool contiguous = true;
        for (std::size_t d = p.shape.size(); d-- > 0;) {
            if (p.shape[d] != 1 && p.strides[d] != expect)
                contiguous = false;
            expect *= p.shape[d];
        }
        if (!contiguous)
            t.strides = p.strides;
        add_entry(std::move(t));
    }
}

void Checkpoint::add_index(const fs::path& index_path, bool safetensors)
{
    const std::string where = index_path.string();
    MappedFile file(index_path);
    const ShardedIndex index = parse_sharded_index(file.read(0, file.size()), where);
    m_index_total_size = index.total_size;
    std::map<std::string, std::vector<std::string>> expected;
    for (const auto& [tensor, shard] : index.weight_map)
        expected[shard].push_back(tensor);
    const fs::path folder = index_path.parent_path();
    for (const auto& shard : index.shards) {
        const fs::path path = folder / shard;
        std::error_code ec;
        if (!fs::exists(path, ec))
            throw FormatError(where + ": names shard '" + shard + "' (for tensor '" + expected[shard].front() +
                              "' and " + std::to_string(expected[shard].size() - 1) +
                              " more) but that file is missing from " + folder.string());
        const std::size_t before = m_tensors.size();
        try {
            if (safetensors)
                add_safetensors(path);
            else
                add_torch_bin(path);
        } catch (...) {
            rethrow_with_context("shard of " + where);
        }
        std::set<std::string> in_shard;
        for (std::size_t i = before; i < m_tensors.size(); ++i)
            in_shard.insert(m_tensors[i].name);
        for (const auto& name : expected[shard])
            if (!in_shard.count(name))
                throw FormatError(where + ": tensor '" + name + "' is mapped to shard '" + shard +
                                  "' but that shard does not contain it");
    }
}

void Checkpoint::add_gguf(const fs::path& file)
{
    const std::size_t index = add_file(file);
    const MappedFile& mf = *m_files[index];
    const std::string where = file.string();
    // Describing the model touches no page of tensor data.
    gguf::File parsed = gguf::read_header(mf, where);
    m_gguf_metadata = std::move(parsed.metadata);
    for (auto& info : parsed.tensors) {
        TensorEntry t;
        t.name = std::move(info.name);
        t.shape.assign(info.dims.rbegin(), info.dims.rend()); // ggml lists the innermost dimension first
        switch (info.type) {
        case gguf::TensorType::F64: t.dtype = DType::f64; break;
        case gguf::TensorType::F16: t.dtype = DType::f16; break;
        case gguf::TensorType::BF16: t.dtype = DType::bf16; break;
        case gguf::TensorType::I8: t.dtype = DType::i8; break;
        case gguf::TensorType::I16: t.dtype = DType::i16; break;
        case gguf::TensorType::I32: t.dtype = DType::i32; break;
        case gguf::TensorType::I64: t.dtype = DType::i64; break;
        default: t.dtype = DType::f32; break; // F32, and block-quantized types decode to float32
        }
        t.file = index;
        t.offset = info.offset;
        t.size = info.size;
        t.gguf = GgufEncoding{static_cast<std::uint32_t>(info.type),
                              gguf::block_layout(static_cast<std::uint32_t>(info.type))->block_elements > 1, 0};
        add_entry(std::move(t));
    }
}

void Checkpoint::edit_entries(const std::function<bool(TensorEntry&)>& edit)
{
    std::vector<TensorEntry> kept;
    kept.reserve(m_tensors.size());
    for (auto& t : m_tensors)
        if (edit(t))
            kept.push_back(std::move(t));
    m_tensors = std::move(kept);
    m_by_name.clear();
    for (std::size_t i = 0; i < m_tensors.size(); ++i)
        if (!m_by_name.emplace(m_tensors[i].name, i).second)
            throw FormatError(m_files[m_tensors[i].file]->path().string() + ": two tensors are both named '" +
                              m_tensors[i].name + "' after renaming; the file holds the same weight twice");
}

void Checkpoint::split_entries(const std::function<std::vector<TensorEntry>(const TensorEntry&)>& split)
{
    std::vector<TensorEntry> out;
    out.reserve(m_tensors.size());
    for (auto& t : m_tensors) {
        std::vector<TensorEntry> parts = split(t);
        if (parts.empty())
            out.push_back(std::move(t));
        else
            for (auto& p : parts)
                out.push_back(std::move(p));
    }
    m_tensors = std::move(out);
    edit_entries([](TensorEntry&) { return true; }); // re-indexes, refusing duplicate names
}

const TensorEntry* Checkpoint::find(const std::string& name) const
{
    auto it = m_by_name.find(name);
    return it == m_by_name.end() ? nullptr : &m_tensors[it->second];
}

std::uint64_t Checkpoint::tensor_bytes() const
{
    std::uint64_t n = 0;
    for (const auto& t : m_tensors)
        n += t.gguf ? t.size : dtype_bytes(t.dtype, t.numel()); // GGUF: the bytes in the file
    return n;
}

std::uint64_t Checkpoint::data_bytes_handed_out() const
{
    std::uint64_t n = 0;
    for (const auto& f : m_files)
        n += f->data_bytes_handed_out();
    return n;
}

} // namespace layerwise
