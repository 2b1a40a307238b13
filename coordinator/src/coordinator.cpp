#include "sparecycles/coordinator/coordinator.hpp"

#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <unordered_map>

#include "sparecycles/core/hash.hpp"
#include "sparecycles/core/log.hpp"
#include "sparecycles/core/protocol.hpp"
#include "sparecycles/core/transport.hpp"
#include "store.hpp"

namespace sparecycles::coordinator {

using proto::MsgType;

struct Coordinator::Impl {
  Impl(CoordinatorConfig c, const tasks::Registry& r)
      : config(std::move(c)), registry(r), scheduler(config.scheduler, r, InitialLeaseId()) {}

  static LeaseId InitialLeaseId() {
    // Lease ids stay unique across coordinator restarts: start from a random 32-bit epoch.
    std::uint32_t epoch = 0;
    RandomBytes(&epoch, sizeof(epoch));
    return (static_cast<LeaseId>(epoch | 1u) << 24);
  }

  CoordinatorConfig config;
  const tasks::Registry& registry;
  Scheduler scheduler;
  zmq::context_t ctx{1};
  std::optional<zmq::socket_t> peers_sock, clients_sock;
  std::string peer_ep, client_ep;
  net::EventFd wake;
  std::atomic<bool> stop{false};
  net::WireStats peer_wire, client_wire;
  std::string session = RandomId("c-");

  std::unordered_map<std::string, PeerHandle> by_identity;
  std::unordered_map<PeerHandle, std::string> identity_of;
  std::unordered_map<JobId, std::vector<std::string>> watchers;
  std::unordered_map<JobId, TimePoint> last_push;
  std::set<JobId> pending_push;
  std::unordered_map<std::string, std::vector<std::uint64_t>> acks;  // per peer identity
  std::vector<std::pair<std::string, std::string>> client_out;      // replies held until commit
  std::vector<std::pair<std::string, std::string>> peer_out;        // peer messages held until commit
  std::map<PeerHandle, std::uint32_t> wanting;  // standing RequestWork counts not yet filled
  std::unique_ptr<Store> store;
  std::optional<zmq::socket_t> monitor;                     // disconnect events of the peer socket
  std::unordered_map<int, std::string> identity_by_fd;      // connection fd -> peer identity
  std::deque<std::pair<TimePoint, std::string>> suspects;   // disconnected identities to probe
  std::uint64_t bad_logged = 0;

  mutable std::mutex stats_mu;
  CoordinatorStats snapshot;

  // ------------------------------------------------------------------ helpers
  // Peer messages also wait for the turn's commit: a lease is never out before it is stored.
  template <class M>
  void SendPeer(const std::string& identity, const M& msg) {
    peer_out.emplace_back(identity, proto::Encode(msg));
  }
  void FlushPeers() {
    for (auto& [identity, frame] : peer_out) net::SendRouter(*peers_sock, identity, frame, &peer_wire);
    peer_out.clear();
  }
  // Serves peers whose standing RequestWork is not yet filled (called when work appears).
  void ServeWaiting(TimePoint now) {
    for (auto it = wanting.begin(); it != wanting.end();) {
      auto ident = identity_of.find(it->first);
      if (ident == identity_of.end()) {
        it = wanting.erase(it);
        continue;
      }
      proto::Assign a;
      a.leases = scheduler.Lease(it->first, it->second, now);
      it->second -= static_cast<std::uint32_t>(std::min<std::size_t>(a.leases.size(), it->second));
      if (!a.leases.empty()) SendPeer(ident->second, a);
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
    for (auto& [identity, frame] : client_out) net::SendRouter(*clients_sock, identity, frame, &client_wire);
    client_out.clear();
  }
  void CommitStore() {
    if (!store || !store->dirty()) return;
    if (Status s = store->Commit(); !s.ok()) {
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
  void SendCancels(const std::vector<std::pair<PeerHandle, LeaseId>>& cancels, const std::string& why) {
    std::unordered_map<PeerHandle, proto::CancelLeases> per_peer;
    for (auto [peer, lease] : cancels) per_peer[peer].lease_ids.push_back(lease);
    for (auto& [peer, msg] : per_peer) {
      auto it = identity_of.find(peer);
      if (it == identity_of.end()) continue;
      msg.reason = why;
      SendPeer(it->second, msg);
    }
  }

  // ------------------------------------------------------------------ peers
  void OnPeerFrame(net::RouterFrame& f, TimePoint now) {
    std::string_view body;
    auto type = proto::ParseHeader(f.view(), body);
    if (!type.ok()) {
      ++peer_wire.bad_frames;
      BadFrame("peer", type.status());
      if (type.status().code() == StatusCode::kFailedPrecondition)
        SendPeer(f.identity, proto::Reject{proto::RejectCode::kBadVersion, type.status().message()});
      return;
    }
    auto known = by_identity.find(f.identity);
    if (*type == MsgType::kHello) return OnHello(f, body, now);
    if (known == by_identity.end()) {
      SendPeer(f.identity, proto::Reject{proto::RejectCode::kHelloFirst, "say Hello first"});
      return;
    }
    const PeerHandle peer = known->second;
    scheduler.Touch(peer, now);
    auto decode = [&](auto& msg) {
      Status s = proto::Decode(body, msg);
      if (!s.ok()) {
        ++peer_wire.bad_frames;
        BadFrame("peer", s);
      }
      return s.ok();
    };
    switch (*type) {
      case MsgType::kCapacity: {
        proto::Capacity m;
        if (decode(m)) scheduler.SetCapacity(peer, m, now);
        break;
      }
      case MsgType::kRequestWork: {
        proto::RequestWork m;
        if (!decode(m)) break;
        // A RequestWork is a standing request: what cannot be filled now is filled when work
        // appears (a new job, a requeued unit), without the peer asking again.
        proto::Assign a;
        a.leases = scheduler.Lease(peer, m.count, now);
        const auto rest = m.count - static_cast<std::uint32_t>(std::min<std::size_t>(a.leases.size(), m.count));
        if (rest > 0) wanting[peer] = rest;
        else wanting.erase(peer);
        if (!a.leases.empty()) SendPeer(f.identity, a);
        break;
      }
      case MsgType::kResult: {
        proto::ResultMsg m;
        if (!decode(m)) {
          // Acknowledge what we can identify so the peer does not resend a bad result forever.
          if (body.size() >= 8) {
            std::uint64_t lease = 0;
            std::memcpy(&lease, body.data(), 8);
            acks[f.identity].push_back(lease);
          }
          break;
        }
        OnResult(peer, f.identity, m, now, WallSeconds());
        break;
      }
      case MsgType::kResults: {
        // A bad batch is dropped whole: its lease ids cannot be trusted to acknowledge. The
        // worker resends after its next Welcome; the leases' deadlines reissue the units meanwhile.
        proto::Results m;
        if (!decode(m)) break;
        const double wall = WallSeconds();
        for (const auto& r : m.results) OnResult(peer, f.identity, r, now, wall);
        break;
      }
      case MsgType::kHeartbeat: {
        proto::Heartbeat m;
        decode(m);
        break;
      }
      case MsgType::kCheckpoint: {
        proto::Checkpoint m;
        if (decode(m)) scheduler.OnCheckpoint(peer, m, now);  // no reply; a stale one is dropped
        break;
      }
      case MsgType::kBye: {
        proto::Bye m;
        if (!decode(m)) break;
        scheduler.ReturnLeases(peer, m.returned_leases, now);
        SC_LOG(Info) << "peer " << PeerName(peer) << " left (" << m.returned_leases.size()
                     << " leases handed back)";
        scheduler.RemovePeer(peer, now);
        by_identity.erase(f.identity);
        identity_of.erase(peer);
        wanting.erase(peer);
        break;
      }
      default:
        ++peer_wire.bad_frames;
        BadFrame("peer", InvalidArgument(std::string(proto::MsgTypeName(*type)) + " is not a peer message"));
    }
  }

  void OnResult(PeerHandle peer, const std::string& identity, const proto::ResultMsg& m, TimePoint now, double wall) {
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

  void OnHello(net::RouterFrame& f, std::string_view body, TimePoint now) {
    proto::Hello h;
    if (Status s = proto::Decode(body, h); !s.ok()) {
      ++peer_wire.bad_frames;
      BadFrame("peer", s);
      SendPeer(f.identity, proto::Reject{proto::RejectCode::kBadMessage, s.message()});
      return;
    }
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
    for (const auto& t : h.tasks)
      if (registry.Find(t.name, t.version) != nullptr) hello.work_per_second[TaskKey(t.name, t.version)] = t.work_per_second;
    if (const int fd = net::SourceFd(f.payload); fd >= 0) identity_by_fd[fd] = f.identity;
    const PeerHandle peer = scheduler.AddPeer(hello, now);
    if (auto old = identity_of.find(peer); old != identity_of.end() && old->second != f.identity)
      by_identity.erase(old->second);
    by_identity[f.identity] = peer;
    identity_of[peer] = f.identity;
    scheduler.ReconcileLeases(peer, h.running_leases, now);
    SC_LOG(Info) << "peer " << h.peer_id << " joined from " << hello.host << " with " << h.cores
                 << " cores and " << hello.work_per_second.size() << " tasks";
    proto::Welcome w;
    w.session = session;
    w.heartbeat_ms = static_cast<std::uint32_t>(ToMillis(config.heartbeat));
    w.peer_timeout_ms = static_cast<std::uint32_t>(ToMillis(config.scheduler.peer_timeout));
    SendPeer(f.identity, w);
  }

  // A peer's connection dropped (monitor event). After the grace period, ask ZeroMQ whether the
  // identity still has a connection (ROUTER_MANDATORY: EHOSTUNREACH when not); if not, the peer is
  // gone and its units go back to the queue now, not after the silence timeout.
  void OnMonitorEvent(TimePoint now) {
    while (true) {
      zmq::message_t ev, addr;
      try {
        if (!monitor->recv(ev, zmq::recv_flags::dontwait)) return;
        if (ev.more()) (void)monitor->recv(addr, zmq::recv_flags::dontwait);
      } catch (const zmq::error_t&) {
        return;
      }
      if (ev.size() < 6) continue;
      std::uint16_t event;
      std::uint32_t fd;
      std::memcpy(&event, ev.data(), 2);
      std::memcpy(&fd, static_cast<const char*>(ev.data()) + 2, 4);
      if (event != ZMQ_EVENT_DISCONNECTED) continue;
      auto it = identity_by_fd.find(static_cast<int>(fd));
      if (it == identity_by_fd.end()) continue;
      suspects.emplace_back(now + config.disconnect_grace, it->second);
      identity_by_fd.erase(it);
    }
  }

  void ProbeSuspects(TimePoint now) {
    while (!suspects.empty() && suspects.front().first <= now) {
      const std::string identity = suspects.front().second;
      suspects.pop_front();
      auto known = by_identity.find(identity);
      if (known == by_identity.end()) continue;  // already left or replaced by a reconnect
      int err = 0;
      if (net::SendRouter(*peers_sock, identity, proto::Encode(proto::Heartbeat{}), &peer_wire, &err) ||
          err != EHOSTUNREACH)
        continue;  // still connected
      const PeerHandle peer = known->second;
      const Peer* p = scheduler.FindPeer(peer);
      SC_LOG(Warn) << "peer " << PeerName(peer) << " disconnected; its " << (p ? p->leases.size() : 0)
                   << " units were requeued";
      scheduler.RemovePeer(peer, now);
      by_identity.erase(known);
      identity_of.erase(peer);
      wanting.erase(peer);
      ++disconnects;
    }
  }
  std::uint64_t disconnects = 0;

  void FlushAcks() {
    for (auto& [identity, ids] : acks) {
      proto::Ack a;
      for (std::size_t i = 0; i < ids.size(); i += proto::kMaxLeasesPerMessage) {
        a.lease_ids.assign(ids.begin() + static_cast<std::ptrdiff_t>(i),
                           ids.begin() + static_cast<std::ptrdiff_t>(std::min(ids.size(), i + proto::kMaxLeasesPerMessage)));
        SendPeer(identity, a);
      }
    }
    acks.clear();
  }

  // ------------------------------------------------------------------ clients
  void OnClientFrame(net::RouterFrame& f) {
    std::string_view body;
    auto type = proto::ParseHeader(f.view(), body);
    if (!type.ok()) {
      ++client_wire.bad_frames;
      BadFrame("client", type.status());
      SendClient(f.identity, proto::ErrorReply{0, static_cast<std::uint16_t>(type.status().code()),
                                               type.status().message()});
      return;
    }
    auto fail = [&](std::uint64_t rid, const Status& s) {
      SendClient(f.identity, proto::ErrorReply{rid, static_cast<std::uint16_t>(s.code()), s.message()});
    };
    auto decode = [&](auto& msg) {
      Status s = proto::Decode(body, msg);
      if (!s.ok()) {
        ++client_wire.bad_frames;
        BadFrame("client", s);
        // Every request starts with its u64 id: answer it so the caller does not wait in vain.
        std::uint64_t rid = 0;
        if (body.size() >= 8) std::memcpy(&rid, body.data(), 8);
        fail(rid, s);
      }
      return s.ok();
    };
    switch (*type) {
      case MsgType::kSubmit: {
        proto::Submit m;
        if (!decode(m)) break;
        proto::SubmitReply r;
        r.request_id = m.request_id;
        auto id = scheduler.Submit(m.spec, WallSeconds());
        if (!id.ok()) {
          r.code = static_cast<std::uint16_t>(id.status().code());
          r.message = id.status().message();
        } else {
          const Job* job = scheduler.FindJob(*id);
          r.info = scheduler.Info(*job);
          if (m.watch) AddWatcher(*id, f.identity);
          SC_LOG(Info) << "job " << *id << " (" << m.spec.task << ") submitted: " << r.info.units_total
                       << " units";
          const std::string key = TaskKey(job->task->Name(), job->task->Version());
          std::size_t able = 0;
          for (const auto& [h, p] : scheduler.peers()) able += p.hello.work_per_second.contains(key) ? 1 : 0;
          if (able < job->policy.quorum)
            SC_LOG(Warn) << "job " << *id << " needs " << job->policy.quorum << " distinct peers per unit (quorum) but "
                         << able << " can run it now; it waits for more peers (--pool cluster runs each unit once)";
        }
        SendClient(f.identity, r);
        break;
      }
      case MsgType::kStatusRequest:
      case MsgType::kWatch:
      case MsgType::kCancelJob: {
        proto::JobRequest m;
        if (!decode(m)) break;
        if (*type == MsgType::kCancelJob) {
          std::vector<std::pair<PeerHandle, LeaseId>> cancels;
          if (Status s = scheduler.Cancel(m.job_id, cancels); !s.ok()) return fail(m.request_id, s);
          SendCancels(cancels, "job cancelled");
          SC_LOG(Info) << "job " << m.job_id << " cancelled (" << cancels.size() << " running units stopped)";
        }
        const Job* job = scheduler.FindJob(m.job_id);
        if (job == nullptr) return fail(m.request_id, NotFound("no job " + std::to_string(m.job_id)));
        if (*type == MsgType::kWatch && !proto::IsFinal(job->state)) AddWatcher(m.job_id, f.identity);
        proto::JobStatus r;
        r.request_id = m.request_id;
        r.info = scheduler.Info(*job);
        SendClient(f.identity, r);
        break;
      }
      case MsgType::kFetchResult: {
        proto::JobRequest m;
        if (!decode(m)) break;
        const Job* job = scheduler.FindJob(m.job_id);
        if (job == nullptr) return fail(m.request_id, NotFound("no job " + std::to_string(m.job_id)));
        proto::JobResult r;
        r.request_id = m.request_id;
        r.info = scheduler.Info(*job);
        r.failures = scheduler.Failures(*job);
        if (!proto::IsFinal(job->state)) {
          r.code = static_cast<std::uint16_t>(StatusCode::kFailedPrecondition);
          r.message = "job is still " + std::string(proto::JobStateName(job->state));
        } else if (job->state == proto::JobState::kDone && job->result.size() > proto::kMaxResultBytes) {
          r.code = static_cast<std::uint16_t>(StatusCode::kResourceExhausted);
          r.message = "the merged result is " + std::to_string(job->result.size()) + " bytes, above the " +
                      std::to_string(proto::kMaxResultBytes) + "-byte limit of one message";
        } else if (job->state == proto::JobState::kDone) {
          r.result = job->result;
          r.summary = job->task->Summarize(job->result);
          r.json = job->task->ToJson(job->result);
          r.media_type = std::string(job->task->MediaType());
        }
        SendClient(f.identity, r);
        break;
      }
      case MsgType::kListJobs: {
        proto::ListJobs m;
        if (!decode(m)) break;
        proto::JobList r;
        r.request_id = m.request_id;
        for (const auto& [id, job] : scheduler.jobs()) r.jobs.push_back(scheduler.Info(*job));
        SendClient(f.identity, r);
        break;
      }
      case MsgType::kListPeers: {
        proto::ListPeers m;
        if (!decode(m)) break;
        proto::PeerList r;
        r.request_id = m.request_id;
        const TimePoint now = SteadyClock::Instance().Now();
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
        SendClient(f.identity, r);
        break;
      }
      default:
        ++client_wire.bad_frames;
        fail(0, InvalidArgument(std::string(proto::MsgTypeName(*type)) + " is not a client request"));
    }
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
      if (!final && !force_all && lp != last_push.end() && now - lp->second < config.progress_interval) {
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
  }

  void Loop() {
    std::vector<zmq::pollitem_t> items = {
        {peers_sock->handle(), 0, ZMQ_POLLIN, 0},
        {clients_sock->handle(), 0, ZMQ_POLLIN, 0},
        {nullptr, wake.fd(), ZMQ_POLLIN, 0},
        {monitor->handle(), 0, ZMQ_POLLIN, 0},
    };
    const Duration tick_every = std::clamp<Duration>(config.scheduler.peer_timeout / 10,
                                                     std::chrono::milliseconds(10), std::chrono::seconds(1));
    TimePoint next_tick = SteadyClock::Instance().Now() + tick_every;
    TimePoint next_serve = next_tick;
    while (!stop.load()) {
      TimePoint now = SteadyClock::Instance().Now();
      Duration wait = next_tick - now;
      if (auto d = scheduler.NextDeadline()) wait = std::min(wait, *d - now);
      if (!pending_push.empty()) wait = std::min<Duration>(wait, config.progress_interval);
      if (!suspects.empty()) wait = std::min(wait, suspects.front().first - now);
      const auto ms = std::clamp<std::int64_t>(ToMillis(wait) + 1, 0, 1000);
      if (!net::Poll(items, std::chrono::milliseconds(ms))) continue;
      if (items[2].revents & ZMQ_POLLIN) wake.Drain();
      now = SteadyClock::Instance().Now();
      if (items[3].revents & ZMQ_POLLIN) OnMonitorEvent(now);
      // Drain what is waiting, bounded so neither side starves the other or the timers.
      for (int i = 0; i < 4096; ++i) {
        auto f = net::RecvRouter(*peers_sock, &peer_wire);
        if (!f) break;
        OnPeerFrame(*f, now);
      }
      for (int i = 0; i < 1024; ++i) {
        auto f = net::RecvRouter(*clients_sock, &client_wire);
        if (!f) break;
        OnClientFrame(*f);
      }
      now = SteadyClock::Instance().Now();
      if (now >= next_tick || (scheduler.NextDeadline() && *scheduler.NextDeadline() <= now)) {
        TickEffect t = scheduler.Tick(now, WallSeconds());
        if (!t.cancel.empty()) SendCancels(t.cancel, "unit already settled");
        for (PeerHandle p : t.lost_peers) {
          SC_LOG(Warn) << "peer " << p << " lost after " << Seconds(config.scheduler.peer_timeout)
                       << " s of silence; its units were requeued";
          if (auto it = identity_of.find(p); it != identity_of.end()) {
            by_identity.erase(it->second);
            identity_of.erase(it);
          }
          wanting.erase(p);
        }
        if (!t.expired_leases.empty())
          SC_LOG(Info) << t.expired_leases.size() << " lease(s) passed their deadline and were reissued";
        next_tick = now + tick_every;
      }
      ProbeSuspects(now);
      if (now >= next_serve && !wanting.empty()) {
        // Idle peers' standing requests are looked at again now and then: backups of stragglers
        // become due with time, not only when new work arrives.
        ServeWaiting(now);
        next_serve = now + tick_every;
      }
      // One commit per loop turn for everything above; only then do acks and replies go out.
      if (scheduler.TakeWorkAdded() && !wanting.empty()) ServeWaiting(now);
      CommitStore();
      FlushAcks();
      FlushPeers();
      FlushClients();
      PushProgress(now, false);
      UpdateStats();
    }
  }
};

Coordinator::Coordinator(CoordinatorConfig config, const tasks::Registry& registry)
    : impl_(std::make_unique<Impl>(std::move(config), registry)) {}
Coordinator::~Coordinator() = default;

Status Coordinator::Start() {
  InitCrypto();
  if (!impl_->config.data_dir.empty()) {
    auto store = Store::Open(impl_->config.data_dir);
    if (!store.ok()) return store.status();
    impl_->store = std::move(*store);
    auto loaded = impl_->store->Load(WallSeconds());
    if (!loaded.ok()) return loaded.status();
    std::size_t unfinished = 0;
    for (const auto& j : loaded->jobs) unfinished += proto::IsFinal(j.state) ? 0 : 1;
    const std::size_t jobs = loaded->jobs.size(), leases = loaded->leases.size();
    impl_->scheduler.SetListener(impl_->store.get());
    SC_RETURN_IF_ERROR(impl_->scheduler.Restore(std::move(loaded->jobs), std::move(loaded->leases),
                                                loaded->next_job, SteadyClock::Instance().Now()));
    SC_RETURN_IF_ERROR(impl_->store->Commit());
    if (jobs > 0)
      SC_LOG(Info) << "recovered " << jobs << " jobs (" << unfinished << " unfinished) and " << leases
                   << " open leases from " << impl_->config.data_dir;
  }
  net::SocketConfig sc;
  // No ZMTP heartbeats on the coordinator's side: with thousands of peers, libzmq's per-connection
  // heartbeat timers make its I/O thread quadratic (docs/benchmarks.md). Peers still send ZMTP
  // PINGs (answered automatically) and application Heartbeats; silence and disconnect detection
  // happen in the event loop.
  sc.heartbeat_ivl_ms = 0;
  auto peers = net::BindRouter(impl_->ctx, impl_->config.peer_endpoint, sc);
  if (!peers.ok()) return peers.status();
  net::SocketConfig cc = sc;
  cc.heartbeat_ivl_ms = 0;
  auto clients = net::BindRouter(impl_->ctx, impl_->config.client_endpoint, cc);
  if (!clients.ok()) return clients.status();
  impl_->peers_sock.emplace(std::move(*peers));
  impl_->clients_sock.emplace(std::move(*clients));
  const std::string monitor_ep = "inproc://peer-monitor-" + impl_->session;
  if (zmq_socket_monitor(impl_->peers_sock->handle(), monitor_ep.c_str(), ZMQ_EVENT_DISCONNECTED) != 0)
    return Internal("cannot monitor the peer socket");
  try {
    impl_->monitor.emplace(impl_->ctx, zmq::socket_type::pair);
    impl_->monitor->connect(monitor_ep);
  } catch (const zmq::error_t& e) {
    return Internal(std::string("cannot monitor the peer socket: ") + e.what());
  }
  impl_->peer_ep = net::LastEndpoint(*impl_->peers_sock);
  impl_->client_ep = net::LastEndpoint(*impl_->clients_sock);
  SC_LOG(Info) << "listening for peers on " << impl_->peer_ep << " and clients on " << impl_->client_ep;
  return OkStatus();
}

void Coordinator::Run() { impl_->Loop(); }

void Coordinator::Stop() {
  impl_->stop.store(true);
  impl_->wake.Wake();
}

std::string Coordinator::peer_endpoint() const { return impl_->peer_ep; }
std::string Coordinator::client_endpoint() const { return impl_->client_ep; }

CoordinatorStats Coordinator::stats() const {
  std::lock_guard lock(impl_->stats_mu);
  return impl_->snapshot;
}

}  // namespace sparecycles::coordinator
