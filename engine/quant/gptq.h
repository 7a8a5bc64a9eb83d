#pragma once
// GPTQ (Frantar et al.) for one linear layer, computing what AutoGPTQ 0.7.1 computes
// (auto_gptq/quantization/gptq.py, quantizer.py): a Hessian 2/n Σ x xᵀ averaged over calibration
// samples, dead inputs (H_ii = 0) zeroed, damping of damp_percent × mean(diag H), the upper
// Cholesky factor of H⁻¹, columns quantized in blocks of 128 with the rounding error spread
// over the columns not yet quantized; groups of group_size input columns share a scale and a
// zero point found, at each group's first column, from the weights as they stand at the start
// of the current block; act-order (desc_act) visits columns by decreasing H_ii; static_groups
// fixes the group parameters from the unmodified weights first. Pure functions on tensors: no
// files, no model. Runs on the tensors' device, in float32.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

namespace layerwise {

struct GptqParams {
    int bits = 4;            // 2, 3, 4 or 8
    int group_size = 128;    // -1: one group per row; otherwise > 0
    bool sym = true;         // symmetric: zero point fixed at (2^bits) / 2
    bool desc_act = false;   // act-order
    bool static_groups = false;
    double damp_percent = 0.01;
    int block_size = 128;    // columns per lazy-update block (AutoGPTQ's blocksize)
};

// PlanError naming `where` for bits outside {2, 3, 4, 8}, a group size that is 0, below -1,
// or smaller than in_features without dividing it (a group size at least in_features means
// one group, as AutoGPTQ computes it), damp_percent outside (0, 1), or a block size < 1.
void validate_gptq_params(const GptqParams& params, std::int64_t in_features, const std::string& where);

// The number of groups of a layer: 1 for group_size -1, else ceil(in_features / group_size).
std::int64_t gptq_group_count(const GptqParams& params, std::int64_t in_features);

// H = 2/n Σ_rows x xᵀ with AutoGPTQ's running average: each add_batch(x) of a [batch, seq, in]
// (or [rows, in], one sample) tensor rescales H by n / (n + batch) and adds 2/(n + batch) x xᵀ.
class GptqHessian {
public:
    GptqHessian(std::int64_t columns, const at::Device& device);
    void add_batch(const at::Tensor& x);
    const at::Tensor& matrix() const { return m_h; } // float32 [in, in]
    std::int64_t samples() const { return m_samples; }

private:
    at::Tensor m_h;
    std::int64_t m_samples = 0;
};

struct GptqLayerResult {
    at::Tensor codes;   // int32 [out, in]: the integers 0..2^bits-1, in the original column order
    at::Tensor scales;  // float32 [groups, out]
    at::Tensor zeros;   // int32 [groups, out]
    at::Tensor g_idx;   // int32 [in]: the group of each input column
    at::Tensor weight;  // float32 [out, in]: scales[g_idx] * (codes - zeros[g_idx]) (the layer's new weight)
    double loss = 0.0;  // Σ (w - q)² / (2 [H⁻¹]_jj²) over the matrix (AutoGPTQ's torch.sum(Losses))
};

// weight [out, in] (any float dtype), hessian float32 [in, in] (left as it is). AutoGPTQ logs loss / samples as "avg loss". PlanError for bad params (see above),
// FormatError when the shapes disagree, PlanError when H + damping is not positive definite.
GptqLayerResult gptq_quantize_weight(const at::Tensor& weight, const at::Tensor& hessian, const GptqParams& params);

// Σ_rows (w - q) H (w - q)ᵀ in float64: with H = 2/n Σ x xᵀ, twice the mean squared error the
// quantization adds to the layer's outputs per calibration sample. Compares GPTQ with RTN.
double gptq_output_error(const at::Tensor& weight, const at::Tensor& quantized, const at::Tensor& hessian);

// Round-to-nearest with the same grouping, scales and zero points (no Hessian, no error
// feedback): the baseline GPTQ is compared with. desc_act and static_groups are ignored;
// loss is Σ (w - q)².
GptqLayerResult rtn_quantize_weight(const at::Tensor& weight, const GptqParams& params);

} // namespace layerwise
