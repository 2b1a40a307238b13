// libFuzzer harness: the wordfreq task's unit, checkpoint, result and merged-result bytes
// (task_fuzz.hpp). The unit layout mirrored below is tasks/src/wordfreq.cpp's.
#include "sparecycles/core/codec.hpp"
#include "task_fuzz.hpp"

namespace {

// wordfreq reports progress every MiB of the unit text, which the unit itself carries.
std::string Cheapen(std::string_view bytes) { return std::string(bytes); }
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return sparecycles::fuzz::FuzzTask("wordfreq", &Cheapen, data, size);
}
