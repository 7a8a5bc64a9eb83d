// `layerwise tokenize MODEL_DIR|TOKENIZER_FILE TEXT [--json] [--no-special]`
// `layerwise tokenize MODEL_DIR|TOKENIZER_FILE --ids 1,2,3 [--skip-special] [--json]`
// `layerwise tokenize MODEL_DIR|TOKENIZER_FILE --bench FILE [--json]`
#include "commands.h"

#include "api/layerwise.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>

namespace layerwise::app {

namespace {

std::vector<text::TokenId> parseIds(const std::string& list)
{
    std::vector<text::TokenId> ids;
    std::string item;
    std::istringstream in(list);
    while (std::getline(in, item, ',')) {
        std::istringstream words(item);
        for (std::string word; words >> word;) {
            std::size_t used = 0;
            long long id = -1;
            try {
                id = std::stoll(word, &used);
            } catch (const std::exception&) {
                used = 0;
            }
            if (used != word.size() || id < 0 || id > INT32_MAX)
                throw FormatError("--ids: '" + word + "' is not a token id; give numbers like 1,2,3");
            ids.push_back(static_cast<text::TokenId>(id));
        }
    }
    return ids;
}

std::string readWholeFile(const std::string& path)
{
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw IoError("cannot open " + path + ": check that the file exists and is readable");
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string dumpJson(const nlohmann::json& j)
{
    return j.dump(1, ' ', false, nlohmann::json::error_handler_t::replace);
}

} // namespace

void addTokenizeCommand(CLI::App& app, int& exitCode)
{
    auto* cmd = app.add_subcommand("tokenize", "Encode text to token ids, decode ids to text, or time the tokenizer");
    struct Options {
        std::string tokenizer;
        std::string text;
        std::string ids;
        std::string benchFile;
        bool json = false;
        bool noSpecial = false;
        bool skipSpecial = false;
    };
    auto opts = std::make_shared<Options>();
    cmd->add_option("tokenizer", opts->tokenizer,
                    "A model folder, a tokenizer.json, a vocab.json (with merges.txt) or a tokenizer.model")
        ->required();
    auto* textOption = cmd->add_option("text", opts->text, "The text to encode ('-' reads standard input)");
    auto* idsOption = cmd->add_option("--ids", opts->ids, "Decode these ids instead (1,2,3)")->type_name("LIST");
    auto* benchOption =
        cmd->add_option("--bench", opts->benchFile, "Time encoding FILE: MB/s, median of 5 runs")->type_name("FILE");
    cmd->add_flag("--json", opts->json, "Print one JSON object");
    cmd->add_flag("--no-special", opts->noSpecial, "Encode without the special tokens (BOS/EOS) the post-processor adds");
    cmd->add_flag("--skip-special", opts->skipSpecial, "Decode without special tokens");
    cmd->callback([opts, textOption, idsOption, benchOption, &exitCode]() {
        const int modes = (textOption->count() > 0) + (idsOption->count() > 0) + (benchOption->count() > 0);
        if (modes != 1)
            throw UnsupportedError("tokenize needs exactly one of: TEXT to encode, --ids to decode, --bench FILE");
        const auto tokenizer = text::load_tokenizer(opts->tokenizer);

        if (benchOption->count() > 0) {
            const std::string sample = readWholeFile(opts->benchFile);
            std::vector<double> rates;
            std::size_t count = 0;
            for (int run = 0; run < 5; ++run) {
                const auto t0 = std::chrono::steady_clock::now();
                count = tokenizer->encode(sample, false).size();
                const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
                rates.push_back(static_cast<double>(sample.size()) / 1e6 / std::max(seconds, 1e-9));
            }
            std::sort(rates.begin(), rates.end());
            const double median = rates[2];
            if (opts->json) {
                std::cout << dumpJson({{"tokenizer", tokenizer->source().string()},
                                       {"kind", tokenizer->kind()},
                                       {"bytes", sample.size()},
                                       {"tokens", count},
                                       {"mb_per_s", median},
                                       {"runs_mb_per_s", rates}})
                          << "\n";
            } else {
                std::printf("layerwise: %.2f MB/s (median of 5 runs, one thread; %zu bytes -> %zu tokens; %s)\n", median,
                            sample.size(), count, tokenizer->kind().c_str());
            }
            exitCode = 0;
            return;
        }

        if (idsOption->count() > 0) {
            const auto ids = parseIds(opts->ids);
            const std::string decoded = tokenizer->decode(ids, opts->skipSpecial);
            if (opts->json)
                std::cout << dumpJson({{"ids", ids}, {"text", decoded}}) << "\n";
            else
                std::cout << decoded << "\n";
            exitCode = 0;
            return;
        }

        std::string input = opts->text;
        if (input == "-")
            input.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
        const auto ids = tokenizer->encode(input, !opts->noSpecial);
        const auto tokens = tokenizer->tokens(ids);
        if (opts->json) {
            std::cout << dumpJson({{"tokenizer", tokenizer->source().string()},
                                   {"kind", tokenizer->kind()},
                                   {"count", ids.size()},
                                   {"ids", ids},
                                   {"tokens", tokens}})
                      << "\n";
        } else {
            for (std::size_t i = 0; i < ids.size(); ++i)
                std::cout << (i ? " " : "") << ids[i];
            std::cout << "\n";
            for (std::size_t i = 0; i < ids.size(); ++i)
                std::cout << "  " << ids[i] << "\t" << nlohmann::json(tokens[i]).dump(-1, ' ', false,
                                                                                      nlohmann::json::error_handler_t::replace)
                          << (tokenizer->is_special(ids[i]) ? "\tspecial" : "") << "\n";
            std::cout << ids.size() << " tokens (" << tokenizer->kind() << ")\n";
        }
        exitCode = 0;
    });
}

} // namespace layerwise::app
