#pragma once
// Whether the client of a request that is not streamed is still there. cpp-httplib 0.11 (Debian
// bookworm's) hands handlers the request's addresses but not its socket, and only a write
// reveals a closed connection; a whole answer writes nothing until it is ready. So the socket is
// found by its addresses among this process's descriptors, and polled for the peer's hang-up.
#include <string>

namespace layerwise::server {

// The connected socket whose local port and remote address and port are these; -1 if none.
int find_request_socket(int local_port, const std::string& remote_addr, int remote_port);

// True when the peer of connected socket `fd` has closed or reset the connection (no wait).
bool peer_hung_up(int fd);

} // namespace layerwise::server
