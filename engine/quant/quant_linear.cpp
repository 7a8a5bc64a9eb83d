#include "quant/quant_linear.h"

#include "checkpoint/tensor_view.h"
#include "core/error.h"
#include "quant/blockwise4.h"
#include "quant/gptq_pack.h"
#include "quant/int8.h"
#include "gguf_linear.h"
#include "quant_gemv.h"

#include <ATen/ATen.h>

namespace layerwise {

namespace {

bool is_4bit(QuantMethod m)
{
    return m == QuantMethod::nf4 || m == QuantMethod::fp4;
}

std::int64_t numel_of(const std::vector<std::int64_t>& shape)
{
    std::int64_t n = 1;
    for (auto s : shape)
        n *= s;
    return n;
}

std::string gptq_shape_text(const std::vector<std::int64_t>& shape)
{
    std::string s = "[";
    for (std::size_t i = 0; i < shape.size(); ++i)
        s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

// GPTQ's tensors of `module`, checked against the weight's shape [out, in] and the config.
QuantTensors gptq_tensors(const std::unordered_map<std::string, at::Tensor>& tensors, const std::string& module,
                          const QuantInfo& info)
{
    const std::int64_t out = info.shape[0], in = info.shape[1];
    const std::int64_t group = info.group_size < 0 ? in : info.group_size;
    const std::int64_t groups = (in + group - 1) / group;
    const std::string config = "(" + std::to_string(info.bits) + " bits, group size " + std::to_string(info.group_size) +
                               ", weight [" + std::to_string(out) + ", " + std::to_string(in) + "])";
    auto get = [&](const char* suffix, bool required) -> at::Tensor {
        auto it = tensors.find(module + "." + suffix);
        if (it != tensors.end())
            return it->second;
        if (required)
            throw FormatError("GPTQ linear '" + module + "' lacks its tensor '" + suffix +
                              "'; the checkpoint is incomplete: quantize or save the model again");
        return {};
    };
    auto check = [&](const at::Tensor& t, const char* suffix, bool integer, std::vector<std::int64_t> shape) {
        const bool dtype_ok = integer ? t.scalar_type() == at::kInt : at::isFloatingType(t.scalar_type());
        if (!dtype_ok || t.sizes().vec() != shape) {
            throw FormatError("GPTQ linear '" + module + "': tensor '" + suffix + "' is " +
                              std::string(c10::toString(t.scalar_type())) + " " + gptq_shape_text(t.sizes().vec()) + ", expected " +
                              (integer ? "int32 " : "float16 ") + gptq_shape_text(shape) + " for its config " + config +
                              "; the config and the weights do not belong together, or the checkpoint is corrupt");
        }
    };
    QuantTensors t;
    t.qweight = get("qweight", true);
    t.qzeros = get("qzeros", true);
    t.scales = get("scales", true);
    t.g_idx = get("g_idx", false); // older GPTQ checkpoints: column order
    check(t.qweight, "qweight", true, {in * info.bits / 32, out});
    check(t.qzeros, "qzeros", true, {groups, out * info.bits / 32});
    check(t.scales, "scales", false, {groups, out});
    if (t.g_idx.defined())
        check(t.g_idx, "g_idx", true, {in});
    return t;
}

// Up to this many activation rows (decode, small batches) a 4-bit linear runs the GEMV kernel;
// more rows (prefill) dequantize once and run a matmul.
constexpr std::int64_t kGemvMaxRows = 8;

kernels::Blockwise4Weight blockwise4_weight(const QuantInfo& info, const QuantTensors& t)
{
    kernels::Blockwise4Weight w;
    w.packed = t.weight;
    w.absmax = t.absmax;
    w.code = t.quant_map;
    if (info.nested) {
        w.nested_absmax = t.nested_absmax;
        w.nested_code = t.nested_quant_map;
        w.nested_offset = info.nested_offset;
        w.nested_blocksize = info.nested_blocksize;
    }
    w.out = info.shape[0];
    w.in = info.shape[1];
    w.blocksize = info.blocksize;
    return w;
}

} // namespace

std::vector<QuantTensorSpec> quant_tensor_specs(const std::vector<std::int64_t>& shape, const QuantOptions& o)
{
    const std::int64_t n = numel_of(shape);
    if (o.method == QuantMethod::int8)
        return {{"weight", at::kChar, shape}, {"SCB", at::kFloat, {shape[0]}}};
    TORCH_CHECK(is_4bit(o.method), "quant_tensor_specs: a quantization method");
    const std::int64_t blocks = (n + o.blocksize - 1) / o.blocksize;
    std::vector<QuantTensorSpec> specs{{"weight", at::kByte, {(n + 1) / 2, 1}}};
    if (!o.double_quant) {
        specs.push_back({"weight.absmax", at::kFloat, {blocks}});
        specs.push_back({"weight.quant_map", at::kFloat, {16}});
    } else {
        specs.push_back({"weight.absmax", at::kByte, {blocks}});
        specs.push_back({"weight.quant_map", at::kFloat, {16}});
        specs.push_back({"weight.nested_absmax", at::kFloat, {(blocks + 255) / 256}});
        specs.push_back({"weight.nested_quant_map", at::kFloat, {256}});
    }
    return specs;
}

QuantizedWeight quantize_weight(const at::Tensor& w, const QuantOptions& o, DType compute_dtype)
{
    TORCH_CHECK(w.dim() == 2, "quantize_weight: a 2-D weight");
    QuantizedWeight q;
    q.info.method = o.method;
    q.info.shape = w.sizes().vec();
    q.info.compute_dtype = compute_dtype;
    q.info.threshold = o.int8_threshold;
    q.info.blocksize = o.blocksize;
    if (o.method == QuantMethod::int8) {
        q.info.dtype = DType::f16;
        auto [cb, scb] = quantize_int8_rows(w);
        q.tensors = {{"weight", cb}, {"SCB", scb}};
        return q;
    }
    TORCH_CHECK(is_4bit(o.method), "quantize_weight: a quantization method");
    switch (w.scalar_type()) {
    case at::kHalf: q.info.dtype = DType::f16; break;
    case at::kBFloat16: q.info.dtype = DType::bf16; break;
    default: q.info.dtype = DType::f32; break;
    }
    auto [packed, absmax] = quantize_4bit_blocks(w, o.method, o.blocksize);
    const at::Tensor code = code_4bit(o.method).to(w.device());
    q.tensors.emplace_back("weight", packed);
    if (!o.double_quant) {
        q.tensors.emplace_back("weight.absmax", absmax);
        q.tensors.emplace_back("weight.quant_map", code);
        return q;
    }
    NestedAbsmax nested = nest_absmax(absmax, 256);
    q.info.nested = true;
    q.info.nested_offset = nested.offset;
    q.info.nested_blocksize = 256;
    q.tensors.emplace_back("weight.absmax", nested.absmax_u8);
    q.tensors.emplace_back("weight.quant_map", code);
    q.tensors.emplace_back("weight.nested_absmax", nested.nested_absmax);
    q.tensors.emplace_back("weight.nested_quant_map", nested.nested_code);
    return q;
}

QuantTensors quant_tensors(const std::unordered_map<std::string, at::Tensor>& tensors, const std::string& module,
                           const QuantInfo& info)
{
    auto get = [&](const std::string& suffix) -> at::Tensor {
        auto it = tensors.find(module + "." + suffix);
        if (it == tensors.end())
            throw FormatError("quantized linear '" + module + "' lacks its tensor '" + suffix +
                              "'; the checkpoint is incomplete: save or quantize the model again");
        return it->second;
    };
    auto check = [&](const at::Tensor& t, const std::string& suffix, c10::ScalarType dtype, std::int64_t numel) {
        if (t.scalar_type() != dtype || t.numel() != numel)
            throw FormatError("quantized linear '" + module + "': tensor '" + suffix + "' has " + std::to_string(t.numel()) +
                              " values of " + std::string(c10::toString(t.scalar_type())) + ", expected " +
                              std::to_string(numel) + " of " + std::string(c10::toString(dtype)) +
                              " for a weight of shape [" + std::to_string(info.shape[0]) + ", " +
                              std::to_string(info.shape[1]) + "]; the checkpoint is corrupt");
    };
    const std::int64_t n = numel_of(info.shape);
    QuantTensors t;
    if (info.method == QuantMethod::gptq)
        return gptq_tensors(tensors, module, info);
    t.weight = get("weight");
    if (info.method == QuantMethod::gguf) {
        const auto type = static_cast<kernels::GgmlType>(info.ggml_type);
        check(t.weight, "weight", at::kByte, info.shape[0] * kernels::gguf_row_bytes(type, info.shape[1]));
        return t;
    }
    if (info.method == QuantMethod::int8) {
        t.scb = get("SCB");
        check(t.weight, "weight", at::kChar, n);
        check(t.scb, "SCB", at::kFloat, info.shape[0]);
        return t;
    }
    const std::int64_t blocks = (n + info.blocksize - 1) / info.blocksize;
    check(t.weight, "weight", at::kByte, (n + 1) / 2);
    t.absmax = get("weight.absmax");
    t.quant_map = get("weight.quant_map");
    check(t.quant_map, "weight.quant_map", at::kFloat, 16);
    if (info.nested) {
        check(t.absmax, "weight.absmax", at::kByte, blocks);
        t.nested_absmax = get("weight.nested_absmax");
        t.nested_quant_map = get("weight.nested_quant_map");
        check(t.nested_absmax, "weight.nested_absmax", at::kFloat, (blocks + info.nested_blocksize - 1) / info.nested_blocksize);
        check(t.nested_quant_map, "weight.nested_quant_map", at::kFloat, 256);
    } else {
        check(t.absmax, "weight.absmax", at::kFloat, blocks);
    }
    return t;
}

at::Tensor dequantize_weight(const QuantInfo& info, const QuantTensors& t, c10::ScalarType dtype)
{
    if (info.method == QuantMethod::int8)
        return dequantize_int8_rows(t.weight, t.scb).to(dtype);
    if (info.method == QuantMethod::gptq)
        return gptq_dequantize(GptqPacked{t.qweight, t.qzeros, t.scales, t.g_idx}, info.bits, dtype);
    if (info.method == QuantMethod::gguf)
        return kernels::gguf_dequantize(t.weight, static_cast<kernels::GgmlType>(info.ggml_type), info.shape[1]).to(dtype);
    at::Tensor absmax = t.absmax;
    if (info.nested)
        absmax = unnest_absmax(t.absmax, t.nested_absmax, t.nested_quant_map, info.nested_offset, info.nested_blocksize);
    return dequantize_4bit_blocks(t.weight, absmax, t.quant_map, info.blocksize, info.shape, dtype);
}

at::Tensor quant_linear(const at::Tensor& x, const QuantInfo& info, const QuantTensors& t, const at::Tensor& bias)
{
    const auto compute = scalar_type(info.compute_dtype);
    if (info.method == QuantMethod::int8) {
        const at::Tensor b = bias.defined() ? bias.to(x.scalar_type()) : bias;
        return int8_linear(x, t.weight, t.scb, b, info.threshold);
    }
    if (info.method == QuantMethod::gptq)
        return gptq_linear(x, info, t, bias);
    if (info.method == QuantMethod::gguf)
        return gguf_linear(x, info, t, bias);
    // bitsandbytes' Linear4bit: input and bias in the compute dtype, output back in the input's.
    const std::int64_t rows = x.numel() / std::max<std::int64_t>(1, x.size(-1));
    if (x.is_cpu() && rows <= kGemvMaxRows) {
        // Decode: the 4-bit GEMV kernel reads the packed weight once, never building it in float.
        auto out_shape = x.sizes().vec();
        out_shape.back() = info.shape[0];
        at::Tensor y = kernels::blockwise4_gemv(x.reshape({rows, x.size(-1)}).to(compute), blockwise4_weight(info, t));
        if (bias.defined())
            y = y + bias.to(compute);
        return y.view(out_shape).to(x.scalar_type());
    }
    const at::Tensor w = dequantize_weight(info, t, compute);
    return at::linear(x.to(compute), w, bias.defined() ? bias.to(compute) : bias).to(x.scalar_type());
}

at::Tensor gptq_linear(const at::Tensor& x, const QuantInfo& info, const QuantTensors& t, const at::Tensor& bias)
{
    const auto compute = scalar_type(info.compute_dtype);
    const std::int64_t rows = x.numel() / std::max<std::int64_t>(1, x.size(-1));
    if (info.bits == 4 && x.is_cpu() && rows <= kGemvMaxRows) {
        // Decode: the 4-bit GEMV kernel reads the packed weight as stored.
        const at::Tensor g_idx = t.g_idx.defined() ? t.g_idx : gptq_default_g_idx(info.shape[1], info.group_size);
        auto out_shape = x.sizes().vec();
        out_shape.back() = info.shape[0];
        at::Tensor y = kernels::gptq_gemv(x.reshape({rows, x.size(-1)}).to(compute), t.qweight, t.qzeros, t.scales, g_idx);
        if (bias.defined())
            y = y + bias.to(y.scalar_type());
        return y.view(out_shape).to(x.scalar_type());
    }
    // Prefill, other bit widths, GPU: the weight dequantized exactly (scales * (q - zero)), a plain linear.
    const at::Tensor w = dequantize_weight(info, t, compute);
    return at::linear(x.to(compute), w, bias.defined() ? bias.to(compute) : bias).to(x.scalar_type());
}

at::Tensor gguf_linear(const at::Tensor& x, const QuantInfo& info, const QuantTensors& t, const at::Tensor& bias)
{
    const auto type = static_cast<kernels::GgmlType>(info.ggml_type);
    at::Tensor y;
    if (t.weight.is_cpu()) // the CPU kernels, wherever x is
        y = kernels::gguf_linear(x.cpu(), t.weight, type, info.shape[1]).to(x.device());
    else // the blocks on a GPU: its block kernels
        y = kernels::gguf_linear(x.to(t.weight.device()), t.weight, type, info.shape[1]);
    return bias.defined() ? y + bias.to(y.scalar_type()) : y;
}

} // namespace layerwise
