#pragma once
// A llama.cpp GGUF file as a Hugging Face model: its metadata -> ModelConfig, its tensor names
// -> transformers' names ("blk.0.attn_q.weight" -> "model.layers.0.self_attn.q_proj.weight"),
// and the q/k rows that llama.cpp's converter reordered for its rotary layout marked so the
// loader restores Hugging Face's order. Torch-free.
#include "checkpoint/gguf.h"
#include "core/log.h"
#include "model/config.h"

#include <optional>
#include <string>

namespace layerwise {

class Checkpoint;
struct Architecture;

// general.architecture: those of the architecture table with a GGUF naming (llama — also
// Mistral, SmolLM... —, qwen2, qwen3, gemma2, gemma3...). `checkpoint` (GGUF
// names) tells whether output.weight exists (tied embeddings otherwise), the vocabulary size
// when no key gives it and whether the attention has biases. UnsupportedError for another
// architecture, FormatError for missing or contradictory keys (naming the key).
ModelConfig config_from_gguf(const gguf::Metadata& metadata, const Checkpoint& checkpoint, const std::string& where,
                             const Logger& log = {});

// The transformers name of a GGUF tensor name in `arch`'s naming (Architecture::gguf);
// nullopt for names without one (rope_freqs...).
std::optional<std::string> hf_tensor_name(const Architecture& arch, const std::string& gguf_name);

// Renames the checkpoint's entries to transformers' names and marks llama's q/k projections
// for un-permutation (q: config.num_heads, k: config.num_kv_heads). rope_freqs.weight, which
// config_from_gguf read into the config, leaves the tensor list.
void adopt_gguf_tensors(Checkpoint& checkpoint, const ModelConfig& config);

} // namespace layerwise
