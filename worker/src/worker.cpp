#include "sparecycles/worker/worker.hpp"

#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/task_scheduler_observer.h>

#include "checkpoint_store.hpp"
#include "gate.hpp"
#include "sparecycles/core/daemon.hpp"
#include "sparecycles/core/hash.hpp"
#include "sparecycles/core/log.hpp"
#include "sparecycles/core/protocol.hpp"
#include "sparecycles/core/transport.hpp"
#include "spool.hpp"
#include "sparecycles/worker/status.hpp"

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

// What a kernel sees while it runs: progress goes to heartbeats and the status file; Progress()
// is where the unit waits while the worker is paused or throttled (the thread gate) and where it
// stops when cancelled or handed back; checkpoints go to the local store at once and are queued
// for upload by the loop thread.
class UnitCtx final : public tasks::UnitContext {
 public:
  UnitCtx(proto::Lease lease, ThreadGate* gate, const CheckpointStore* store, std::optional<std::string> resume,
          float resumed_from, Duration checkpoint_interval)
      : lease_(std::move(lease)),
        gate_(gate),
        store_(store),
        resume_(std::move(resume)),
        resumed_from_(resumed_from),
        interval_(checkpoint_interval),
        last_checkpoint_(SteadyClock::Instance().Now().time_since_epoch().count()),
        closings_seen_(gate ? gate->closings() : 0) {}

  void Progress(double fraction) override {
    const float f = static_cast<float>(std::clamp(fraction, 0.0, 1.0));
    progress_.store(f, std::memory_order_relaxed);
    float unset = -1;
    first_progress_.compare_exchange_strong(unset, f, std::memory_order_relaxed);
    if (cancel_.load(std::memory_order_relaxed)) throw tasks::UnitCancelled{reason()};
    if (gate_ != nullptr &&
        !gate_->Pass([&] { return cancel_.load(std::memory_order_relaxed); },
                     [&](bool w) { waiting_.fetch_add(w ? 1 : -1, std::memory_order_relaxed); }))
      throw tasks::UnitCancelled{reason()};
  }
  bool StopRequested() const override { return cancel_.load(std::memory_order_relaxed); }
  std::optional<std::string> ResumeState() const override { return resume_; }
  bool CheckpointDue() const override {
    if (interval_ <= Duration::zero()) return false;
    const auto now = SteadyClock::Instance().Now().time_since_epoch().count();
    if (now - last_checkpoint_.load(std::memory_order_relaxed) >= interval_.count()) return true;
    // The gate narrowed since the last checkpoint: this unit may be about to wait, or be handed
    // back; save first.
    return gate_ != nullptr && gate_->closings() != closings_seen_.load(std::memory_order_relaxed);
  }
  void Checkpoint(std::string_view state) override {
    if (state.size() > proto::kMaxCheckpointBytes) {
      if (!too_big_logged_.exchange(true))
        SC_LOG(Warn) << "unit " << lease_.job_id << "/" << lease_.unit_index << ": a checkpoint of " << state.size()
                     << " bytes is above the limit; not saved";
      return;
    }
    std::lock_guard lock(mu_);
    last_checkpoint_.store(SteadyClock::Instance().Now().time_since_epoch().count(), std::memory_order_relaxed);
    if (gate_ != nullptr) closings_seen_.store(gate_->closings(), std::memory_order_relaxed);
    const float f = progress();
    if (store_ != nullptr) store_->Save(lease_, f, state);
    upload_ = proto::Checkpoint{lease_.lease_id, lease_.job_id, lease_.unit_index, f, std::string(state)};
    ++saved_;
  }

  /// The newest checkpoint not yet uploaded (loop thread).
  std::optional<proto::Checkpoint> TakeUpload() {
    std::lock_guard lock(mu_);
    auto out = std::move(upload_);
    upload_.reset();
    return out;
  }
  std::uint64_t TakeSavedCount() {
    std::lock_guard lock(mu_);
    return std::exchange(saved_, 0);
  }

  void Cancel(std::string why, bool hand_back) {
    {
      std::lock_guard lock(mu_);
      reason_ = std::move(why);
    }
    handed_back_.store(hand_back);
    cancel_.store(true);
    if (gate_ != nullptr) gate_->Wake();
  }
  bool handed_back() const { return handed_back_.load(); }
  /// Set by the arena thread when the unit begins; until then it waits in the arena's queue.
  void MarkStarted() { started_.store(true, std::memory_order_relaxed); }
  bool started() const { return started_.load(std::memory_order_relaxed); }
  std::string CancelReason() const { return reason(); }
  float progress() const { return progress_.load(std::memory_order_relaxed); }
  bool waiting() const { return waiting_.load(std::memory_order_relaxed) > 0; }
  bool resumed() const { return resume_.has_value(); }
  /// The progress the unit resumed at: the stored figure, else its first report (< 0 = not resumed).
  float resumed_from() const {
    if (!resume_) return -1;
    if (resumed_from_ >= 0) return resumed_from_;
    return std::max(0.0f, first_progress_.load(std::memory_order_relaxed));
  }
  const proto::Lease& lease() const { return lease_; }

 private:
  std::string reason() const {
    std::lock_guard lock(mu_);
    return reason_.empty() ? "cancelled" : reason_;
  }

  const proto::Lease lease_;  // without its checkpoint bytes
  ThreadGate* const gate_;
  const CheckpointStore* const store_;
  const std::optional<std::string> resume_;
  const float resumed_from_;
  const Duration interval_;
  std::atomic<float> progress_{0}, first_progress_{-1};
  std::atomic<bool> cancel_{false}, handed_back_{false}, too_big_logged_{false}, started_{false};
  std::atomic<int> waiting_{0};
  std::atomic<std::int64_t> last_checkpoint_;
  std::atomic<std::uint64_t> closings_seen_;
  mutable std::mutex mu_;
  std::string reason_;
  std::optional<proto::Checkpoint> upload_;
  std::uint64_t saved_ = 0;
};

double ProcessCpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

// Every thread entering the worker's arena runs at SCHED_IDLE: it gets CPU only when nothing else
// wants it. (Linux: scheduling policy and nice value are per thread, inherited by new threads.)
class IdleThreadObserver final : public tbb::task_scheduler_observer {
 public:
  explicit IdleThreadObserver(tbb::task_arena& arena) : tbb::task_scheduler_observer(arena) { observe(true); }
  ~IdleThreadObserver() override { observe(false); }
  void on_scheduler_entry(bool) override {
#ifdef SCHED_IDLE
    sched_param sp{};
    sp.sched_priority = 0;
    (void)sched_setscheduler(0, SCHED_IDLE, &sp);
#endif
    (void)setpriority(PRIO_PROCESS, 0, 19);
  }
};

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

struct Worker::Impl {
  Impl(WorkerConfig c, const tasks::Registry& r)
      : config(std::move(c)), registry(r), store(config.state_dir.empty() ? "" : config.state_dir + "/checkpoints") {}

  WorkerConfig config;
  const tasks::Registry& registry;
  std::string peer_id;
  proto::Hello hello;
  zmq::context_t ctx{1};
  std::optional<zmq::socket_t> sock;
  net::WireStats wire;
  net::EventFd wake;
  std::atomic<bool> stop{false};
  std::unique_ptr<tbb::global_control> parallelism;
  std::unique_ptr<tbb::task_arena> arena;
  std::unique_ptr<IdleThreadObserver> idle_observer;  // after `arena`: destroyed first
  unsigned slots = 1;  // the most cores this worker uses (the arena's size)
  std::unique_ptr<ThreadGate> gate;
  CheckpointStore store;

  // Owner preferences (when configured).
  std::optional<Policy> policy;
  std::shared_ptr<CapacityProbe> probe;
  Readings readings;
  Decision decision;  // what the worker may use now
  TimePoint last_sample{};
  std::optional<TimePoint> paused_since;
  bool handed_back_this_pause = false;

  struct Running {
    proto::Lease lease;
    std::shared_ptr<UnitCtx> ctx;
  };
  std::deque<proto::Lease> waiting;                  // prefetched, not started
  double unit_seconds_avg = -1;                      // moving average of units' wall time
  // Units shorter than this run back to back: the loop thread queues several per slot in the
  // arena, so an arena thread never waits for the loop thread between two of them, and their
  // CPU time is not measured one by one (two getrusage calls would cost more than the unit).
  static constexpr double kShortUnitSeconds = 0.002;
  std::atomic<bool> short_units{false};  // unit_seconds_avg < kShortUnitSeconds (read by arena threads)

  // Units held beyond the slots: at least config.prefetch; more when units are short, so that
  // about 20 ms of work per slot is always at hand and a round trip to the coordinator never
  // leaves a core idle (trivial units would otherwise be bound by the round-trip time).
  std::size_t EffectivePrefetch() const {
    if (unit_seconds_avg < 0) return config.prefetch;
    const double want = 0.02 / std::max(unit_seconds_avg, 1e-6) * std::max(1u, slots);
    return std::clamp<std::size_t>(static_cast<std::size_t>(want), config.prefetch, 64);
  }
  std::unordered_map<std::uint64_t, Running> running;
  std::unordered_map<std::uint64_t, proto::ResultMsg> unacked;  // sent, not yet acknowledged
  ResultSpool spool{config.state_dir.empty() ? "" : config.state_dir + "/spool"};

  std::mutex done_mu;
  std::condition_variable done_cv;
  std::vector<proto::ResultMsg> done;  // completions from arena threads
  int active_units = 0;                // guarded by done_mu

  bool welcomed = false;
  TimePoint hello_sent{}, last_heartbeat{}, last_status{}, last_capacity_sent{};
  Duration heartbeat = std::chrono::seconds(5);
  std::uint32_t last_request = UINT32_MAX;
  proto::Capacity last_capacity;
  bool capacity_sent = false;

  // Totals shown by `sparecycles-worker status`, carried over from earlier runs.
  double base_cpu_seconds = 0;
  std::uint64_t base_units_done = 0;
  double resumed_work = 0;

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
      if (batch.results.size() == 1) Send(batch.results.front());
      else if (!batch.results.empty()) Send(batch);
      batch.results.clear();
      bytes = 0;
    };
    for (const proto::ResultMsg* r : results) {
      const std::size_t size = r->payload.size() + r->error.size() + r->hash.size() + 64;
      if (!batch.results.empty() &&
          (batch.results.size() >= proto::kMaxLeasesPerMessage || bytes + size > proto::kResultsBatchBytes))
        flush();
      batch.results.push_back(*r);
      bytes += size;
    }
    flush();
  }

  void SendHello(TimePoint now) {
    // Everything this peer still holds: running, prefetched, and finished but not acknowledged.
    hello.running_leases.clear();
    for (const auto& [id, r] : running) hello.running_leases.push_back(id);
    for (const auto& l : waiting) hello.running_leases.push_back(l.lease_id);
    for (const auto& [id, r] : unacked) hello.running_leases.push_back(id);
    if (hello.running_leases.size() > proto::kMaxLeasesPerMessage) hello.running_leases.resize(proto::kMaxLeasesPerMessage);
    Send(hello);
    hello_sent = now;
    welcomed = false;
    std::lock_guard lock(stats_mu);
    ++stats.hellos_sent;
  }

  void OnFrame(zmq::message_t& m, TimePoint now) {
    std::string_view body;
    auto type = proto::ParseHeader({static_cast<const char*>(m.data()), m.size()}, body);
    if (!type.ok()) {
      ++wire.bad_frames;
      SC_LOG(Warn) << "dropped a bad frame from the coordinator: " << type.status().ToString();
      return;
    }
    auto decode = [&](auto& msg) {
      Status s = proto::Decode(body, msg);
      if (!s.ok()) {
        ++wire.bad_frames;
        SC_LOG(Warn) << "dropped a bad " << proto::MsgTypeName(*type) << ": " << s.ToString();
      }
      return s.ok();
    };
    switch (*type) {
      case MsgType::kWelcome: {
        proto::Welcome w;
        if (!decode(w)) return;
        const bool first = !welcomed;
        welcomed = true;
        heartbeat = std::chrono::milliseconds(std::clamp<std::uint32_t>(w.heartbeat_ms, 50, 600000));
        if (first) SC_LOG(Info) << "connected to coordinator session " << w.session;
        // Everything not yet acknowledged goes again: the coordinator may have restarted.
        {
          std::vector<const proto::ResultMsg*> again;
          for (const auto& [id, r] : unacked) again.push_back(&r);
          SendResults(again);
        }
        capacity_sent = false;
        last_request = UINT32_MAX;
        break;
      }
      case MsgType::kReject: {
        proto::Reject r;
        if (!decode(r)) return;
        if (r.code == proto::RejectCode::kHelloFirst) {
          if (now - hello_sent > std::chrono::milliseconds(200)) SendHello(now);
        } else {
          SC_LOG(Error) << "coordinator rejected us: " << r.message;
          if (r.code == proto::RejectCode::kBadVersion) stop.store(true);
        }
        break;
      }
      case MsgType::kAssign: {
        proto::Assign a;
        if (!decode(a)) return;
        for (auto& l : a.leases) waiting.push_back(std::move(l));
        last_request = UINT32_MAX;  // the standing request changed
        break;
      }
      case MsgType::kHeartbeat:  // the coordinator checking that we are still connected
        break;
      case MsgType::kAck: {
        proto::Ack a;
        if (!decode(a)) return;
        for (auto id : a.lease_ids) {
          unacked.erase(id);
          spool.Remove(id);
          SC_LOG(Debug) << "acked lease " << id;
        }
        break;
      }
      case MsgType::kCancelLeases: {
        proto::CancelLeases c;
        if (!decode(c)) return;
        for (auto id : c.lease_ids) {
          auto it = std::find_if(waiting.begin(), waiting.end(), [&](const auto& l) { return l.lease_id == id; });
          if (it != waiting.end()) waiting.erase(it);
          if (auto r = running.find(id); r != running.end()) r->second.ctx->Cancel(c.reason, /*hand_back=*/false);
        }
        break;
      }
      default:
        ++wire.bad_frames;
        SC_LOG(Warn) << "unexpected " << proto::MsgTypeName(*type) << " from the coordinator";
    }
  }

  // Moves prefetched leases into the arena: one per free slot, and for short units a queue of up
  // to the prefetch depth per slot, which the arena's threads work through without the loop.
  void StartUnits() {
    const std::size_t ahead = short_units.load(std::memory_order_relaxed) ? EffectivePrefetch() : 0;
    while (!waiting.empty() && running.size() < decision.slots + ahead) {
      proto::Lease lease = std::move(waiting.front());
      waiting.pop_front();
      // A local checkpoint is this worker's own and at least as new as what it uploaded; one that
      // came with the lease was uploaded by a peer that held the unit before.
      std::optional<std::string> resume;
      float resumed_from = -1;
      if (auto local = store.Load(lease)) {
        resume = std::move(local->state);
        resumed_from = local->fraction;
        SC_LOG(Info) << "unit " << lease.job_id << "/" << lease.unit_index << " resumes from a local checkpoint at "
                     << static_cast<int>(resumed_from * 100) << "%";
      } else if (!lease.checkpoint.empty()) {
        resume = std::move(lease.checkpoint);
        SC_LOG(Info) << "unit " << lease.job_id << "/" << lease.unit_index
                     << " resumes from a checkpoint uploaded to the coordinator (" << resume->size() << " bytes)";
      }
      lease.checkpoint.clear();
      lease.checkpoint.shrink_to_fit();
      if (resume) {
        std::lock_guard lock(stats_mu);
        ++stats.units_resumed;
      }
      auto uctx = std::make_shared<UnitCtx>(lease, gate.get(), store.enabled() ? &store : nullptr, std::move(resume),
                                            resumed_from, config.checkpoint_interval);
      const std::uint64_t id = lease.lease_id;
      running.emplace(id, Running{lease, uctx});
      {
        std::lock_guard lock(done_mu);
        ++active_units;
      }
      arena->enqueue([this, lease = std::move(lease), uctx] { Execute(lease, *uctx); });
    }
  }

  // Runs on an arena thread. Never throws: a kernel's exception fails its unit, not the worker.
  void Execute(const proto::Lease& lease, UnitCtx& uctx) {
    proto::ResultMsg r;
    r.lease_id = lease.lease_id;
    r.job_id = lease.job_id;
    r.unit_index = lease.unit_index;
    uctx.MarkStarted();
    const auto t0 = std::chrono::steady_clock::now();
    const bool measure_cpu = !short_units.load(std::memory_order_relaxed);
    const double cpu0 = measure_cpu ? ProcessCpuSeconds() : 0;
    try {
      const tasks::Task* task = registry.Find(lease.task, lease.task_version);
      // Cancelled or handed back while it waited in the arena's queue.
      if (uctx.StopRequested()) throw tasks::UnitCancelled{uctx.CancelReason()};
      if (task == nullptr) {
        r.outcome = proto::UnitOutcome::kFailed;
        r.error = "this worker cannot run task " + lease.task + " v" + std::to_string(lease.task_version);
      } else {
        auto out = task->Execute(lease.unit, uctx);
        if (out.ok() && out->size() > proto::kMaxResultBytes) {
          r.outcome = proto::UnitOutcome::kFailed;
          r.error = "the unit's result is " + std::to_string(out->size()) + " bytes, above the limit of " +
                    std::to_string(proto::kMaxResultBytes);
        } else if (out.ok()) {
          const Hash256 h = Blake2b256(task->Canonicalize(*out));
          r.hash.assign(reinterpret_cast<const char*>(h.data()), h.size());
          r.payload = std::move(*out);
          r.outcome = proto::UnitOutcome::kOk;
        } else {
          r.outcome = proto::UnitOutcome::kFailed;
          r.error = out.status().ToString();
        }
      }
    } catch (const tasks::UnitCancelled& c) {
      r.outcome = proto::UnitOutcome::kCancelled;
      r.error = c.reason;
    } catch (const std::exception& e) {
      r.outcome = proto::UnitOutcome::kFailed;
      r.error = std::string("kernel threw: ") + e.what();
    } catch (...) {
      r.outcome = proto::UnitOutcome::kFailed;
      r.error = "kernel threw an unknown exception";
    }
    if (r.error.size() > proto::kMaxTextBytes) r.error.resize(proto::kMaxTextBytes);
    r.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    // Units share the arena, so the process CPU time over the unit is shared out by slot count.
    // A short unit is counted at its wall time: it ran on one thread from start to end.
    r.cpu_seconds = measure_cpu ? std::max(0.0, ProcessCpuSeconds() - cpu0) / std::max(1u, slots) : r.wall_seconds;
    bool first = false;
    {
      std::lock_guard lock(done_mu);
      first = done.empty();
      done.push_back(std::move(r));
      --active_units;
    }
    done_cv.notify_all();
    // The loop thread takes every completion at once: one wake-up per batch, not per unit.
    if (first) wake.Wake();
  }

  void UploadCheckpoint(UnitCtx& ctx) {
    auto cp = ctx.TakeUpload();
    const std::uint64_t saved = ctx.TakeSavedCount();
    if (cp && welcomed) Send(*cp);
    std::lock_guard lock(stats_mu);
    stats.checkpoints_saved += saved;
    if (cp && welcomed) ++stats.checkpoints_uploaded;
  }

  void DrainCompletions() {
    std::vector<proto::ResultMsg> batch;
    std::vector<const proto::ResultMsg*> outgoing;  // this turn's results (point into `unacked`)
    {
      std::lock_guard lock(done_mu);
      batch.swap(done);
    }
    for (auto& r : batch) {
      auto it = running.find(r.lease_id);
      bool handed_back = false, stopped_by_us = false;
      if (it != running.end()) {
        UnitCtx& ctx = *it->second.ctx;
        handed_back = ctx.handed_back();
        stopped_by_us = ctx.StopRequested() && !handed_back;
        UploadCheckpoint(ctx);  // before the Result, so the coordinator has it when it requeues
        if (r.outcome == proto::UnitOutcome::kOk && ctx.resumed()) {
          resumed_work += ctx.resumed_from();
          SC_LOG(Info) << "unit " << r.job_id << "/" << r.unit_index << " done after resuming at "
                       << static_cast<int>(ctx.resumed_from() * 100) << "% (that much was not recomputed)";
        }
        // Finished, failed, or settled elsewhere: the local checkpoint has served. A unit handed
        // back keeps it, in case it comes back here.
        if (!handed_back && (r.outcome != proto::UnitOutcome::kCancelled || stopped_by_us)) store.Remove(it->second.lease);
        running.erase(it);
      }
      {
        std::lock_guard lock(stats_mu);
        if (r.outcome == proto::UnitOutcome::kOk) ++stats.units_done;
        else if (r.outcome == proto::UnitOutcome::kFailed) ++stats.units_failed;
        else if (handed_back) ++stats.units_returned;
        else ++stats.units_cancelled;
        stats.cpu_seconds += r.cpu_seconds;
      }
      if (r.outcome == proto::UnitOutcome::kOk) {
        // Follows shorter units at once (a new job of tiny units runs back to back from its first
        // batch), longer ones gradually. Over-queueing cannot follow: the coordinator prefetches
        // only units it expects to be short.
        unit_seconds_avg = unit_seconds_avg < 0 || r.wall_seconds < unit_seconds_avg
                               ? r.wall_seconds
                               : 0.9 * unit_seconds_avg + 0.1 * r.wall_seconds;
        short_units.store(unit_seconds_avg < kShortUnitSeconds, std::memory_order_relaxed);
      }
      if (r.outcome == proto::UnitOutcome::kFailed)
        SC_LOG(Warn) << "unit " << r.job_id << "/" << r.unit_index << " failed: " << r.error;
      if (stopped_by_us && r.outcome == proto::UnitOutcome::kCancelled) continue;  // coordinator knows
      // On disk before it leaves: a crash between here and the Ack must not lose the work.
      if (r.outcome != proto::UnitOutcome::kCancelled) spool.Put(r);
      SC_LOG(Debug) << "finished unit " << r.job_id << "/" << r.unit_index << " lease " << r.lease_id;
      const std::uint64_t id = r.lease_id;
      outgoing.push_back(&(unacked[id] = std::move(r)));
    }
    SendResults(outgoing);
  }

  // Hands every unit back to the coordinator (a pause went on too long): running units stop at
  // their next Progress() call and report kCancelled; prefetched ones go back at once.
  void HandBack(TimePoint now) {
    const double paused_for = paused_since ? Seconds(now - *paused_since) : 0;
    const std::string why = "handed back after a pause of " + std::to_string(static_cast<int>(paused_for)) + " s";
    SC_LOG(Info) << why << ": " << running.size() << " running and " << waiting.size() << " prefetched units";
    for (auto& [id, r] : running) r.ctx->Cancel(why, /*hand_back=*/true);
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
    last_request = UINT32_MAX;
  }

  // Samples the machine and lets the policy decide how many cores the worker may use now.
  void Sample(TimePoint now, bool force) {
    if (!policy) return;
    if (!force && now - last_sample < config.sample_interval) return;
    last_sample = now;
    readings = probe->Sample();
    if (config.control)  // volunteer page: preferences changed live (the arena keeps its size)
      if (auto p = config.control->TakePreferences()) policy.emplace(*p, std::min(slots, p->MaxSlots(HardwareCores())));
    Decision d = policy->Evaluate(readings, now, config.local_time ? config.local_time() : LocalTimeNow());
    if (config.control) config.control->Apply(d);  // volunteer page: paused by the owner
    if (d.state != decision.state || d.slots != decision.slots) {
      if (d.state == proto::PeerState::kPaused)
        SC_LOG(Info) << "paused: " << d.reason;
      else if (d.state == proto::PeerState::kThrottled)
        SC_LOG(Info) << "throttled to " << d.slots << " of " << slots << " cores: " << d.reason;
      else
        SC_LOG(Info) << "running on " << d.slots << " cores";
      gate->SetAllowed(d.slots);
      if (d.state == proto::PeerState::kPaused) {
        if (!paused_since) paused_since = now;
      } else {
        paused_since.reset();
        handed_back_this_pause = false;
      }
      decision = d;
      WriteStatus(now);
    } else {
      decision = d;  // the reason's figures may have changed
    }
    if (paused_since && !handed_back_this_pause && now - *paused_since >= config.pause_limit &&
        (!running.empty() || !waiting.empty())) {
      HandBack(now);
      handed_back_this_pause = true;
    }
  }

  std::uint64_t MemoryForUnits() const {
    if (!policy || readings.memory_total == 0) return hello.memory_bytes;
    std::uint64_t m = readings.memory_available;
    const std::uint64_t cap = policy->MemoryCap(readings.memory_total);
    if (cap > 0) m = std::min(m, cap > readings.own_memory ? cap - readings.own_memory : 0);
    return m;
  }

  void Announce(TimePoint now) {
    if (!welcomed) return;
    for (auto& [id, r] : running) UploadCheckpoint(*r.ctx);
    proto::Capacity cap;
    cap.slots = decision.slots;
    cap.idle_slots = decision.slots > running.size() ? static_cast<std::uint32_t>(decision.slots - running.size()) : 0;
    cap.memory_available = MemoryForUnits();
    cap.state = decision.state;
    cap.reason = decision.reason.substr(0, proto::kMaxTextBytes);
    // Slots and state go out at once; a reason whose figures changed at most every 10 s.
    const bool changed = cap.slots != last_capacity.slots || cap.idle_slots != last_capacity.idle_slots ||
                         cap.state != last_capacity.state;
    const bool reason_changed = cap.reason != last_capacity.reason && now - last_capacity_sent >= std::chrono::seconds(10);
    if (!capacity_sent || changed || reason_changed) {
      Send(cap);
      last_capacity = cap;
      last_capacity_sent = now;
      capacity_sent = true;
    }
    const std::size_t held = running.size() + waiting.size();
    const std::size_t cap_units = decision.state == proto::PeerState::kPaused ? 0 : decision.slots + EffectivePrefetch();
    const auto want = static_cast<std::uint32_t>(cap_units > held ? cap_units - held : 0);
    if (want != last_request) {
      Send(proto::RequestWork{want});
      last_request = want;
    }
    if (now - last_heartbeat >= heartbeat) {
      proto::Heartbeat hb;
      for (const auto& [id, r] : running) hb.running.push_back({id, r.ctx->progress()});
      Send(hb);
      last_heartbeat = now;
    }
  }

  void UpdateStats() {
    std::lock_guard lock(stats_mu);
    stats.bad_frames = wire.bad_frames;
    stats.results_unacked = unacked.size();
    stats.running = running.size();
    stats.connected = welcomed;
    stats.slots = decision.slots;
    stats.state = decision.state;
    stats.reason = decision.reason;
  }

  void LoadPreviousTotals() {
    if (config.state_dir.empty()) return;
    auto text = ReadFile(config.state_dir + "/status", 1 << 20);
    if (!text.ok()) return;
    if (auto s = ParseStatusFile(*text); s.ok() && s->peer_id == peer_id) {
      base_cpu_seconds = s->cpu_seconds;
      base_units_done = s->units_done;
      resumed_work = s->resumed_work;
    }
  }

  void WriteStatus(TimePoint now) {
    last_status = now;
    if (config.state_dir.empty() && !config.control) return;
    StatusSnapshot s;
    s.peer_id = peer_id;
    s.coordinator = config.coordinator;
    s.pid = static_cast<long>(getpid());
    s.connected = welcomed;
    s.machine_cores = readings.cores > 0 && policy ? readings.cores : HardwareCores();
    s.max_slots = slots;
    s.slots = decision.slots;
    s.state = std::string(StateName(decision.state));
    s.reason = decision.reason;
    s.other_cpu_percent = readings.other_cpu * 100;
    s.memory_available = MemoryForUnits();
    std::size_t queued = 0;  // in the arena's queue, not started
    for (const auto& [id, r] : running) {
      if (!r.ctx->started()) {
        ++queued;
        continue;
      }
      UnitStatus u;
      u.job = r.lease.job_id;
      u.unit = r.lease.unit_index;
      u.task = r.lease.task;
      u.progress = r.ctx->progress();
      u.resumed_from = r.ctx->resumed_from();
      u.waiting = r.ctx->waiting();
      s.units.push_back(std::move(u));
    }
    std::sort(s.units.begin(), s.units.end(),
              [](const UnitStatus& a, const UnitStatus& b) { return std::tie(a.job, a.unit) < std::tie(b.job, b.unit); });
    s.prefetched = waiting.size() + queued;
    {
      std::lock_guard lock(stats_mu);
      s.units_done = base_units_done + stats.units_done;
      s.units_failed = stats.units_failed;
      s.units_returned = stats.units_returned;
      s.units_resumed = stats.units_resumed;
      s.cpu_seconds = base_cpu_seconds + stats.cpu_seconds;
    }
    s.resumed_work = resumed_work;
    s.updated_at = WallSeconds();
    if (config.control) config.control->Publish(s);  // volunteer page
    if (config.state_dir.empty()) return;
    if (Status st = WriteFileAtomic(config.state_dir + "/status", FormatStatusFile(s), /*sync=*/false); !st.ok()) {
      static bool logged = false;
      if (!logged) SC_LOG(Warn) << "cannot write the status file: " << st.ToString();
      logged = true;
    }
  }

  void Loop() {
    std::vector<zmq::pollitem_t> items = {{sock->handle(), 0, ZMQ_POLLIN, 0}, {nullptr, wake.fd(), ZMQ_POLLIN, 0}};
    SendHello(SteadyClock::Instance().Now());
    while (!stop.load()) {
      net::Poll(items, std::chrono::milliseconds(50));
      if (items[1].revents & ZMQ_POLLIN) wake.Drain();
      TimePoint now = SteadyClock::Instance().Now();
      for (int i = 0; i < 1024; ++i) {
        auto m = net::RecvDealer(*sock, &wire);
        if (!m) break;
        OnFrame(*m, now);
      }
      Sample(now, /*force=*/config.control && config.control->TakeChanged());  // volunteer page: act at once
      DrainCompletions();
      StartUnits();
      if (!welcomed && now - hello_sent >= config.hello_retry) SendHello(now);
      Announce(now);
      UpdateStats();
      if (now - last_status >= std::chrono::seconds(1)) WriteStatus(now);
    }
    Leave();
  }

  // Graceful leave: stop running units at their next progress call and hand every lease back.
  // Their latest checkpoints stay on disk (a restart resumes them) and go to the coordinator
  // (another peer can continue them).
  void Leave() {
    proto::Bye bye;
    if (config.leave_grace > Duration::zero() && !running.empty() && welcomed) {
      // Finish what is running if it can be done within the grace period; results go out as usual.
      SC_LOG(Info) << "finishing " << running.size() << " running units (grace " << Seconds(config.leave_grace) << " s)";
      const TimePoint until = SteadyClock::Instance().Now() + config.leave_grace;
      std::vector<zmq::pollitem_t> items = {{sock->handle(), 0, ZMQ_POLLIN, 0}, {nullptr, wake.fd(), ZMQ_POLLIN, 0}};
      while (!running.empty() && SteadyClock::Instance().Now() < until) {
        net::Poll(items, std::chrono::milliseconds(20));
        if (items[1].revents & ZMQ_POLLIN) wake.Drain();
        const TimePoint now = SteadyClock::Instance().Now();
        for (int i = 0; i < 1024; ++i) {
          auto m = net::RecvDealer(*sock, &wire);
          if (!m) break;
          OnFrame(*m, now);
        }
        DrainCompletions();
      }
    }
    for (const auto& l : waiting) bye.returned_leases.push_back(l.lease_id);
    for (auto& [id, r] : running) {
      r.ctx->Cancel("the worker is stopping", /*hand_back=*/false);
      bye.returned_leases.push_back(id);
    }
    waiting.clear();
    {
      std::unique_lock lock(done_mu);
      done_cv.wait(lock, [&] { return active_units == 0; });
      for (auto& [id, r] : running) UploadCheckpoint(*r.ctx);
      // Units that finished anyway are still worth sending.
      std::vector<const proto::ResultMsg*> finished;
      for (auto& r : done) {
        if (r.outcome != proto::UnitOutcome::kOk) continue;
        bye.returned_leases.erase(std::remove(bye.returned_leases.begin(), bye.returned_leases.end(), r.lease_id),
                                  bye.returned_leases.end());
        if (auto it = running.find(r.lease_id); it != running.end()) store.Remove(it->second.lease);
        finished.push_back(&r);
      }
      SendResults(finished);
      done.clear();
    }
    running.clear();
    if (welcomed) {
      Send(bye);
      // Give the Bye a moment to leave before the socket closes.
      sock->set(zmq::sockopt::linger, 1000);
    }
    WriteStatus(SteadyClock::Instance().Now());
    SC_LOG(Info) << "left the coordinator (" << bye.returned_leases.size() << " leases handed back)";
  }
};

Worker::Worker(WorkerConfig config, const tasks::Registry& registry)
    : impl_(std::make_unique<Impl>(std::move(config), registry)) {}

Worker::~Worker() {
  if (impl_->arena) {
    std::unique_lock lock(impl_->done_mu);
    impl_->done_cv.wait(lock, [&] { return impl_->active_units == 0; });
  }
}

static Result<std::string> ResolvePeerId(const WorkerConfig& cfg) {
  if (!cfg.peer_id.empty()) return cfg.peer_id;
  if (cfg.state_dir.empty()) return RandomId("peer-");
  std::error_code ec;
  std::filesystem::create_directories(cfg.state_dir, ec);
  if (ec) return Unavailable("cannot create state directory " + cfg.state_dir + ": " + ec.message());
  const std::string path = cfg.state_dir + "/peer-id";
  if (auto existing = ReadFile(path, 256); existing.ok()) {
    std::string id = *existing;
    while (!id.empty() && (id.back() == '\n' || id.back() == ' ')) id.pop_back();
    if (!id.empty() && id.size() <= proto::kMaxIdBytes) return id;
  }
  std::string id = RandomId("peer-");
  SC_RETURN_IF_ERROR(WriteFileAtomic(path, id + "\n"));
  return id;
}

Status Worker::Start() {
  InitCrypto();
  Impl& m = *impl_;
  auto id = ResolvePeerId(m.config);
  if (!id.ok()) return id.status();
  m.peer_id = *id;
  if (m.config.cores != 0) m.slots = m.config.cores;
  else if (m.config.preferences) m.slots = m.config.preferences->MaxSlots(HardwareCores());
  else m.slots = HardwareCores();
  if (m.slots > 4096) return InvalidArgument("--cores above 4096");
  const TimePoint probe_created = SteadyClock::Instance().Now();
  if (m.config.preferences) {
    // Before any thread is started (TBB's, ZeroMQ's): they inherit the nice value.
    if (m.config.preferences->priority != Priority::kNormal) LowerProcessPriority();
    m.probe = m.config.probe ? m.config.probe : std::make_shared<SystemProbe>();
    m.policy.emplace(*m.config.preferences, m.slots);
  }
  m.decision = Decision{m.slots, proto::PeerState::kRunning, ""};
  m.gate = std::make_unique<ThreadGate>(m.slots);
  // The arena gets a slot per donated core, all for TBB's own threads; make sure the global pool
  // has that many.
  const auto current = tbb::global_control::active_value(tbb::global_control::max_allowed_parallelism);
  if (current < m.slots + 1)
    m.parallelism = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism, m.slots + 1);
  m.arena = std::make_unique<tbb::task_arena>(static_cast<int>(m.slots), 0);
  if (m.config.preferences && m.config.preferences->priority == Priority::kIdle)
    m.idle_observer = std::make_unique<IdleThreadObserver>(*m.arena);

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
        std::find(m.config.only_tasks.begin(), m.config.only_tasks.end(), t->Name()) == m.config.only_tasks.end())
      continue;
    proto::TaskInfo info;
    info.name = std::string(t->Name());
    info.version = t->Version();
    info.work_per_second = m.config.calibrate_seconds > 0 ? t->Calibrate(m.config.calibrate_seconds)
                                                          : t->DefaultWorkPerSecond();
    m.hello.tasks.push_back(std::move(info));
  }
  net::SocketConfig sc;
  auto sock = net::ConnectDealer(m.ctx, m.config.coordinator, sc);
  if (!sock.ok()) return sock.status();
  m.sock.emplace(std::move(*sock));
  // Results finished before a crash or restart and never acknowledged go out again after Hello.
  for (auto& [lease, r] : m.spool.Load()) m.unacked.emplace(lease, std::move(r));
  if (!m.unacked.empty()) SC_LOG(Info) << m.unacked.size() << " spooled results will be sent again";
  m.store.RemoveOlderThan(std::chrono::hours(24 * 14));
  m.LoadPreviousTotals();
  if (m.policy) {
    // The first sample covers start-up (calibration); a window shorter than this is mostly noise.
    const Duration min_window = std::min<Duration>(m.config.sample_interval, std::chrono::milliseconds(250));
    if (!m.config.probe) std::this_thread::sleep_until(probe_created + min_window);
    m.Sample(SteadyClock::Instance().Now(), /*force=*/true);
    SC_LOG(Info) << "owner preferences: at most " << m.slots << " cores, priority "
                 << PriorityName(m.config.preferences->priority) << "; now " << StateName(m.decision.state)
                 << (m.decision.reason.empty() ? "" : " (" + m.decision.reason + ")");
  }
  SC_LOG(Info) << "peer " << m.peer_id << " donating " << m.slots << " cores to " << m.config.coordinator;
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
