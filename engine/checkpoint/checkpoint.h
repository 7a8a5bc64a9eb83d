#pragma once
// A checkpoint: the tensors of a model folder, across one or many files, described by
// their headers only. Formats, in the order transformers looks for them:
// model.safetensors, model.safetensors.index.json, pytorch_model.bin, pytorch_model.bin.index.json;
// or a single llama.cpp .gguf file (a folder holding exactly one .gguf and no safetensors).
#include "checkpoint/gguf.h"
#include "checkpoint/tensor_entry.h"
#include "core/mapped_file.h"

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace layerwise {

enum class CheckpointFormat { safetensors, safetensors_sharded, torch_bin, torch_bin_sharded, gguf };
std::string_view format_name(CheckpointFormat format);

class Checkpoint {
public:
    // `path` is a model folder or a single weights file. Throws IoError / FormatError with the path.
    static std::unique_ptr<Checkpoint> open(const std::filesystem::path& path);

    CheckpointFormat format() const { return m_format; }
    const std::filesystem::path& folder() const { return m_folder; }
    // Where this checkpoint's tokenizer and chat template are: a GGUF file carries its own (the
    // file named, whatever else lies in its folder); other formats keep them in the folder.
    std::filesystem::path text_source() const;
    const std::vector<std::unique_ptr<MappedFile>>& files() const { return m_files; }
    const std::vector<TensorEntry>& tensors() const { return m_tensors; }
    const TensorEntry* find(const std::string& name) const;

    // safetensors __metadata__ of the first file (empty for .bin)
    const std::map<std::string, std::string>& metadata() const { return m_metadata; }
    // The metadata of a GGUF checkpoint (nullptr for other formats).
    const gguf::Metadata* gguf_metadata() const { return m_gguf_metadata ? &*m_gguf_metadata : nullptr; }
    // Lets the model layer rename entries and set their decoding (GGUF names -> Hugging Face
    // names), or drop one it consumed (`edit` returns false); the name index is rebuilt and a
    // name given twice is a FormatError. Call before anything holds an entry index.
    void edit_entries(const std::function<bool(TensorEntry&)>& edit);
    // Replaces each entry for which `split` returns entries by those (a GGUF tensor holding every
    // expert of a layer becomes one entry per expert, each a byte range of it).
    void split_entries(const std::function<std::vector<TensorEntry>(const TensorEntry&)>& split);
    // metadata.total_size of a sharded index, if any
    std::optional<std::uint64_t> index_total_size() const { return m_index_total_size; }
    // Sum of tensor bytes in the files
    std::uint64_t tensor_bytes() const;
    // Bytes of tensor data handed out by all mappings: 0 after header-only work.
    std::uint64_t data_bytes_handed_out() const;

private:
    Checkpoint() = default;
    void add_safetensors(const std::filesystem::path& file);
    void add_torch_bin(const std::filesystem::path& file);
    void add_index(const std::filesystem::path& index, bool safetensors);
    void add_gguf(const std::filesystem::path& file);
    std::size_t add_file(const std::filesystem::path& file);
    void add_entry(TensorEntry entry);

    CheckpointFormat m_format = CheckpointFormat::safetensors;
    std::filesystem::path m_folder;
    std::vector<std::unique_ptr<MappedFile>> m_files;
    std::vector<TensorEntry> m_tensors;
    std::unordered_map<std::string, std::size_t> m_by_name;
    std::map<std::string, std::string> m_metadata;
    std::optional<std::uint64_t> m_index_total_size;
    std::optional<gguf::Metadata> m_gguf_metadata;
};

} // namespace layerwise
