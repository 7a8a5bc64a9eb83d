#pragma once
// SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104), for the pipeline link's token proofs: a worker
// and a coordinator that share a token prove it to each other, and sign every message, without
// sending the token itself. Checked against the standards' test vectors (tst_remote).
#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

namespace layerwise::remote {

using Digest = std::array<std::uint8_t, 32>;

// SHA-256 over data given in parts, as if they were one string (no copy of them is made).
class Sha256 {
public:
    Sha256& update(std::string_view data);
    Digest finish(); // once
private:
    std::uint32_t m_h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    std::uint8_t m_block[64] = {};
    std::size_t m_filled = 0;
    std::uint64_t m_length = 0;
};

Digest sha256(std::string_view data);
Digest hmac_sha256(std::string_view key, std::string_view message);
// The HMAC of the parts joined, without joining them (a message's header and its payload).
Digest hmac_sha256(std::string_view key, std::initializer_list<std::string_view> parts);
std::string hex(const Digest& digest);
// Compares in time independent of where the two differ.
bool same_digest(std::string_view a, std::string_view b);

} // namespace layerwise::remote
