// The tokenizer and chat template of a .gguf file: its header is parsed with gguf::parse and
// handed to the metadata-based builders of gguf_tokenizer.cpp.
#include "checkpoint/gguf.h"
#include "core/mapped_file.h"
#include "text/gguf_tokenizer.h"

namespace layerwise {

namespace {

gguf::Metadata read_metadata(const std::filesystem::path& file)
{
    return gguf::read_header(MappedFile(file), file.string()).metadata;
}

} // namespace

namespace text {

std::unique_ptr<Tokenizer> tokenizer_from_gguf_file(const std::filesystem::path& file)
{
    return tokenizer_from_gguf(read_metadata(file), file);
}

} // namespace text

ChatTemplate chat_template_from_gguf_file(const std::filesystem::path& file, const std::string& name, const Logger& log)
{
    return chat_template_from_gguf(read_metadata(file), file, name, log);
}

} // namespace layerwise
