// libFuzzer harness: the primes task's unit, checkpoint, result and merged-result bytes
// (task_fuzz.hpp). The unit layout mirrored below is tasks/src/primes.cpp's.
#include "sparecycles/core/codec.hpp"
#include "task_fuzz.hpp"

namespace {

struct Unit {
  std::uint64_t from = 0, to = 0;
  template <class A> void serialize(A& a) { a(from, to); }
};

// Sieving primes up to sqrt(to) are found before the first progress report: keep `to` below
// 1e12 (sieving primes below 1e6), keeping its low digits and the span (capped).
std::string Cheapen(std::string_view bytes) {
  Unit u;
  if (!sparecycles::DecodeValue(bytes, u).ok() || u.to <= 1000000000000ull ||
      u.to > 1000000000000000ull || u.from > u.to)
    return std::string(bytes);  // cheap already, or invalid (which Execute must reject)
  const std::uint64_t span = u.to - u.from;
  u.to = 1000000000000ull - 1000000 + u.to % 1000000;
  u.from = u.to - std::min<std::uint64_t>(span, u.to);
  return sparecycles::EncodeValue(u);
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return sparecycles::fuzz::FuzzTask("primes", &Cheapen, data, size);
}
