// libFuzzer harness: the 8-byte frame header check alone (magic, version, known type), which
// every frame on both endpoints and every spooled result passes first (docs/protocol.md §2).
#include "fuzz_support.hpp"
#include "sparecycles/core/protocol.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace sparecycles;
  const std::string_view frame(reinterpret_cast<const char*>(data), size);
  std::string_view body;
  auto type = proto::ParseHeader(frame, body);
  if (!type.ok()) {
    fuzz::Sink(type.status().message());
    return 0;
  }
  // Accepted: the header is there, the body is the rest, and the type is one we can name.
  if (size < proto::kHeaderSize || body.data() != frame.data() + proto::kHeaderSize ||
      body.size() != size - proto::kHeaderSize)
    fuzz::Fail("the body is not the bytes after the header");
  if (proto::MsgTypeName(*type) == "Unknown") fuzz::Fail("an accepted type has no name");
  fuzz::Sink(static_cast<std::uint64_t>(*type));
  return 0;
}
