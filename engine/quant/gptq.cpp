#include "quant/gptq.h"

#include "core/error.h"

#include <ATen/ATen.h>
#include <cmath>
#include <vector>

namespace layerwise {

namespace {

using at::indexing::None;
using at::indexing::Slice;

// A row-wise scale and zero point ([rows, 1] float32 each).
struct GroupParams {
    at::Tensor scale, zero;
};

// The quantizer's parameters for the columns of x [rows, k], per row, as AutoGPTQ's
// Quantizer.find_params(weight=True, perchannel=True, mse=False): the range [min(x, 0), max(x, 0)],
// symmetric around 0 when sym, [-1, 1] for an all-zero row; scale = range / maxq; zero = round(-min /
// scale), or (maxq + 1) / 2 when sym. maxq is a 0-dim integer tensor so the division promotes
// exactly as the reference does.
GroupParams find_params(const at::Tensor& x, const at::Tensor& maxq, bool sym)
{
    const at::Tensor origin = at::zeros({x.size(0)}, x.options());
    at::Tensor xmin = at::minimum(std::get<0>(x.min(1)), origin);
    at::Tensor xmax = at::maximum(std::get<0>(x.max(1)), origin);
    if (sym) {
        xmax = at::maximum(at::abs(xmin), xmax);
        xmin = at::where(xmin < 0, -xmax, xmin);
    }
    const at::Tensor flat = at::logical_and(xmin == 0, xmax == 0);
    xmin = at::where(flat, at::full_like(xmin, -1.0), xmin);
    xmax = at::where(flat, at::full_like(xmax, 1.0), xmax);
    at::Tensor scale = (xmax - xmin) / maxq;
    at::Tensor zero = sym ? at::full_like(scale, static_cast<double>(maxq.item<std::int64_t>() + 1) / 2.0) : at::round(-xmin / scale);
    return {scale.reshape({-1, 1}), zero.reshape({-1, 1})};
}

// The integer codes clamp(round(x / scale) + zero, 0, maxq) (float) of x [rows, k].
at::Tensor quantize_codes(const at::Tensor& x, const GroupParams& g, const at::Tensor& maxq)
{
    return at::clamp(at::round(x / g.scale) + g.zero, 0, maxq.item<std::int64_t>());
}

at::Tensor dequantize_codes(const at::Tensor& codes, const GroupParams& g)
{
    return g.scale * (codes - g.zero);
}

std::int64_t effective_group(const GptqParams& p, std::int64_t columns)
{
    return p.group_size == -1 ? columns : p.group_size;
}

void check_weight(const at::Tensor& weight, const char* what)
{
    if (weight.dim() != 2 || weight.size(0) == 0 || weight.size(1) == 0 || !at::isFloatingType(weight.scalar_type()))
        throw FormatError(std::string(what) + ": the weight must be a non-empty floating-point matrix [out, in] (got " +
                          std::to_string(weight.dim()) + " dimensions)");
}

} // namespace

void validate_gptq_params(const GptqParams& p, std::int64_t /*in_features*/, const std::string& where)
{
    if (p.bits != 2 && p.bits != 3 && p.bits != 4 && p.bits != 8)
        throw PlanError(where + ": GPTQ quantizes to 2, 3, 4 or 8 bits, not " + std::to_string(p.bits));
    if (p.group_size == 0 || p.group_size < -1)
        throw PlanError(where + ": the group size must be -1 (one group per row) or positive, not " + std::to_string(p.group_size));
    if (!(p.damp_percent > 0.0 && p.damp_percent < 1.0))
        throw PlanError(where + ": damp_percent must be in (0, 1), not " + std::to_string(p.damp_percent));
    if (p.block_size < 1)
        throw PlanError(where + ": the block size must be positive");
}

std::int64_t gptq_group_count(const GptqParams& p, std::int64_t in_features)
{
    const std::int64_t g = effective_group(p, in_features);
    return (in_features + g - 1) / g;
}

GptqHessian::GptqHessian(std::int64_t columns, const at::Device& device)
    : m_h(at::zeros({columns, columns}, at::TensorOptions().dtype(at::kFloat).device(device)))
{
}

void GptqHessian::add_batch(const at::Tensor& x)
{
    const std::int64_t columns = m_h.size(0);
    TORCH_CHECK(x.dim() >= 2 && x.size(-1) == columns, "add_batch: inputs [..., ", columns, "] expected");
    const std::int64_t batch = x.dim() == 2 ? 1 : x.size(0);
    // The running average in AutoGPTQ's order of operations: rescale, then add the scaled product.
    m_h.mul_(static_cast<double>(m_samples) / static_cast<double>(m_samples + batch));
    m_samples += batch;
    at::Tensor rows = x.reshape({-1, columns}).t().to(m_h.device());
    rows = std::sqrt(2.0 / static_cast<double>(m_samples)) * rows.to(at::kFloat);
    m_h.add_(rows.matmul(rows.t()));
}

GptqLayerResult gptq_quantize_weight(const at::Tensor& weight, const at::Tensor& hessian, const GptqParams& p)
{
    check_weight(weight, "gptq");
    const std::int64_t columns = weight.size(1);
    validate_gptq_params(p, columns, "gptq");
    if (hessian.dim() != 2 || hessian.size(0) != columns || hessian.size(1) != columns)
        throw FormatError("gptq: the Hessian must be [" + std::to_string(columns) + ", " + std::to_string(columns) + "]");
    const at::Device device = hessian.device();
    at::Tensor H = hessian.to(at::kFloat).clone();
    at::Tensor W = weight.to(device).to(at::kFloat).clone();
    const at::Tensor maxq = at::scalar_tensor((std::int64_t{1} << p.bits) - 1, at::TensorOptions().dtype(at::kLong).device(device));
    const bool grouped = p.group_size != -1;
    const std::int64_t group = effective_group(p, columns);

    // Row-wise parameters of the whole matrix (the ungrouped case), before dead columns are zeroed.
    GroupParams current = find_params(W, maxq, p.sym);

    const at::Tensor dead = at::diag(H) == 0;
    H.diagonal().masked_fill_(dead, 1.0);
    W.masked_fill_(dead.unsqueeze(0), 0.0);

    std::vector<GroupParams> static_groups;
    if (grouped && p.static_groups)
        for (std::int64_t i = 0; i < columns; i += group)
            static_groups.push_back(find_params(W.index({Slice(), Slice(i, i + group)}), maxq, p.sym));

    at::Tensor perm, invperm;
    std::vector<std::int64_t> perm_host;
    if (p.desc_act) {
        perm = at::argsort(at::diag(H), /*dim=*/0, /*descending=*/true);
        W = W.index({Slice(), perm});
        H = H.index({perm}).index({Slice(), perm});
        invperm = at::argsort(perm);
        const at::Tensor perm_cpu = perm.cpu();
        perm_host.assign(perm_cpu.data_ptr<std::int64_t>(), perm_cpu.data_ptr<std::int64_t>() + columns);
    }

    at::Tensor losses = at::zeros_like(W);
    at::Tensor Q = at::zeros_like(W);
    at::Tensor codes = at::zeros_like(W);

    const at::Tensor damp = p.damp_percent * at::mean(at::diag(H));
    H.diagonal().add_(damp);
    auto [chol, info] = at::linalg_cholesky_ex(H);
    if (info.item<int>() != 0)
        throw PlanError("gptq: the damped Hessian is not positive definite; raise damp_percent (now " + std::to_string(p.damp_percent) +
                        ") or give more calibration data");
    at::Tensor Hinv = at::cholesky_inverse(chol);
    std::tie(chol, info) = at::linalg_cholesky_ex(Hinv, /*upper=*/true);
    if (info.item<int>() != 0)
        throw PlanError("gptq: the inverse Hessian is not positive definite; raise damp_percent (now " + std::to_string(p.damp_percent) + ")");
    Hinv = chol;

    std::vector<at::Tensor> scale_list, zero_list;
    std::int64_t next_group = 0; // the group whose parameters are recorded next (AutoGPTQ's now_idx - 1)
    for (std::int64_t i1 = 0; i1 < columns; i1 += p.block_size) {
        const std::int64_t i2 = std::min(i1 + p.block_size, columns), count = i2 - i1;
        at::Tensor W1 = W.index({Slice(), Slice(i1, i2)}).clone();
        at::Tensor Q1 = at::zeros_like(W1), C1 = at::zeros_like(W1), Err1 = at::zeros_like(W1), Losses1 = at::zeros_like(W1);
        const at::Tensor Hinv1 = Hinv.index({Slice(i1, i2), Slice(i1, i2)});
        for (std::int64_t i = 0; i < count; ++i) {
            const std::int64_t column = i1 + i;
            const at::Tensor w = W1.select(1, i);
            const at::Tensor d = Hinv1.select(0, i).select(0, i);
            if (grouped) {
                if (!p.static_groups) {
                    if (column % group == 0) // from W as it stood at the start of this block
                        current = find_params(W.index({Slice(), Slice(column, column + group)}), maxq, p.sym);
                    if (column / group == next_group) {
                        scale_list.push_back(current.scale);
                        zero_list.push_back(current.zero);
                        ++next_group;
                    }
                } else {
                    const std::int64_t original = p.desc_act ? perm_host[static_cast<std::size_t>(column)] : column;
                    current = static_groups[static_cast<std::size_t>(original / group)];
                }
            }
            const at::Tensor c = quantize_codes(w.unsqueeze(1), current, maxq);
            const at::Tensor q = dequantize_codes(c, current).flatten();
            C1.select(1, i).copy_(c.flatten());
            Q1.select(1, i).copy_(q);
            Losses1.select(1, i).copy_((w - q).pow(2) / d.pow(2));
            const at::Tensor err = (w - q) / d;
            W1.index({Slice(), Slice(i, None)}).sub_(err.unsqueeze(1).matmul(Hinv1.index({i, Slice(i, None)}).unsqueeze(0)));
            Err1.select(1, i).copy_(err);
        }
        Q.index({Slice(), Slice(i1, i2)}).copy_(Q1);
        codes.index({Slice(), Slice(i1, i2)}).copy_(C1);
        losses.index({Slice(), Slice(i1, i2)}).copy_(Losses1 / 2);
        W.index({Slice(), Slice(i2, None)}).sub_(Err1.matmul(Hinv.index({Slice(i1, i2), Slice(i2, None)})));
    }

    GptqLayerResult r;
    r.loss = at::sum(losses).item<double>();
    std::vector<std::int32_t> g_idx(static_cast<std::size_t>(columns));
    for (std::int64_t i = 0; i < columns; ++i)
        g_idx[static_cast<std::size_t>(i)] =
            static_cast<std::int32_t>((p.static_groups && p.desc_act ? perm_host[static_cast<std::size_t>(i)] : i) / group);
    r.g_idx = at::tensor(g_idx, at::kInt).to(device);
    if (p.desc_act) {
        Q = Q.index({Slice(), invperm});
        codes = codes.index({Slice(), invperm});
        r.g_idx = r.g_idx.index({invperm});
    }
    if (grouped && p.static_groups) {
        for (const GroupParams& g : static_groups) {
            scale_list.push_back(g.scale);
            zero_list.push_back(g.zero);
        }
    } else if (scale_list.empty()) { // one group: the row-wise parameters of the whole matrix
        scale_list.push_back(current.scale);
        zero_list.push_back(current.zero);
    }
    r.scales = at::cat(scale_list, 1).t().contiguous();
    r.zeros = at::cat(zero_list, 1).t().to(at::kInt).contiguous();
    r.codes = codes.to(at::kInt).contiguous();
    r.weight = Q.contiguous();
    return r;
}

GptqLayerResult rtn_quantize_weight(const at::Tensor& weight, const GptqParams& params)
{
    check_weight(weight, "rtn");
    const std::int64_t columns = weight.size(1);
    validate_gptq_params(params, columns, "rtn");
    const at::Tensor W = weight.to(at::kFloat);
    const at::Tensor maxq = at::scalar_tensor((std::int64_t{1} << params.bits) - 1, at::TensorOptions().dtype(at::kLong).device(W.device()));
    const std::int64_t group = effective_group(params, columns);
    std::vector<at::Tensor> scales, zeros, codes, dequantized;
    for (std::int64_t i = 0; i < columns; i += group) {
        const at::Tensor part = W.index({Slice(), Slice(i, i + group)});
        const GroupParams g = find_params(part, maxq, params.sym);
        const at::Tensor c = quantize_codes(part, g, maxq);
        codes.push_back(c);
        dequantized.push_back(dequantize_codes(c, g));
        scales.push_back(g.scale);
        zeros.push_back(g.zero);
    }
    GptqLayerResult r;
    r.codes = at::cat(codes, 1).to(at::kInt).contiguous();
    r.weight = at::cat(dequantized, 1).contiguous();
    r.scales = at::cat(scales, 1).t().contiguous();
    r.zeros = at::cat(zeros, 1).t().to(at::kInt).contiguous();
    r.g_idx = at::floor_divide(at::arange(columns, at::TensorOptions().dtype(at::kLong).device(W.device())), group).to(at::kInt);
    r.loss = (W - r.weight).pow(2).sum().item<double>();
    return r;
}

double gptq_output_error(const at::Tensor& weight, const at::Tensor& quantized, const at::Tensor& hessian)
{
    const at::Tensor diff = (weight.to(at::kDouble) - quantized.to(weight.device()).to(at::kDouble));
    return (diff.matmul(hessian.to(weight.device()).to(at::kDouble)) * diff).sum().item<double>();
}

} // namespace layerwise
