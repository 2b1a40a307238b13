#include "executor_in_process.hpp"

#include <sched.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>

#include "sparecycles/core/hash.hpp"
#include "sparecycles/core/log.hpp"

namespace sparecycles::worker {

// What a kernel sees while it runs: progress goes to heartbeats and the status file; Progress()
// is where the unit waits while the worker is paused or throttled (the thread gate) and where it
// stops when cancelled or handed back; checkpoints go to the local store at once and are queued
// for upload by the loop thread.
class UnitCtx final : public tasks::UnitContext {
 public:
  UnitCtx(proto::Lease lease, ThreadGate* gate, const CheckpointStore* store,
          std::optional<std::string> resume, float resumed_from, Duration checkpoint_interval,
          const Clock& clock)
      : clock_(clock),
        lease_(std::move(lease)),
        gate_(gate),
        store_(store),
        resume_(std::move(resume)),
        resumed_from_(resumed_from),
        interval_(checkpoint_interval),
        last_checkpoint_(clock.Now().time_since_epoch().count()),
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
    const auto now = clock_.Now().time_since_epoch().count();
    if (now - last_checkpoint_.load(std::memory_order_relaxed) >= interval_.count()) return true;
    // The gate narrowed since the last checkpoint: this unit may be about to wait, or be handed
    // back; save first.
    return gate_ != nullptr && gate_->closings() != closings_seen_.load(std::memory_order_relaxed);
  }
  void Checkpoint(std::string_view state) override {
    if (state.size() > proto::kMaxCheckpointBytes) {
      if (!too_big_logged_.exchange(true))
        SC_LOG(Warn) << "unit " << lease_.job_id << "/" << lease_.unit_index << ": a checkpoint of "
                     << state.size() << " bytes is above the limit; not saved";
      return;
    }
    std::lock_guard lock(mu_);
    last_checkpoint_.store(clock_.Now().time_since_epoch().count(), std::memory_order_relaxed);
    if (gate_ != nullptr) closings_seen_.store(gate_->closings(), std::memory_order_relaxed);
    const float f = progress();
    if (store_ != nullptr) store_->Save(lease_, f, state);
    upload_ =
        proto::Checkpoint{lease_.lease_id, lease_.job_id, lease_.unit_index, f, std::string(state)};
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
  /// The progress the unit resumed at: the stored figure, else its first report (< 0 = not
  /// resumed).
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

  const Clock& clock_;
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

namespace {

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
  explicit IdleThreadObserver(tbb::task_arena& arena) : tbb::task_scheduler_observer(arena) {
    observe(true);
  }
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

}  // namespace

InProcessExecutor::InProcessExecutor(InProcessExecutorConfig config,
                                     const tasks::Registry& registry,
                                     std::function<void()> on_finished)
    : config_(config),
      registry_(registry),
      on_finished_(std::move(on_finished)),
      gate_(config.slots) {
  // The arena gets a slot per donated core, all for TBB's own threads; make sure the global pool
  // has that many.
  const auto current =
      tbb::global_control::active_value(tbb::global_control::max_allowed_parallelism);
  if (current < config_.slots + 1)
    parallelism_ = std::make_unique<tbb::global_control>(
        tbb::global_control::max_allowed_parallelism, config_.slots + 1);
  arena_ = std::make_unique<tbb::task_arena>(static_cast<int>(config_.slots), 0);
  if (config_.idle_priority) idle_observer_ = std::make_unique<IdleThreadObserver>(*arena_);
}

InProcessExecutor::~InProcessExecutor() { WaitIdle(); }

void InProcessExecutor::Start(UnitStart unit) {
  auto uctx =
      std::make_shared<UnitCtx>(unit.lease, &gate_, config_.store, std::move(unit.resume),
                                unit.resumed_from, config_.checkpoint_interval, *config_.clock);
  const std::uint64_t id = unit.lease.lease_id;
  running_.emplace(id, Running{unit.lease, uctx});
  {
    std::lock_guard lock(done_mu_);
    ++active_units_;
  }
  arena_->enqueue([this, lease = std::move(unit.lease), uctx] { Execute(lease, *uctx); });
}

void InProcessExecutor::Cancel(std::uint64_t lease_id, const std::string& why, bool hand_back) {
  if (auto r = running_.find(lease_id); r != running_.end()) r->second.ctx->Cancel(why, hand_back);
}

void InProcessExecutor::CancelAll(const std::string& why, bool hand_back) {
  for (auto& [id, r] : running_) r.ctx->Cancel(why, hand_back);
}

void InProcessExecutor::SetSlots(unsigned slots) { gate_.SetAllowed(slots); }

void InProcessExecutor::SetShortUnits(bool short_units) {
  short_units_.store(short_units, std::memory_order_relaxed);
}

std::vector<UnitView> InProcessExecutor::Units() const {
  std::vector<UnitView> out;
  out.reserve(running_.size());
  for (const auto& [id, r] : running_) {
    UnitView u;
    u.lease_id = id;
    u.job_id = r.lease.job_id;
    u.unit_index = r.lease.unit_index;
    u.task = r.lease.task;
    u.progress = r.ctx->progress();
    u.resumed_from = r.ctx->resumed_from();
    u.started = r.ctx->started();
    u.waiting = r.ctx->waiting();
    out.push_back(std::move(u));
  }
  return out;
}

std::vector<proto::Checkpoint> InProcessExecutor::TakeCheckpoints(std::uint64_t* saved) {
  std::vector<proto::Checkpoint> out;
  for (auto& [id, r] : running_) {
    if (auto cp = r.ctx->TakeUpload()) out.push_back(std::move(*cp));
    *saved += r.ctx->TakeSavedCount();
  }
  return out;
}

std::vector<FinishedUnit> InProcessExecutor::TakeFinished() {
  std::vector<proto::ResultMsg> batch;
  {
    std::lock_guard lock(done_mu_);
    batch.swap(done_);
  }
  std::vector<FinishedUnit> out;
  out.reserve(batch.size());
  for (auto& r : batch) {
    FinishedUnit f;
    if (auto it = running_.find(r.lease_id); it != running_.end()) {
      UnitCtx& ctx = *it->second.ctx;
      f.handed_back = ctx.handed_back();
      f.stopped_by_us = ctx.StopRequested() && !f.handed_back;
      f.resumed = ctx.resumed();
      f.resumed_from = ctx.resumed_from();
      f.checkpoint = ctx.TakeUpload();
      f.checkpoints_saved = ctx.TakeSavedCount();
      f.lease = std::move(it->second.lease);
      running_.erase(it);
    }
    f.result = std::move(r);
    out.push_back(std::move(f));
  }
  return out;
}

void InProcessExecutor::WaitIdle() {
  std::unique_lock lock(done_mu_);
  done_cv_.wait(lock, [&] { return active_units_ == 0; });
}

// Runs on an arena thread. Never throws: a kernel's exception fails its unit, not the worker.
void InProcessExecutor::Execute(const proto::Lease& lease, UnitCtx& uctx) {
  proto::ResultMsg r;
  r.lease_id = lease.lease_id;
  r.job_id = lease.job_id;
  r.unit_index = lease.unit_index;
  uctx.MarkStarted();
  const auto t0 = std::chrono::steady_clock::now();
  const bool measure_cpu = !short_units_.load(std::memory_order_relaxed);
  const double cpu0 = measure_cpu ? ProcessCpuSeconds() : 0;
  try {
    const tasks::Task* task = registry_.Find(lease.task, lease.task_version);
    // Cancelled or handed back while it waited in the arena's queue.
    if (uctx.StopRequested()) throw tasks::UnitCancelled{uctx.CancelReason()};
    if (task == nullptr) {
      r.outcome = proto::UnitOutcome::kFailed;
      r.error =
          "this worker cannot run task " + lease.task + " v" + std::to_string(lease.task_version);
    } else {
      auto out = task->Execute(lease.unit, uctx);
      if (out.ok() && out->size() > proto::kMaxResultBytes) {
        r.outcome = proto::UnitOutcome::kFailed;
        r.error = "the unit's result is " + std::to_string(out->size()) +
                  " bytes, above the limit of " + std::to_string(proto::kMaxResultBytes);
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
  r.cpu_seconds = measure_cpu
                      ? std::max(0.0, ProcessCpuSeconds() - cpu0) / std::max(1u, config_.slots)
                      : r.wall_seconds;
  bool first = false;
  {
    std::lock_guard lock(done_mu_);
    first = done_.empty();
    done_.push_back(std::move(r));
    --active_units_;
  }
  done_cv_.notify_all();
  // The loop thread takes every completion at once: one wake-up per batch, not per unit.
  if (first) on_finished_();
}

}  // namespace sparecycles::worker
