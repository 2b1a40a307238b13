// The executor that runs units inside the worker process: one tbb::task_arena sized to the donated
// cores, a thread gate that throttles or pauses kernels in place at their Progress() calls, and
// checkpoints saved to the local store as kernels make them. Owned by the worker's session; its
// methods are for the loop thread (see executor.hpp), the arena's threads only run kernels.
#pragma once

#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/task_scheduler_observer.h>

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "checkpoint_store.hpp"
#include "executor.hpp"
#include "gate.hpp"
#include "sparecycles/core/clock.hpp"
#include "sparecycles/tasks/task.hpp"

namespace sparecycles::worker {

class UnitCtx;

struct InProcessExecutorConfig {
  unsigned slots = 1;          // the arena's size: the most units running kernel code at once
  bool idle_priority = false;  // arena threads run at SCHED_IDLE and nice 19
  Duration checkpoint_interval = std::chrono::seconds(10);  // how often units save state
  const CheckpointStore* store = nullptr;  // null = checkpoints are not kept locally
  const Clock* clock =
      &SteadyClock::Instance();  // for checkpoint intervals (read by arena threads)
};

class InProcessExecutor final : public Executor {
 public:
  /// `on_finished` is called from an arena thread when the first of a batch of units finishes.
  InProcessExecutor(InProcessExecutorConfig config, const tasks::Registry& registry,
                    std::function<void()> on_finished);
  ~InProcessExecutor() override;  // waits for running units (WaitIdle)

  void Start(UnitStart unit) override;
  void Cancel(std::uint64_t lease_id, const std::string& why, bool hand_back) override;
  void CancelAll(const std::string& why, bool hand_back) override;
  void SetSlots(unsigned slots) override;
  void SetShortUnits(bool short_units) override;
  std::size_t running() const override { return running_.size(); }
  std::vector<UnitView> Units() const override;
  std::vector<proto::Checkpoint> TakeCheckpoints(std::uint64_t* saved) override;
  std::vector<FinishedUnit> TakeFinished() override;
  void WaitIdle() override;

 private:
  struct Running {
    proto::Lease lease;
    std::shared_ptr<UnitCtx> ctx;
  };
  void Execute(const proto::Lease& lease, UnitCtx& uctx);  // on an arena thread; never throws

  const InProcessExecutorConfig config_;
  const tasks::Registry& registry_;
  const std::function<void()> on_finished_;
  std::unique_ptr<tbb::global_control> parallelism_;
  std::unique_ptr<tbb::task_arena> arena_;
  std::unique_ptr<tbb::task_scheduler_observer> idle_observer_;  // after arena_: destroyed first
  ThreadGate gate_;
  std::atomic<bool> short_units_{false};                // read by arena threads
  std::unordered_map<std::uint64_t, Running> running_;  // loop thread only

  std::mutex done_mu_;
  std::condition_variable done_cv_;
  std::vector<proto::ResultMsg> done_;  // completions from arena threads
  int active_units_ = 0;                // guarded by done_mu_
};

}  // namespace sparecycles::worker
