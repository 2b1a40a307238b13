// libFuzzer harness: the primes task's unit, checkpoint, result and merged-result bytes
// (task_fuzz.hpp). The unit layout mirrored below is tasks/src/primes.cpp's.
#include <algorithm>

#include "sparecycles/core/codec.hpp"
#include "task_fuzz.hpp"

namespace {

struct Unit {
  std::uint64_t from = 0, to = 0;
  template <class A>
  void serialize(A& a) {
    a(from, to);
  }
};

// Sieving primes up to sqrt(to) are found before the first progress report, which comes after a
// chunk of 31 million numbers: keep `to` below 1e10 (sieving primes below 1e5, still both sieving
// paths), keeping its low digits, and the span at most 4 million.
std::string Cheapen(std::string_view bytes) {
  constexpr std::uint64_t kMaxSpan = 4000000;
  Unit u;
  if (!sparecycles::DecodeValue(bytes, u).ok() || u.to > 1000000000000000ull || u.from > u.to)
    return std::string(bytes);  // invalid: Execute must reject it as it is
  const std::uint64_t span = std::min(u.to - u.from, kMaxSpan);
  if (u.to > 10000000000ull) u.to = 10000000000ull - 1000000 + u.to % 1000000;
  u.from = u.to - span;
  return sparecycles::EncodeValue(u);
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return sparecycles::fuzz::FuzzTask("primes", &Cheapen, data, size);
}
