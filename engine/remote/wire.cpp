#include "remote/wire.h"

#include "core/error.h"

#include <ATen/ATen.h>
#include <cstring>

namespace layerwise::remote {
namespace {

const char* dtype_name(at::ScalarType t)
{
    switch (t) {
    case at::kFloat: return "float32";
    case at::kBFloat16: return "bfloat16";
    case at::kHalf: return "float16";
    default: throw UnsupportedError(std::string("hidden states of dtype ") + c10::toString(t) + " cannot cross the pipeline link");
    }
}

at::ScalarType dtype_of(const std::string& name)
{
    if (name == "float32")
        return at::kFloat;
    if (name == "bfloat16")
        return at::kBFloat16;
    if (name == "float16")
        return at::kHalf;
    throw FormatError("a pipeline message holds hidden states of dtype '" + name + "' (float32, bfloat16 or float16 expected)");
}

} // namespace

Message tensor_to_wire(const at::Tensor& t)
{
    const at::Tensor c = t.to(at::kCPU).contiguous();
    Message m;
    m.header = {{"shape", c.sizes().vec()}, {"dtype", dtype_name(c.scalar_type())}};
    m.payload.resize(static_cast<std::size_t>(c.nbytes()));
    std::memcpy(m.payload.data(), c.data_ptr(), m.payload.size());
    return m;
}

at::Tensor tensor_from_wire(const Message& m)
{
    const auto shape = m.header.at("shape").get<std::vector<std::int64_t>>();
    const at::ScalarType dtype = dtype_of(m.header.at("dtype").get<std::string>());
    at::Tensor t = at::empty(shape, at::TensorOptions().dtype(dtype));
    if (static_cast<std::size_t>(t.nbytes()) != m.payload.size())
        throw FormatError("a pipeline message's hidden states should be " + std::to_string(t.nbytes()) + " bytes, not " +
                          std::to_string(m.payload.size()));
    std::memcpy(t.data_ptr(), m.payload.data(), m.payload.size());
    return t;
}

} // namespace layerwise::remote
