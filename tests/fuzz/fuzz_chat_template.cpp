// libFuzzer: the chat-template engine — parse any text as a template and render it.
#include "core/error.h"
#include "text/chat_template.h"

#include <cstdint>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    try {
        const auto t = layerwise::ChatTemplate::parse(std::string(reinterpret_cast<const char*>(data), size));
        layerwise::ChatRequest r;
        r.messages = nlohmann::ordered_json::array({{{"role", "system"}, {"content", "Be brief."}},
                                                    {{"role", "user"}, {"content", "Hi"}},
                                                    {{"role", "assistant"}, {"content", "Hello"}}});
        r.add_generation_prompt = true;
        t.apply(r);
    } catch (const layerwise::Error&) {
    }
    return 0;
}
