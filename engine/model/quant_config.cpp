#include "model/quant_config.h"

#include "core/error.h"
#include "core/json_read.h"

#include <nlohmann/json.hpp>

namespace layerwise {

std::string_view quant_method_name(QuantMethod m)
{
    switch (m) {
    case QuantMethod::none: return "none";
    case QuantMethod::int8: return "int8";
    case QuantMethod::nf4: return "nf4";
    case QuantMethod::fp4: return "fp4";
    case QuantMethod::gptq: return "gptq";
    case QuantMethod::gguf: return "gguf";
    }
    return "?";
}

QuantMethod parse_quant_method(std::string_view name)
{
    if (name.empty() || name == "none")
        return QuantMethod::none;
    if (name == "int8" || name == "8bit" || name == "llm.int8")
        return QuantMethod::int8;
    if (name == "nf4")
        return QuantMethod::nf4;
    if (name == "fp4")
        return QuantMethod::fp4;
    throw PlanError("unknown quantization '" + std::string(name) + "'; use none, int8, nf4 or fp4");
}

bool QuantOptions::skips(const std::string& module_name) const
{
    const std::string dotted = "." + module_name + ".";
    for (const auto& key : skip_modules)
        if (!key.empty() && dotted.find("." + key + ".") != std::string::npos)
            return true;
    return false;
}

namespace {

bool ends_with(const std::string& s, std::string_view suffix)
{
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

} // namespace

bool is_quant_companion(const std::string& name)
{
    return name.find(".weight.quant_state.bitsandbytes__") != std::string::npos || ends_with(name, ".SCB") || ends_with(name, ".weight_format") ||
           ends_with(name, ".weight.absmax") || ends_with(name, ".weight.quant_map") ||
           ends_with(name, ".weight.nested_absmax") || ends_with(name, ".weight.nested_quant_map") ||
           ends_with(name, ".qweight") || ends_with(name, ".qzeros") || ends_with(name, ".g_idx");
}

namespace {

QuantMethod quant_type_of(const std::string& type, const std::string& where)
{
    if (type == "nf4")
        return QuantMethod::nf4;
    if (type == "fp4")
        return QuantMethod::fp4;
    throw FormatError(where + ": unknown 4-bit quant_type '" + type + "' (bitsandbytes writes nf4 or fp4); the checkpoint is corrupt or from a newer bitsandbytes");
}

DType float_dtype(const std::string& name, const std::string& where)
{
    auto d = dtype_from_torch_name(name);
    if (!d || !is_floating(*d))
        throw FormatError(where + ": '" + name + "' is not a floating dtype (float32, float16, bfloat16)");
    return *d;
}

} // namespace

QuantInfo parse_bnb_quant_state(std::string_view json_text, const std::string& where)
{
    const nlohmann::json j = parse_json(json_text, where + " (the bitsandbytes quant_state)");
    if (!j.is_object())
        throw FormatError(where + ": the bitsandbytes quant_state is not a JSON object");
    auto need = [&](const char* key) -> const nlohmann::json& {
        auto it = j.find(key);
        if (it == j.end())
            throw FormatError(where + ": the bitsandbytes quant_state lacks '" + key + "'");
        return *it;
    };
    QuantInfo q;
    try {
        q.method = quant_type_of(need("quant_type").get<std::string>(), where);
        q.blocksize = need("blocksize").get<std::int64_t>();
        q.dtype = float_dtype(need("dtype").get<std::string>(), where);
        q.shape = need("shape").get<std::vector<std::int64_t>>();
        if (j.contains("nested_offset")) {
            q.nested = true;
            q.nested_offset = static_cast<float>(j["nested_offset"].get<double>());
            q.nested_blocksize = j.value("nested_blocksize", std::int64_t{256});
            if (j.contains("nested_dtype") && float_dtype(j["nested_dtype"].get<std::string>(), where) != DType::f32)
                throw UnsupportedError(where + ": nested absmax in " + j["nested_dtype"].get<std::string>() + " is not supported (bitsandbytes writes float32)");
        }
    } catch (const nlohmann::json::exception& e) {
        throw_json_value_error(e, where + " (the bitsandbytes quant_state)");
    }
    if (q.shape.size() != 2 || q.shape[0] <= 0 || q.shape[1] <= 0)
        throw FormatError(where + ": the quant_state shape must be [out, in] with positive sizes");
    if (q.blocksize <= 0 || (q.blocksize & (q.blocksize - 1)) != 0 || q.nested_blocksize <= 0)
        throw FormatError(where + ": the quant_state blocksize " + std::to_string(q.blocksize) + " is not a positive power of two");
    q.compute_dtype = q.dtype;
    return q;
}

std::string bnb_quant_state_json(const QuantInfo& q)
{
    // The key order and spelling bitsandbytes' QuantState.as_dict(packed=True) writes.
    // Python's json.dumps spacing (", " and ": "), as bitsandbytes writes it.
    std::string s = "{\"quant_type\": \"" + std::string(quant_method_name(q.method)) + "\", \"blocksize\": " +
                    std::to_string(q.blocksize) + ", \"dtype\": \"" + std::string(torch_name(q.dtype)) + "\", \"shape\": [";
    for (std::size_t i = 0; i < q.shape.size(); ++i)
        s += (i ? ", " : "") + std::to_string(q.shape[i]);
    s += "]";
    if (q.nested)
        s += ", \"nested_blocksize\": " + std::to_string(q.nested_blocksize) +
             ", \"nested_dtype\": \"float32\", \"nested_offset\": " + nlohmann::json(static_cast<double>(q.nested_offset)).dump();
    return s + "}";
}

nlohmann::json bnb_quantization_config(const QuantOptions& o, DType compute_dtype)
{
    const bool four = o.method == QuantMethod::nf4 || o.method == QuantMethod::fp4;
    nlohmann::json j = nlohmann::json::object();
    j["_load_in_4bit"] = four;
    j["_load_in_8bit"] = o.method == QuantMethod::int8;
    j["bnb_4bit_compute_dtype"] = std::string(torch_name(compute_dtype));
    j["bnb_4bit_quant_storage"] = "uint8";
    j["bnb_4bit_quant_type"] = o.method == QuantMethod::nf4 ? "nf4" : "fp4"; // transformers' default: fp4
    j["bnb_4bit_use_double_quant"] = o.double_quant;
    j["llm_int8_enable_fp32_cpu_offload"] = false;
    j["llm_int8_has_fp16_weight"] = false;
    j["llm_int8_skip_modules"] = o.skip_modules.empty() ? nlohmann::json(nullptr) : nlohmann::json(o.skip_modules);
    j["llm_int8_threshold"] = o.int8_threshold;
    j["load_in_4bit"] = four;
    j["load_in_8bit"] = o.method == QuantMethod::int8;
    j["quant_method"] = "bitsandbytes";
    return j;
}

QuantOptions parse_bnb_quantization_config(const nlohmann::json& j, const std::string& where)
{
    if (!j.is_object())
        throw FormatError(where + ": quantization_config is not a JSON object");
    const std::string method = j.contains("quant_method") && j["quant_method"].is_string() ? j["quant_method"].get<std::string>() : "";
    if (method != "bitsandbytes")
        throw UnsupportedError(where + ": quantization_config.quant_method '" + method +
                               "' is not supported (Layerwise reads bitsandbytes checkpoints)");
    QuantOptions o;
    try {
        const bool in8 = j.value("load_in_8bit", j.value("_load_in_8bit", false));
        const bool in4 = j.value("load_in_4bit", j.value("_load_in_4bit", false));
        if (in8 == in4)
            throw FormatError(where + ": quantization_config must set exactly one of load_in_8bit and load_in_4bit");
        if (in8) {
            o.method = QuantMethod::int8;
        } else {
            const std::string type = j.value("bnb_4bit_quant_type", std::string("fp4"));
            o.method = quant_type_of(type, where);
            o.double_quant = j.value("bnb_4bit_use_double_quant", false);
        }
        if (j.contains("bnb_4bit_compute_dtype") && j["bnb_4bit_compute_dtype"].is_string())
            o.compute_dtype = float_dtype(j["bnb_4bit_compute_dtype"].get<std::string>(), where);
        o.int8_threshold = j.value("llm_int8_threshold", 6.0);
        if (j.contains("llm_int8_skip_modules") && j["llm_int8_skip_modules"].is_array())
            o.skip_modules = j["llm_int8_skip_modules"].get<std::vector<std::string>>();
    } catch (const nlohmann::json::exception& e) {
        throw_json_value_error(e, where, "quantization_config");
    }
    return o;
}

} // namespace layerwise
