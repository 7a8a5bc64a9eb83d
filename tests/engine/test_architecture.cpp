#include "engine/test_architecture.h"

#include "archs/architectures.h"

namespace layerwise::test {

std::string register_test_architecture()
{
    static const std::string model_type = [] {
        LlamaVariant v{"test_qknorm_llama", "TestQkNormLlama"};
        v.qk_norm = true;
        register_architecture(llama_family_architecture(v));
        return std::string(v.model_type);
    }();
    return model_type;
}

} // namespace layerwise::test
