#include "peer_socket.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <charconv>
#include <filesystem>
#include <system_error>

namespace layerwise::server {

namespace {

// The port and numeric address of an IPv4 / IPv6 socket address; port -1 for other families.
std::pair<int, std::string> port_and_address(const sockaddr_storage& a)
{
    char text[INET6_ADDRSTRLEN] = {};
    if (a.ss_family == AF_INET) {
        const auto& in = reinterpret_cast<const sockaddr_in&>(a);
        inet_ntop(AF_INET, &in.sin_addr, text, sizeof text);
        return {ntohs(in.sin_port), text};
    }
    if (a.ss_family == AF_INET6) {
        const auto& in = reinterpret_cast<const sockaddr_in6&>(a);
        inet_ntop(AF_INET6, &in.sin6_addr, text, sizeof text);
        return {ntohs(in.sin6_port), text};
    }
    return {-1, {}};
}

} // namespace

int find_request_socket(int local_port, const std::string& remote_addr, int remote_port)
{
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd", ec)) {
        const std::string name = entry.path().filename().string();
        int fd = -1;
        if (std::from_chars(name.data(), name.data() + name.size(), fd).ec != std::errc())
            continue;
        sockaddr_storage local{}, peer{};
        socklen_t local_len = sizeof local, peer_len = sizeof peer;
        if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len) != 0 ||
            getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0)
            continue;
        const auto [lport, laddr] = port_and_address(local);
        const auto [rport, raddr] = port_and_address(peer);
        if (lport == local_port && rport == remote_port && (raddr == remote_addr || remote_addr.empty()))
            return fd;
    }
    return -1;
}

bool peer_hung_up(int fd)
{
    pollfd p{fd, POLLRDHUP, 0};
    if (poll(&p, 1, 0) < 0)
        return false;
    return (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

} // namespace layerwise::server
