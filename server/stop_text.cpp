#include "stop_text.h"

#include <algorithm>

namespace layerwise::server {

StopText::StopText(std::vector<std::string> stops) : m_stops(std::move(stops)) {}

std::string StopText::push(std::string_view piece)
{
    if (m_stopped)
        return {};
    m_pending += piece;
    // The earliest complete stop sequence ends the text.
    std::size_t cut = std::string::npos;
    for (const auto& s : m_stops)
        cut = std::min(cut, m_pending.find(s));
    if (cut != std::string::npos) {
        m_stopped = true;
        std::string out = m_pending.substr(0, cut);
        m_pending.clear();
        return out;
    }
    // Hold back the longest tail that is the start of a stop sequence.
    std::size_t hold = 0;
    for (const auto& s : m_stops)
        for (std::size_t n = std::min(s.size() - 1, m_pending.size()); n > hold; --n)
            if (m_pending.compare(m_pending.size() - n, n, s, 0, n) == 0) {
                hold = n;
                break;
            }
    std::string out = m_pending.substr(0, m_pending.size() - hold);
    m_pending.erase(0, m_pending.size() - hold);
    return out;
}

std::string StopText::flush()
{
    std::string out;
    out.swap(m_pending);
    return m_stopped ? std::string() : out;
}

} // namespace layerwise::server
