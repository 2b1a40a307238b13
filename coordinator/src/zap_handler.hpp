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

#include "sparecycles/core/curve_keys.hpp"
#include "sparecycles/core/status.hpp"

namespace sparecycles::coordinator {

inline constexpr const char* kPeerDomain = "peers";
inline constexpr const char* kClientDomain = "clients";

struct ZapConfig {
  // Peer endpoint: empty = open enrollment (volunteer pools), else an allow-list (file or
  // directory, curve::LoadKeyList) of worker keys.
  std::string worker_keys;
  // Client endpoint: empty = any key, else only the listed ones ("KEY [ROLE]" lines).
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

  /// The role a listed client key was given (its second column), or nullopt when the client
  /// endpoint is open or the key is not listed. The hook for per-client roles; not enforced yet.
  std::optional<std::string> ClientRole(const std::string& user_id) const;

 private:
  // Returns "200" with the user id, or "400" with a reason.
  std::pair<bool, std::string> Decide(const std::string& domain, const std::string& mechanism,
                                      const std::string& credentials, const std::string& address);

  ZapConfig config_;
  std::optional<zmq::socket_t> sock_;
  std::optional<std::map<std::string, std::string>> workers_, clients_;  // hex key -> role
  ZapStats stats_;
  std::uint64_t logged_ = 0;
};

}  // namespace sparecycles::coordinator
