#pragma once
// Calibration data for GPTQ: `samples` token sequences of `seq_len` tokens taken from a UTF-8
// text with the model's tokenizer, and where the default text lives. No LibTorch.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace layerwise {

namespace text {
class Tokenizer;
}

// The default calibration text: $LAYERWISE_CALIBRATION when set (an IoError when it names no
// file), else the path recorded in <venv_dir>/default_calibration.txt by packaging/setup.sh
// (the King James Bible from Debian's bible-kjv package). Empty when neither names a file.
std::filesystem::path default_calibration_file(const std::filesystem::path& venv_dir);

// Sequences of the text: `samples` starting points spread evenly over the text (each moved to
// the start of its line, or of its word when the line began more than 200 bytes before), each
// sequence the tokenizer's BOS (when it has one) followed by the tokens of the text from there,
// seq_len tokens in all. Deterministic. PlanError for samples or
// seq_len < 1 (seq_len < 2 with a BOS), an empty text, or a text shorter than seq_len tokens;
// IoError for an unreadable file; FormatError for text that is not UTF-8.
std::vector<std::vector<std::int64_t>> calibration_sequences(const std::string& text, const text::Tokenizer& tokenizer,
                                                             std::int64_t samples, std::int64_t seq_len,
                                                             const std::string& where = "the calibration text");
std::string read_calibration_text(const std::filesystem::path& file);

} // namespace layerwise
