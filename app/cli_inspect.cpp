// `layerwise inspect MODEL_DIR|config.json|PRESET [--json] [--dtype auto|float16|...]`
#include "commands.h"


#include <CLI/CLI.hpp>
#include <iostream>
#include <nlohmann/json.hpp>

namespace layerwise::app {

void addInspectCommand(CLI::App& app, int& exitCode)
{
    auto* cmd = app.add_subcommand("inspect", "Describe a model without loading its weights");
    struct Options {
        std::string model;
        bool json = false;
        std::string dtype = "auto";
        bool listPresets = false;
        GptqCli gptq;
    };
    auto opts = std::make_shared<Options>();
    cmd->add_option("model", opts->model, "A model folder, a weights file, a config.json or a preset name");
    cmd->add_flag("--json", opts->json, "Print one JSON object");
    cmd->add_option("--dtype", opts->dtype, "Dtype to load in: auto (as transformers), float32, bfloat16, float16")
        ->capture_default_str();
    cmd->add_flag("--presets", opts->listPresets, "List the presets of well-known models");
    addGptqOptions(cmd, opts->gptq);
    cmd->callback([opts, &exitCode]() {
        if (opts->listPresets) {
            for (const auto& p : list_presets())
                std::cout << p.name << "\t" << p.display_name << "\t" << p.source << "\n";
            return;
        }
        if (opts->model.empty())
            throw UnsupportedError("inspect needs a model: a folder, a config.json or a preset (see --presets)");
        std::optional<DType> dtype;
        if (opts->dtype != "auto") {
            dtype = dtype_from_torch_name(opts->dtype);
            if (!dtype || !is_floating(*dtype))
                throw UnsupportedError("--dtype '" + opts->dtype +
                                       "' is not one of auto, float32, bfloat16, float16, float64");
        }
        Logger log([](LogLevel level, const std::string& message) {
            if (level != LogLevel::debug)
                std::cerr << (level == LogLevel::warning ? "warning: " : "") << message << "\n";
        });
        const Model model = Model::open(opts->model, {dtype, gptqSource(opts->gptq), log});
        if (opts->json)
            std::cout << model.to_json().dump(1) << "\n";
        else
            std::cout << model.to_text();
        exitCode = 0;
    });
}

} // namespace layerwise::app
