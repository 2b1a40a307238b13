// The coordinator's ZAP handler (ZeroMQ RFC 27): decides, for every CURVE handshake on the peer
// and client endpoints, whether the connecting key may in, and names the connection by its key
// (the ZAP User-Id, the key's 64 hex digits). Owned by the coordinator's event loop, which polls
// socket() and calls Drain(); not thread-safe. docs/security.md, "What each side trusts".
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <zmq.hpp>

#include "access.hpp"
#include "sparecycles/core/curve_keys.hpp"
#include "sparecycles/core/status.hpp"

namespace sparecycles::coordinator {

inline constexpr const char* kPeerDomain = "peers";
inline constexpr const char* kClientDomain = "clients";

struct ZapConfig {
  // Peer endpoint: empty = open enrollment (volunteer pools), else an allow-list (file or
  // directory, curve::LoadKeyList) of worker keys.
  std::string worker_keys;
  // Client endpoint: empty = any key, else only the listed ones ("KEY [ROLE] [QUOTA=N...]").
  std::string client_keys;
  // The coordinator's own key: always let in on the client endpoint (its HTTP side's cancels).
  std::optional<curve::PublicKey> self;
};

struct ZapStats {
  std::uint64_t peers_accepted = 0, peers_refused = 0, clients_accepted = 0, clients_refused = 0;
  std::uint64_t bad_requests = 0;
};

class ZapHandler {
 public:
  explicit ZapHandler(ZapConfig config) : config_(std::move(config)) {}

  /// Loads the key lists and binds inproc://zeromq.zap.01 in `ctx`. Must run before the CURVE
  /// sockets bind: without a handler libzmq lets every key in.
  Status Start(zmq::context_t& ctx);
  /// Reads the key lists again (SIGHUP). On error the previous lists stay in force.
  Status Reload();
  /// Answers every waiting ZAP request.
  void Drain();
  zmq::socket_t& socket() { return *sock_; }
  const ZapStats& stats() const { return stats_; }

  /// What the client list grants a key (the coordinator's own key: admin), or nullopt when the
  /// client endpoint is open and the key is not listed.
  std::optional<ClientGrant> ListedClient(const std::string& user_id) const;
  /// Whether the client endpoint takes listed keys only (--client-keys).
  bool ClientsListed() const { return clients_.has_value(); }
  /// Whether a worker key (hex) may be a peer now: always in open enrollment, else when listed.
  /// A key removed from the list and SIGHUP: its open connection's sessions end (coordinator).
  bool WorkerAllowed(const std::string& key_hex) const {
    return !workers_ || workers_->count(key_hex) != 0;
  }

 private:
  // Returns "200" with the user id, or "400" with a reason.
  std::pair<bool, std::string> Decide(const std::string& domain, const std::string& mechanism,
                                      const std::string& credentials, const std::string& address);

  ZapConfig config_;
  std::optional<zmq::socket_t> sock_;
  std::optional<std::map<std::string, std::string>> workers_;  // hex key -> its line's rest
  std::optional<std::map<std::string, ClientGrant>> clients_;
  ZapStats stats_;
  std::uint64_t logged_ = 0;
};

}  // namespace sparecycles::coordinator
