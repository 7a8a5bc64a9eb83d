#pragma once
// Stop sequences over streamed text: pieces go in, the text safe to show comes out. A tail that
// could still become a stop sequence is held back until it cannot; once a stop sequence
// appears, the text before it is released and everything after is dropped (OpenAI's `stop`).
#include <string>
#include <string_view>
#include <vector>

namespace layerwise::server {

class StopText {
public:
    explicit StopText(std::vector<std::string> stops);
    std::string push(std::string_view piece); // the text to emit now (possibly empty)
    std::string flush();                      // at the end: the held-back tail (empty once stopped)
    bool stopped() const { return m_stopped; }

private:
    std::vector<std::string> m_stops;
    std::string m_pending;
    bool m_stopped = false;
};

} // namespace layerwise::server
