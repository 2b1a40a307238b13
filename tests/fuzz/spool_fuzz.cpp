// libFuzzer harness: the worker's result spool read back at start-up (worker/src/spool.cpp).
// One input = a file name stem and the file's bytes (fuzz_support.hpp pieces); the file is put
// in an empty spool directory and ResultSpool::Load() must drop or accept it, never crash.
#include "../../worker/src/spool.hpp"
#include "fuzz_support.hpp"
#include "sparecycles/core/log.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace sparecycles;
  static const bool quiet = (SetLogLevel(LogLevel::kOff), true);
  (void)quiet;
  static const std::string dir = fuzz::ScratchDir() + "/spool";
  auto pieces = fuzz::Pieces({reinterpret_cast<const char*>(data), size}, 2);
  pieces.resize(2);
  // A name the file system can hold (no '/' or NUL, not "." or "..", not too long).
  std::string stem = pieces[0].substr(0, 100);
  for (char& c : stem)
    if (c == '/' || c == '\0') c = '_';
  if (stem.empty() || stem == "." || stem == "..") stem = "7";
  std::filesystem::create_directories(dir);
  fuzz::ClearDir(dir);
  const bool as_result = !stem.empty() && (static_cast<unsigned char>(stem[0]) & 1) == 0;
  fuzz::WriteFile(dir + "/" + stem + (as_result ? ".result" : ""), pieces[1]);

  worker::ResultSpool spool(dir);
  auto loaded = spool.Load();
  for (const auto& [lease, r] : loaded) {
    if (r.lease_id != lease) fuzz::Fail("a spooled result under another lease's name");
    if (!r.Validate().ok()) fuzz::Fail("a spooled result outside the field limits");
    fuzz::Sink(r.payload);
    spool.Remove(lease);
  }
  fuzz::Sink(loaded.size() + spool.dropped());
  return 0;
}
