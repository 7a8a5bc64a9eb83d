#include "quant/gptq_calibration.h"

#include "core/error.h"
#include "text/tokenizer.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace layerwise {

namespace fs = std::filesystem;

fs::path default_calibration_file(const fs::path& venv_dir)
{
    std::error_code ec;
    if (const char* env = std::getenv("LAYERWISE_CALIBRATION"); env && *env) {
        if (!fs::is_regular_file(env, ec))
            throw IoError(std::string("LAYERWISE_CALIBRATION names '") + env + "', which is not a file");
        return env;
    }
    std::ifstream recorded(venv_dir / "default_calibration.txt");
    std::string path;
    if (recorded && std::getline(recorded, path) && !path.empty() && fs::is_regular_file(path, ec))
        return path;
    return {};
}

std::string read_calibration_text(const fs::path& file)
{
    std::ifstream in(file, std::ios::binary);
    if (!in)
        throw IoError("cannot read the calibration text '" + file.string() + "'");
    std::stringstream s;
    s << in.rdbuf();
    if (!in.good() && !in.eof())
        throw IoError("cannot read the calibration text '" + file.string() + "'");
    return s.str();
}

namespace {

// The end of text[begin, begin + bytes) moved back to just after a space or line break (no word
// and no UTF-8 sequence cut in two); the end of the text when it is reached.
std::size_t cut_end(const std::string& text, std::size_t begin, std::size_t bytes)
{
    if (begin + bytes >= text.size())
        return text.size();
    std::size_t end = begin + bytes;
    while (end > begin && text[end - 1] != ' ' && text[end - 1] != '\n')
        --end;
    if (end == begin) { // one long "word": cut at a character boundary
        end = begin + bytes;
        while (end > begin && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80)
            --end;
    }
    return end;
}

} // namespace

std::vector<std::vector<std::int64_t>> calibration_sequences(const std::string& text, const text::Tokenizer& tokenizer,
                                                             std::int64_t samples, std::int64_t seq_len, const std::string& where)
{
    const bool bos = tokenizer.bos_id().has_value();
    if (samples < 1)
        throw PlanError("calibration: the number of samples must be at least 1 (got " + std::to_string(samples) + ")");
    if (seq_len < (bos ? 2 : 1))
        throw PlanError("calibration: the sequence length must be at least " + std::to_string(bos ? 2 : 1) + " tokens (got " +
                        std::to_string(seq_len) + ")");
    if (std::all_of(text.begin(), text.end(), [](char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }))
        throw PlanError(where + " is empty; choose a text file with at least a few pages of prose");
    const auto need = static_cast<std::size_t>(seq_len - (bos ? 1 : 0));

    // Tokens of the text from `begin`, growing the piece until `need` tokens or the end.
    const auto tokens_from = [&](std::size_t begin) {
        std::size_t bytes = need * 8;
        while (true) {
            const std::size_t end = cut_end(text, begin, bytes);
            std::vector<text::TokenId> ids = tokenizer.encode(std::string_view(text).substr(begin, end - begin), false);
            if (ids.size() >= need || end == text.size())
                return ids;
            bytes *= 2;
        }
    };
    // The last start that still leaves `need` tokens: found from a suffix of growing length.
    std::size_t last_start = 0;
    {
        std::size_t bytes = need * 8;
        while (true) {
            std::size_t start = text.size() > bytes ? text.size() - bytes : 0;
            if (start > 0)
                while (start < text.size() && text[start - 1] != '\n' && text[start - 1] != ' ')
                    ++start;
            if (tokens_from(start).size() >= need) {
                last_start = start;
                break;
            }
            if (start == 0)
                throw PlanError(where + " holds " + std::to_string(tokens_from(0).size()) + " tokens, fewer than the sequence length (" +
                                std::to_string(need) + " text tokens); give a longer text or a shorter --seq-len");
            bytes *= 2;
        }
    }
    std::vector<std::vector<std::int64_t>> out;
    out.reserve(static_cast<std::size_t>(samples));
    for (std::int64_t i = 0; i < samples; ++i) {
        std::size_t start = samples == 1 ? 0 : static_cast<std::size_t>(static_cast<double>(last_start) * static_cast<double>(i) / static_cast<double>(samples - 1));
        // The start of its line when that is near, else of its word.
        std::size_t line = start;
        while (line > 0 && text[line - 1] != '\n' && start - line < 200)
            --line;
        if (line == 0 || text[line - 1] == '\n')
            start = line;
        else
            while (start > 0 && text[start - 1] != ' ' && text[start - 1] != '\n')
                --start;
        std::vector<text::TokenId> ids = tokens_from(start);
        if (ids.size() < need)
            ids = tokens_from(last_start);
        std::vector<std::int64_t> seq;
        seq.reserve(static_cast<std::size_t>(seq_len));
        if (bos)
            seq.push_back(*tokenizer.bos_id());
        seq.insert(seq.end(), ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(need));
        out.push_back(std::move(seq));
    }
    return out;
}

} // namespace layerwise
