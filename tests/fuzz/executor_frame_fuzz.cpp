// libFuzzer harness: the worker's reader of its executor's stream (worker/src/executor_wire.*).
// The executor runs a stranger's code, so every byte it sends is untrusted: the input is cut into
// reads of fuzzer-chosen sizes and fed to a FrameReader, as ProcessExecutor does; a message that
// decodes must re-encode to a frame that decodes to the same message, within the frame limit.
#include "../../worker/src/executor_wire.hpp"
#include "fuzz_support.hpp"
#include "sparecycles/core/log.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace sparecycles;
  namespace wire = worker::wire;
  static const bool quiet = (SetLogLevel(LogLevel::kOff), true);
  (void)quiet;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  wire::FrameReader reader;
  int messages = 0;
  while (!in.empty()) {
    const std::size_t n = std::min<std::size_t>(in.size(), 1 + static_cast<unsigned char>(in[0]));
    reader.Append(in.substr(0, n));
    in.remove_prefix(n);
    while (true) {
      auto m = reader.Next();
      if (!m.ok()) return 0;  // a malformed stream ends the executor; nothing more is read
      if (!m->has_value()) break;
      ++messages;
      auto frame = wire::EncodeFrame(**m);
      if (!frame.ok()) fuzz::Fail("a decoded message does not re-encode");
      wire::FrameReader again;
      again.Append(*frame);
      auto back = again.Next();
      if (!back.ok() || !back->has_value() || !(**back == **m))
        fuzz::Fail("a decoded message does not round-trip");
    }
  }
  fuzz::Sink(static_cast<std::uint64_t>(messages));
  return 0;
}
