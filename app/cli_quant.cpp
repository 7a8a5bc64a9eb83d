// Quantization on the command line: the --quantize options shared by generate, chat, bench
// and plan; `layerwise quantize` (a bitsandbytes-format copy of a model, or an AutoGPTQ-format
// one by GPTQ or round-to-nearest) and `layerwise eval` (perplexity by the sliding-window method).
#include "commands.h"

#include "default_model.h"

#include <CLI/CLI.hpp>
#include <chrono>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace layerwise::app {

void addQuantOptions(CLI::App* cmd, QuantCli& q)
{
    cmd->add_option("--quantize", q.method, "Quantize decoder linears while loading: none, int8, nf4, fp4 (bitsandbytes layout)")
        ->capture_default_str();
    cmd->add_flag("--double-quant", q.doubleQuant, "4-bit: quantize the absmax too (blocks of 256)");
    cmd->add_option("--compute-dtype", q.computeDtype, "Dtype quantized linears compute in (default: the model's)");
    cmd->add_option("--skip-modules", q.skipModules, "Modules kept unquantized, comma-separated (e.g. mlp.down_proj)")->delimiter(',');
    cmd->add_option("--int8-threshold", q.int8Threshold, "LLM.int8 outlier threshold (0: none)")->capture_default_str();
    addGptqOptions(cmd, q.gptq);
}

void addGptqOptions(CLI::App* cmd, GptqCli& g)
{
    cmd->add_option("--gptq-config", g.config, "A GPTQ model's quantize config (quantize_config.json or a config.json), "
                                               "when its folder has none");
    cmd->add_option("--gptq-basename", g.basename, "A GPTQ model's weights file name without extension");
}

GptqSource gptqSource(const GptqCli& g)
{
    GptqSource s;
    if (!g.config.empty())
        s.config_file = g.config;
    if (!g.basename.empty())
        s.model_basename = g.basename;
    return s;
}

QuantOptions quantOptions(const QuantCli& q)
{
    QuantOptions o;
    o.method = parse_quant_method(q.method);
    o.double_quant = q.doubleQuant;
    if (q.doubleQuant && o.method != QuantMethod::nf4 && o.method != QuantMethod::fp4)
        throw PlanError("--double-quant applies to 4-bit quantization (--quantize nf4 or fp4)");
    if (!q.computeDtype.empty() && q.computeDtype != "auto") {
        auto d = dtype_from_torch_name(q.computeDtype);
        if (!d || !is_floating(*d))
            throw PlanError("--compute-dtype '" + q.computeDtype + "' is not float32, bfloat16 or float16");
        o.compute_dtype = *d;
    }
    o.skip_modules = q.skipModules;
    o.int8_threshold = q.int8Threshold;
    return o;
}

std::string quantFormatName(const QuantCli& q)
{
    const QuantOptions o = quantOptions(q);
    if (!o.enabled())
        return "none";
    return std::string(quant_method_name(o.method)) + (o.double_quant ? "-dq" : "");
}

namespace {

std::string formatSeconds(double s)
{
    const auto total = static_cast<long long>(s + 0.5);
    char buf[32];
    if (total >= 3600)
        std::snprintf(buf, sizeof buf, "%lldh%02lldm", total / 3600, (total / 60) % 60);
    else
        std::snprintf(buf, sizeof buf, "%lldm%02llds", total / 60, total % 60);
    return buf;
}

} // namespace

void addQuantizeCommand(CLI::App& app, int& exitCode)
{
    auto* cmd = app.add_subcommand("quantize", "Write a quantized copy of a model: bitsandbytes format (int8, nf4, fp4) or AutoGPTQ format (gptq, rtn)");
    struct Options {
        std::string model;
        QuantCli quant;
        std::string out;
        std::string dtype = "auto";
        bool json = false;
        // GPTQ / RTN
        int bits = 4;
        int groupSize = 128;
        bool descAct = false;
        bool sym = true;
        bool staticGroups = false;
        bool trueSequential = true;
        double damp = 0.01;
        std::string calibration;
        std::int64_t samples = 128;
        std::int64_t seqLen = 0;
        std::string device = "auto";
        int threads = 0;
    };
    auto o = std::make_shared<Options>();
    cmd->add_option("model", o->model, "A model folder")->required();
    cmd->add_option("--method", o->quant.method, "int8, nf4, fp4 (bitsandbytes), gptq or rtn (AutoGPTQ format; rtn: round-to-nearest)")->required();
    cmd->add_flag("--double-quant", o->quant.doubleQuant, "4-bit: quantize the absmax too");
    cmd->add_option("--compute-dtype", o->quant.computeDtype, "bnb_4bit_compute_dtype written to the config (default: the model's)");
    cmd->add_option("--skip-modules", o->quant.skipModules, "Modules kept unquantized, comma-separated")->delimiter(',');
    cmd->add_option("--dtype", o->dtype, "Dtype of the unquantized tensors: auto, float32, bfloat16, float16")->capture_default_str();
    cmd->add_option("--bits", o->bits, "gptq/rtn: 2, 3, 4 or 8")->capture_default_str();
    cmd->add_option("--group-size", o->groupSize, "gptq/rtn: input columns per scale and zero point (-1: one per row)")->capture_default_str();
    cmd->add_flag("--desc-act", o->descAct, "gptq: act-order (columns by decreasing Hessian diagonal)");
    cmd->add_flag("--sym,!--asym", o->sym, "gptq/rtn: symmetric (default) or asymmetric zero points");
    cmd->add_flag("--static-groups", o->staticGroups, "gptq: group parameters fixed before quantizing");
    cmd->add_flag("--true-sequential,!--no-true-sequential", o->trueSequential, "gptq: quantize q/k/v, o, gate/up, down in turn (default)");
    cmd->add_option("--damp", o->damp, "gptq: dampening, a fraction of the mean Hessian diagonal")->capture_default_str();
    cmd->add_option("--calibration", o->calibration, "gptq: a UTF-8 text file (default: the King James Bible installed by packaging/setup.sh)");
    cmd->add_option("--samples", o->samples, "gptq: calibration sequences")->capture_default_str();
    cmd->add_option("--seq-len", o->seqLen, "gptq: tokens per sequence (default: 512, at most the model's context)");
    cmd->add_option("--device", o->device, "gptq/rtn: where to compute: auto, cpu, cuda, cuda:N")->capture_default_str();
    cmd->add_option("--threads", o->threads, "CPU threads");
    cmd->add_option("--out", o->out, "The new folder (must not exist)")->required();
    cmd->add_flag("--json", o->json, "Print one JSON object");
    cmd->callback([o, &exitCode]() {
        const auto t0 = std::chrono::steady_clock::now();
        if (o->quant.method == "gptq" || o->quant.method == "rtn") {
            set_cpu_threads(o->threads);
            GptqJobOptions job;
            job.method = o->quant.method == "gptq" ? GptqJobMethod::gptq : GptqJobMethod::rtn;
            job.params.bits = o->bits;
            job.params.group_size = o->groupSize;
            job.params.desc_act = o->descAct;
            job.params.sym = o->sym;
            job.params.static_groups = o->staticGroups;
            job.params.damp_percent = o->damp;
            job.true_sequential = o->trueSequential;
            job.samples = o->samples;
            job.device = o->device;
            if (job.method == GptqJobMethod::gptq) {
                job.calibration = o->calibration.empty() ? defaultCalibrationPath() : std::filesystem::path(o->calibration);
                if (job.calibration.empty())
                    throw IoError("no --calibration file given and no default calibration text installed: name a UTF-8 text file, "
                                  "or run packaging/setup.sh, which installs the King James Bible (Debian's bible-kjv)");
                std::int64_t seqLen = o->seqLen;
                if (seqLen <= 0) {
                    const Model probe = Model::open(o->model);
                    const std::int64_t positions = probe.config().max_position_embeddings;
                    seqLen = positions > 0 ? std::min<std::int64_t>(512, positions) : 512;
                }
                job.seq_len = seqLen;
            }
            const Logger log([json = o->json](LogLevel level, const std::string& m) {
                if (level != LogLevel::debug && (!json || level == LogLevel::warning))
                    std::cerr << (level == LogLevel::warning ? "warning: " : "") << m << "\n";
            });
            const auto progress = [json = o->json](const GptqLayerProgress& p) {
                if (!json && p.module.empty())
                    std::cerr << "layer " << p.layer + 1 << "/" << p.layers << " done in " << formatSeconds(p.elapsed_seconds)
                              << (p.eta_seconds > 0 ? ", about " + formatSeconds(p.eta_seconds) + " left" : std::string()) << "\n";
                return true;
            };
            const GptqJobResult r = quantize_gptq(o->model, o->out, job, progress, log);
            const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            if (o->json) {
                nlohmann::json modules = nlohmann::json::array();
                for (const auto& m : r.modules)
                    modules.push_back({{"name", m.name}, {"quantized", m.quantized}, {"avg_loss", m.avg_loss}, {"output_error", m.output_error}});
                std::cout << nlohmann::json{{"folder", r.folder.string()}, {"weights_file", r.weights_file},
                                            {"quantized_linears", r.quantized_linears}, {"kept_linears", r.kept_linears},
                                            {"resumed_layers", r.resumed_layers}, {"weight_bytes", r.weight_bytes},
                                            {"seconds", seconds}, {"modules", modules}}.dump(1)
                          << "\n";
            } else {
                std::cout << "wrote " << r.folder.string() << ": " << r.quantized_linears << " linear layers quantized ("
                          << o->quant.method << " " << o->bits << "-bit, group " << o->groupSize << ")"
                          << (r.kept_linears ? ", " + std::to_string(r.kept_linears) + " kept as stored" : std::string()) << ", "
                          << format_bytes(r.weight_bytes) << " of tensors in " << r.weights_file << "\n";
            }
            exitCode = 0;
            return;
        }
        const DType dtype = dtypeOption(o->dtype, Model::open(o->model).dtype());
        OpenOptions open;
        open.dtype = dtype;
        const BnbQuantizeResult r = quantize_bnb(Model::open(o->model, open), quantOptions(o->quant), o->out);
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (o->json)
            std::cout << nlohmann::json{{"folder", r.folder.string()}, {"quantized_linears", r.quantized_linears},
                                        {"weight_bytes", r.weight_bytes}, {"seconds", seconds}}.dump(1)
                      << "\n";
        else
            std::cout << "wrote " << r.folder.string() << ": " << r.quantized_linears << " linear layers quantized ("
                      << quantFormatName(o->quant) << "), " << format_bytes(r.weight_bytes) << " of tensors\n";
        exitCode = 0;
    });
}

void addEvalCommand(CLI::App& app, int& exitCode)
{
    auto* cmd = app.add_subcommand("eval", "Perplexity of a model on a text file (sliding window, as the transformers guide)");
    struct Options {
        std::string model;
        std::string text;
        std::int64_t context = 0;
        std::int64_t stride = 0;
        std::string deviceMap = "auto";
        std::string maxMemory;
        std::string dtype = "auto";
        std::string offloadFolder = ".";
        QuantCli quant;
        int threads = 0;
    };
    auto o = std::make_shared<Options>();
    cmd->add_option("model", o->model, "A model folder")->required();
    cmd->add_option("--perplexity", o->text, "A UTF-8 text file")->required();
    cmd->add_option("--context", o->context, "Window length (default: the model's max_position_embeddings, at most 2048)");
    cmd->add_option("--stride", o->stride, "Window step (default: half the context)");
    cmd->add_option("--device-map", o->deviceMap, "auto, balanced, balanced_low_0, sequential or a map file")->capture_default_str();
    cmd->add_option("--max-memory", o->maxMemory, "Limits per device");
    cmd->add_option("--dtype", o->dtype, "auto, float32, bfloat16, float16")->capture_default_str();
    cmd->add_option("--offload-folder", o->offloadFolder, "Where converted disk weights are written")->capture_default_str();
    cmd->add_option("--threads", o->threads, "CPU threads");
    addQuantOptions(cmd, o->quant);
    cmd->callback([o, &exitCode]() {
        set_cpu_threads(o->threads);
        std::ifstream in(o->text, std::ios::binary);
        if (!in)
            throw IoError("cannot read the text file '" + o->text + "'");
        std::stringstream s;
        s << in.rdbuf();
        OpenOptions open;
        open.gptq = gptqSource(o->quant.gptq);
        Model model = Model::open(o->model, open);
        if (!model.has_weights())
            throw UnsupportedError("'" + o->model + "' has no weights to evaluate");
        const auto encoded = model.tokenizer()->encode(s.str(), true);
        const std::vector<std::int64_t> ids(encoded.begin(), encoded.end());
        const std::int64_t positions = model.config().max_position_embeddings;
        const std::int64_t context = o->context > 0 ? o->context : std::min<std::int64_t>(2048, std::max<std::int64_t>(2, positions));
        const std::int64_t stride = o->stride > 0 ? o->stride : std::max<std::int64_t>(1, context / 2);
        const DType dtype = dtypeOption(o->dtype, model.dtype());
        SessionOptions load;
        load.dtype = dtype;
        load.quant = quantOptions(o->quant);
        load.device_map = deviceMapFor(model, o->deviceMap, o->maxMemory, context, dtype, nullptr, quantFormatName(o->quant));
        load.offload_folder = o->offloadFolder;
        load.context = context;
        load.require_tokenizer = false;
        const std::string quantization = weight_format_for(model, quantFormatName(o->quant), dtype).name();
        const auto session = Session::load(std::move(model), load);
        const auto t0 = std::chrono::steady_clock::now();
        const PerplexityResult r = session->perplexity(ids, context, stride);
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        nlohmann::json j{{"perplexity", r.perplexity},
                         {"mean_nll", r.mean_nll},
                         {"tokens", r.tokens},
                         {"sequence_tokens", r.sequence_tokens},
                         {"windows", r.windows},
                         {"context", context},
                         {"stride", stride},
                         {"dtype", std::string(torch_name(dtype))},
                         {"quantization", quantization == std::string(torch_name(dtype)) ? "none" : quantization},
                         {"seconds", seconds}};
        std::cout << j.dump(1) << "\n";
        exitCode = 0;
    });
}

} // namespace layerwise::app
