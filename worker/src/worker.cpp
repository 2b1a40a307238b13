#include "sparecycles/worker/worker.hpp"

#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include "checkpoint_store.hpp"
#include "executor_composite.hpp"
#include "executor_in_process.hpp"
#include "executor_process.hpp"
#include "package_cache.hpp"
#include "policy_driver.hpp"
#include "sparecycles/core/daemon.hpp"
#include "sparecycles/core/hash.hpp"
#include "sparecycles/core/log.hpp"
#include "sparecycles/core/protocol.hpp"
#include "sparecycles/core/transport.hpp"
#include "sparecycles/package/job.hpp"
#include "spool.hpp"
#include "status_writer.hpp"

namespace sparecycles::worker {

using proto::MsgType;

unsigned HardwareCores() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : n;
}

std::uint64_t TotalMemoryBytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  std::uint64_t kb = 0;
  std::string unit;
  while (in >> key >> kb >> unit)
    if (key == "MemTotal:") return kb * 1024;
  return 0;
}

namespace {

// nice 19 for every thread of the process that exists now; threads started later inherit it.
void LowerProcessPriority() {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    const int tid = std::atoi(e.path().filename().c_str());
    if (tid > 0) (void)setpriority(PRIO_PROCESS, static_cast<id_t>(tid), 19);
  }
  (void)setpriority(PRIO_PROCESS, 0, 19);
}

}  // namespace

// The coordinator session: connects, says Hello, keeps the standing work request, capacity and
// heartbeats current, hands leases to the executor and sends its results until acknowledged.
// The executor runs the units, the policy driver (with owner preferences) says how many cores may
// be used, the status writer shows it all to the owner.
struct Worker::Impl {
  Impl(WorkerConfig c, const tasks::Registry& r)
      : config(std::move(c)),
        clock(*config.clock),
        registry(r),
        store(config.state_dir.empty() ? "" : config.state_dir + "/checkpoints") {}

  WorkerConfig config;
  const Clock& clock;
  const tasks::Registry& registry;
  std::string peer_id;
  curve::KeyPair key;                // this peer's key; peer_id is its key's
  curve::PublicKey coordinator_key;  // the pinned key the coordinator must prove it holds
  proto::Hello hello;
  zmq::context_t ctx{1};
  std::optional<zmq::socket_t> sock;
  net::WireStats wire;
  net::EventFd wake;
  std::atomic<bool> stop{false};
  unsigned slots = 1;  // the most cores this worker uses (the executor's size)
  CheckpointStore store;
  std::optional<PolicyDriver> driver;  // with owner preferences
  Decision fixed_decision;             // without: all slots, always running
  std::optional<StatusWriter> status_writer;
  std::unique_ptr<Executor> executor;  // after `store` and `wake`, which its units use

  std::deque<proto::Lease> waiting;        // prefetched, not started
  std::unique_ptr<PackageCache> packages;  // null = this worker runs no task packages
  std::string packages_off;  // why packages are refused up front (the sandbox probe failed)
  std::map<Hash256, std::vector<proto::Lease>> awaiting;  // leases of packages being fetched
  double unit_seconds_avg = -1;                           // moving average of units' wall time
  // Units shorter than this run back to back: the loop thread queues several per slot in the
  // executor, so its threads never wait for the loop thread between two of them, and their
  // CPU time is not measured one by one (two getrusage calls would cost more than the unit).
  static constexpr double kShortUnitSeconds = 0.002;
  bool short_units = false;  // unit_seconds_avg < kShortUnitSeconds

  const Decision& decision() const { return driver ? driver->decision() : fixed_decision; }

  // Units held beyond the slots: at least config.prefetch; more when units are short, so that
  // about 20 ms of work per slot is always at hand and a round trip to the coordinator never
  // leaves a core idle (trivial units would otherwise be bound by the round-trip time).
  std::size_t EffectivePrefetch() const {
    if (unit_seconds_avg < 0) return config.prefetch;
    const double want = 0.02 / std::max(unit_seconds_avg, 1e-6) * std::max(1u, slots);
    return std::clamp<std::size_t>(static_cast<std::size_t>(want), config.prefetch, 64);
  }
  std::unordered_map<std::uint64_t, proto::ResultMsg> unacked;  // sent, not yet acknowledged
  ResultSpool spool{config.state_dir.empty() ? "" : config.state_dir + "/spool"};

  bool welcomed = false;
  TimePoint hello_sent{}, last_heartbeat{}, last_status{}, last_capacity_sent{};
  Duration heartbeat = std::chrono::seconds(5);
  std::uint32_t last_request = UINT32_MAX;
  proto::Capacity last_capacity;
  bool capacity_sent = false;

  mutable std::mutex stats_mu;
  WorkerStats stats;

  template <class M>
  void Send(const M& msg) {
    net::SendDealer(*sock, proto::Encode(msg), &wire);
  }

  // Results go in as few frames as the limits allow: a lone result as Result, several as Results
  // (at most kMaxLeasesPerMessage and about kResultsBatchBytes of payload per frame).
  void SendResults(const std::vector<const proto::ResultMsg*>& results) {
    proto::Results batch;
    std::size_t bytes = 0;
    auto flush = [&] {
      if (batch.results.size() == 1)
        Send(batch.results.front());
      else if (!batch.results.empty())
        Send(batch);
      batch.results.clear();
      bytes = 0;
    };
    for (const proto::ResultMsg* r : results) {
      const std::size_t size = r->payload.size() + r->error.size() + r->hash.size() + 64;
      if (!batch.results.empty() && (batch.results.size() >= proto::kMaxLeasesPerMessage ||
                                     bytes + size > proto::kResultsBatchBytes))
        flush();
      batch.results.push_back(*r);
      bytes += size;
    }
    flush();
  }

  void SendHello(TimePoint now) {
    // Everything this peer still holds: running, prefetched, and finished but not acknowledged.
    hello.running_leases.clear();
    for (const auto& u : executor->Units()) hello.running_leases.push_back(u.lease_id);
    for (const auto& l : waiting) hello.running_leases.push_back(l.lease_id);
    for (const auto& [pkg, leases] : awaiting)
      for (const auto& l : leases) hello.running_leases.push_back(l.lease_id);
    for (const auto& [id, r] : unacked) hello.running_leases.push_back(id);
    if (hello.running_leases.size() > proto::kMaxLeasesPerMessage)
      hello.running_leases.resize(proto::kMaxLeasesPerMessage);
    Send(hello);
    hello_sent = now;
    welcomed = false;
    std::lock_guard lock(stats_mu);
    ++stats.hellos_sent;
  }

  // ------------------------------------------------------------------ from the coordinator
  template <class M>
  bool Decode(MsgType type, std::string_view body, M& msg) {
    Status s = proto::Decode(body, msg);
    if (!s.ok()) {
      ++wire.bad_frames;
      SC_LOG(Warn) << "dropped a bad " << proto::MsgTypeName(type) << ": " << s.ToString();
    }
    return s.ok();
  }

  void OnFrame(zmq::message_t& m, TimePoint now) {
    std::string_view body;
    auto type = proto::ParseHeader({static_cast<const char*>(m.data()), m.size()}, body);
    if (!type.ok()) {
      ++wire.bad_frames;
      SC_LOG(Warn) << "dropped a bad frame from the coordinator: " << type.status().ToString();
      return;
    }
    switch (*type) {
      case MsgType::kWelcome:
        return OnWelcome(body);
      case MsgType::kReject:
        return OnReject(body, now);
      case MsgType::kAssign:
        return OnAssign(body);
      case MsgType::kHeartbeat:
        return;  // the coordinator checking that we are still connected
      case MsgType::kAck:
        return OnAck(body);
      case MsgType::kCancelLeases:
        return OnCancelLeases(body);
      case MsgType::kPackageChunk:
        return OnPackageChunk(body, now);
      default:
        ++wire.bad_frames;
        SC_LOG(Warn) << "unexpected " << proto::MsgTypeName(*type) << " from the coordinator";
    }
  }

  void OnWelcome(std::string_view body) {
    proto::Welcome w;
    if (!Decode(MsgType::kWelcome, body, w)) return;
    const bool first = !welcomed;
    welcomed = true;
    no_welcome_since = TimePoint{};
    heartbeat = std::chrono::milliseconds(std::clamp<std::uint32_t>(w.heartbeat_ms, 50, 600000));
    if (first) SC_LOG(Info) << "connected to coordinator session " << w.session;
    if (packages) {
      packages->OnPublishers(w.publishers);
      packages->ResendAll();  // a fetch cut by a reconnect asks again
    }
    // Everything not yet acknowledged goes again: the coordinator may have restarted.
    std::vector<const proto::ResultMsg*> again;
    for (const auto& [id, r] : unacked) again.push_back(&r);
    SendResults(again);
    capacity_sent = false;
    last_request = UINT32_MAX;
  }

  void OnReject(std::string_view body, TimePoint now) {
    proto::Reject r;
    if (!Decode(MsgType::kReject, body, r)) return;
    if (r.code == proto::RejectCode::kHelloFirst) {
      if (now - hello_sent > std::chrono::milliseconds(200)) SendHello(now);
    } else {
      SC_LOG(Error) << "coordinator rejected us: " << r.message;
      if (r.code == proto::RejectCode::kBadVersion) stop.store(true);
    }
  }

  void OnAssign(std::string_view body) {
    proto::Assign a;
    if (!Decode(MsgType::kAssign, body, a)) return;
    for (auto& l : a.leases) waiting.push_back(std::move(l));
    last_request = UINT32_MAX;  // the standing request changed
  }

  void OnAck(std::string_view body) {
    proto::Ack a;
    if (!Decode(MsgType::kAck, body, a)) return;
    for (auto id : a.lease_ids) {
      unacked.erase(id);
      spool.Remove(id);
      SC_LOG(Debug) << "acked lease " << id;
    }
  }

  void OnCancelLeases(std::string_view body) {
    proto::CancelLeases c;
    if (!Decode(MsgType::kCancelLeases, body, c)) return;
    for (auto id : c.lease_ids) {
      auto it = std::find_if(waiting.begin(), waiting.end(),
                             [&](const auto& l) { return l.lease_id == id; });
      if (it != waiting.end()) waiting.erase(it);
      for (auto& [pkg, leases] : awaiting)
        std::erase_if(leases, [&](const auto& l) { return l.lease_id == id; });
      executor->Cancel(id, c.reason, /*hand_back=*/false);
    }
  }

  // ------------------------------------------------------------------ task packages
  // The executor binary: --executor, $SPARECYCLES_EXECUTOR, beside this program or installed,
  // and last the build tree's (tests and the SDK's embedded worker run from there).
  std::string ExecutorPath() const {
    if (!config.executor_path.empty()) return config.executor_path;
    if (const char* env = std::getenv("SPARECYCLES_EXECUTOR"); env && *env) return env;
    std::string path = DefaultExecutorPath();
#ifdef SPARECYCLES_EXECUTOR_BUILD
    if (::access(path.c_str(), X_OK) != 0) path = SPARECYCLES_EXECUTOR_BUILD;
#endif
    return path;
  }

  Status OpenPackages() {
    if (const std::string exe = ExecutorPath(); ::access(exe.c_str(), X_OK) != 0) {
      SC_LOG(Warn) << "no executor at " << exe
                   << " (install sparecycles-worker fully, or give --executor): task packages "
                      "are off";
      return OkStatus();
    }
    PackageCacheConfig pc;
    if (!config.state_dir.empty()) {
      pc.dir = config.state_dir + "/packages";
      pc.pin_file = config.state_dir + "/publishers.pinned";
    }
    pc.capacity_bytes = config.package_cache_bytes;
    pc.accept_native = config.accept_native;
    pc.accept_command = config.accept_command;
    pc.allow_unsigned = config.allow_unsigned;
    pc.trust = config.trust;
    pc.trust_only = config.trust_only;
    auto cache = PackageCache::Open(std::move(pc));
    if (!cache.ok()) return cache.status();
    packages = std::move(*cache);
    return OkStatus();
  }

  void OnPackageChunk(std::string_view body, TimePoint now) {
    proto::PackageChunk c;
    if (!packages || !Decode(MsgType::kPackageChunk, body, c)) return;
    const auto changed = packages->OnChunk(c, now);
    if (!changed) return;
    // Ready or refused: its leases go back to the front of the queue, where StartUnits decides.
    auto it = awaiting.find(*changed);
    if (it == awaiting.end()) return;
    for (auto l = it->second.rbegin(); l != it->second.rend(); ++l)
      waiting.push_front(std::move(*l));
    awaiting.erase(it);
  }

  void RequestPackages(TimePoint now) {
    if (!packages || !welcomed) return;
    for (const auto& get : packages->DueRequests(now)) Send(get);
  }

  // Where a lease of a task package goes: to the executor with its package, to the leases waiting
  // for a fetch, or back to the coordinator with the reason it is refused. True = start it now.
  bool RoutePackageLease(UnitStart& u, const Hash256& id, TimePoint now,
                         std::map<Hash256, std::vector<std::uint64_t>>& refused) {
    const PackageCache::State state =
        packages ? packages->Want(id, now) : PackageCache::State::kRefused;
    if (state == PackageCache::State::kReady) {
      u.package = packages->Ready(id);
      return true;
    }
    if (state == PackageCache::State::kFetching)
      awaiting[id].push_back(std::move(u.lease));
    else
      refused[id].push_back(u.lease.lease_id);
    return false;
  }

  void SendRefusals(const std::map<Hash256, std::vector<std::uint64_t>>& refused) {
    for (const auto& [id, leases] : refused) {
      proto::PackageRefused r;
      r.package_id = package::PackageIdBytes(id);
      r.lease_ids = leases;
      r.reason = packages ? packages->Refusal(id).value_or("refused")
                 : !packages_off.empty()
                     ? "this worker runs no task packages: " + packages_off
                     : "this worker does not run task packages (--packages off)";
      r.reason.resize(std::min(r.reason.size(), proto::kMaxTextBytes));
      Send(r);
    }
  }

  // ------------------------------------------------------------------ units
  // Moves prefetched leases into the executor: one per free slot, and for short units a queue of
  // up to the prefetch depth per slot, which the executor works through without the loop.
  void StartUnits(TimePoint now) {
    const std::size_t ahead = short_units ? EffectivePrefetch() : 0;
    std::map<Hash256, std::vector<std::uint64_t>> refused;
    while (!waiting.empty() && executor->running() < decision().slots + ahead) {
      UnitStart u{std::move(waiting.front()), std::nullopt, -1, nullptr};
      waiting.pop_front();
      if (auto pkg = package::ParsePackageTaskName(u.lease.task))
        if (!RoutePackageLease(u, *pkg, now, refused)) continue;
      proto::Lease& lease = u.lease;
      // A local checkpoint is this worker's own and at least as new as what it uploaded; one that
      // came with the lease was uploaded by a peer that held the unit before.
      if (auto local = store.Load(lease)) {
        u.resume = std::move(local->state);
        u.resumed_from = local->fraction;
        SC_LOG(Info) << "unit " << lease.job_id << "/" << lease.unit_index
                     << " resumes from a local checkpoint at "
                     << static_cast<int>(u.resumed_from * 100) << "%";
      } else if (!lease.checkpoint.empty()) {
        u.resume = std::move(lease.checkpoint);
        SC_LOG(Info) << "unit " << lease.job_id << "/" << lease.unit_index
                     << " resumes from a checkpoint uploaded to the coordinator ("
                     << u.resume->size() << " bytes)";
      }
      lease.checkpoint.clear();
      lease.checkpoint.shrink_to_fit();
      if (u.resume) {
        std::lock_guard lock(stats_mu);
        ++stats.units_resumed;
      }
      executor->Start(std::move(u));
    }
    SendRefusals(refused);
  }

  void SendCheckpoint(std::optional<proto::Checkpoint>& cp, std::uint64_t saved) {
    if (cp && welcomed) Send(*cp);
    std::lock_guard lock(stats_mu);
    stats.checkpoints_saved += saved;
    if (cp && welcomed) ++stats.checkpoints_uploaded;
  }

  void UploadCheckpoints() {
    std::uint64_t saved = 0, uploaded = 0;
    for (const auto& cp : executor->TakeCheckpoints(&saved)) {
      if (!welcomed) continue;
      Send(cp);
      ++uploaded;
    }
    std::lock_guard lock(stats_mu);
    stats.checkpoints_saved += saved;
    stats.checkpoints_uploaded += uploaded;
  }

  void CountFinished(const FinishedUnit& f) {
    std::lock_guard lock(stats_mu);
    const auto outcome = f.result.outcome;
    if (outcome == proto::UnitOutcome::kOk)
      ++stats.units_done;
    else if (outcome == proto::UnitOutcome::kFailed)
      ++stats.units_failed;
    else if (f.handed_back)
      ++stats.units_returned;
    else
      ++stats.units_cancelled;
    stats.cpu_seconds += f.result.cpu_seconds;
  }

  void DrainCompletions() {
    std::vector<const proto::ResultMsg*> outgoing;  // this turn's results (point into `unacked`)
    for (FinishedUnit& f : executor->TakeFinished()) {
      proto::ResultMsg& r = f.result;
      SendCheckpoint(
          f.checkpoint,
          f.checkpoints_saved);  // before the Result, so the coordinator has it when it requeues
      if (r.outcome == proto::UnitOutcome::kOk && f.resumed) {
        if (status_writer) status_writer->AddResumedWork(f.resumed_from);
        SC_LOG(Info) << "unit " << r.job_id << "/" << r.unit_index << " done after resuming at "
                     << static_cast<int>(f.resumed_from * 100)
                     << "% (that much was not recomputed)";
      }
      // Finished, failed, or settled elsewhere: the local checkpoint has served. A unit handed
      // back keeps it, in case it comes back here.
      if (!f.handed_back && (r.outcome != proto::UnitOutcome::kCancelled || f.stopped_by_us))
        store.Remove(f.lease);
      CountFinished(f);
      if (r.outcome == proto::UnitOutcome::kOk) {
        // Follows shorter units at once (a new job of tiny units runs back to back from its first
        // batch), longer ones gradually. Over-queueing cannot follow: the coordinator prefetches
        // only units it expects to be short.
        unit_seconds_avg = unit_seconds_avg < 0 || r.wall_seconds < unit_seconds_avg
                               ? r.wall_seconds
                               : 0.9 * unit_seconds_avg + 0.1 * r.wall_seconds;
        short_units = unit_seconds_avg < kShortUnitSeconds;
        executor->SetShortUnits(short_units);
      }
      if (r.outcome == proto::UnitOutcome::kFailed)
        SC_LOG(Warn) << "unit " << r.job_id << "/" << r.unit_index << " failed: " << r.error;
      if (f.stopped_by_us && r.outcome == proto::UnitOutcome::kCancelled)
        continue;  // coordinator knows
      // On disk before it leaves: a crash between here and the Ack must not lose the work.
      if (r.outcome != proto::UnitOutcome::kCancelled) spool.Put(r);
      SC_LOG(Debug) << "finished unit " << r.job_id << "/" << r.unit_index << " lease "
                    << r.lease_id;
      const std::uint64_t id = r.lease_id;
      outgoing.push_back(&(unacked[id] = std::move(r)));
    }
    SendResults(outgoing);
  }

  // Hands every unit back to the coordinator (a pause went on too long): running units stop at
  // their next Progress() call and report kCancelled; prefetched ones go back at once.
  void HandBack(TimePoint now) {
    const auto paused_since = driver ? driver->paused_since() : std::nullopt;
    const double paused_for = paused_since ? Seconds(now - *paused_since) : 0;
    const std::string why =
        "handed back after a pause of " + std::to_string(static_cast<int>(paused_for)) + " s";
    SC_LOG(Info) << why << ": " << executor->running() << " running and " << waiting.size()
                 << " prefetched units";
    executor->CancelAll(why, /*hand_back=*/true);
    std::vector<const proto::ResultMsg*> outgoing;
    for (const auto& l : waiting) {
      proto::ResultMsg r;
      r.lease_id = l.lease_id;
      r.job_id = l.job_id;
      r.unit_index = l.unit_index;
      r.outcome = proto::UnitOutcome::kCancelled;
      r.error = why + " (not started)";
      const std::uint64_t id = r.lease_id;
      outgoing.push_back(&(unacked[id] = std::move(r)));
      std::lock_guard lock(stats_mu);
      ++stats.units_returned;
    }
    SendResults(outgoing);
    waiting.clear();
    ReturnAwaiting();
    last_request = UINT32_MAX;
  }

  // Leases waiting for a package fetch go back as not started.
  void ReturnAwaiting() {
    std::vector<const proto::ResultMsg*> outgoing;
    for (auto& [pkg, leases] : awaiting) {
      for (const auto& l : leases) {
        proto::ResultMsg r;
        r.lease_id = l.lease_id;
        r.job_id = l.job_id;
        r.unit_index = l.unit_index;
        r.outcome = proto::UnitOutcome::kCancelled;
        r.error = "handed back before its package arrived";
        const std::uint64_t id = r.lease_id;
        outgoing.push_back(&(unacked[id] = std::move(r)));
      }
    }
    awaiting.clear();
    SendResults(outgoing);
  }

  // ------------------------------------------------------------------ owner's preferences
  void Sample(TimePoint now, bool force) {
    if (!driver) return;
    const PolicyDriver::Step step = driver->Sample(now, force);
    if (step.changed) {
      executor->SetSlots(driver->decision().slots);
      WriteStatus(now);
    }
    if (step.hand_back_due && (executor->running() > 0 || !waiting.empty())) {
      HandBack(now);
      driver->MarkHandedBack();
    }
  }

  std::uint64_t MemoryForUnits() const {
    return driver ? driver->MemoryForUnits(hello.memory_bytes) : hello.memory_bytes;
  }

  // ------------------------------------------------------------------ to the coordinator
  void Announce(TimePoint now) {
    if (!welcomed) return;
    UploadCheckpoints();
    const Decision& d = decision();
    const std::size_t running = executor->running();
    proto::Capacity cap;
    cap.slots = d.slots;
    cap.idle_slots = d.slots > running ? static_cast<std::uint32_t>(d.slots - running) : 0;
    cap.memory_available = MemoryForUnits();
    cap.state = d.state;
    cap.reason = d.reason.substr(0, proto::kMaxTextBytes);
    // Slots and state go out at once; a reason whose figures changed at most every 10 s.
    const bool changed = cap.slots != last_capacity.slots ||
                         cap.idle_slots != last_capacity.idle_slots ||
                         cap.state != last_capacity.state;
    const bool reason_changed =
        cap.reason != last_capacity.reason && now - last_capacity_sent >= std::chrono::seconds(10);
    if (!capacity_sent || changed || reason_changed) {
      Send(cap);
      last_capacity = cap;
      last_capacity_sent = now;
      capacity_sent = true;
    }
    std::size_t fetching = 0;
    for (const auto& [pkg, leases] : awaiting) fetching += leases.size();
    const std::size_t held = running + waiting.size() + fetching;
    const std::size_t cap_units =
        d.state == proto::PeerState::kPaused ? 0 : d.slots + EffectivePrefetch();
    const auto want = static_cast<std::uint32_t>(cap_units > held ? cap_units - held : 0);
    if (want != last_request) {
      Send(proto::RequestWork{want});
      last_request = want;
    }
    if (now - last_heartbeat >= heartbeat) {
      proto::Heartbeat hb;
      for (const auto& u : executor->Units()) hb.running.push_back({u.lease_id, u.progress});
      Send(hb);
      last_heartbeat = now;
    }
  }

  void UpdateStats() {
    std::lock_guard lock(stats_mu);
    stats.bad_frames = wire.bad_frames;
    stats.results_unacked = unacked.size();
    stats.running = executor->running();
    stats.connected = welcomed;
    stats.slots = decision().slots;
    stats.state = decision().state;
    stats.reason = decision().reason;
  }

  void WriteStatus(TimePoint now) {
    last_status = now;
    if (!status_writer) return;
    const Decision& d = decision();
    StatusSnapshot s;
    s.coordinator = config.coordinator;
    s.connected = welcomed;
    s.machine_cores =
        driver && driver->readings().cores > 0 ? driver->readings().cores : HardwareCores();
    s.max_slots = slots;
    s.slots = d.slots;
    s.state = std::string(StateName(d.state));
    s.reason = d.reason;
    s.other_cpu_percent = driver ? driver->readings().other_cpu * 100 : 0;
    s.memory_available = MemoryForUnits();
    std::size_t queued = 0;  // in the executor's queue, not started
    for (const UnitView& v : executor->Units()) {
      if (!v.started) {
        ++queued;
        continue;
      }
      s.units.push_back(
          UnitStatus{v.job_id, v.unit_index, v.task, v.progress, v.resumed_from, v.waiting});
    }
    std::sort(s.units.begin(), s.units.end(), [](const UnitStatus& a, const UnitStatus& b) {
      return std::tie(a.job, a.unit) < std::tie(b.job, b.unit);
    });
    s.prefetched = waiting.size() + queued;
    if (packages)
      for (const auto& [id, why] : packages->refusals())
        s.refused_packages.emplace_back(ToHex(id), why);
    s.packages_off = packages_off;
    {
      std::lock_guard lock(stats_mu);
      s.units_done = stats.units_done;
      s.units_failed = stats.units_failed;
      s.units_returned = stats.units_returned;
      s.units_resumed = stats.units_resumed;
      s.cpu_seconds = stats.cpu_seconds;
    }
    status_writer->Write(std::move(s));
  }

  // ------------------------------------------------------------------ the loop
  void ReadFrames(TimePoint now) {
    for (int i = 0; i < 1024; ++i) {
      auto m = net::RecvDealer(*sock, &wire);
      if (!m) break;
      OnFrame(*m, now);
    }
  }

  // No Welcome for a while. With CURVE a coordinator that does not hold the pinned key cannot
  // even read our handshake, so this is what an impostor (or a re-keyed coordinator) looks like.
  TimePoint no_welcome_since{}, no_welcome_warned{};
  void WarnNoWelcome(TimePoint now) {
    if (no_welcome_since == TimePoint{}) no_welcome_since = now;
    if (!config.curve || now - no_welcome_since < std::chrono::seconds(5) ||
        now - no_welcome_warned < std::chrono::seconds(30))
      return;
    no_welcome_warned = now;
    SC_LOG(Warn) << "no answer from the coordinator at " << config.coordinator << " for "
                 << static_cast<int>(Seconds(now - no_welcome_since))
                 << " s: it is down, or it does not hold the pinned coordinator key "
                 << coordinator_key.Z85()
                 << " (an impostor, or its key changed; then delete <state-dir>/coordinator.pub)";
  }

  // A handshake the coordinator's ZAP handler refused (a key not yet listed) ends that
  // connection for good in libzmq, with no reconnect: after a while without Welcome, connect
  // anew, so a key listed later (SIGHUP) gets in without restarting the worker.
  net::SocketConfig sock_config;
  TimePoint last_reconnect{};
  bool ReconnectIfRefused(TimePoint now) {
    if (!config.curve || no_welcome_since == TimePoint{} ||
        now - no_welcome_since < std::chrono::seconds(2) ||
        now - last_reconnect < std::chrono::seconds(2))
      return false;
    auto fresh = net::ConnectDealer(ctx, config.coordinator, sock_config);
    if (!fresh.ok()) return false;
    last_reconnect = now;
    sock.emplace(std::move(*fresh));
    return true;
  }

  void Loop() {
    std::vector<zmq::pollitem_t> items = {{sock->handle(), 0, ZMQ_POLLIN, 0},
                                          {nullptr, wake.fd(), ZMQ_POLLIN, 0}};
    SendHello(clock.Now());
    while (!stop.load()) {
      net::Poll(items, std::chrono::milliseconds(50));
      if (items[1].revents & ZMQ_POLLIN) wake.Drain();
      const TimePoint now = clock.Now();
      ReadFrames(now);
      Sample(now, /*force=*/config.control &&
                      config.control->TakeChanged());  // volunteer page: act at once
      DrainCompletions();
      StartUnits(now);
      RequestPackages(now);
      if (!welcomed && now - hello_sent >= config.hello_retry) {
        WarnNoWelcome(now);
        if (ReconnectIfRefused(now)) items[0].socket = sock->handle();
        SendHello(now);
      }
      Announce(now);
      UpdateStats();
      if (now - last_status >= std::chrono::seconds(1)) WriteStatus(now);
    }
    Leave();
  }

  // Finish what is running if it can be done within the grace period; results go out as usual.
  void FinishWithinGrace() {
    SC_LOG(Info) << "finishing " << executor->running() << " running units (grace "
                 << Seconds(config.leave_grace) << " s)";
    const TimePoint until = clock.Now() + config.leave_grace;
    std::vector<zmq::pollitem_t> items = {{sock->handle(), 0, ZMQ_POLLIN, 0},
                                          {nullptr, wake.fd(), ZMQ_POLLIN, 0}};
    while (executor->running() > 0 && clock.Now() < until) {
      net::Poll(items, std::chrono::milliseconds(20));
      if (items[1].revents & ZMQ_POLLIN) wake.Drain();
      ReadFrames(clock.Now());
      DrainCompletions();
    }
  }

  // Graceful leave: stop running units at their next progress call and hand every lease back.
  // Their latest checkpoints stay on disk (a restart resumes them) and go to the coordinator
  // (another peer can continue them).
  void Leave() {
    if (config.leave_grace > Duration::zero() && executor->running() > 0 && welcomed)
      FinishWithinGrace();
    proto::Bye bye;
    for (const auto& l : waiting) bye.returned_leases.push_back(l.lease_id);
    for (const auto& [pkg, leases] : awaiting)
      for (const auto& l : leases) bye.returned_leases.push_back(l.lease_id);
    awaiting.clear();
    for (const auto& u : executor->Units()) bye.returned_leases.push_back(u.lease_id);
    executor->CancelAll("the worker is stopping", /*hand_back=*/false);
    waiting.clear();
    executor->WaitIdle();
    UploadCheckpoints();
    std::vector<FinishedUnit> done = executor->TakeFinished();
    for (auto& f : done) SendCheckpoint(f.checkpoint, f.checkpoints_saved);
    // Units that finished anyway are still worth sending.
    std::vector<const proto::ResultMsg*> finished;
    for (const auto& f : done) {
      if (f.result.outcome != proto::UnitOutcome::kOk) continue;
      std::erase(bye.returned_leases, f.result.lease_id);
      store.Remove(f.lease);
      finished.push_back(&f.result);
    }
    SendResults(finished);
    if (welcomed) {
      Send(bye);
      // Give the Bye a moment to leave before the socket closes.
      sock->set(zmq::sockopt::linger, 1000);
    }
    WriteStatus(clock.Now());
    SC_LOG(Info) << "left the coordinator (" << bye.returned_leases.size()
                 << " leases handed back)";
  }
};

Worker::Worker(WorkerConfig config, const tasks::Registry& registry)
    : impl_(std::make_unique<Impl>(std::move(config), registry)) {}

Worker::~Worker() {
  if (impl_->executor) impl_->executor->WaitIdle();
}

// The worker's key pair (docs/security.md, "Keys and their files"); the peer id is its key's.
static Result<curve::KeyPair> ResolveKey(const WorkerConfig& cfg) {
  if (cfg.key) return *cfg.key;
  if (cfg.state_dir.empty()) return curve::Generate();
  std::error_code ec;
  std::filesystem::create_directories(cfg.state_dir, ec);
  if (ec)
    return Unavailable("cannot create state directory " + cfg.state_dir + ": " + ec.message());
  return curve::LoadOrCreateKeyPair(cfg.state_dir + "/curve/worker.key", "worker");
}

// The coordinator's key: given, pinned or published on this machine (trust on first use). A
// given or published key that is not the pinned one is refused: the worker never talks to a
// coordinator that cannot prove it holds the key it first trusted.
static Result<curve::PublicKey> ResolveCoordinatorKey(const WorkerConfig& cfg) {
  const std::string pin = cfg.state_dir.empty() ? "" : cfg.state_dir + "/coordinator.pub";
  std::optional<curve::PublicKey> pinned;
  if (!pin.empty()) {
    auto p = curve::LoadPublicKey(pin);
    if (p.ok())
      pinned = *p;
    else if (p.status().code() != StatusCode::kNotFound)
      return DataLoss("the pinned coordinator key is unreadable: " + p.status().message());
  }
  auto refuse = [&](const curve::PublicKey& other, const std::string& where) {
    return FailedPrecondition("the coordinator key " + where + " is " + other.Z85() +
                              ", not the key pinned in " + pin + " (" + pinned->Z85() +
                              "): refusing to connect to " + cfg.coordinator +
                              ". If that coordinator's key really changed, delete " + pin);
  };
  std::optional<curve::PublicKey> found;
  std::string how;
  if (!cfg.coordinator_key.empty()) {
    auto given = curve::PublicKeyFromArg(cfg.coordinator_key);
    if (!given.ok()) return InvalidArgument("--coordinator-key: " + given.status().message());
    if (pinned && *given != *pinned) return refuse(*given, "given (--coordinator-key)");
    found = *given;
    how = "given";
  } else if (auto local = curve::FindLocalKey(cfg.coordinator)) {
    if (pinned && *local != *pinned) return refuse(*local, "published on this machine");
    found = *local;
    how = "published on this machine";
  } else if (pinned) {
    return *pinned;
  } else {
    return FailedPrecondition("no key for the coordinator at " + cfg.coordinator +
                              ": pass --coordinator-key KEY|FILE (`sparecycles-coordinator key "
                              "--data DIR` prints it on the coordinator's machine)");
  }
  if (!pinned && !pin.empty()) {
    SC_RETURN_IF_ERROR(curve::SavePublicKey(pin, *found, "coordinator key pinned at first use"));
    SC_LOG(Info) << "pinned the coordinator key " << found->Z85() << " (" << how << ") in " << pin;
  }
  return *found;
}

Status Worker::Start() {
  InitCrypto();
  Impl& m = *impl_;
  if (m.config.curve) {
    if (!curve::Available())
      return FailedPrecondition("this libzmq has no CURVE support (built without libsodium)");
    auto key = ResolveKey(m.config);
    if (!key.ok()) return key.status();
    m.key = *key;
    auto coordinator_key = ResolveCoordinatorKey(m.config);
    if (!coordinator_key.ok()) return coordinator_key.status();
    m.coordinator_key = *coordinator_key;
  } else {
    m.key = m.config.key ? *m.config.key : curve::Generate();
  }
  m.peer_id = curve::PeerIdFor(m.key.public_key);
  if (!m.config.state_dir.empty())  // for the owner and scripts; the key is what counts
    SC_RETURN_IF_ERROR(WriteFileAtomic(m.config.state_dir + "/peer-id", m.peer_id + "\n"));
  if (m.config.cores != 0)
    m.slots = m.config.cores;
  else if (m.config.preferences)
    m.slots = m.config.preferences->MaxSlots(HardwareCores());
  else
    m.slots = HardwareCores();
  if (m.slots > proto::kMaxCores) return InvalidArgument("--cores above 4096");
  const TimePoint probe_created = m.clock.Now();
  if (m.config.preferences) {
    // Before any thread is started (TBB's, ZeroMQ's): they inherit the nice value.
    if (m.config.preferences->priority != Priority::kNormal) LowerProcessPriority();
    m.driver.emplace(*m.config.preferences, m.slots,
                     m.config.probe ? m.config.probe : std::make_shared<SystemProbe>(),
                     m.config.local_time, m.config.sample_interval, m.config.pause_limit);
    m.driver->SetControl(m.config.control);  // volunteer page
  }
  m.fixed_decision = Decision{m.slots, proto::PeerState::kRunning, ""};
  InProcessExecutorConfig ec;
  ec.slots = m.slots;
  ec.idle_priority = m.config.preferences && m.config.preferences->priority == Priority::kIdle;
  ec.checkpoint_interval = m.config.checkpoint_interval;
  ec.store = m.store.enabled() ? &m.store : nullptr;
  ec.clock = m.config.clock;
  auto in_process = std::make_unique<InProcessExecutor>(ec, m.registry, [&m] { m.wake.Wake(); });
  if (m.config.packages && (m.config.accept_native || m.config.accept_command)) {
    // Confinement this machine cannot provide means no package units at all (unless the owner
    // turned the sandbox off): checked once, up front, as sandbox-check does.
    if (m.config.sandbox && ::access(m.ExecutorPath().c_str(), X_OK) == 0) {
      const char* disable = std::getenv("SPARECYCLES_SANDBOX_CHECK_DISABLE_LAYER");
      const SandboxProbe probe =
          ProbeSandbox(m.ExecutorPath(), m.config.sandbox_uid, m.config.sandbox_gid,
                       disable != nullptr ? disable : "");
      if (!probe.ok) {
        m.packages_off = "this machine cannot confine them: " + probe.missing +
                         " (see sparecycles-worker sandbox-check; --sandbox off only on a "
                         "trusted cluster)";
        SC_LOG(Warn) << "task packages are OFF: " << m.packages_off;
      }
    }
    if (m.packages_off.empty()) SC_RETURN_IF_ERROR(m.OpenPackages());
  }
  if (m.packages) {
    ProcessExecutorConfig pc;
    pc.slots = m.slots;
    pc.executor_path = m.ExecutorPath();
    pc.work_root = m.packages->units_dir();
    pc.checkpoint_interval = m.config.checkpoint_interval;
    pc.store = ec.store;
    pc.clock = m.config.clock;
    pc.sandbox = m.config.sandbox;
    pc.sandbox_uid = m.config.sandbox_uid;
    pc.sandbox_gid = m.config.sandbox_gid;
    SC_LOG(Info) << "task packages run in " << pc.executor_path;
    if (!pc.sandbox)
      SC_LOG(Warn) << "SANDBOX OFF (--sandbox off): package code runs with this worker's rights, "
                      "its files and its network; meant only for trusted clusters";
    m.executor = std::make_unique<CompositeExecutor>(
        std::move(in_process),
        std::make_unique<ProcessExecutor>(std::move(pc), [&m] { m.wake.Wake(); }), m.slots);
  } else {
    m.executor = std::move(in_process);
  }

  m.hello.peer_id = m.peer_id;
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  m.hello.hostname = host;
  m.hello.account = m.config.account;
  m.hello.software = "sparecycles-worker 0.1.0";
  m.hello.cores = m.slots;
  m.hello.memory_bytes = TotalMemoryBytes();
  for (const tasks::Task* t : m.registry.All()) {
    if (!m.config.only_tasks.empty() &&
        std::find(m.config.only_tasks.begin(), m.config.only_tasks.end(), t->Name()) ==
            m.config.only_tasks.end())
      continue;
    proto::TaskInfo info;
    info.name = std::string(t->Name());
    info.version = t->Version();
    info.work_per_second = m.config.calibrate_seconds > 0 ? t->Calibrate(m.config.calibrate_seconds)
                                                          : t->DefaultWorkPerSecond();
    m.hello.tasks.push_back(std::move(info));
  }
  if (m.packages) {
    for (auto kind : {package::Kind::kNative, package::Kind::kCommand}) {
      if (!(kind == package::Kind::kNative ? m.config.accept_native : m.config.accept_command))
        continue;
      // Units of packages are sized in the manifest's expected seconds: one per second per core.
      m.hello.tasks.push_back(proto::TaskInfo{std::string(package::KindTaskName(kind)),
                                              package::kKindTaskVersion, 1.0});
    }
  }
  net::SocketConfig sc;
  if (m.config.curve) {
    sc.curve_server_key = m.coordinator_key.Z85();
    sc.curve_public = m.key.public_key.Z85();
    sc.curve_secret = m.key.SecretZ85();
  }
  m.sock_config = sc;
  auto sock = net::ConnectDealer(m.ctx, m.config.coordinator, sc);
  if (!sock.ok()) return sock.status();
  m.sock.emplace(std::move(*sock));
  // Results finished before a crash or restart and never acknowledged go out again after Hello.
  for (auto& [lease, r] : m.spool.Load()) m.unacked.emplace(lease, std::move(r));
  if (!m.unacked.empty()) SC_LOG(Info) << m.unacked.size() << " spooled results will be sent again";
  m.store.RemoveOlderThan(std::chrono::hours(24 * 14));
  if (!m.config.state_dir.empty() || m.config.control) {
    m.status_writer.emplace(m.config.state_dir, m.peer_id);
    m.status_writer->LoadPreviousTotals();
    m.status_writer->SetControl(m.config.control);
  }
  if (m.driver) {
    // The first sample covers start-up (calibration); a window shorter than this is mostly noise.
    const Duration min_window =
        std::min<Duration>(m.config.sample_interval, std::chrono::milliseconds(250));
    if (!m.config.probe) std::this_thread::sleep_until(probe_created + min_window);
    m.Sample(m.clock.Now(), /*force=*/true);
    SC_LOG(Info) << "owner preferences: at most " << m.slots << " cores, priority "
                 << PriorityName(m.config.preferences->priority) << "; now "
                 << StateName(m.decision().state)
                 << (m.decision().reason.empty() ? "" : " (" + m.decision().reason + ")");
  }
  SC_LOG(Info) << "peer " << m.peer_id << " donating " << m.slots << " cores to "
               << m.config.coordinator;
  return OkStatus();
}

void Worker::Run() { impl_->Loop(); }

void Worker::Stop() {
  impl_->stop.store(true);
  impl_->wake.Wake();
}

const std::string& Worker::peer_id() const { return impl_->peer_id; }

WorkerStats Worker::stats() const {
  std::lock_guard lock(impl_->stats_mu);
  return impl_->stats;
}

}  // namespace sparecycles::worker
