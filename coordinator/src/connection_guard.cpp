#include "connection_guard.hpp"

#include <arpa/inet.h>
#include <linux/tcp.h>
#include <malloc.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

namespace sparecycles::coordinator {

const char* CutReasonName(CutReason r) {
  switch (r) {
    case CutReason::kTooManyConnections:
      return "connections";
    case CutReason::kTooManyFromHost:
      return "host";
    case CutReason::kPendingBytes:
      return "pending";
    case CutReason::kPendingTotal:
      return "pending_total";
  }
  return "unknown";
}

std::optional<CutReason> ConnectionGuard::OnAccepted(int fd, const std::string& host,
                                                     const std::string& peer) {
  if (conns_.count(fd)) OnClosed(fd);  // a missed close: the fd was reused
  Conn& c = conns_[fd];
  c.host = host;
  c.peer = peer;
  ++stats_.accepted;
  stats_.open = conns_.size();
  const bool host_capped = limits_.max_per_host > 0 && !host.empty() && !IsLoopbackAddress(host);
  const std::size_t from_host = host_capped ? ++per_host_[host] : 0;
  if (!limits_.enabled) return std::nullopt;
  if (limits_.max_connections > 0 && conns_.size() > limits_.max_connections)
    return CutReason::kTooManyConnections;
  if (host_capped && from_host > limits_.max_per_host) return CutReason::kTooManyFromHost;
  return std::nullopt;
}

void ConnectionGuard::OnHandshake(int fd, bool succeeded) {
  if (succeeded) {
    auto it = conns_.find(fd);
    if (it != conns_.end() && !it->second.handshaken) {
      it->second.handshaken = true;
      ++stats_.handshaken;
    }
  } else {
    ++stats_.handshakes_failed;
  }
}

std::uint64_t ConnectionGuard::OnClosed(int fd) {
  auto it = conns_.find(fd);
  if (it == conns_.end()) return 0;
  const std::uint64_t pending = it->second.last_pending;
  const std::string& host = it->second.host;
  if (auto h = per_host_.find(host); h != per_host_.end() && --h->second == 0) per_host_.erase(h);
  conns_.erase(it);
  stats_.open = conns_.size();
  return pending;
}

void ConnectionGuard::OnReceived(int fd, std::size_t payload_bytes) {
  auto it = conns_.find(fd);
  if (it == conns_.end()) return;
  it->second.accounted += payload_bytes + kFrameOverhead;
  it->second.seen_since_check = true;
}

void ConnectionGuard::MarkCut(int fd, CutReason why) {
  auto it = conns_.find(fd);
  if (it == conns_.end() || it->second.cut) return;
  it->second.cut = true;
  ++stats_.cut[static_cast<int>(why)];
}

std::vector<std::pair<int, CutReason>> ConnectionGuard::Check(
    const std::function<std::optional<std::uint64_t>(int)>& kernel_bytes, bool drained) {
  std::vector<std::pair<int, CutReason>> cut;
  std::vector<std::pair<std::uint64_t, int>> pending_of;  // for the total budget
  std::vector<int> gone;
  std::uint64_t total = 0;
  for (auto& [fd, c] : conns_) {
    const std::optional<std::uint64_t> kernel = kernel_bytes(fd);
    if (!kernel) {
      gone.push_back(fd);
      continue;
    }
    if (c.cut) continue;
    // A complete message seen since the last reading means no unterminated message started
    // before it: what had arrived by the last reading is explained (ZMTP PINGs, multi-frame
    // messages the loop dropped, anything the per-frame allowance missed), so it cannot pile up.
    if (c.seen_since_check) c.accounted = std::max(c.accounted, c.last_kernel);
    c.seen_since_check = false;
    c.last_kernel = *kernel;
    // Credit beyond what arrived is not kept: messages seen later that were counted twice must
    // not pay for a hoard.
    c.accounted = std::min(c.accounted, *kernel + kHandshakeAllowance);
    const std::uint64_t pending = *kernel > c.accounted ? *kernel - c.accounted : 0;
    stats_.max_pending_seen = std::max(stats_.max_pending_seen, pending);
    c.last_pending = pending;
    const bool over = pending > limits_.max_pending_bytes;
    // Over the limit after the loop drained its socket, or twice in a row (or twice over it at
    // once): a backlog of complete messages behind a busy loop clears within one reading, an
    // unterminated message never does.
    if (limits_.enabled && over &&
        (drained || c.over_last_check || pending / 2 > limits_.max_pending_bytes)) {
      cut.emplace_back(fd, CutReason::kPendingBytes);
      continue;
    }
    c.over_last_check = over;
    total += pending;
    pending_of.emplace_back(pending, fd);
  }
  const bool total_over = total > limits_.max_pending_total;
  if (limits_.enabled && total_over && (drained || total_over_last_check_)) {
    std::sort(pending_of.rbegin(), pending_of.rend());
    for (const auto& [pending, fd] : pending_of) {
      if (total <= limits_.max_pending_total || pending == 0) break;
      cut.emplace_back(fd, CutReason::kPendingTotal);
      total -= pending;
    }
  }
  total_over_last_check_ = total_over;
  for (int fd : gone) OnClosed(fd);
  return cut;
}

const std::string* ConnectionGuard::PeerOf(int fd) const {
  auto it = conns_.find(fd);
  return it == conns_.end() ? nullptr : &it->second.peer;
}

// ---------------------------------------------------------------- file descriptors

std::pair<std::string, std::string> PeerAddress(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return {};
  char buf[INET6_ADDRSTRLEN] = {};
  unsigned port = 0;
  if (ss.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &a->sin_addr, buf, sizeof(buf));
    port = ntohs(a->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof(buf));
    port = ntohs(a->sin6_port);
  } else {
    return {};
  }
  std::string host = buf;
  if (host.rfind("::ffff:", 0) == 0 && host.find('.') != std::string::npos)
    host = host.substr(7);  // an IPv4 peer on a dual-stack socket is that IPv4 host
  const bool v6 = host.find(':') != std::string::npos;
  return {host, (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port)};
}

bool IsLoopbackAddress(const std::string& host) {
  return host == "::1" || host.rfind("127.", 0) == 0;
}

std::optional<std::uint64_t> KernelBytesReceived(int fd) {
  tcp_info info{};
  socklen_t len = sizeof(info);
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return std::nullopt;
  // tcpi_bytes_received arrived in Linux 4.1; a shorter struct means an older kernel.
  if (len < offsetof(tcp_info, tcpi_bytes_received) + sizeof(info.tcpi_bytes_received)) return 0;
  return info.tcpi_bytes_received;
}

bool CutConnection(int fd, const std::string& expected_peer) {
  if (PeerAddress(fd).second != expected_peer) return false;  // closed, and the fd reused
  return shutdown(fd, SHUT_RDWR) == 0;
}

void ReleaseFreedMemory() { malloc_trim(0); }

}  // namespace sparecycles::coordinator
