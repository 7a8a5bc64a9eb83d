#pragma once
// The link between a coordinator and a pipeline worker (`layerwise worker`), carried by c10d's
// TCPStore, the rendezvous store inside LibTorch: the worker hosts a store on the address it was
// told to listen on, the coordinator connects to it, and messages are keys of that store.
//
// Joining: the coordinator takes a session number, both sides exchange random nonces and prove
// they hold the same token with HMAC-SHA256 proofs (the token itself never crosses the wire); a
// worker that gets a wrong proof answers "refused" and waits for the next coordinator. Every
// message then carries an HMAC of its header and payload under the token and the session's
// nonces, checked before its payload is touched, and a sequence number (a replayed or reordered
// message is refused). Nothing is encrypted: see docs/user-guide.md on what this protects.
//
// Every wait has a timeout: a worker that died, hung or was unplugged becomes a RemoteError
// naming its address within it.
#include "core/error.h"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

namespace c10d {
class TCPStore;
}

namespace layerwise::remote {

struct Message {
    nlohmann::json header; // "op" and its arguments
    std::string payload;   // raw bytes (a tensor's), possibly empty
};

// "host:port" -> host and port; FormatError for anything else.
std::pair<std::string, std::uint16_t> parse_address(const std::string& address);

// The coordinator's end: connects, joins (UnsupportedError-free: RemoteError on any failure).
class StageClient {
public:
    StageClient(const std::string& address, std::string token, std::chrono::milliseconds timeout);
    ~StageClient(); // says goodbye (best effort) so the worker can serve the next coordinator
    StageClient(const StageClient&) = delete;
    StageClient& operator=(const StageClient&) = delete;

    // One request and its answer; RemoteError when the worker fails, refuses or does not answer
    // within `timeout` (0: the link's), or answers with an error (its message is passed on).
    Message call(const Message& request, std::chrono::milliseconds timeout = std::chrono::milliseconds(0));
    // The same in two halves, so that other work runs meanwhile: post() sends the request and
    // returns its number; await() waits for its answer. With `keep_waiting`, it waits in slices of
    // 50 ms and a false from it is a CancelledError (the worker finishes that request alone).
    std::int64_t post(const Message& request);
    Message await(std::int64_t seq, std::chrono::milliseconds timeout = std::chrono::milliseconds(0),
                  const std::function<bool()>& keep_waiting = {});
    const std::string& address() const { return m_address; }

private:
    RemoteError lost(const std::string& op, const std::exception& e) const;
    std::string m_address, m_token, m_prefix, m_client_nonce, m_server_nonce;
    std::map<std::int64_t, std::string> m_ops; // requests posted and not answered yet: their "op"
    std::chrono::milliseconds m_timeout;
    std::int64_t m_seq = 0;
    std::shared_ptr<c10d::TCPStore> m_store;
};

// The worker's end: binds `address` (the interface it was told; port 0 picks one), then serves
// coordinators one after the other.
class StageServer {
public:
    StageServer(const std::string& address, std::string token);
    ~StageServer();
    std::uint16_t port() const { return m_port; }
    // Until `stop`: joins each coordinator that proves the token, hands each request to `handle`
    // and sends back its answer (an exception becomes an error answer). `log` gets one line per
    // event (joined, refused, left).
    void serve(const std::function<Message(const Message&)>& handle, const std::atomic<bool>& stop,
               const std::function<void(const std::string&)>& log);

private:
    bool serve_session(std::int64_t session, const std::function<Message(const Message&)>& handle, const std::atomic<bool>& stop,
                       const std::function<void(const std::string&)>& log);
    std::string m_token;
    std::uint16_t m_port = 0;
    std::shared_ptr<c10d::TCPStore> m_store;
};

} // namespace layerwise::remote
