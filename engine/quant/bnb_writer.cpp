#include "quant/bnb_writer.h"

#include "checkpoint/folder_writer.h"
#include "checkpoint/safetensors_writer.h"
#include "checkpoint/tensor_view.h"
#include "core/error.h"
#include "core/json_read.h"
#include "inspect.h"
#include "plan/weight_format.h"
#include "quant/quant_linear.h"

#include <ATen/ATen.h>
#include <cstring>
#include <fstream>
#include <sstream>
#include <nlohmann/json.hpp>

namespace layerwise {

namespace {

DType dtype_of(c10::ScalarType t)
{
    switch (t) {
    case at::kChar: return DType::i8;
    case at::kByte: return DType::u8;
    case at::kFloat: return DType::f32;
    case at::kHalf: return DType::f16;
    case at::kBFloat16: return DType::bf16;
    default: TORCH_CHECK(false, "unexpected dtype");
    }
}

TensorToWrite write_of(const std::string& name, const at::Tensor& t)
{
    TensorToWrite w;
    w.name = name;
    w.dtype = dtype_of(t.scalar_type());
    w.shape = t.sizes().vec();
    const at::Tensor c = t.contiguous();
    w.fill = [c](std::byte* out) { std::memcpy(out, c.data_ptr(), static_cast<std::size_t>(c.numel()) * c.element_size()); };
    return w;
}

} // namespace

QuantizeResult save_quantized(ModelDescription&& d, const QuantOptions& options, const std::filesystem::path& out,
                              const ProgressCallback& progress, const Logger& log)
{
    namespace fs = std::filesystem;
    if (!d.checkpoint)
        throw UnsupportedError("'" + d.source + "' has no weights (a preset or a config.json): there is nothing to quantize");
    if (!options.enabled())
        throw PlanError("choose a quantization method (int8, nf4 or fp4)");
    std::error_code ec;
    if (fs::exists(out, ec))
        throw IoError("'" + out.string() + "' already exists; choose another --out or remove it");
    const Checkpoint& ck = *d.checkpoint;
    const fs::path config_path = ck.folder() / "config.json";
    std::stringstream config_text;
    {
        std::ifstream in(config_path);
        if (!in)
            throw IoError("cannot read " + config_path.string());
        config_text << in.rdbuf();
    }
    nlohmann::json config = parse_json(config_text.str(), config_path.string());
    if (config.contains("quantization_config"))
        throw UnsupportedError("'" + ck.folder().string() + "' is already quantized (config.json has quantization_config); quantize the original model");
    const DType model_dtype = d.tree.dtype();
    const DType compute = options.compute_dtype.value_or(model_dtype);

    QuantizeResult result;
    std::vector<TensorToWrite> writes;
    std::uint64_t total = 0, done = 0;
    for (const auto& n : d.tree.nodes())
        for (const auto& t : n.tensors)
            if (t.checkpoint_entry && t.tied_to.empty())
                total += ck.tensors()[*t.checkpoint_entry].size;
    for (const auto& node : d.tree.nodes()) {
        for (const auto& t : node.tensors) {
            if (!t.checkpoint_entry || !t.tied_to.empty() || !t.persistent)
                continue;
            const TensorEntry& entry = ck.tensors()[*t.checkpoint_entry];
            if (progress && !progress({done, total, t.full_name}))
                throw CancelledError("quantization cancelled");
            done += entry.size;
            const std::string module = t.full_name.substr(0, t.full_name.size() - std::min<std::size_t>(7, t.full_name.size()));
            const bool conv1d = node.class_name == "Conv1D";
            if (!is_quantizable(d.tree, t) || options.skips(module) || conv1d) {
                // As transformers saves it: in the model's dtype.
                at::Tensor v = tensor_view(ck, entry);
                if (is_floating(entry.dtype) && entry.dtype != model_dtype)
                    v = v.to(scalar_type(model_dtype));
                writes.push_back(write_of(t.full_name, v));
                continue;
            }
            const QuantizedWeight q = quantize_weight(tensor_view(ck, entry).to(scalar_type(model_dtype)), options, compute);
            ++result.quantized_linears;
            for (const auto& [suffix, tensor] : q.tensors)
                writes.push_back(write_of(module + "." + suffix, tensor));
            if (options.method == QuantMethod::int8) {
                writes.push_back(write_of(module + ".weight_format", at::zeros({}, at::kByte))); // row-major
            } else {
                const std::string state = bnb_quant_state_json(q.info);
                at::Tensor bytes = at::empty({static_cast<std::int64_t>(state.size())}, at::kByte);
                std::memcpy(bytes.data_ptr(), state.data(), state.size());
                writes.push_back(write_of(module + ".weight.quant_state.bitsandbytes__" + std::string(quant_method_name(options.method)), bytes));
            }
        }
    }
    std::sort(writes.begin(), writes.end(), [](const TensorToWrite& a, const TensorToWrite& b) { return a.name < b.name; });
    for (const auto& w : writes) {
        std::uint64_t n = dtype_bits(w.dtype) / 8;
        for (auto s : w.shape)
            n *= static_cast<std::uint64_t>(s);
        result.weight_bytes += n;
    }

    write_model_folder_atomically(out, ck.folder(), [&](const fs::path& tmp) {
        write_safetensors(tmp / "model.safetensors", writes, {{"format", "pt"}});
        config["quantization_config"] = bnb_quantization_config(options, compute);
        write_text_file_atomically(tmp / "config.json", config.dump(2) + "\n");
    });
    result.folder = out;
    log.info("quantized " + std::to_string(result.quantized_linears) + " linear layers to " +
             std::string(quant_method_name(options.method)) + " in " + out.string());
    return result;
}

} // namespace layerwise
