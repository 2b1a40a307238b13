#include "sparecycles/coordinator/coordinator.hpp"

#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <tuple>
#include <unordered_map>
#include <utility>

#include "access.hpp"
#include "connection_guard.hpp"
#include "http_server.hpp"  // HTTP side: metrics snapshots and the server
#include "package_service.hpp"
#include "peer_sessions.hpp"
#include "sparecycles/core/hash.hpp"
#include "sparecycles/core/log.hpp"
#include "sparecycles/core/protocol.hpp"
#include "sparecycles/core/transport.hpp"
#include "sparecycles/package/job.hpp"
#include "store.hpp"
#include "zap_handler.hpp"

namespace sparecycles::coordinator {

using proto::MsgType;

struct Coordinator::Impl {
  Impl(CoordinatorConfig c, const tasks::Registry& r)
      : config(std::move(c)),
        clock(*config.clock),
        registry(r),
        scheduler(WithPackages(config.scheduler, this), r, InitialLeaseId()) {}

  // Package jobs resolve through the package service (opened in Start(), before any job).
  static SchedulerConfig WithPackages(SchedulerConfig sc, Impl* impl) {
    sc.resolve_package = [impl](const std::string& task) -> Result<ResolvedTask> {
      if (!impl->packages) return FailedPrecondition("task packages are not open yet");
      return impl->packages->Resolve(task);
    };
    return sc;
  }

  static LeaseId InitialLeaseId() {
    // Lease ids stay unique across coordinator restarts: start from a random 32-bit epoch.
    std::uint32_t epoch = 0;
    RandomBytes(&epoch, sizeof(epoch));
    return (static_cast<LeaseId>(epoch | 1u) << 24);
  }

  CoordinatorConfig config;
  const Clock& clock;
  const tasks::Registry& registry;
  Scheduler scheduler;
  zmq::context_t ctx{1};
  std::optional<zmq::socket_t> peers_sock, clients_sock;
  std::string peer_ep, client_ep;
  net::EventFd wake;
  std::atomic<bool> stop{false};
  net::WireStats peer_wire, client_wire;
  std::string session = RandomId("c-");

  PeerSessions sessions;  // identities, standing requests, disconnect suspects
  std::unordered_map<JobId, std::vector<std::string>> watchers;
  std::unordered_map<JobId, TimePoint> last_push;
  std::set<JobId> pending_push;
  std::unordered_map<std::string, std::vector<std::uint64_t>> acks;  // per peer identity
  std::vector<std::pair<std::string, std::string>> client_out;       // replies held until commit
  std::vector<std::pair<std::string, std::string>> peer_out;  // peer messages held until commit
  std::unique_ptr<Store> store;
  std::unique_ptr<PackageService> packages;
  // Security layer: the key pair both endpoints serve with, and the ZAP handler (null when CURVE
  // is off) that lets keys in; `reload_keys` is set by ReloadKeys() (SIGHUP).
  curve::KeyPair key;
  std::unique_ptr<ZapHandler> zap;
  std::atomic<bool> reload_keys{false};
  std::uint64_t hellos_wrong_id = 0;
  // Client roles and quotas (docs/security.md, "Client roles"): the roles of unlisted keys when
  // the client endpoint is open, and the bytes of stored packages held for each uploader's key.
  unsigned open_roles = kRoleSubmit | kRoleRead;
  std::set<std::string> owned_packages;                // ids (hex) whose uploader is recorded
  std::map<std::string, std::uint64_t> package_bytes;  // uploader's key -> bytes stored
  std::uint64_t requests_denied = 0, quota_refusals = 0;
  std::optional<zmq::socket_t> monitor;  // connection events of the peer socket
  // Denial-of-service bounds (connection_guard.hpp): one guard per endpoint, fed by its socket's
  // monitor and by the frames received; `trim_at` after a hoarding connection went away.
  std::optional<zmq::socket_t> client_monitor;  // connection events of the client socket
  std::optional<ConnectionGuard> peer_guard, client_guard;
  std::uint64_t cuts_logged = 0;
  std::optional<TimePoint> trim_at;  // when to return freed memory to the OS
  static constexpr std::uint64_t kTrimAfterBytes = 16 << 20;
  bool trim_again = false;
  // libzmq frees a cut connection's buffers on its I/O thread after the event (millions of
  // frames take a while): trim after 500 ms and once more 2 s later.
  void TrimSoon(TimePoint now) {
    if (!trim_at) trim_at = now + std::chrono::milliseconds(500);
    trim_again = true;
  }
  std::uint64_t bad_logged = 0;

  mutable std::mutex stats_mu;
  CoordinatorStats snapshot;
  // HTTP side (null when off): the loop feeds `metrics`; `http` serves from its snapshots.
  std::unique_ptr<LoopMetrics> metrics;
  std::unique_ptr<CoordinatorHttp> http;

  // ------------------------------------------------------------------ helpers
  // Peer messages also wait for the turn's commit: a lease is never out before it is stored.
  template <class M>
  void SendPeer(const std::string& identity, const M& msg) {
    peer_out.emplace_back(identity, proto::Encode(msg));
  }
  void FlushPeers() {
    for (auto& [identity, frame] : peer_out)
      net::SendRouter(*peers_sock, identity, frame, &peer_wire);
    peer_out.clear();
  }
  // Serves peers whose standing RequestWork is not yet filled (called when work appears).
  void ServeWaiting(TimePoint now) {
    auto& wanting = sessions.wanting();
    for (auto it = wanting.begin(); it != wanting.end();) {
      const std::string* ident = sessions.IdentityOf(it->first);
      if (ident == nullptr) {
        it = wanting.erase(it);
        continue;
      }
      proto::Assign a;
      a.leases = scheduler.Lease(it->first, it->second, now);
      it->second -= static_cast<std::uint32_t>(std::min<std::size_t>(a.leases.size(), it->second));
      if (!a.leases.empty()) SendPeer(*ident, a);
      it = it->second == 0 ? wanting.erase(it) : std::next(it);
    }
  }
  // Replies wait for the loop turn's commit: a client never hears of a job that a crash could lose.
  template <class M>
  void SendClient(const std::string& identity, const M& msg) {
    client_out.emplace_back(identity, proto::Encode(msg));
  }
  template <class M>
  bool PushClient(const std::string& identity, const M& msg) {
    return net::SendRouter(*clients_sock, identity, proto::Encode(msg), &client_wire);
  }
  void FlushClients() {
    for (auto& [identity, frame] : client_out)
      net::SendRouter(*clients_sock, identity, frame, &client_wire);
    client_out.clear();
  }
  void CommitStore() {
    if (!store || !store->dirty()) return;
    const TimePoint commit_start = SteadyClock::Instance().Now();  // HTTP side: commit latency
    Status s = store->Commit();
    if (metrics)
      metrics->ObserveCommit(Seconds(SteadyClock::Instance().Now() - commit_start));  // HTTP side
    if (!s.ok()) {
      // Nothing may be acknowledged that is not on disk: stop rather than lie.
      SC_LOG(Error) << "commit failed: " << s.ToString() << " — stopping";
      std::abort();
    }
  }
  void BadFrame(const char* where, const Status& s) {
    // Counted always, logged for the first few and then every 1000th so a flood cannot fill disks.
    if (bad_logged < 10 || bad_logged % 1000 == 0)
      SC_LOG(Warn) << "dropped a bad frame on the " << where << " endpoint: " << s.ToString();
    ++bad_logged;
  }
  void SendCancels(const std::vector<std::pair<PeerHandle, LeaseId>>& cancels,
                   const std::string& why) {
    std::unordered_map<PeerHandle, proto::CancelLeases> per_peer;
    for (auto [peer, lease] : cancels) per_peer[peer].lease_ids.push_back(lease);
    for (auto& [peer, msg] : per_peer) {
      const std::string* identity = sessions.IdentityOf(peer);
      if (identity == nullptr) continue;
      msg.reason = why;
      SendPeer(*identity, msg);
    }
  }

  // ------------------------------------------------------------------ peers
  // One incoming peer message, after its header and sender were checked.
  struct PeerIn {
    PeerHandle peer;
    const std::string& identity;
    std::string_view body;
    TimePoint now;
  };

  template <class M>
  bool DecodePeer(std::string_view body, M& msg) {
    Status s = proto::Decode(body, msg);
    if (!s.ok()) {
      ++peer_wire.bad_frames;
      BadFrame("peer", s);
    }
    return s.ok();
  }

  void OnPeerFrame(net::RouterFrame& f, TimePoint now) {
    std::string_view body;
    auto type = proto::ParseHeader(f.view(), body);
    if (!type.ok()) {
      ++peer_wire.bad_frames;
      BadFrame("peer", type.status());
      if (type.status().code() == StatusCode::kFailedPrecondition)
        SendPeer(f.identity,
                 proto::Reject{proto::RejectCode::kBadVersion, type.status().message()});
      return;
    }
    if (*type == MsgType::kHello) return OnHello(f, body, now);
    const PeerHandle* known = sessions.Find(f.identity);
    if (known == nullptr) {
      SendPeer(f.identity, proto::Reject{proto::RejectCode::kHelloFirst, "say Hello first"});
      return;
    }
    if (zap && PeerName(*known) != AuthenticatedPeerId(f)) {
      // A routing identity once used by another key (a connection that took it over after the
      // owner left): nothing of that peer is this connection's.
      ++hellos_wrong_id;
      SendPeer(f.identity, proto::Reject{proto::RejectCode::kHelloFirst, "say Hello first"});
      return;
    }
    scheduler.Touch(*known, now);
    const PeerIn in{*known, f.identity, body, now};
    switch (*type) {
      case MsgType::kCapacity:
        return OnCapacity(in);
      case MsgType::kRequestWork:
        return OnRequestWork(in);
      case MsgType::kResult:
        return OnResultMsg(in);
      case MsgType::kResults:
        return OnResults(in);
      case MsgType::kHeartbeat:
        return OnHeartbeat(in);
      case MsgType::kCheckpoint:
        return OnCheckpoint(in);
      case MsgType::kBye:
        return OnBye(in);
      case MsgType::kPackageGet:
        return OnPackageGet(in);
      case MsgType::kPackageRefused:
        return OnPackageRefused(in);
      default:
        ++peer_wire.bad_frames;
        BadFrame("peer", InvalidArgument(std::string(proto::MsgTypeName(*type)) +
                                         " is not a peer message"));
    }
  }

  void OnCapacity(const PeerIn& in) {
    proto::Capacity m;
    if (DecodePeer(in.body, m)) scheduler.SetCapacity(in.peer, m, in.now);
  }

  void OnRequestWork(const PeerIn& in) {
    proto::RequestWork m;
    if (!DecodePeer(in.body, m)) return;
    // A RequestWork is a standing request: what cannot be filled now is filled when work
    // appears (a new job, a requeued unit), without the peer asking again.
    proto::Assign a;
    a.leases = scheduler.Lease(in.peer, m.count, in.now);
    sessions.SetWanting(in.peer, m.count - static_cast<std::uint32_t>(
                                               std::min<std::size_t>(a.leases.size(), m.count)));
    if (!a.leases.empty()) SendPeer(in.identity, a);
  }

  void OnResultMsg(const PeerIn& in) {
    proto::ResultMsg m;
    if (!DecodePeer(in.body, m)) {
      // Acknowledge what we can identify so the peer does not resend a bad result forever.
      if (in.body.size() >= 8) {
        std::uint64_t lease = 0;
        std::memcpy(&lease, in.body.data(), 8);
        acks[in.identity].push_back(lease);
      }
      return;
    }
    OnResult(in.peer, in.identity, m, in.now, WallSeconds());
  }

  void OnResults(const PeerIn& in) {
    // A bad batch is dropped whole: its lease ids cannot be trusted to acknowledge. The
    // worker resends after its next Welcome; the leases' deadlines reissue the units meanwhile.
    proto::Results m;
    if (!DecodePeer(in.body, m)) return;
    const double wall = WallSeconds();
    for (const auto& r : m.results) OnResult(in.peer, in.identity, r, in.now, wall);
  }

  void OnHeartbeat(const PeerIn& in) {
    proto::Heartbeat m;
    DecodePeer(in.body, m);  // hearing from the peer (Touch) is all it does; a bad one is counted
  }

  void OnCheckpoint(const PeerIn& in) {
    proto::Checkpoint m;
    if (DecodePeer(in.body, m))
      scheduler.OnCheckpoint(in.peer, m, in.now);  // no reply; a stale one is dropped
  }

  void OnBye(const PeerIn& in) {
    proto::Bye m;
    if (!DecodePeer(in.body, m)) return;
    scheduler.ReturnLeases(in.peer, m.returned_leases, in.now);
    SC_LOG(Info) << "peer " << PeerName(in.peer) << " left (" << m.returned_leases.size()
                 << " leases handed back)";
    scheduler.RemovePeer(in.peer, in.now);
    sessions.Forget(in.peer);
  }

  void OnPackageGet(const PeerIn& in) {
    proto::PackageGet m;
    if (DecodePeer(in.body, m)) SendPeer(in.identity, packages->OnGet(in.identity, m, in.now));
  }

  void OnPackageRefused(const PeerIn& in) {
    proto::PackageRefused m;
    if (!DecodePeer(in.body, m)) return;
    const Hash256 id = package::PackageIdFromBytes(m.package_id);
    SC_LOG(Warn) << "peer " << PeerName(in.peer) << " refused package " << package::ShortId(id)
                 << ": " << m.reason;
    packages->NoteRefusal();
    scheduler.RefusePackage(in.peer, package::PackageTaskName(id), m.lease_ids, m.reason, in.now);
  }

  void OnResult(PeerHandle peer, const std::string& identity, const proto::ResultMsg& m,
                TimePoint now, double wall) {
    if (metrics) metrics->ObserveResult(scheduler, m);  // HTTP side: unit run time by task
    ResultEffect e = scheduler.OnResult(peer, m, now, wall);
    if (e.kind == ResultEffect::Kind::kRejected)
      SC_LOG(Warn) << "rejected a result from peer " << peer << ": " << e.reason;
    acks[identity].push_back(m.lease_id);
    if (!e.cancel.empty()) SendCancels(e.cancel, "unit already settled");
  }

  std::string PeerName(PeerHandle h) const {
    const Peer* p = scheduler.FindPeer(h);
    return p ? p->hello.peer_id : std::to_string(h);
  }

  PeerHello ToPeerHello(const proto::Hello& h, net::RouterFrame& f) const {
    PeerHello hello;
    hello.peer_id = h.peer_id;
    hello.hostname = h.hostname;
    hello.cores = h.cores;
    hello.memory_bytes = h.memory_bytes;
    try {
      const char* addr = f.payload.gets("Peer-Address");
      hello.host = addr ? addr : h.hostname;
    } catch (const zmq::error_t&) {
      hello.host = h.hostname;  // not TCP (inproc/ipc): fall back to the announced name
    }
    for (const auto& t : h.tasks) {
      const bool package_kind = t.version == package::kKindTaskVersion &&
                                (t.name == package::KindTaskName(package::Kind::kNative) ||
                                 t.name == package::KindTaskName(package::Kind::kCommand));
      if (package_kind || registry.Find(t.name, t.version) != nullptr)
        hello.work_per_second[TaskKey(t.name, t.version)] = t.work_per_second;
    }
    return hello;
  }

  // The peer id the connection's CURVE key stands for (ZAP User-Id = the key's hex); empty when
  // the connection is not authenticated.
  static std::string AuthenticatedPeerId(net::RouterFrame& f) {
    auto key = curve::ParsePublicKey(net::UserId(f.payload));
    return key.ok() ? curve::PeerIdFor(*key) : std::string();
  }

  void OnHello(net::RouterFrame& f, std::string_view body, TimePoint now) {
    proto::Hello h;
    if (Status s = proto::Decode(body, h); !s.ok()) {
      ++peer_wire.bad_frames;
      BadFrame("peer", s);
      SendPeer(f.identity, proto::Reject{proto::RejectCode::kBadMessage, s.message()});
      return;
    }
    if (zap) {
      // Peers are their keys: a Hello may only speak for the peer id of its own key, so no one
      // can take over another peer's leases by claiming its id.
      const std::string expected = AuthenticatedPeerId(f);
      if (h.peer_id != expected) {
        ++hellos_wrong_id;
        if (hellos_wrong_id <= 100)
          SC_LOG(Warn) << "refused a Hello claiming peer id " << h.peer_id
                       << " from a connection whose key is " << expected;
        SendPeer(f.identity, proto::Reject{proto::RejectCode::kBadMessage,
                                           "peer id " + h.peer_id +
                                               " is not the one of your key (" + expected + ")"});
        return;
      }
    }
    const std::string key_hex = zap ? net::UserId(f.payload) : std::string();
    if (zap && !zap->WorkerAllowed(key_hex)) {
      // Let in by an earlier list; the key was removed since (SIGHUP).
      SendPeer(f.identity, proto::Reject{proto::RejectCode::kRefused, kKeyRemoved});
      return;
    }
    const PeerHello hello = ToPeerHello(h, f);
    if (const int fd = net::SourceFd(f.payload); fd >= 0) sessions.NoteConnection(fd, f.identity);
    auto joined = scheduler.Join(hello, now);  // the Sybil bounds (docs/cross-checking.md)
    if (!joined.ok()) {
      SC_LOG(Warn) << "refused peer " << h.peer_id << " from " << hello.host << ": "
                   << joined.status().message();
      SendPeer(f.identity, proto::Reject{proto::RejectCode::kRefused, joined.status().message()});
      return;
    }
    const PeerHandle peer = *joined;
    sessions.Bind(f.identity, peer, key_hex);
    scheduler.ReconcileLeases(peer, h.running_leases, now);
    SC_LOG(Info) << "peer " << h.peer_id << " joined from " << hello.host << " with " << h.cores
                 << " cores and " << hello.work_per_second.size() << " tasks";
    proto::Welcome w;
    w.session = session;
    w.heartbeat_ms = static_cast<std::uint32_t>(ToMillis(config.heartbeat));
    w.peer_timeout_ms = static_cast<std::uint32_t>(ToMillis(config.scheduler.peer_timeout));
    w.publishers = packages->PublisherKeys();
    SendPeer(f.identity, w);
  }

  // Connection events of one endpoint's socket (ZMQ_EVENT_*; the value is the connection's fd).
  // A peer's connection that dropped becomes a suspect: after the grace period, ZeroMQ is asked
  // whether the identity still has a connection (ROUTER_MANDATORY: EHOSTUNREACH when not); if not,
  // the peer is gone and its units go back to the queue now, not after the silence timeout.
  void OnMonitorEvents(zmq::socket_t& mon, ConnectionGuard& guard, bool peer_side, TimePoint now) {
    while (true) {
      zmq::message_t ev, addr;
      try {
        if (!mon.recv(ev, zmq::recv_flags::dontwait)) return;
        if (ev.more()) (void)mon.recv(addr, zmq::recv_flags::dontwait);
      } catch (const zmq::error_t&) {
        return;
      }
      if (ev.size() < 6) continue;
      std::uint16_t event;
      std::uint32_t value;
      std::memcpy(&event, ev.data(), 2);
      std::memcpy(&value, static_cast<const char*>(ev.data()) + 2, 4);
      const int fd = static_cast<int>(value);
      if (event == ZMQ_EVENT_ACCEPTED) {
        const auto [host, peer] = PeerAddress(fd);
        if (auto why = guard.OnAccepted(fd, host, peer)) Cut(guard, fd, *why, peer_side, now);
      } else if (event == ZMQ_EVENT_DISCONNECTED) {
        // A connection that held much unread (an unterminated message) freed it: return it.
        if (guard.OnClosed(fd) > kTrimAfterBytes) TrimSoon(now);
        if (peer_side) sessions.OnDisconnected(fd, now + config.disconnect_grace);
      } else if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
        guard.OnHandshake(fd, true);
      } else if ((event &
                  (ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                   ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)) != 0) {
        guard.OnHandshake(fd, false);
      }
    }
  }

  // Cuts one connection (shutdown under libzmq, which then closes it), counted and logged: the
  // first few, then every 1000th, so a flood of connections cannot fill disks.
  void Cut(ConnectionGuard& guard, int fd, CutReason why, bool peer_side, TimePoint now) {
    const std::string* peer = guard.PeerOf(fd);
    if (peer == nullptr || !CutConnection(fd, *peer)) {
      guard.OnClosed(fd);  // already gone (its fd may serve another connection by now)
      return;
    }
    guard.MarkCut(fd, why);
    if (why == CutReason::kPendingBytes || why == CutReason::kPendingTotal) TrimSoon(now);
    if (cuts_logged < 10 || cuts_logged % 1000 == 0)
      SC_LOG(Warn) << "cut a connection from " << *peer << " on the "
                   << (peer_side ? "peer" : "client") << " endpoint (" << CutReasonName(why) << "; "
                   << cuts_logged + 1 << " cut so far)";
    ++cuts_logged;
  }

  // The guards' periodic reading of what each connection received but the loop has not seen.
  void CheckConnections(TimePoint now, bool peers_drained, bool clients_drained) {
    for (auto [guard, peer_side, drained] : {std::tuple{&*peer_guard, true, peers_drained},
                                             std::tuple{&*client_guard, false, clients_drained}}) {
      if (!guard->CheckDue(now)) continue;
      guard->CheckedAt(now);
      for (const auto& [fd, why] : guard->Check(KernelBytesReceived, drained))
        Cut(*guard, fd, why, peer_side, now);
    }
    if (trim_at && now >= *trim_at) {
      ReleaseFreedMemory();
      trim_at.reset();
      if (std::exchange(trim_again, false)) trim_at = now + std::chrono::seconds(2);
    }
  }

  void ProbeSuspects(TimePoint now) {
    while (auto suspect = sessions.TakeDueSuspect(now)) {
      const auto& [identity, peer] = *suspect;
      int err = 0;
      if (net::SendRouter(*peers_sock, identity, proto::Encode(proto::Heartbeat{}), &peer_wire,
                          &err) ||
          err != EHOSTUNREACH)
        continue;  // still connected
      const Peer* p = scheduler.FindPeer(peer);
      SC_LOG(Warn) << "peer " << PeerName(peer) << " disconnected; its "
                   << (p ? p->leases.size() : 0) << " units were requeued";
      scheduler.RemovePeer(peer, now);
      sessions.Forget(peer);
      ++disconnects;
    }
  }
  std::uint64_t disconnects = 0;

  static constexpr const char* kKeyRemoved =
      "this worker's key is no longer listed in the coordinator's --worker-keys";
  // After a reload: peers whose key left --worker-keys lose their session and their units go back
  // to the queue; their connection stays open, but every Hello on it is refused.
  void EndRemovedPeers(TimePoint now) {
    for (PeerHandle peer :
         sessions.PeersWithKeysNot([&](const std::string& k) { return zap->WorkerAllowed(k); })) {
      if (const std::string* identity = sessions.IdentityOf(peer))
        SendPeer(*identity, proto::Reject{proto::RejectCode::kRefused, kKeyRemoved});
      SC_LOG(Warn) << "peer " << PeerName(peer)
                   << " ended: its key was removed from --worker-keys; its units were requeued";
      scheduler.RemovePeer(peer, now);
      sessions.Forget(peer);
    }
  }

  void FlushAcks() {
    for (auto& [identity, ids] : acks) {
      proto::Ack a;
      for (std::size_t i = 0; i < ids.size(); i += proto::kMaxLeasesPerMessage) {
        a.lease_ids.assign(ids.begin() + static_cast<std::ptrdiff_t>(i),
                           ids.begin() + static_cast<std::ptrdiff_t>(std::min(
                                             ids.size(), i + proto::kMaxLeasesPerMessage)));
        SendPeer(identity, a);
      }
    }
    acks.clear();
  }

  // ------------------------------------------------------------------ clients
  // One incoming client request, after its header was checked.
  struct ClientIn {
    const std::string& identity;
    std::string_view body;
    const Caller& caller;
  };

  Caller CallerOf(net::RouterFrame& f) const {
    if (!zap) return MakeCaller({}, std::nullopt, open_roles, {});  // CURVE off: no keys
    const std::string key = net::UserId(f.payload);
    // A key taken off --client-keys (SIGHUP) whose connection is still open: no roles at all.
    return MakeCaller(key, zap->ListedClient(key), zap->ClientsListed() ? 0u : open_roles,
                      Quota{config.quota_jobs, config.quota_units, config.quota_bytes});
  }

  // PERMISSION_DENIED for this request, counted; false when it may go on.
  bool Denied(const ClientIn& in, std::uint64_t request_id, ClientAction action,
              const std::string& job_owner = {}) {
    Status s = Authorize(in.caller, action, job_owner);
    if (s.ok()) return false;
    ++requests_denied;
    Fail(in.identity, request_id, s);
    return true;
  }

  // What the key holds now: its unfinished jobs, their unsettled units and inputs, its packages.
  Usage UsageOf(const std::string& key) const {
    Usage u;
    for (const auto& [id, job] : scheduler.jobs()) {
      if (job->owner != key || proto::IsFinal(job->state)) continue;
      const std::uint64_t total = job->units.size();  // kept until the job ends
      ++u.jobs;
      u.units += total - std::min(total, job->done + job->failed);
      u.bytes += job->input_bytes;
    }
    if (auto it = package_bytes.find(key); it != package_bytes.end()) u.bytes += it->second;
    return u;
  }

  void Fail(const std::string& identity, std::uint64_t request_id, const Status& s) {
    SendClient(identity, proto::ErrorReply{request_id, proto::ToWireCode(s.code()), s.message()});
  }

  template <class M>
  bool DecodeClient(const ClientIn& in, M& msg) {
    Status s = proto::Decode(in.body, msg);
    if (!s.ok()) {
      ++client_wire.bad_frames;
      BadFrame("client", s);
      // Every request starts with its u64 id: answer it so the caller does not wait in vain.
      std::uint64_t rid = 0;
      if (in.body.size() >= 8) std::memcpy(&rid, in.body.data(), 8);
      Fail(in.identity, rid, s);
    }
    return s.ok();
  }

  void OnClientFrame(net::RouterFrame& f) {
    std::string_view body;
    auto type = proto::ParseHeader(f.view(), body);
    if (!type.ok()) {
      ++client_wire.bad_frames;
      BadFrame("client", type.status());
      Fail(f.identity, 0, type.status());
      return;
    }
    const Caller caller = CallerOf(f);
    const ClientIn in{f.identity, body, caller};
    switch (*type) {
      case MsgType::kSubmit:
        return OnSubmit(in);
      case MsgType::kStatusRequest:
        return OnStatus(in);
      case MsgType::kWatch:
        return OnWatch(in);
      case MsgType::kCancelJob:
        return OnCancel(in);
      case MsgType::kFetchResult:
        return OnFetchResult(in);
      case MsgType::kListJobs:
        return OnListJobs(in);
      case MsgType::kListPeers:
        return OnListPeers(in);
      case MsgType::kPackagePut:
        return OnPackagePut(in);
      case MsgType::kListPackages:
        return OnListPackages(in);
      default:
        ++client_wire.bad_frames;
        Fail(in.identity, 0,
             InvalidArgument(std::string(proto::MsgTypeName(*type)) + " is not a client request"));
    }
  }

  void OnSubmit(const ClientIn& in) {
    proto::Submit m;
    if (!DecodeClient(in, m)) return;
    if (Denied(in, m.request_id, ClientAction::kSubmit)) return;
    proto::SubmitReply r;
    r.request_id = m.request_id;
    Scheduler::Submitter by;
    by.owner = in.caller.key;
    bool over_quota = false;
    if (!in.caller.admin())
      by.admit = [&, held = UsageOf(in.caller.key)](const Job& job) {
        Status s = CheckJobQuota(in.caller, held, job.units.size(), job.input_bytes);
        over_quota = !s.ok();
        return s;
      };
    auto id = scheduler.Submit(m.spec, WallSeconds(), by);
    if (!id.ok()) {
      if (over_quota) ++quota_refusals;
      r.code = proto::ToWireCode(id.status().code());
      r.message = id.status().message();
    } else {
      const Job* job = scheduler.FindJob(*id);
      r.info = scheduler.Info(*job);
      if (m.watch) AddWatcher(*id, in.identity);
      SC_LOG(Info) << "job " << *id << " (" << m.spec.task << ") submitted: " << r.info.units_total
                   << " units";
      WarnIfTooFewPeers(*job);
    }
    SendClient(in.identity, r);
  }

  void OnPackagePut(const ClientIn& in) {
    proto::PackagePut m;
    if (!DecodeClient(in, m) || Denied(in, m.request_id, ClientAction::kUpload)) return;
    const Hash256 package_id = package::PackageIdFromBytes(m.package_id);
    const std::string id = ToHex(package_id);
    if (!packages->Has(package_id)) {
      if (Status s = CheckUploadQuota(in.caller, UsageOf(in.caller.key), m.total_size); !s.ok()) {
        ++quota_refusals;
        proto::PackagePutReply r;
        r.request_id = m.request_id;
        r.code = proto::ToWireCode(s.code());
        r.message = s.message();
        return SendClient(in.identity, r);
      }
    }
    proto::PackagePutReply r = packages->OnPut(m);
    if (r.complete && r.code == 0 && !in.caller.key.empty() && owned_packages.insert(id).second) {
      // The first key to store a package holds its bytes; a second upload of it costs nothing.
      package_bytes[in.caller.key] += m.total_size;
      if (store) store->OnPackageStored({id, in.caller.key, m.total_size});
    }
    SendClient(in.identity, r);
  }

  void OnListPackages(const ClientIn& in) {
    proto::ListPackages m;
    if (!DecodeClient(in, m) || Denied(in, m.request_id, ClientAction::kListPackages)) return;
    proto::PackageList r = packages->List();
    r.request_id = m.request_id;
    SendClient(in.identity, r);
  }

  void WarnIfTooFewPeers(const Job& job) const {
    std::size_t able = 0;
    for (const auto& [h, p] : scheduler.peers())
      able += p.hello.work_per_second.contains(job.peer_key) ? 1 : 0;
    if (able < job.policy.quorum)
      SC_LOG(Warn)
          << "job " << job.id << " needs " << job.policy.quorum
          << " distinct peers per unit (quorum) but " << able
          << " can run it now; it waits for more peers (--pool cluster runs each unit once)";
  }

  // Status, Watch and CancelJob all answer with the job's state.
  void ReplyJobStatus(const ClientIn& in, const proto::JobRequest& m, bool watch) {
    const Job* job = FindJobFor(in, m, ClientAction::kSeeJob);
    if (job == nullptr) return;
    if (watch && !proto::IsFinal(job->state)) AddWatcher(m.job_id, in.identity);
    proto::JobStatus r;
    r.request_id = m.request_id;
    r.info = scheduler.Info(*job);
    SendClient(in.identity, r);
  }

  // The job a request names, when the caller may act on it; else null, with the reply sent
  // (NOT_FOUND, or PERMISSION_DENIED for a job of another key beyond the caller's role).
  const Job* FindJobFor(const ClientIn& in, const proto::JobRequest& m, ClientAction action) {
    const Job* job = scheduler.FindJob(m.job_id);
    if (job == nullptr) {
      Fail(in.identity, m.request_id, NotFound("no job " + std::to_string(m.job_id)));
      return nullptr;
    }
    return Denied(in, m.request_id, action, job->owner) ? nullptr : job;
  }

  void OnStatus(const ClientIn& in) {
    proto::JobRequest m;
    if (DecodeClient(in, m)) ReplyJobStatus(in, m, /*watch=*/false);
  }

  void OnWatch(const ClientIn& in) {
    proto::JobRequest m;
    if (DecodeClient(in, m)) ReplyJobStatus(in, m, /*watch=*/true);
  }

  void OnCancel(const ClientIn& in) {
    proto::JobRequest m;
    if (!DecodeClient(in, m) || FindJobFor(in, m, ClientAction::kCancelJob) == nullptr) return;
    std::vector<std::pair<PeerHandle, LeaseId>> cancels;
    if (Status s = scheduler.Cancel(m.job_id, cancels); !s.ok())
      return Fail(in.identity, m.request_id, s);
    SendCancels(cancels, "job cancelled");
    SC_LOG(Info) << "job " << m.job_id << " cancelled (" << cancels.size()
                 << " running units stopped)";
    ReplyJobStatus(in, m, /*watch=*/false);
  }

  void OnFetchResult(const ClientIn& in) {
    proto::JobRequest m;
    if (!DecodeClient(in, m)) return;
    const Job* job = FindJobFor(in, m, ClientAction::kSeeJob);
    if (job == nullptr) return;
    proto::JobResult r;
    r.request_id = m.request_id;
    r.info = scheduler.Info(*job);
    r.failures = scheduler.Failures(*job);
    if (!proto::IsFinal(job->state)) {
      r.code = proto::ToWireCode(StatusCode::kFailedPrecondition);
      r.message = "job is still " + std::string(proto::JobStateName(job->state));
    } else if (job->state == proto::JobState::kDone &&
               job->result.size() > proto::kMaxResultBytes) {
      r.code = proto::ToWireCode(StatusCode::kResourceExhausted);
      r.message = "the merged result is " + std::to_string(job->result.size()) +
                  " bytes, above the " + std::to_string(proto::kMaxResultBytes) +
                  "-byte limit of one message";
    } else if (job->state == proto::JobState::kDone) {
      r.result = job->result;
      r.summary = job->task->Summarize(job->result);
      r.json = job->task->ToJson(job->result);
      r.media_type = std::string(job->task->MediaType());
    }
    SendClient(in.identity, r);
  }

  void OnListJobs(const ClientIn& in) {
    proto::ListJobs m;
    if (!DecodeClient(in, m) || Denied(in, m.request_id, ClientAction::kListJobs)) return;
    proto::JobList r;
    r.request_id = m.request_id;
    const bool all = SeesAllJobs(in.caller);
    for (const auto& [id, job] : scheduler.jobs())
      if (all || job->owner == in.caller.key) r.jobs.push_back(scheduler.Info(*job));
    SendClient(in.identity, r);
  }

  void OnListPeers(const ClientIn& in) {
    proto::ListPeers m;
    if (!DecodeClient(in, m) || Denied(in, m.request_id, ClientAction::kListPeers)) return;
    proto::PeerList r;
    r.request_id = m.request_id;
    const TimePoint now = clock.Now();
    for (const auto& [h, p] : scheduler.peers()) {
      proto::PeerInfo pi;
      pi.peer_id = p.hello.peer_id;
      pi.hostname = p.hello.hostname;
      pi.cores = p.hello.cores;
      pi.slots = p.slots;
      pi.idle_slots = p.idle_slots;
      pi.state = p.state;
      pi.reason = p.reason;
      pi.running = p.leases.size();
      pi.units_done = p.units_done;
      pi.cpu_seconds = p.cpu_seconds_validated;
      pi.connected_seconds = Seconds(now - p.connected_at);
      pi.silent_seconds = Seconds(now - p.last_seen);
      pi.units_invalid = p.units_invalid;
      pi.credibility = scheduler.Credibility(p.hello.peer_id);
      r.peers.push_back(std::move(pi));
    }
    SendClient(in.identity, r);
  }

  void AddWatcher(JobId job, const std::string& identity) {
    auto& w = watchers[job];
    if (std::find(w.begin(), w.end(), identity) == w.end()) w.push_back(identity);
  }

  void PushProgress(TimePoint now, bool force_all) {
    for (JobId id : scheduler.TakeDirtyJobs()) pending_push.insert(id);
    for (auto it = pending_push.begin(); it != pending_push.end();) {
      const JobId id = *it;
      const Job* job = scheduler.FindJob(id);
      auto wit = watchers.find(id);
      if (job == nullptr || wit == watchers.end()) {
        it = pending_push.erase(it);
        continue;
      }
      const bool final = proto::IsFinal(job->state);
      auto lp = last_push.find(id);
      if (!final && !force_all && lp != last_push.end() &&
          now - lp->second < config.progress_interval) {
        ++it;
        continue;
      }
      proto::Progress p;
      p.info = scheduler.Info(*job);
      auto& list = wit->second;
      list.erase(std::remove_if(list.begin(), list.end(),
                                [&](const std::string& ident) { return !PushClient(ident, p); }),
                 list.end());
      last_push[id] = now;
      if (final) {
        watchers.erase(wit);
        last_push.erase(id);
      }
      it = pending_push.erase(it);
    }
  }

  // The key pair (config.key, key_file, DATA_DIR/curve/coordinator.key or a fresh one) and the
  // ZAP handler, which must be bound before the CURVE sockets.
  Status SetUpKeys() {
    if (!config.curve) {
      SC_LOG(Warn) << "CURVE OFF: both endpoints are plaintext and unauthenticated, anyone can "
                      "join as any peer (benchmark configuration)";
      return OkStatus();
    }
    if (!curve::Available())
      return FailedPrecondition("this libzmq has no CURVE support (built without libsodium)");
    if (config.key) {
      key = *config.key;
    } else {
      std::string path = config.key_file;
      if (path.empty() && !config.data_dir.empty())
        path = config.data_dir + "/curve/coordinator.key";
      if (path.empty()) {
        key = curve::Generate();  // memory-only coordinator: a key for this run
      } else {
        auto loaded = curve::LoadOrCreateKeyPair(path, "coordinator");
        if (!loaded.ok()) return loaded.status();
        key = *loaded;
      }
    }
    ZapConfig zc;
    zc.worker_keys = config.worker_keys;
    zc.client_keys = config.client_keys;
    zc.self = key.public_key;
    zap = std::make_unique<ZapHandler>(zc);
    return zap->Start(ctx);
  }

  void UpdateStats() {
    std::lock_guard lock(stats_mu);
    snapshot.frames_in = peer_wire.frames_in + client_wire.frames_in;
    snapshot.frames_out = peer_wire.frames_out + client_wire.frames_out;
    snapshot.bad_frames = peer_wire.bad_frames + client_wire.bad_frames;
    snapshot.send_failures = peer_wire.send_failures + client_wire.send_failures;
    snapshot.peers = scheduler.peers().size();
    snapshot.jobs = scheduler.jobs().size();
    snapshot.leases_in_flight = scheduler.in_flight();
    snapshot.scheduler = scheduler.stats();
    snapshot.disconnects = disconnects;
    snapshot.hellos_wrong_id = hellos_wrong_id;
    snapshot.requests_denied = requests_denied;
    snapshot.quota_refusals = quota_refusals;
    snapshot.peer_connections = peer_guard->stats();
    snapshot.client_connections = client_guard->stats();
    if (zap) {
      snapshot.peer_keys_refused = zap->stats().peers_refused;
      snapshot.client_keys_refused = zap->stats().clients_refused;
    }
  }

  // The scheduler's timers: silent peers, expired leases, straggler backups.
  void OnTick(TimePoint now) {
    TickEffect t = scheduler.Tick(now, WallSeconds());
    if (!t.cancel.empty()) SendCancels(t.cancel, "unit already settled");
    for (PeerHandle p : t.lost_peers) {
      SC_LOG(Warn) << "peer " << p << " lost after " << Seconds(config.scheduler.peer_timeout)
                   << " s of silence; its units were requeued";
      sessions.Forget(p);
    }
    if (!t.expired_leases.empty())
      SC_LOG(Info) << t.expired_leases.size()
                   << " lease(s) passed their deadline and were reissued";
  }

  void Loop() {
    std::vector<zmq::pollitem_t> items = {
        {peers_sock->handle(), 0, ZMQ_POLLIN, 0},
        {clients_sock->handle(), 0, ZMQ_POLLIN, 0},
        {nullptr, wake.fd(), ZMQ_POLLIN, 0},
        {monitor->handle(), 0, ZMQ_POLLIN, 0},
    };
    items.push_back({client_monitor->handle(), 0, ZMQ_POLLIN, 0});  // connection events
    if (zap) items.push_back({zap->socket().handle(), 0, ZMQ_POLLIN, 0});
    const Duration tick_every = std::clamp<Duration>(
        config.scheduler.peer_timeout / 10, std::chrono::milliseconds(10), std::chrono::seconds(1));
    TimePoint next_tick = clock.Now() + tick_every;
    TimePoint next_serve = next_tick;
    while (!stop.load()) {
      TimePoint now = clock.Now();
      Duration wait = next_tick - now;
      if (auto d = scheduler.NextDeadline()) wait = std::min(wait, *d - now);
      if (!pending_push.empty()) wait = std::min<Duration>(wait, config.progress_interval);
      if (auto probe = sessions.NextProbe()) wait = std::min(wait, *probe - now);
      wait = std::min({wait, peer_guard->next_check() - now, client_guard->next_check() - now});
      const auto ms = std::clamp<std::int64_t>(ToMillis(wait) + 1, 0, 1000);
      if (!net::Poll(items, std::chrono::milliseconds(ms))) continue;
      if (items[2].revents & ZMQ_POLLIN) wake.Drain();
      now = clock.Now();
      const TimePoint turn_start = now;  // HTTP side: loop-turn latency
      // Connection events before frames: a frame's connection is known when it is counted.
      OnMonitorEvents(*monitor, *peer_guard, true, now);
      OnMonitorEvents(*client_monitor, *client_guard, false, now);
      if (zap) {  // handshakes first: a new connection waits for nothing else
        if (reload_keys.exchange(false)) {
          if (Status s = zap->Reload(); !s.ok())
            SC_LOG(Error) << "key lists not reloaded, the previous ones stay: " << s.message();
          else
            EndRemovedPeers(now);
        }
        zap->Drain();
      }
      // Drain what is waiting, bounded so neither side starves the other or the timers.
      bool peers_drained = false, clients_drained = false;
      for (int i = 0; i < 4096; ++i) {
        auto f = net::RecvRouter(*peers_sock, &peer_wire);
        if (!f) {
          peers_drained = true;
          break;
        }
        if (const int fd = net::SourceFd(f->payload); fd >= 0)
          peer_guard->OnReceived(fd, f->payload.size());
        OnPeerFrame(*f, now);
      }
      for (int i = 0; i < 1024; ++i) {
        auto f = net::RecvRouter(*clients_sock, &client_wire);
        if (!f) {
          clients_drained = true;
          break;
        }
        if (const int fd = net::SourceFd(f->payload); fd >= 0)
          client_guard->OnReceived(fd, f->payload.size());
        OnClientFrame(*f);
      }
      now = clock.Now();
      if (now >= next_tick || (scheduler.NextDeadline() && *scheduler.NextDeadline() <= now)) {
        OnTick(now);
        next_tick = now + tick_every;
      }
      ProbeSuspects(now);
      CheckConnections(now, peers_drained, clients_drained);
      if (now >= next_serve && sessions.anyone_wanting()) {
        // Idle peers' standing requests are looked at again now and then: backups of stragglers
        // become due with time, not only when new work arrives.
        ServeWaiting(now);
        next_serve = now + tick_every;
      }
      // One commit per loop turn for everything above; only then do acks and replies go out.
      if (scheduler.TakeWorkAdded() && sessions.anyone_wanting()) ServeWaiting(now);
      CommitStore();
      FlushAcks();
      FlushPeers();
      FlushClients();
      PushProgress(now, false);
      UpdateStats();
      if (metrics) {  // HTTP side: turn latency, then a snapshot when someone reads
        const TimePoint end = SteadyClock::Instance().Now();
        metrics->ObserveTurn(Seconds(end - turn_start));
        metrics->SetConnections(peer_guard->stats(), client_guard->stats());
        metrics->AfterTurn(scheduler, peer_wire, client_wire, disconnects, end);
      }
    }
    if (metrics) metrics->MarkReady(false);  // HTTP side
  }
};

Coordinator::Coordinator(CoordinatorConfig config, const tasks::Registry& registry)
    : impl_(std::make_unique<Impl>(std::move(config), registry)) {}
Coordinator::~Coordinator() {
  if (impl_->zap && impl_->config.publish_local_key) {
    for (const std::string& ep : {impl_->peer_ep, impl_->client_ep})
      curve::UnpublishLocalKey(ep, impl_->key.public_key);
  }
}

Status Coordinator::Start() {
  InitCrypto();
  auto roles = ParseRoles(impl_->config.client_roles);
  if (!roles.ok()) return InvalidArgument("--client-roles: " + roles.status().message());
  impl_->open_roles = *roles;
  PackageServiceConfig pc;
  if (!impl_->config.data_dir.empty()) pc.dir = impl_->config.data_dir + "/packages";
  pc.publishers = impl_->config.publishers;
  pc.allow_unsigned = impl_->config.allow_unsigned_packages;
  pc.max_package_bytes = impl_->config.max_package_bytes;
  pc.max_transfers = impl_->config.max_package_transfers;
  auto packages = PackageService::Open(std::move(pc));
  if (!packages.ok()) return packages.status();
  impl_->packages = std::move(*packages);
  if (!impl_->config.data_dir.empty()) {
    auto store = Store::Open(impl_->config.data_dir);
    if (!store.ok()) return store.status();
    impl_->store = std::move(*store);
    const SchedulerConfig& sc = impl_->config.scheduler;
    auto loaded = impl_->store->Load(
        WallSeconds(), Store::Retention{sc.max_jobs_kept, sc.retain_finished_seconds});
    if (!loaded.ok()) return loaded.status();
    impl_->scheduler.RestoreRecords(loaded->records);
    for (const auto& p : loaded->package_owners) {
      impl_->owned_packages.insert(p.package);
      impl_->package_bytes[p.owner] += p.bytes;
    }
    std::size_t unfinished = 0;
    for (const auto& j : loaded->jobs) unfinished += proto::IsFinal(j.state) ? 0 : 1;
    const std::size_t jobs = loaded->jobs.size(), leases = loaded->leases.size();
    impl_->scheduler.SetListener(impl_->store.get());
    SC_RETURN_IF_ERROR(impl_->scheduler.Restore(std::move(loaded->jobs), loaded->leases,
                                                loaded->next_job, impl_->clock.Now()));
    SC_RETURN_IF_ERROR(impl_->store->Commit());
    if (jobs > 0)
      SC_LOG(Info) << "recovered " << jobs << " jobs (" << unfinished << " unfinished) and "
                   << leases << " open leases from " << impl_->config.data_dir;
  }
  SC_RETURN_IF_ERROR(impl_->SetUpKeys());
  net::SocketConfig sc;
  if (impl_->zap) {
    sc.curve_server = true;
    sc.curve_public = impl_->key.public_key.Z85();
    sc.curve_secret = impl_->key.SecretZ85();
    sc.zap_domain = kPeerDomain;
  }
  // No ZMTP heartbeats on the coordinator's side: with thousands of peers, libzmq's per-connection
  // heartbeat timers make its I/O thread quadratic (docs/benchmarks.md). Peers still send ZMTP
  // PINGs (answered automatically) and application Heartbeats; silence and disconnect detection
  // happen in the event loop.
  sc.heartbeat_ivl_ms = 0;
  auto peers = net::BindRouter(impl_->ctx, impl_->config.peer_endpoint, sc);
  if (!peers.ok()) return peers.status();
  net::SocketConfig cc = sc;
  cc.heartbeat_ivl_ms = 0;
  if (impl_->zap) cc.zap_domain = kClientDomain;
  auto clients = net::BindRouter(impl_->ctx, impl_->config.client_endpoint, cc);
  if (!clients.ok()) return clients.status();
  impl_->peers_sock.emplace(std::move(*peers));
  impl_->clients_sock.emplace(std::move(*clients));
  // Connection events of both sockets: the peers' drops (PeerSessions) and the guards' counts.
  constexpr int kEvents = ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED |
                          ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                          ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;
  for (auto [sock, mon, name] :
       {std::tuple{&*impl_->peers_sock, &impl_->monitor, "peer"},
        std::tuple{&*impl_->clients_sock, &impl_->client_monitor, "client"}}) {
    const std::string monitor_ep = "inproc://" + std::string(name) + "-monitor-" + impl_->session;
    if (zmq_socket_monitor(sock->handle(), monitor_ep.c_str(), kEvents) != 0)
      return Internal(std::string("cannot monitor the ") + name + " socket");
    try {
      mon->emplace(impl_->ctx, zmq::socket_type::pair);
      // No high-water mark: a dropped event would leave the guard counting a closed connection
      // (or missing an open one) under a flood of connections.
      (*mon)->set(zmq::sockopt::rcvhwm, 0);
      (*mon)->connect(monitor_ep);
    } catch (const zmq::error_t& e) {
      return Internal(std::string("cannot monitor the ") + name + " socket: " + e.what());
    }
  }
  impl_->peer_guard.emplace(impl_->config.peer_connections);
  impl_->client_guard.emplace(impl_->config.client_connections);
  impl_->peer_ep = net::LastEndpoint(*impl_->peers_sock);
  impl_->client_ep = net::LastEndpoint(*impl_->clients_sock);
  SC_LOG(Info) << "listening for peers on " << impl_->peer_ep << " and clients on "
               << impl_->client_ep;
  if (impl_->zap && impl_->config.publish_local_key) {
    SC_LOG(Info) << "coordinator key " << impl_->key.public_key.Z85();
    for (const std::string& ep : {impl_->peer_ep, impl_->client_ep})
      if (Status s = curve::PublishLocalKey(ep, impl_->key.public_key); !s.ok())
        SC_LOG(Warn) << "cannot publish the coordinator key for local programs: " << s.message();
  }
  if (!impl_->config.http_endpoint.empty()) {  // HTTP side: metrics, health, dashboard
    impl_->metrics = std::make_unique<LoopMetrics>([impl = impl_.get()] { impl->wake.Wake(); });
    net::SocketConfig self;  // the HTTP side's cancels: a client with the coordinator's own key
    if (impl_->zap) {
      self.curve_server_key = impl_->key.public_key.Z85();
      self.curve_public = impl_->key.public_key.Z85();
      self.curve_secret = impl_->key.SecretZ85();
    }
    impl_->http = std::make_unique<CoordinatorHttp>(*impl_->metrics, impl_->config.http_admin_token,
                                                    impl_->client_ep, self);
    SC_RETURN_IF_ERROR(impl_->http->Start(impl_->config.http_endpoint));
    impl_->metrics->MarkReady(true);
  }
  return OkStatus();
}

void Coordinator::Run() { impl_->Loop(); }

void Coordinator::ReloadKeys() {
  impl_->reload_keys.store(true);
  impl_->wake.Wake();
}

curve::PublicKey Coordinator::public_key() const { return impl_->key.public_key; }

void Coordinator::Stop() {
  impl_->stop.store(true);
  impl_->wake.Wake();
}

std::string Coordinator::peer_endpoint() const { return impl_->peer_ep; }
std::string Coordinator::client_endpoint() const { return impl_->client_ep; }
std::string Coordinator::http_url() const {
  return impl_->http ? impl_->http->url() : std::string();
}  // HTTP side

CoordinatorStats Coordinator::stats() const {
  std::lock_guard lock(impl_->stats_mu);
  return impl_->snapshot;
}

}  // namespace sparecycles::coordinator
