#pragma once
// SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104), for the pipeline link's token proofs: a worker
// and a coordinator that share a token prove it to each other, and sign every message, without
// sending the token itself. Checked against the standards' test vectors (tst_remote).
#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace layerwise::remote {

using Digest = std::array<std::uint8_t, 32>;

Digest sha256(std::string_view data);
Digest hmac_sha256(std::string_view key, std::string_view message);
std::string hex(const Digest& digest);
// Compares in time independent of where the two differ.
bool same_digest(std::string_view a, std::string_view b);

} // namespace layerwise::remote
