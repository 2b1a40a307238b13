#include "peer_sessions.hpp"

namespace sparecycles::coordinator {

void PeerSessions::Bind(const std::string& identity, PeerHandle peer, const std::string& key) {
  if (auto old = identity_of_.find(peer); old != identity_of_.end() && old->second != identity)
    by_identity_.erase(old->second);
  by_identity_[identity] = peer;
  identity_of_[peer] = identity;
  key_of_[peer] = key;
}

void PeerSessions::Forget(PeerHandle peer) {
  if (auto it = identity_of_.find(peer); it != identity_of_.end()) {
    // The identity may since speak for another peer (a Hello with a different peer id): keep that.
    if (auto b = by_identity_.find(it->second); b != by_identity_.end() && b->second == peer)
      by_identity_.erase(b);
    identity_of_.erase(it);
  }
  wanting_.erase(peer);
  key_of_.erase(peer);
}

const PeerHandle* PeerSessions::Find(const std::string& identity) const {
  auto it = by_identity_.find(identity);
  return it == by_identity_.end() ? nullptr : &it->second;
}

const std::string* PeerSessions::IdentityOf(PeerHandle peer) const {
  auto it = identity_of_.find(peer);
  return it == identity_of_.end() ? nullptr : &it->second;
}

void PeerSessions::SetWanting(PeerHandle peer, std::uint32_t count) {
  if (count > 0)
    wanting_[peer] = count;
  else
    wanting_.erase(peer);
}

void PeerSessions::NoteConnection(int fd, const std::string& identity) {
  identity_by_fd_[fd] = identity;
}

void PeerSessions::OnDisconnected(int fd, TimePoint probe_at) {
  auto it = identity_by_fd_.find(fd);
  if (it == identity_by_fd_.end()) return;
  suspects_.emplace_back(probe_at, it->second);
  identity_by_fd_.erase(it);
}

std::optional<TimePoint> PeerSessions::NextProbe() const {
  if (suspects_.empty()) return std::nullopt;
  return suspects_.front().first;
}

std::optional<std::pair<std::string, PeerHandle>> PeerSessions::TakeDueSuspect(TimePoint now) {
  while (!suspects_.empty() && suspects_.front().first <= now) {
    std::string identity = std::move(suspects_.front().second);
    suspects_.pop_front();
    auto known = by_identity_.find(identity);
    if (known == by_identity_.end()) continue;  // already left or replaced by a reconnect
    return std::make_pair(std::move(identity), known->second);
  }
  return std::nullopt;
}

}  // namespace sparecycles::coordinator
