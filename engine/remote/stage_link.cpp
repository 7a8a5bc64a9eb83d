#include "remote/stage_link.h"

#include "remote/sha256.h"

#include <c10/util/Logging.h>
#include <thread>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <arpa/inet.h>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <random>
#include <sys/socket.h>
#include <unistd.h>

namespace layerwise::remote {
namespace {

// c10d logs every failed connection attempt and broken socket (with a backtrace); the
// RemoteError thrown says it once, so c10d is quiet meanwhile.
struct QuietC10d {
    int level = FLAGS_caffe2_log_level;
    QuietC10d() { FLAGS_caffe2_log_level = std::max(level, 3); }
    ~QuietC10d() { FLAGS_caffe2_log_level = level; }
    QuietC10d(const QuietC10d&) = delete;
    QuietC10d& operator=(const QuietC10d&) = delete;
};

using std::chrono::milliseconds;
constexpr milliseconds kSlice{200};         // how often a waiting worker looks up for a stop or a newer coordinator
constexpr milliseconds kJoinTimeout{30000}; // a coordinator's handshake

std::string random_nonce()
{
    std::random_device rd;
    std::string bytes;
    for (int i = 0; i < 4; ++i) {
        const std::uint32_t v = rd();
        bytes.append(reinterpret_cast<const char*>(&v), 4);
    }
    return hex(sha256(bytes)).substr(0, 32);
}

std::vector<std::uint8_t> to_bytes(const std::string& s) { return {s.begin(), s.end()}; }
std::string to_string(const std::vector<std::uint8_t>& v) { return {v.begin(), v.end()}; }

// The message's authentication code: the session, the direction, the sequence number, the header
// (without the code) and the payload, under the token.
std::string mac_of(const std::string& token, const std::string& session, const char* direction, const Message& m)
{
    nlohmann::json header = m.header;
    header.erase("mac");
    return hex(hmac_sha256(token, {session, ":", direction, ":", header.dump(), ":", m.payload}));
}

std::vector<std::uint8_t> encode(Message m, const std::string& token, const std::string& session, const char* direction)
{
    m.header["mac"] = mac_of(token, session, direction, m);
    const std::string header = m.header.dump();
    std::vector<std::uint8_t> out(4 + header.size() + m.payload.size());
    const auto n = static_cast<std::uint32_t>(header.size());
    std::memcpy(out.data(), &n, 4);
    std::memcpy(out.data() + 4, header.data(), header.size());
    if (!m.payload.empty())
        std::memcpy(out.data() + 4 + header.size(), m.payload.data(), m.payload.size());
    return out;
}

// nullopt when malformed or when its code, session or sequence number do not check out.
std::optional<Message> decode(const std::vector<std::uint8_t>& bytes, const std::string& token, const std::string& session,
                              const char* direction, std::int64_t seq)
{
    if (bytes.size() < 4)
        return std::nullopt;
    std::uint32_t n = 0;
    std::memcpy(&n, bytes.data(), 4);
    if (n > bytes.size() - 4)
        return std::nullopt;
    Message m;
    m.header = nlohmann::json::parse(bytes.begin() + 4, bytes.begin() + 4 + n, nullptr, false);
    if (!m.header.is_object() || !m.header.contains("mac") || !m.header["mac"].is_string() || m.header.value("seq", -1) != seq)
        return std::nullopt;
    m.payload.assign(bytes.begin() + 4 + n, bytes.end());
    if (!same_digest(m.header["mac"].get<std::string>(), mac_of(token, session, direction, m)))
        return std::nullopt;
    return m;
}

// What a c10d exception says, without its C++ backtrace.
std::string reason(const std::exception& e)
{
    if (const auto* c = dynamic_cast<const c10::Error*>(&e))
        return c->msg();
    return e.what();
}

} // namespace

std::pair<std::string, std::uint16_t> parse_address(const std::string& address)
{
    const auto colon = address.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == address.size())
        throw FormatError("'" + address + "' is not an address: give HOST:PORT, such as 192.168.1.20:7070");
    std::string host = address.substr(0, colon);
    if (host.size() > 2 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2);
    unsigned long port = 0;
    try {
        std::size_t used = 0;
        port = std::stoul(address.substr(colon + 1), &used);
        if (used != address.size() - colon - 1)
            throw std::invalid_argument("trailing characters");
    } catch (const std::exception&) {
        throw FormatError("'" + address + "': the port must be a number from 0 to 65535");
    }
    if (port > 65535)
        throw FormatError("'" + address + "': the port must be a number from 0 to 65535");
    return {host, static_cast<std::uint16_t>(port)};
}

StageClient::StageClient(const std::string& address, std::string token, milliseconds timeout)
    : m_address(address), m_token(std::move(token)), m_timeout(timeout)
{
    const auto [host, port] = parse_address(address);
    c10d::TCPStoreOptions o;
    o.port = port;
    o.isServer = false;
    o.waitWorkers = false;
    o.timeout = std::min(timeout, milliseconds(10000));
    const QuietC10d quiet;
    try {
        m_store = std::make_shared<c10d::TCPStore>(host, o);
    } catch (const std::exception& e) {
        throw RemoteError("cannot reach the worker at " + address + " (" + reason(e) + "): is `layerwise worker --listen " +
                          address + "` running there, and is the port open?", address);
    }
    try {
        m_store->setTimeout(kJoinTimeout);
        m_prefix = "s" + std::to_string(m_store->add("sessions", 1)) + "/";
        m_client_nonce = random_nonce();
        m_store->set(m_prefix + "hello", to_bytes(m_client_nonce));
        m_server_nonce = to_string(m_store->get(m_prefix + "challenge"));
        m_store->set(m_prefix + "join", to_bytes(hex(hmac_sha256(m_token, "join:" + m_client_nonce + ":" + m_server_nonce))));
        const std::string welcome = to_string(m_store->get(m_prefix + "welcome"));
        if (welcome == "refused")
            throw RemoteError("the worker at " + address + " refused to join: the token does not match its own (give the same "
                              "--token, or LAYERWISE_TOKEN, to the worker and here)", address);
        if (!same_digest(welcome, "ok:" + hex(hmac_sha256(m_token, "welcome:" + m_server_nonce + ":" + m_client_nonce))))
            throw RemoteError("the worker at " + address + " could not prove it holds the token; not sending it anything", address);
    } catch (const RemoteError&) {
        throw;
    } catch (const std::exception& e) {
        throw RemoteError("joining the worker at " + address + " failed: " + reason(e) +
                          " (is another coordinator using it, or is it busy loading?)", address);
    }
}

StageClient::~StageClient()
{
    try {
        call({{{"op", "bye"}}, {}}, milliseconds(2000));
    } catch (...) {
    }
}

std::int64_t StageClient::post(const Message& request)
{
    const std::int64_t seq = ++m_seq;
    Message r = request;
    r.header["seq"] = seq;
    const std::string op = request.header.value("op", std::string("?"));
    const QuietC10d quiet;
    try {
        m_store->set(m_prefix + "req/" + std::to_string(seq), encode(r, m_token, m_prefix + m_client_nonce + m_server_nonce, "req"));
    } catch (const std::exception& e) {
        throw lost(op, e);
    }
    m_ops[seq] = op;
    return seq;
}

RemoteError StageClient::lost(const std::string& op, const std::exception& e) const
{
    return RemoteError("the worker at " + m_address + " did not answer '" + op +
                           "' (" + reason(e) + "): it stopped, hung or lost its network; run again without --host " + m_address +
                           " to use the other machines",
                       m_address);
}

Message StageClient::await(std::int64_t seq, milliseconds timeout, const std::function<bool()>& keep_waiting)
{
    const std::string key = m_prefix + "res/" + std::to_string(seq);
    const auto posted = m_ops.find(seq);
    const std::string op = posted == m_ops.end() ? std::string("?") : posted->second;
    if (posted != m_ops.end())
        m_ops.erase(posted);
    std::vector<std::uint8_t> answer;
    const QuietC10d quiet;
    try {
        const milliseconds limit = timeout.count() > 0 ? timeout : m_timeout;
        if (keep_waiting) { // in slices, asking between them whether to go on
            const auto until = std::chrono::steady_clock::now() + limit;
            while (true) {
                if (!keep_waiting())
                    throw CancelledError("cancelled while the worker at " + m_address + " was busy with '" + op + "'");
                if (m_store->check({key}))
                    break;
                if (std::chrono::steady_clock::now() > until)
                    throw std::runtime_error("no answer within " + std::to_string(limit.count() / 1000) + " s");
                std::this_thread::sleep_for(milliseconds(50));
            }
        }
        m_store->setTimeout(limit);
        answer = m_store->get(key);
        m_store->deleteKey(key);
    } catch (const CancelledError&) {
        throw;
    } catch (const std::exception& e) {
        throw lost(op, e);
    }
    std::optional<Message> a = decode(answer, m_token, m_prefix + m_client_nonce + m_server_nonce, "res", seq);
    if (!a)
        throw RemoteError("the answer of the worker at " + m_address + " to '" + op +
                          "' failed its check (wrong code or sequence); something else is writing to its port", m_address);
    if (a->header.contains("error"))
        throw RemoteError("the worker at " + m_address + ": " + a->header["error"].get<std::string>(), m_address);
    return std::move(*a);
}

Message StageClient::call(const Message& request, milliseconds timeout)
{
    return await(post(request), timeout);
}

StageServer::StageServer(const std::string& address, std::string token) : m_token(std::move(token))
{
    if (m_token.empty())
        throw FormatError("a worker needs a token (--token or LAYERWISE_TOKEN): coordinators must prove they hold it");
    const auto [host, port] = parse_address(address);
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    addrinfo* found = nullptr;
    if (const int rc = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found); rc != 0)
        throw IoError("cannot listen on " + address + ": " + gai_strerror(rc));
    int fd = socket(found->ai_family, found->ai_socktype | SOCK_CLOEXEC, found->ai_protocol);
    const int yes = 1;
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
        // Accepted connections inherit it: a message's small writes go out at once instead of
        // waiting for the peer's delayed acknowledgement (tens of milliseconds a step otherwise).
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);
    }
    if (fd < 0 || bind(fd, found->ai_addr, found->ai_addrlen) != 0 || listen(fd, 64) != 0) {
        const std::string why = std::strerror(errno);
        if (fd >= 0)
            close(fd);
        freeaddrinfo(found);
        throw IoError("cannot listen on " + address + ": " + why + " (is the port taken, or the address not this machine's?)");
    }
    freeaddrinfo(found);
    sockaddr_storage bound{};
    socklen_t len = sizeof bound;
    getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
    m_port = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                               : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
    c10d::TCPStoreOptions o;
    o.port = m_port;
    o.isServer = true;
    o.waitWorkers = false;
    o.masterListenFd = fd; // the store serves on the socket bound to the interface asked for
    o.timeout = kJoinTimeout;
    o.useLibUV = std::getenv("LAYERWISE_STORE_LIBUV") != nullptr;
    const bool any = host == "0.0.0.0" || host == "::" || host.empty();
    m_store = std::make_shared<c10d::TCPStore>(any ? std::string("127.0.0.1") : host, o);
}

StageServer::~StageServer() = default;

void StageServer::serve(const std::function<Message(const Message&)>& handle, const std::atomic<bool>& stop,
                        const std::function<void(const std::string&)>& log)
{
    std::int64_t next = 1;
    while (!stop.load()) {
        // The newest coordinator that said hello (one that took a number and vanished is skipped).
        const std::int64_t taken = m_store->add("sessions", 0);
        std::int64_t found = 0;
        for (std::int64_t s = taken; s >= next && !found; --s)
            if (m_store->check({"s" + std::to_string(s) + "/hello"}))
                found = s;
        if (found) {
            serve_session(found, handle, stop, log);
            next = found + 1;
            continue;
        }
        try { // until the latest number's hello (or the next one's), a slice at a time
            m_store->wait({"s" + std::to_string(std::max(taken, next)) + "/hello"}, kSlice);
        } catch (const std::exception&) {
        }
    }
}

bool StageServer::serve_session(std::int64_t n, const std::function<Message(const Message&)>& handle, const std::atomic<bool>& stop,
                                const std::function<void(const std::string&)>& log)
{
    const std::string prefix = "s" + std::to_string(n) + "/";
    const std::string who = "coordinator " + std::to_string(n);
    try {
        const std::string client_nonce = to_string(m_store->get(prefix + "hello"));
        const std::string server_nonce = random_nonce();
        m_store->set(prefix + "challenge", to_bytes(server_nonce));
        m_store->setTimeout(kJoinTimeout);
        const std::string proof = to_string(m_store->get(prefix + "join"));
        if (!same_digest(proof, hex(hmac_sha256(m_token, "join:" + client_nonce + ":" + server_nonce)))) {
            m_store->set(prefix + "welcome", to_bytes("refused"));
            log(who + " refused: it does not hold this worker's token");
            return false;
        }
        m_store->set(prefix + "welcome", to_bytes("ok:" + hex(hmac_sha256(m_token, "welcome:" + server_nonce + ":" + client_nonce))));
        log(who + " joined");
        const std::string session = prefix + client_nonce + server_nonce;
        for (std::int64_t seq = 1;; ++seq) {
            const std::string key = prefix + "req/" + std::to_string(seq);
            // Wait in slices: between them, look for a stop or a newer coordinator (this one
            // vanished without saying goodbye).
            while (true) {
                try {
                    m_store->wait({key}, kSlice);
                    break;
                } catch (const std::exception&) {
                    if (m_store->check({key}))
                        break;
                    if (stop.load())
                        return true;
                    const std::int64_t taken = m_store->add("sessions", 0);
                    if (taken > n && m_store->check({"s" + std::to_string(taken) + "/hello"})) {
                        log(who + " left without saying goodbye; serving the next");
                        return true;
                    }
                }
            }
            const std::vector<std::uint8_t> bytes = m_store->get(key);
            m_store->deleteKey(key);
            std::optional<Message> request = decode(bytes, m_token, session, "req", seq);
            if (!request) {
                log(who + ": request " + std::to_string(seq) + " failed its check (wrong code or sequence); ending the session");
                return false;
            }
            const std::string op = request->header.value("op", std::string());
            Message answer;
            if (op != "bye") {
                try {
                    answer = handle(*request);
                } catch (const std::exception& e) {
                    answer.header = {{"error", reason(e)}};
                    answer.payload.clear();
                }
            }
            answer.header["seq"] = seq;
            m_store->set(prefix + "res/" + std::to_string(seq), encode(answer, m_token, session, "res"));
            if (op == "bye") {
                log(who + " left");
                return true;
            }
        }
    } catch (const std::exception& e) {
        log(who + ": " + reason(e));
        return false;
    }
}

} // namespace layerwise::remote
