#pragma once
// Writing a model folder whole or not at all: everything goes into a hidden temporary sibling
// folder, the source model's tokenizer / generation / chat-template files are copied beside the
// weights, and the folder is renamed into place last. Any error removes the temporary folder.
#include <filesystem>
#include <functional>
#include <string>

namespace layerwise {

// `fill(tmp)` writes the weights and configs into `tmp`. IoError naming the path when a write,
// copy or the final rename fails; whatever `fill` throws passes through (after the clean-up).
void write_model_folder_atomically(const std::filesystem::path& out, const std::filesystem::path& source_folder,
                                   const std::function<void(const std::filesystem::path& tmp)>& fill);

// A text file written to `path.tmp`, then renamed over `path`.
void write_text_file_atomically(const std::filesystem::path& path, const std::string& text);

} // namespace layerwise
