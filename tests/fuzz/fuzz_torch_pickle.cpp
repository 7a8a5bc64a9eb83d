// libFuzzer: the restricted state-dict unpickler of .bin checkpoints.
#include "checkpoint/torch_pickle.h"
#include "core/error.h"

#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    try {
        layerwise::read_state_dict_pickle(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.pkl");
    } catch (const layerwise::Error&) {
    }
    return 0;
}
