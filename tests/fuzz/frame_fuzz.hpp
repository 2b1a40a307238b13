// The check shared by the frame harnesses: a frame that passes the header check and decodes as
// its type must re-encode to exactly its own bytes (every field is read, none is invented), and
// the re-encoded frame must decode again. Maps are the exception for exactness: duplicate or
// unordered keys collapse (the re-encoding is then only required to be stable). Single-threaded.
#pragma once

#include <string>
#include <string_view>

#include "fuzz_support.hpp"
#include "sparecycles/core/protocol.hpp"

namespace sparecycles::fuzz {

template <class M>
void DecodeAs(std::string_view frame, std::string_view body, bool exact = true) {
  M msg;
  Status s = proto::Decode(body, msg);
  if (!s.ok()) {
    Sink(s.message());
    return;
  }
  const std::string again = proto::Encode(msg);
  if (exact && again != frame) Fail("a decoded frame does not re-encode to its own bytes");
  std::string_view body2;
  auto type2 = proto::ParseHeader(again, body2);
  M msg2;
  if (!type2.ok() || *type2 != M::kType || !proto::Decode(body2, msg2).ok())
    Fail("a re-encoded frame does not decode");
  if (proto::Encode(msg2) != again) Fail("re-encoding is not stable");
  Sink(again);
}

}  // namespace sparecycles::fuzz
