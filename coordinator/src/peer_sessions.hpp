// Which ZeroMQ identity speaks for which scheduler peer, the peers' standing RequestWork counts
// and the dropped connections waiting to be probed. Owned by the coordinator's event loop, which
// is its only user: not thread-safe. Forget() is the one place a peer's session ends.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "sparecycles/coordinator/scheduler.hpp"
#include "sparecycles/core/clock.hpp"

namespace sparecycles::coordinator {

class PeerSessions {
 public:
  /// Binds `identity` to `peer`, whose connection authenticated with `key` (hex; empty without
  /// CURVE). A peer that reconnects under a new identity loses its old one.
  void Bind(const std::string& identity, PeerHandle peer, const std::string& key = {});
  /// Ends the peer's session: its identity, its standing request. Unknown peers are ignored.
  void Forget(PeerHandle peer);

  /// The peer this identity speaks for; null before its Hello or after Forget().
  const PeerHandle* Find(const std::string& identity) const;
  /// The identity that reaches this peer; null when it has none.
  const std::string* IdentityOf(PeerHandle peer) const;
  /// The peers whose key `allowed` says no to (a key removed from --worker-keys).
  template <class Pred>
  std::vector<PeerHandle> PeersWithKeysNot(Pred allowed) const {
    std::vector<PeerHandle> out;
    for (const auto& [peer, key] : key_of_)
      if (!key.empty() && !allowed(key)) out.push_back(peer);
    return out;
  }

  /// What a peer asked for and did not get yet; 0 clears it.
  void SetWanting(PeerHandle peer, std::uint32_t count);
  /// Peers with a standing request, by handle (the map the coordinator fills from).
  std::map<PeerHandle, std::uint32_t>& wanting() { return wanting_; }
  bool anyone_wanting() const { return !wanting_.empty(); }

  /// The connection (file descriptor) a Hello came in on, so its drop can be traced to the
  /// identity.
  void NoteConnection(int fd, const std::string& identity);
  /// A connection dropped: its identity becomes a suspect, probed at `probe_at`. Unknown fds are
  /// ignored.
  void OnDisconnected(int fd, TimePoint probe_at);
  /// When the earliest suspect is due, if any.
  std::optional<TimePoint> NextProbe() const;
  /// The next suspect due at `now` whose identity still belongs to a peer, with that peer.
  std::optional<std::pair<std::string, PeerHandle>> TakeDueSuspect(TimePoint now);

 private:
  std::unordered_map<std::string, PeerHandle> by_identity_;
  std::unordered_map<PeerHandle, std::string> identity_of_;
  std::unordered_map<PeerHandle, std::string> key_of_;  // the key each session authenticated
  std::map<PeerHandle, std::uint32_t> wanting_;  // standing RequestWork counts not yet filled
  std::unordered_map<int, std::string> identity_by_fd_;     // connection fd -> peer identity
  std::deque<std::pair<TimePoint, std::string>> suspects_;  // disconnected identities to probe
};

}  // namespace sparecycles::coordinator
