// Bounds on what the connections of one ROUTER endpoint can make the coordinator hold: a cap on
// open connections (total and per host) and a cut for connections whose bytes received by the
// kernel run far ahead of the complete messages the loop has seen (an unterminated multipart
// message, which libzmq 4.3 buffers without limit). Owned by the coordinator's event loop, which
// feeds it socket-monitor events and received frames: not thread-safe. docs/security.md.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "sparecycles/coordinator/connection_limits.hpp"
#include "sparecycles/core/clock.hpp"

namespace sparecycles::coordinator {

class ConnectionGuard {
 public:
  // Wire bytes per frame beyond its payload: ZMTP frame header (≤ 9) plus CURVE's MESSAGE box
  // (command name 8, nonce 8, MAC 16, flags 1).
  static constexpr std::uint64_t kFrameOverhead = 48;
  // Greeting, handshake commands and metadata before the first message.
  static constexpr std::uint64_t kHandshakeAllowance = 64 << 10;

  explicit ConnectionGuard(GuardLimits limits) : limits_(limits) {}

  // ---- pure logic (no sockets; unit-tested)
  /// A connection was accepted on `fd` from `host` (an address without port; "" = unknown).
  /// Returns why it must be cut at once, or nothing. A cut connection stays tracked until
  /// OnClosed (its fd is open until libzmq closes it).
  std::optional<CutReason> OnAccepted(int fd, const std::string& host, const std::string& peer);
  void OnHandshake(int fd, bool succeeded);
  /// The connection on `fd` closed; returns its pending bytes at the last reading (what its
  /// close freed, for ReleaseFreedMemory).
  std::uint64_t OnClosed(int fd);
  /// The loop received one complete single-frame message of `payload_bytes` from `fd`.
  void OnReceived(int fd, std::size_t payload_bytes);
  /// Reads every tracked connection's kernel byte count through `kernel_bytes` (nothing = the fd
  /// is no TCP socket any more: the connection is forgotten, as if its close event had come) and
  /// returns the connections to cut. Only connections not already cut.
  /// `drained`: the loop read everything its socket held just before, so complete messages
  /// waiting for it explain no pending bytes (one reading over the limit suffices); else two
  /// readings in a row must be over it.
  std::vector<std::pair<int, CutReason>> Check(
      const std::function<std::optional<std::uint64_t>(int)>& kernel_bytes, bool drained);
  /// Marks `fd` as cut (counted once per connection).
  void MarkCut(int fd, CutReason why);

  bool CheckDue(TimePoint now) const { return now >= next_check_; }
  void CheckedAt(TimePoint now) { next_check_ = now + limits_.check_every; }
  TimePoint next_check() const { return next_check_; }
  /// "ADDRESS:PORT" recorded at OnAccepted, to tell a reused fd from the connection it was.
  const std::string* PeerOf(int fd) const;
  const GuardStats& stats() const { return stats_; }
  const GuardLimits& limits() const { return limits_; }

 private:
  struct Conn {
    std::string host, peer;
    std::uint64_t accounted = kHandshakeAllowance;  // bytes explained by messages seen
    std::uint64_t last_kernel = 0;                  // the previous reading
    std::uint64_t last_pending = 0;                 // ... and its pending bytes
    bool seen_since_check = false, over_last_check = false, handshaken = false, cut = false;
  };
  GuardLimits limits_;
  GuardStats stats_;
  std::unordered_map<int, Conn> conns_;
  std::unordered_map<std::string, std::size_t> per_host_;
  TimePoint next_check_{};
  bool total_over_last_check_ = false;
};

// ---- the part that touches file descriptors (Linux)
/// The remote address of a TCP socket without and with port; empty strings when not a socket.
std::pair<std::string, std::string> PeerAddress(int fd);
bool IsLoopbackAddress(const std::string& host);
/// tcpi_bytes_received of a TCP socket (bytes the kernel received from the peer); nothing when
/// `fd` is not a TCP socket; 0 on kernels before Linux 4.1 (no pending-bytes cuts there).
std::optional<std::uint64_t> KernelBytesReceived(int fd);
/// Cuts a connection under libzmq's feet: shutdown(SHUT_RDWR), so its engine sees EOF and tears
/// the connection down (rolling back and freeing a half-received message). The fd is closed by
/// libzmq, never here. Only when `expected_peer` is still the fd's remote address.
bool CutConnection(int fd, const std::string& expected_peer);
/// Returns freed heap pages to the OS (after a cut connection's buffers were released).
void ReleaseFreedMemory();

}  // namespace sparecycles::coordinator
