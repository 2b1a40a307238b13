// The limits on one ROUTER endpoint's connections (the coordinator's connection guard,
// coordinator/src/connection_guard.hpp) and its counters. Plain values: copied freely, owned by
// whoever holds them. docs/security.md, "Denial of service".
#pragma once

#include <cstddef>
#include <cstdint>

#include "sparecycles/core/clock.hpp"
#include "sparecycles/core/protocol.hpp"

namespace sparecycles::coordinator {

struct GuardLimits {
  bool enabled = true;  // false = only count connections, never cut (the benchmarks' baseline)
  // Open connections on this endpoint; the one over the cap is cut at once. Default: 4096
  std::size_t max_connections = 4096;
  // Open connections from one IP address; loopback addresses are exempt (one machine running
  // many workers is how the benchmarks and single-machine pools run). 0 = no cap. Default: 32
  std::size_t max_per_host = 32;
  // Bytes a connection may have received (kernel count) beyond the complete messages the loop
  // has seen from it: one largest message, plus the kernel's receive buffer and slack.
  // Default: kMaxFrameBytes + 16 MiB = 96 MiB
  std::uint64_t max_pending_bytes = proto::kMaxFrameBytes + (16ull << 20);
  // The same summed over all connections of the endpoint: above it the largest pending ones are
  // cut until the sum is below. Default: 1 GiB
  std::uint64_t max_pending_total = 1ull << 30;
  Duration check_every = std::chrono::milliseconds(250);  // how often pending bytes are read
};

enum class CutReason { kTooManyConnections = 0, kTooManyFromHost, kPendingBytes, kPendingTotal };
inline constexpr int kCutReasons = 4;
const char* CutReasonName(CutReason r);  // "connections", "host", "pending", "pending_total"

struct GuardStats {
  std::uint64_t open = 0, accepted = 0, handshaken = 0, handshakes_failed = 0;
  std::uint64_t cut[kCutReasons] = {};
  std::uint64_t max_pending_seen = 0;  // the largest pending byte count read, for the benchmarks
};

}  // namespace sparecycles::coordinator
