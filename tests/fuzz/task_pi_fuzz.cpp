// libFuzzer harness: the pi task's unit, checkpoint, result and merged-result bytes
// (task_fuzz.hpp). The unit layout mirrored below is tasks/src/pi.cpp's.
#include "sparecycles/core/codec.hpp"
#include "task_fuzz.hpp"

namespace {

// pi reports progress every 2^20 samples, whatever the unit: nothing to cheapen.
std::string Cheapen(std::string_view bytes) { return std::string(bytes); }
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return sparecycles::fuzz::FuzzTask("pi", &Cheapen, data, size);
}
