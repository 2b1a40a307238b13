// The ZeroMQ adapter: socket set-up (limits, heartbeats, linger) and frame send/receive that never
// throw. ZeroMQ's exceptions stop here and become return values. A socket belongs to one thread;
// EventFd is the thread-safe way to wake a loop that polls sockets.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>
#include <zmq.hpp>

#include "sparecycles/core/status.hpp"

namespace sparecycles::net {

struct SocketConfig {
  std::int64_t max_message_bytes = 0;  // ZMQ_MAXMSGSIZE; 0 = protocol default
  int heartbeat_ivl_ms = 1000;         // ZMQ_HEARTBEAT_IVL (0 disables)
  int heartbeat_timeout_ms = 5000;     // ZMQ_HEARTBEAT_TIMEOUT
  int linger_ms = 0;
  int send_hwm = 100000;
  int recv_hwm = 100000;
  bool router_mandatory = true;  // ROUTER: sending to a vanished peer fails loudly
  // CURVE (docs/protocol.md, "Security layer"), Z85 keys; all empty = the NULL mechanism.
  // A server sets curve_secret (and curve_public) with curve_server and a zap_domain, so every
  // connection is checked by the ZAP handler; a client sets its own pair and curve_server_key.
  bool curve_server = false;
  std::string curve_public, curve_secret, curve_server_key;
  std::string zap_domain;
  int handshake_ivl_ms = 10000;  // ZMQ_HANDSHAKE_IVL: a greeting not finished by then is cut
};

/// Binds a ROUTER socket. `endpoint` may use a wildcard port, e.g. tcp://127.0.0.1:*.
Result<zmq::socket_t> BindRouter(zmq::context_t& ctx, const std::string& endpoint,
                                 const SocketConfig& cfg = {});
/// Connects a DEALER socket (reconnects by itself when the other side comes back).
Result<zmq::socket_t> ConnectDealer(zmq::context_t& ctx, const std::string& endpoint,
                                    const SocketConfig& cfg = {});
/// The endpoint a socket is bound to, with the port the OS chose.
std::string LastEndpoint(zmq::socket_t& s);

/// Counts for the traffic of one socket family.
struct WireStats {
  std::atomic<std::uint64_t> frames_in{0}, frames_out{0}, bytes_in{0}, bytes_out{0};
  std::atomic<std::uint64_t> bad_frames{0}, send_failures{0};
};

struct RouterFrame {
  std::string identity;
  zmq::message_t payload;
  std::string_view view() const {
    return {static_cast<const char*>(payload.data()), payload.size()};
  }
};

/// Non-blocking receive of one [identity][payload] message. Returns nullopt when nothing is
/// waiting. Messages with any other shape are dropped and counted as bad frames.
std::optional<RouterFrame> RecvRouter(zmq::socket_t& s, WireStats* stats);
/// Sends [identity][payload]; false when the peer is gone or the queue is full (counted).
/// `error` (optional) gets EHOSTUNREACH when no connection has that identity, EAGAIN when full.
bool SendRouter(zmq::socket_t& s, std::string_view identity, std::string_view payload,
                WireStats* stats, int* error = nullptr);
/// The "User-Id" the ZAP handler gave the connection a message came from; empty when none.
std::string UserId(zmq::message_t& msg);
/// The file descriptor of the connection a received message came from (ZMQ_SRCFD), or -1.
int SourceFd(zmq::message_t& msg);

/// Non-blocking receive on a DEALER; multi-frame messages are dropped and counted.
std::optional<zmq::message_t> RecvDealer(zmq::socket_t& s, WireStats* stats);
bool SendDealer(zmq::socket_t& s, std::string_view payload, WireStats* stats);

/// Polls sockets and plain file descriptors; returns false on interruption or error.
bool Poll(std::vector<zmq::pollitem_t>& items, std::chrono::milliseconds timeout);

/// A Linux eventfd: any thread may Wake(); the owning loop polls fd() and calls Drain().
class EventFd {
 public:
  EventFd();
  ~EventFd();
  EventFd(const EventFd&) = delete;
  EventFd& operator=(const EventFd&) = delete;
  void Wake();
  void Drain();
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
};

}  // namespace sparecycles::net
