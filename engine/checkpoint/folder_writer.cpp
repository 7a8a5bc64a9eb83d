#include "checkpoint/folder_writer.h"

#include "core/error.h"

#include <fstream>
#include <random>

namespace layerwise {

namespace fs = std::filesystem;

void write_text_file_atomically(const fs::path& path, const std::string& text)
{
    const fs::path tmp = path.string() + ".tmp";
    {
        std::ofstream o(tmp, std::ios::binary | std::ios::trunc);
        o << text;
        if (!o)
            throw IoError("cannot write '" + tmp.string() + "'");
    }
    std::error_code ec;
    fs::rename(tmp, path, ec);
    if (ec)
        throw IoError("cannot rename '" + tmp.string() + "' to '" + path.string() + "': " + ec.message());
}

void write_model_folder_atomically(const fs::path& out, const fs::path& source_folder, const std::function<void(const fs::path&)>& fill)
{
    std::error_code ec;
    const fs::path parent = out.has_parent_path() ? out.parent_path() : fs::path(".");
    fs::create_directories(parent, ec);
    std::random_device rd;
    const fs::path tmp = parent / ("." + out.filename().string() + ".tmp-" + std::to_string(rd()));
    try {
        if (!fs::create_directory(tmp, ec) || ec)
            throw IoError("cannot create '" + tmp.string() + "': " + ec.message());
        fill(tmp);
        for (const char* f : {"tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "merges.txt",
                              "special_tokens_map.json", "added_tokens.json", "generation_config.json", "chat_template.jinja"}) {
            if (fs::exists(source_folder / f)) {
                fs::copy_file(source_folder / f, tmp / f, ec);
                if (ec)
                    throw IoError("cannot copy '" + (source_folder / f).string() + "': " + ec.message());
            }
        }
        fs::rename(tmp, out, ec);
        if (ec)
            throw IoError("cannot rename '" + tmp.string() + "' to '" + out.string() + "': " + ec.message());
    } catch (...) {
        fs::remove_all(tmp, ec);
        throw;
    }
}

} // namespace layerwise
