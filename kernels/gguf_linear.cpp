#include "gguf_linear.h"
#include "gguf_cuda.h" // the entry points below hand blocks on a CUDA device to these

#include "cpu/gguf_panel.h"
#include "parallel.h"
#include <ATen/ATen.h>
#include <algorithm>
#include <vector>

namespace layerwise::kernels {

using cpu::GgmlType;

namespace {

struct Geometry {
    int elements = 0, bytes = 0;
};

Geometry geometry_of(GgmlType type)
{
    Geometry g;
    TORCH_CHECK(cpu::block_geometry(type, g.elements, g.bytes), "gguf: unknown ggml type ", static_cast<int>(type));
    return g;
}

void check_weight(const at::Tensor& weight, GgmlType type, std::int64_t in, const char* op)
{
    TORCH_CHECK(gguf_has_kernel(type), op, ": no kernel for ggml type ", gguf_type_name(type));
    const Geometry g = geometry_of(type);
    TORCH_CHECK(in > 0 && in % g.elements == 0, op, ": ", in, " inputs are not whole ", gguf_type_name(type), " blocks of ",
                g.elements);
    TORCH_CHECK(weight.device().is_cpu(), op, ": the GGUF ", gguf_type_name(type), " blocks are on ", weight.device(),
                "; these kernels take them on the CPU (or CUDA)");
    TORCH_CHECK(weight.scalar_type() == at::kByte && weight.dim() == 2 && weight.size(1) == gguf_row_bytes(type, in), op,
                ": weight must be uint8 [out, ", gguf_row_bytes(type, in), "], got ", weight.sizes(), " ", weight.scalar_type());
    TORCH_CHECK(weight.stride(1) == 1 && (weight.size(0) <= 1 || weight.stride(0) == weight.size(1)), op,
                ": weight rows must be contiguous");
}

// Activation rows quantized once per call, into a buffer each thread keeps (no allocation per
// token once it has grown).
// Prefill from this many activation rows on goes through the packed panels (gguf_panel.h), where
// a format and the CPU have them: below it, packing sixteen weight rows costs more than the
// row kernels lose.
constexpr std::int64_t kPanelMinRows = 8;

struct QuantizedRows {
    const std::uint8_t* data = nullptr;
    std::int64_t row_bytes = 0;
    cpu::PanelActivations panel; // panel.meta null: the rows were not prepared for the panels
};

QuantizedRows quantize_rows(const float* x, std::int64_t m, std::int64_t in, GgmlType act, CpuLevel level, int slot = 0,
                            bool for_panel = false)
{
    thread_local std::vector<std::uint8_t> buffers[4];
    thread_local std::vector<float> metas[4];
    std::vector<std::uint8_t>& buffer = buffers[slot];
    if (act == GgmlType::F32)
        return {reinterpret_cast<const std::uint8_t*>(x), in * 4, {}};
    const std::int64_t row_bytes = gguf_row_bytes(act, in);
    if (buffer.size() < static_cast<std::size_t>(m * row_bytes))
        buffer.resize(static_cast<std::size_t>(m * row_bytes));
    auto quantize_one = [&](std::int64_t r) {
        std::uint8_t* out = buffer.data() + r * row_bytes;
        switch (act) {
        case GgmlType::Q8_0: cpu::quantize_row_q8_0(x + r * in, out, in, level); break;
        case GgmlType::Q8_1: cpu::quantize_row_q8_1(x + r * in, out, in, level); break;
        default: cpu::quantize_row_q8_K(x + r * in, out, in, level); break;
        }
    };
    const bool panel = for_panel && m >= kPanelMinRows;
    std::vector<float>& meta = metas[slot];
    const std::int64_t meta_stride = in / 8;
    if (panel && meta.size() < static_cast<std::size_t>(m * meta_stride))
        meta.resize(static_cast<std::size_t>(m * meta_stride));
    if (m >= 8)
        parallel_for(0, m, 4, [&](std::int64_t b, std::int64_t e) {
            for (std::int64_t r = b; r < e; ++r) {
                quantize_one(r);
                if (panel)
                    cpu::panel_prepare_row(act, buffer.data() + r * row_bytes, in, meta.data() + r * meta_stride);
            }
        });
    else
        for (std::int64_t r = 0; r < m; ++r)
            quantize_one(r);
    QuantizedRows q{buffer.data(), row_bytes, {}};
    if (panel)
        q.panel = {act, buffer.data(), row_bytes, meta.data(), meta_stride};
    return q;
}

// The kernels of one format at one level (dot4 and tile null where there are none).
struct Kernels {
    GgmlType type;
    cpu::VecDot dot;
    cpu::VecDot4 dot4;
    cpu::VecDot4x4 tile;
    bool panel;
};

Kernels kernels_for(GgmlType type, CpuLevel level)
{
    return {type, cpu::vec_dot_kernel(type, level), cpu::vec_dot4_kernel(type, level), cpu::vec_dot4x4_kernel(type, level),
            cpu::panel_available(type, level)};
}

// Weight rows [begin, end) of one weight against every activation row: y[r * ldy + o] for the
// row o (counted from the weight's first row). Tiles of four by four for prefill, four rows at a
// time for decode, one at a time for what is left; each weight row is used for all activation
// rows while it is in cache.
void dot_rows(const std::uint8_t* w, std::int64_t row_bytes, std::int64_t begin, std::int64_t end, std::int64_t in,
              const Kernels& k, const QuantizedRows& a, std::int64_t m, float* y, std::int64_t ldy)
{
    const cpu::VecDot dot = k.dot;
    const cpu::VecDot4 dot4 = k.dot4;
    std::int64_t o = begin;
    if (k.panel && a.panel.meta) {
        // Prefill on AVX-512 VNNI: sixteen weight rows packed at a time, for every activation row.
        for (; o < end; o += 16)
            cpu::panel_gemm(k.type, in, w + o * row_bytes, row_bytes, static_cast<int>(std::min<std::int64_t>(16, end - o)),
                            a.panel, m, y + o, ldy);
        return;
    }
    if (k.tile && m >= 4) {
        // Prefill: tiles of four weight rows by four activation rows; the rest below.
        for (; o + 4 <= end; o += 4) {
            std::int64_t r = 0;
            for (; r + 4 <= m; r += 4) {
                float t[16];
                k.tile(in, w + o * row_bytes, row_bytes, a.data + r * a.row_bytes, a.row_bytes, t);
                for (int i = 0; i < 4; ++i)
                    for (int j = 0; j < 4; ++j)
                        y[(r + j) * ldy + o + i] = t[i * 4 + j];
            }
            for (; r < m; ++r)
                for (int i = 0; i < 4; ++i)
                    y[r * ldy + o + i] = dot(in, w + (o + i) * row_bytes, a.data + r * a.row_bytes);
        }
    }
    if (dot4)
        for (; o + 4 <= end; o += 4)
            for (std::int64_t r = 0; r < m; ++r) {
                float t[4];
                dot4(in, w + o * row_bytes, row_bytes, a.data + r * a.row_bytes, t);
                std::copy(t, t + 4, y + r * ldy + o);
            }
    for (; o < end; ++o)
        for (std::int64_t r = 0; r < m; ++r)
            y[r * ldy + o] = dot(in, w + o * row_bytes, a.data + r * a.row_bytes);
}

} // namespace

bool gguf_has_kernel(GgmlType type)
{
    return cpu::vec_dot_kernel(type, CpuLevel::scalar) != nullptr;
}

std::string gguf_type_name(GgmlType type)
{
    switch (type) {
    case GgmlType::F32: return "F32";
    case GgmlType::F16: return "F16";
    case GgmlType::Q4_0: return "Q4_0";
    case GgmlType::Q4_1: return "Q4_1";
    case GgmlType::Q5_0: return "Q5_0";
    case GgmlType::Q5_1: return "Q5_1";
    case GgmlType::Q8_0: return "Q8_0";
    case GgmlType::Q8_1: return "Q8_1";
    case GgmlType::Q2_K: return "Q2_K";
    case GgmlType::Q3_K: return "Q3_K";
    case GgmlType::Q4_K: return "Q4_K";
    case GgmlType::Q5_K: return "Q5_K";
    case GgmlType::Q6_K: return "Q6_K";
    case GgmlType::Q8_K: return "Q8_K";
    case GgmlType::BF16: return "BF16";
    case GgmlType::MXFP4: return "MXFP4";
    }
    return "type " + std::to_string(static_cast<int>(type));
}

std::int64_t gguf_row_bytes(GgmlType type, std::int64_t in)
{
    const Geometry g = geometry_of(type);
    return in / g.elements * g.bytes;
}

at::Tensor gguf_linear(const at::Tensor& x, const at::Tensor& weight, GgmlType type, std::int64_t in, CpuLevel level)
{
    if (weight.is_cuda())
        return gguf_linear_cuda(x, weight, type, in);
    check_weight(weight, type, in, "gguf_linear");
    TORCH_CHECK(x.size(-1) == in, "gguf_linear: x has ", x.size(-1), " features, the weight ", in);
    TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kBFloat16 || x.scalar_type() == at::kHalf,
                "gguf_linear: x must be float32, bfloat16 or float16");
    TORCH_CHECK(x.device().is_cpu(), "gguf_linear: x must be on the CPU");
    TORCH_CHECK(cpu_level_available(level), "gguf_linear: this CPU cannot run the ", cpu_level_name(level), " kernels");
    const std::int64_t out = weight.size(0);
    const at::Tensor x2 = x.reshape({-1, in}).to(at::kFloat).contiguous();
    const std::int64_t m = x2.size(0);
    at::Tensor y = at::empty({m, out}, x2.options());
    if (m == 0 || out == 0)
        return y.to(x.scalar_type()).reshape([&] { auto s = x.sizes().vec(); s.back() = out; return s; }());
    const Kernels k = kernels_for(type, level);
    const QuantizedRows a = quantize_rows(x2.data_ptr<float>(), m, in, cpu::activation_type(type), level, 0, k.panel);
    const std::uint8_t* w = weight.data_ptr<std::uint8_t>();
    const std::int64_t row_bytes = weight.size(1);
    float* yp = y.data_ptr<float>();
    // Each weight row is read once from memory and used for every activation row while it is in
    // the first-level cache: decode streams the blocks, prefill reuses them across the prompt.
    parallel_for(0, out, 16, [&](std::int64_t begin, std::int64_t end) {
        dot_rows(w, row_bytes, begin, end, in, k, a, m, yp, out);
    });
    auto shape = x.sizes().vec();
    shape.back() = out;
    return y.to(x.scalar_type()).reshape(shape);
}

void gguf_matmul_rows(const float* x, std::int64_t m, std::int64_t in, const GgufRows* weights, std::size_t count,
                      CpuLevel level)
{
    // One quantized copy of the input per activation format (at most four: Q8_0, Q8_1, Q8_K,
    // or the floats themselves), then one parallel pass over every weight's rows.
    struct Part {
        const std::uint8_t* w;
        std::int64_t out, row_bytes, first;
        Kernels k;
        QuantizedRows a;
        float* y;
    };
    Part parts[8];
    TORCH_CHECK(count >= 1 && count <= 8, "gguf_matmul_rows: 1 to 8 weights, not ", count);
    GgmlType formats[4];
    QuantizedRows quantized[4];
    std::size_t nformats = 0;
    std::int64_t total = 0;
    for (std::size_t i = 0; i < count; ++i) {
        const GgufRows& w = weights[i];
        const GgmlType act = cpu::activation_type(w.type);
        std::size_t f = 0;
        while (f < nformats && formats[f] != act)
            ++f;
        if (f == nformats) {
            formats[nformats++] = act;
            // Prepared for the panels when any weight of this activation format has them.
            bool panel = false;
            for (std::size_t j = i; j < count; ++j)
                panel = panel || (cpu::activation_type(weights[j].type) == act && cpu::panel_available(weights[j].type, level));
            quantized[f] = quantize_rows(x, m, in, act, level, static_cast<int>(f), panel);
        }
        parts[i] = {w.blocks, w.out, gguf_row_bytes(w.type, in), total, kernels_for(w.type, level), quantized[f], w.y};
        total += w.out;
    }
    parallel_for(0, total, 16, [&](std::int64_t begin, std::int64_t end) {
        for (std::size_t i = 0; i < count; ++i) {
            const Part& p = parts[i];
            const std::int64_t b = std::max(begin, p.first), e = std::min(end, p.first + p.out);
            if (b < e)
                dot_rows(p.w, p.row_bytes, b - p.first, e - p.first, in, p.k, p.a, m, p.y, p.out);
        }
    });
}

std::vector<at::Tensor> gguf_linear_group(const at::Tensor& x, const std::vector<GgufWeight>& weights, std::int64_t in,
                                          CpuLevel level)
{
    TORCH_CHECK(!weights.empty() && weights.size() <= 8, "gguf_linear_group: 1 to 8 weights");
    if (weights.front().weight.is_cuda()) { // one GEMV or tiled matmul per weight on the GPU
        std::vector<at::Tensor> outs;
        for (const GgufWeight& w : weights)
            outs.push_back(gguf_linear_cuda(x, w.weight, w.type, in));
        return outs;
    }
    for (const GgufWeight& w : weights)
        check_weight(w.weight, w.type, in, "gguf_linear_group");
    TORCH_CHECK(x.size(-1) == in, "gguf_linear_group: x has ", x.size(-1), " features, the weights ", in);
    TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kBFloat16 || x.scalar_type() == at::kHalf,
                "gguf_linear_group: x must be float32, bfloat16 or float16");
    TORCH_CHECK(x.device().is_cpu(), "gguf_linear_group: x must be on the CPU");
    TORCH_CHECK(cpu_level_available(level), "gguf_linear_group: this CPU cannot run the ", cpu_level_name(level), " kernels");
    const at::Tensor x2 = x.reshape({-1, in}).to(at::kFloat).contiguous();
    const std::int64_t m = x2.size(0);
    std::vector<at::Tensor> outs;
    std::vector<GgufRows> rows;
    for (const GgufWeight& w : weights) {
        outs.push_back(at::empty({m, w.weight.size(0)}, x2.options()));
        rows.push_back({w.weight.data_ptr<std::uint8_t>(), w.type, w.weight.size(0), outs.back().data_ptr<float>()});
    }
    gguf_matmul_rows(x2.data_ptr<float>(), m, in, rows.data(), rows.size(), level);
    for (at::Tensor& y : outs) {
        auto shape = x.sizes().vec();
        shape.back() = y.size(1);
        y = y.to(x.scalar_type()).reshape(shape);
    }
    return outs;
}

void gguf_matmul_each(const GgufEach* items, std::size_t count, std::int64_t in, CpuLevel level)
{
    struct Part {
        Kernels k;
        QuantizedRows a;
        std::int64_t row_bytes, first;
    };
    thread_local std::vector<std::uint8_t> buffer;
    std::vector<Part> parts(count);
    std::vector<std::int64_t> offsets(count, -1);
    std::int64_t bytes = 0, total = 0;
    for (std::size_t i = 0; i < count; ++i) {
        const GgmlType act = cpu::activation_type(items[i].type);
        if (act != GgmlType::F32) {
            offsets[i] = bytes;
            bytes += items[i].m * gguf_row_bytes(act, in);
        }
    }
    if (buffer.size() < static_cast<std::size_t>(bytes))
        buffer.resize(static_cast<std::size_t>(bytes));
    for (std::size_t i = 0; i < count; ++i) {
        const GgufEach& it = items[i];
        const GgmlType act = cpu::activation_type(it.type);
        QuantizedRows a{reinterpret_cast<const std::uint8_t*>(it.x), in * 4, {}};
        if (act != GgmlType::F32) {
            const std::int64_t row_bytes = gguf_row_bytes(act, in);
            std::uint8_t* out = buffer.data() + offsets[i];
            for (std::int64_t r = 0; r < it.m; ++r)
                switch (act) {
                case GgmlType::Q8_0: cpu::quantize_row_q8_0(it.x + r * in, out + r * row_bytes, in, level); break;
                case GgmlType::Q8_1: cpu::quantize_row_q8_1(it.x + r * in, out + r * row_bytes, in, level); break;
                default: cpu::quantize_row_q8_K(it.x + r * in, out + r * row_bytes, in, level); break;
                }
            a = {out, row_bytes, {}};
        }
        Kernels k = kernels_for(it.type, level);
        k.panel = false;
        parts[i] = {k, a, gguf_row_bytes(it.type, in), total};
        total += it.out;
    }
    parallel_for(0, total, 16, [&](std::int64_t begin, std::int64_t end) {
        for (std::size_t i = 0; i < count; ++i) {
            const Part& p = parts[i];
            const std::int64_t b = std::max(begin, p.first), e = std::min(end, p.first + items[i].out);
            if (b < e)
                dot_rows(items[i].blocks, p.row_bytes, b - p.first, e - p.first, in, p.k, p.a, items[i].m, items[i].y,
                         items[i].out);
        }
    });
}

at::Tensor gguf_dequantize(const at::Tensor& weight, GgmlType type, std::int64_t in)
{
    if (weight.is_cuda())
        return gguf_dequantize_cuda(weight, type, in, at::kFloat);
    check_weight(weight, type, in, "gguf_dequantize");
    const at::Tensor w = weight.contiguous();
    const std::int64_t rows = w.size(0), row_bytes = w.size(1);
    at::Tensor out = at::empty({rows, in}, at::TensorOptions().dtype(at::kFloat));
    const std::uint8_t* src = w.data_ptr<std::uint8_t>();
    float* dst = out.data_ptr<float>();
    parallel_for(0, rows, 64, [&](std::int64_t b, std::int64_t e) {
        for (std::int64_t r = b; r < e; ++r)
            cpu::dequantize_row(type, src + r * row_bytes, dst + r * in, in);
    });
    return out;
}

at::Tensor gguf_linear_reference(const at::Tensor& x, const at::Tensor& weight, GgmlType type, std::int64_t in)
{
    return at::matmul(x.to(at::kFloat), gguf_dequantize(weight, type, in).t()).to(x.scalar_type());
}

at::Tensor gguf_embedding(const at::Tensor& weight, GgmlType type, std::int64_t in, const at::Tensor& ids)
{
    if (weight.is_cuda())
        return gguf_embedding_cuda(weight, type, in, ids);
    check_weight(weight, type, in, "gguf_embedding");
    const at::Tensor flat = ids.reshape({-1}).to(at::kLong).contiguous();
    const std::int64_t rows = weight.size(0), row_bytes = weight.size(1), n = flat.numel();
    at::Tensor out = at::empty({n, in}, at::TensorOptions().dtype(at::kFloat));
    const std::int64_t* id = flat.data_ptr<std::int64_t>();
    const std::uint8_t* src = weight.data_ptr<std::uint8_t>();
    for (std::int64_t i = 0; i < n; ++i) {
        TORCH_CHECK(id[i] >= 0 && id[i] < rows, "gguf_embedding: token id ", id[i], " outside the table of ", rows, " rows");
        cpu::dequantize_row(type, src + id[i] * row_bytes, out.data_ptr<float>() + i * in, in);
    }
    auto shape = ids.sizes().vec();
    shape.push_back(in);
    return out.reshape(shape);
}

} // namespace layerwise::kernels
