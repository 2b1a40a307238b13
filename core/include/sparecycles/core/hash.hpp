// BLAKE2b hashing (libsodium) used for result agreement and by the hashsearch task.
// Stateless functions; thread-safe once InitCrypto() has run (it is idempotent).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace sparecycles {

using Hash256 = std::array<std::uint8_t, 32>;

/// Initializes libsodium. Safe to call many times from any thread; aborts if it cannot.
void InitCrypto();

/// BLAKE2b with a 32-byte digest (crypto_generichash).
Hash256 Blake2b256(std::string_view data);

/// BLAKE2b with a digest of `out_len` bytes (16..64) written to `out`.
void Blake2b(std::string_view data, std::uint8_t* out, std::size_t out_len);

/// Lower-case hexadecimal.
std::string ToHex(std::string_view bytes);
inline std::string ToHex(const Hash256& h) {
  return ToHex(std::string_view(reinterpret_cast<const char*>(h.data()), h.size()));
}

/// Random bytes from the OS (libsodium's randombytes).
void RandomBytes(void* out, std::size_t len);

/// A fresh random identifier: `prefix` followed by 16 hex digits.
std::string RandomId(std::string_view prefix);

}  // namespace sparecycles
