#include "sparecycles/core/hash.hpp"

#include <sodium.h>

#include <cstdio>
#include <cstdlib>

namespace sparecycles {

void InitCrypto() {
  static const bool ok = [] { return sodium_init() >= 0; }();
  if (!ok) {
    std::fprintf(stderr, "fatal: libsodium failed to initialise\n");
    std::abort();
  }
}

Hash256 Blake2b256(std::string_view data) {
  Hash256 out{};
  Blake2b(data, out.data(), out.size());
  return out;
}

void Blake2b(std::string_view data, std::uint8_t* out, std::size_t out_len) {
  crypto_generichash(out, out_len, reinterpret_cast<const unsigned char*>(data.data()), data.size(),
                     nullptr, 0);
}

std::string ToHex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

void RandomBytes(void* out, std::size_t len) {
  InitCrypto();
  randombytes_buf(out, len);
}

std::string RandomId(std::string_view prefix) {
  unsigned char b[8];
  RandomBytes(b, sizeof(b));
  return std::string(prefix) + ToHex(std::string_view(reinterpret_cast<char*>(b), sizeof(b)));
}

}  // namespace sparecycles
