#include "api/quantize.h"

#include "api/model_access.h"
#include "core/error.h"
#include "quant/bnb_writer.h"

namespace layerwise {

BnbQuantizeResult quantize_bnb(Model&& model, const QuantOptions& options, const std::filesystem::path& out,
                               const ProgressCallback& progress, const Logger& log)
{
    const QuantizeResult r = save_quantized(std::move(ModelAccess::description(model)), options, out, progress, log);
    return {r.folder, r.quantized_linears, r.weight_bytes};
}

GptqJobResult quantize_gptq(const std::string& source, const std::filesystem::path& out, const GptqJobOptions& options,
                            const GptqProgressCallback& progress, const Logger& log)
{
    return run_gptq_job(source, out, options, progress, log);
}

QuantOptions load_quantization(const WeightFormat& format)
{
    QuantOptions quant;
    switch (format.kind) {
    case WeightFormat::Kind::plain: return quant;
    case WeightFormat::Kind::int8: quant.method = QuantMethod::int8; break;
    case WeightFormat::Kind::nf4: quant.method = QuantMethod::nf4; break;
    case WeightFormat::Kind::fp4: quant.method = QuantMethod::fp4; break;
    default:
        throw UnsupportedError("quantizing to " + format.name() +
                               " while loading is not possible: GPTQ calibrates every layer on text, which needs "
                               "the GPTQ engine's quantization job. Open a saved GPTQ checkpoint instead, or choose "
                               "none, int8, nf4 or fp4 as the quantization and load again");
    }
    quant.double_quant = quant.method != QuantMethod::int8 && format.double_quant;
    return quant;
}

} // namespace layerwise
