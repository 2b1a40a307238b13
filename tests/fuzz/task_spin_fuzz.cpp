// libFuzzer harness: the spin task's unit, checkpoint, result and merged-result bytes
// (task_fuzz.hpp). The unit layout mirrored below is tasks/src/spin.cpp's.
#include "sparecycles/core/codec.hpp"
#include "task_fuzz.hpp"

namespace {

struct Unit {
  std::uint64_t first = 0, count = 0, total = 0;
  std::uint32_t ms = 0;
  template <class A>
  void serialize(A& a) {
    a(first, count, total, ms);
  }
};

// spin busy-waits ms x count by design (5 ms between reports): keep it at most 1 ms.
std::string Cheapen(std::string_view bytes) {
  Unit u;
  if (!sparecycles::DecodeValue(bytes, u).ok() || u.ms <= 1 || u.ms > 3600000)
    return std::string(bytes);
  u.ms = 1;
  return sparecycles::EncodeValue(u);
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return sparecycles::fuzz::FuzzTask("spin", &Cheapen, data, size);
}
