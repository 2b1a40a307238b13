// libFuzzer harness: the hashsearch task's unit, checkpoint, result and merged-result bytes
// (task_fuzz.hpp). The unit layout mirrored below is tasks/src/hashsearch.cpp's.
#include "sparecycles/core/codec.hpp"
#include "task_fuzz.hpp"

namespace {

// hashsearch reports progress every 16,384 nonces, whatever the unit: nothing to cheapen.
std::string Cheapen(std::string_view bytes) { return std::string(bytes); }
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return sparecycles::fuzz::FuzzTask("hashsearch", &Cheapen, data, size);
}
