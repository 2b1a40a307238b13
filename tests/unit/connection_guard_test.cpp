// The connection guard's rules without sockets (coordinator/src/connection_guard.hpp): the caps
// on connections in total and per host (loopback exempt), and the pending-bytes reading that
// cuts a connection holding an unterminated message but not one whose bytes are explained by
// the messages the loop read, a large message still arriving, or a backlog behind a busy loop.
#include "../../coordinator/src/connection_guard.hpp"

#include <doctest/doctest.h>

#include <map>

using namespace sparecycles::coordinator;

namespace {

constexpr std::uint64_t kMiB = 1ull << 20;

GuardLimits Small() {
  GuardLimits l;
  l.max_connections = 3;
  l.max_per_host = 2;
  l.max_pending_bytes = 10 * kMiB;
  l.max_pending_total = 25 * kMiB;
  return l;
}

struct Kernel {
  std::map<int, std::uint64_t> bytes;
  std::optional<std::uint64_t> operator()(int fd) const {
    auto it = bytes.find(fd);
    return it == bytes.end() ? std::nullopt : std::optional(it->second);
  }
};

}  // namespace

TEST_CASE("the connection over the cap is cut; closing one lets the next in") {
  ConnectionGuard g(Small());
  CHECK_FALSE(g.OnAccepted(10, "10.0.0.1", "10.0.0.1:1"));
  CHECK_FALSE(g.OnAccepted(11, "10.0.0.2", "10.0.0.2:1"));
  CHECK_FALSE(g.OnAccepted(12, "10.0.0.3", "10.0.0.3:1"));
  CHECK(g.OnAccepted(13, "10.0.0.4", "10.0.0.4:1") == CutReason::kTooManyConnections);
  g.MarkCut(13, CutReason::kTooManyConnections);
  g.OnClosed(13);
  g.OnClosed(10);
  CHECK_FALSE(g.OnAccepted(14, "10.0.0.5", "10.0.0.5:1"));
  CHECK(g.stats().open == 3);
  CHECK(g.stats().cut[static_cast<int>(CutReason::kTooManyConnections)] == 1);
  CHECK(*g.PeerOf(14) == "10.0.0.5:1");
}

TEST_CASE("one host gets at most its share; loopback is exempt; disabled only counts") {
  GuardLimits l = Small();
  l.max_connections = 100;
  ConnectionGuard g(l);
  CHECK_FALSE(g.OnAccepted(1, "10.0.0.1", "10.0.0.1:1"));
  CHECK_FALSE(g.OnAccepted(2, "10.0.0.1", "10.0.0.1:2"));
  CHECK(g.OnAccepted(3, "10.0.0.1", "10.0.0.1:3") == CutReason::kTooManyFromHost);
  g.OnClosed(3);
  g.OnClosed(1);
  CHECK_FALSE(g.OnAccepted(4, "10.0.0.1", "10.0.0.1:4"));
  for (int fd = 20; fd < 30; ++fd) CHECK_FALSE(g.OnAccepted(fd, "127.0.0.1", "127.0.0.1:9"));
  for (int fd = 30; fd < 35; ++fd) CHECK_FALSE(g.OnAccepted(fd, "::1", "[::1]:9"));

  l.enabled = false;
  ConnectionGuard off(l);
  for (int fd = 0; fd < 5; ++fd) CHECK_FALSE(off.OnAccepted(fd, "10.0.0.1", "10.0.0.1:1"));
  CHECK(off.stats().open == 5);
}

TEST_CASE("pending bytes: explained by messages read, a large message arriving, or a hoard") {
  ConnectionGuard g(Small());
  Kernel k;
  REQUIRE_FALSE(g.OnAccepted(5, "10.0.0.1", "10.0.0.1:1"));
  REQUIRE_FALSE(g.OnAccepted(6, "10.0.0.2", "10.0.0.2:1"));
  // fd 5: 50 MiB of complete 1 MiB messages, all read: nothing pending.
  for (int i = 0; i < 50; ++i) g.OnReceived(5, kMiB);
  k.bytes[5] = 50 * (kMiB + ConnectionGuard::kFrameOverhead);
  // fd 6: a 9 MiB message still arriving on a slow link: under the limit.
  k.bytes[6] = 9 * kMiB;
  CHECK(g.Check(k, true).empty());
  CHECK(g.stats().max_pending_seen <= 9 * kMiB);
  // fd 6 then streams frames that never end: cut once over the limit after a drained turn.
  k.bytes[6] = 30 * kMiB;
  auto cut = g.Check(k, true);
  REQUIRE(cut.size() == 1);
  CHECK(cut[0] == std::pair{6, CutReason::kPendingBytes});
  g.MarkCut(6, CutReason::kPendingBytes);
  CHECK(g.Check(k, true).empty());  // a cut connection is not cut again
  CHECK(g.stats().cut[static_cast<int>(CutReason::kPendingBytes)] == 1);
}

TEST_CASE("a backlog behind a busy loop needs two readings; pings are absorbed by messages") {
  ConnectionGuard g(Small());
  Kernel k;
  REQUIRE_FALSE(g.OnAccepted(5, "10.0.0.1", "10.0.0.1:1"));
  k.bytes[5] = 15 * kMiB;  // complete messages the loop has not read yet
  CHECK(g.Check(k, false).empty());
  for (int i = 0; i < 15; ++i) g.OnReceived(5, kMiB);  // ... read by the next reading
  CHECK(g.Check(k, false).empty());

  // Hours of ZMTP PINGs between messages: each message seen re-bases the connection.
  ConnectionGuard h(Small());
  REQUIRE_FALSE(h.OnAccepted(7, "10.0.0.3", "10.0.0.3:1"));
  std::uint64_t kernel = 0;
  for (int i = 0; i < 100; ++i) {
    kernel += kMiB;  // unexplained bytes (pings) ...
    k.bytes[7] = kernel;
    h.OnReceived(7, 10);  // ... and a small message now and then
    CHECK(h.Check(k, true).empty());
  }
  // Two readings over the limit without a drained turn: cut.
  k.bytes[7] = kernel + 11 * kMiB;
  CHECK(h.Check(k, false).empty());
  k.bytes[7] = kernel + 12 * kMiB;
  CHECK(h.Check(k, false).size() == 1);
}

TEST_CASE("a connection whose fd is no socket any more is forgotten (a missed close event)") {
  ConnectionGuard g(Small());
  Kernel k;
  for (int fd = 1; fd <= 3; ++fd)
    REQUIRE_FALSE(g.OnAccepted(fd, "10.0.1." + std::to_string(fd), "x"));
  CHECK(g.OnAccepted(4, "10.0.0.8", "y") == CutReason::kTooManyConnections);
  g.OnClosed(4);
  k.bytes = {{1, 0}, {3, 0}};  // fd 2 closed without an event
  CHECK(g.Check(k, true).empty());
  CHECK(g.stats().open == 2);
  CHECK_FALSE(g.OnAccepted(5, "10.0.0.8", "y"));
}

TEST_CASE("the endpoint's total budget cuts the largest pending connections") {
  GuardLimits l = Small();
  l.max_connections = 10;
  ConnectionGuard g(l);
  Kernel k;
  for (int fd = 1; fd <= 4; ++fd) {
    REQUIRE_FALSE(g.OnAccepted(fd, "10.0.0." + std::to_string(fd), "x:" + std::to_string(fd)));
    k.bytes[fd] = static_cast<std::uint64_t>(fd + 5) * kMiB;  // 6, 7, 8, 9 MiB: each under 10
  }
  auto cut = g.Check(k, true);  // 30 MiB > 25 MiB: the largest (9 MiB) goes
  REQUIRE(cut.size() == 1);
  CHECK(cut[0] == std::pair{4, CutReason::kPendingTotal});
}
