#include "quant/quant_load.h"

#include "checkpoint/tensor_view.h"
#include "core/error.h"

#include <ATen/ATen.h>
#include <cstring>

namespace layerwise {

namespace {

const char* const kStatePrefix = ".weight.quant_state.bitsandbytes__";

} // namespace

std::optional<QuantInfo> saved_quant_info(const Checkpoint& ck, const std::string& module, const GptqConfig* gptq)
{
    const std::string where = ck.folder().string() + ": '" + module + ".weight'";
    if (const TensorEntry* qweight = ck.find(module + ".qweight")) {
        if (!gptq)
            throw FormatError(ck.folder().string() + ": '" + module + ".qweight' is a GPTQ-packed weight but the folder has "
                              "no GPTQ config (quantize_config.json, quant_config.json or a config.json "
                              "quantization_config with quant_method \"gptq\"); add the one it was saved with");
        if (qweight->shape.size() != 2 || qweight->dtype != DType::i32 || qweight->shape[0] * 32 % gptq->bits != 0)
            throw FormatError(ck.folder().string() + ": '" + module + ".qweight' must be a 2-D int32 tensor [in*bits/32, out]");
        QuantInfo info;
        info.method = QuantMethod::gptq;
        info.bits = gptq->bits;
        info.group_size = gptq->group_size;
        info.desc_act = gptq->desc_act;
        info.sym = gptq->sym;
        info.dtype = DType::f16;
        info.shape = {qweight->shape[1], qweight->shape[0] * 32 / gptq->bits};
        return info;
    }
    for (const char* type : {"nf4", "fp4"}) {
        const TensorEntry* state = ck.find(module + kStatePrefix + type);
        if (!state)
            continue;
        const at::Tensor bytes = tensor_view(ck, *state);
        if (bytes.scalar_type() != at::kByte)
            throw FormatError(where + ": its bitsandbytes quant_state is not a uint8 tensor");
        const std::string text(reinterpret_cast<const char*>(bytes.data_ptr()), static_cast<std::size_t>(bytes.numel()));
        QuantInfo info = parse_bnb_quant_state(text, where);
        if (std::string(quant_method_name(info.method)) != type)
            throw FormatError(where + ": the quant_state tensor says " + type + " but its JSON says " +
                              std::string(quant_method_name(info.method)));
        return info;
    }
    // A 4-bit weight without its quant_state: bitsandbytes cannot read it either.
    if (ck.find(module + ".weight.absmax") || ck.find(module + ".weight.quant_map"))
        throw FormatError(where + " has 4-bit absmax/quant_map tensors but no quant_state.bitsandbytes__nf4|fp4; "
                          "the checkpoint is incomplete: save the quantized model again");
    if (const TensorEntry* scb = ck.find(module + ".SCB")) {
        const TensorEntry* w = ck.find(module + ".weight");
        if (!w || w->shape.size() != 2)
            throw FormatError(where + ": an int8 SCB without a 2-D int8 weight");
        QuantInfo info;
        info.method = QuantMethod::int8;
        info.shape = w->shape;
        info.dtype = DType::f16;
        (void)scb;
        return info;
    }
    return std::nullopt;
}

std::vector<std::pair<std::string, at::Tensor>> saved_quant_tensors(const Checkpoint& ck, const std::string& module,
                                                                     const QuantInfo& info)
{
    std::unordered_map<std::string, at::Tensor> found;
    for (const char* suffix : {"weight", "SCB", "weight.absmax", "weight.quant_map", "weight.nested_absmax", "weight.nested_quant_map",
                               "qweight", "qzeros", "scales", "g_idx"})
        if (const TensorEntry* e = ck.find(module + "." + suffix))
            found.emplace(module + "." + suffix, tensor_view(ck, *e));
    try {
        const QuantTensors t = quant_tensors(found, module, info); // size checks
        if (info.method == QuantMethod::gptq && t.g_idx.defined() && t.g_idx.numel() > 0) {
            const std::int64_t groups = t.scales.size(0);
            const auto lo = t.g_idx.min().item<std::int32_t>(), hi = t.g_idx.max().item<std::int32_t>();
            if (lo < 0 || hi >= groups)
                throw FormatError("GPTQ linear '" + module + "': g_idx holds group " + std::to_string(lo < 0 ? lo : hi) +
                                  " but there are " + std::to_string(groups) + " groups; the checkpoint is corrupt");
        }
    } catch (const FormatError& e) {
        throw FormatError(ck.folder().string() + ": " + e.what());
    }
    std::vector<std::pair<std::string, at::Tensor>> out;
    for (auto& [name, t] : found)
        out.emplace_back(name.substr(module.size() + 1), t);
    return out;
}

void QuantOffloadWriter::add(const std::string& module, const std::vector<std::int64_t>& shape,
                             std::function<at::Tensor()> source, std::vector<TensorToWrite>& writes)
{
    for (const QuantTensorSpec& spec : quant_tensor_specs(shape, m_options)) {
        TensorToWrite w;
        w.name = module + "." + spec.suffix;
        w.shape = spec.shape;
        switch (spec.dtype) {
        case at::kChar: w.dtype = DType::i8; break;
        case at::kByte: w.dtype = DType::u8; break;
        default: w.dtype = DType::f32; break;
        }
        auto state = m_state;
        const QuantOptions options = m_options;
        const DType compute = m_compute;
        const std::string suffix = spec.suffix;
        w.fill = [state, options, compute, module, suffix, source](std::byte* out) {
            if (state->module != module) {
                state->current = quantize_weight(source(), options, compute);
                state->module = module;
                state->infos[module] = state->current.info;
            }
            for (const auto& [name, t] : state->current.tensors)
                if (name == suffix) {
                    const at::Tensor c = t.contiguous();
                    std::memcpy(out, c.data_ptr(), static_cast<std::size_t>(c.numel()) * c.element_size());
                    return;
                }
            TORCH_CHECK(false, "quantized tensor ", suffix, " not produced");
        };
        writes.push_back(std::move(w));
    }
}

} // namespace layerwise
