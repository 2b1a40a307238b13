// The worker's executor when it runs task packages: built-in tasks go to an InProcessExecutor,
// units of a package (UnitStart::package set) to a ProcessExecutor, and both share one slot
// budget. Owned by the worker's session; methods are for the loop thread (see executor.hpp).
#pragma once

#include <memory>

#include "executor.hpp"
#include "executor_in_process.hpp"
#include "executor_process.hpp"

namespace sparecycles::worker {

class CompositeExecutor final : public Executor {
 public:
  /// Both executors must have been built with the same `slots` (the budget's size) and an
  /// `on_finished` that wakes the same loop.
  CompositeExecutor(std::unique_ptr<InProcessExecutor> in_process,
                    std::unique_ptr<ProcessExecutor> process, unsigned slots);
  ~CompositeExecutor() override;

  void Start(UnitStart unit) override;
  void Cancel(std::uint64_t lease_id, const std::string& why, bool hand_back) override;
  void CancelAll(const std::string& why, bool hand_back) override;
  /// The budget rule: built-in units keep the whole budget at their gate (`slots`); package units
  /// get what they leave, `slots - built-in units held` (queued ones included), so together
  /// never more than `slots` run. Re-applied on every Start, SetSlots and TakeFinished.
  void SetSlots(unsigned slots) override;
  void SetShortUnits(bool short_units) override;
  std::size_t running() const override;
  std::vector<UnitView> Units() const override;
  std::vector<proto::Checkpoint> TakeCheckpoints(std::uint64_t* saved) override;
  std::vector<FinishedUnit> TakeFinished() override;
  void WaitIdle() override;

  InProcessExecutor& in_process() { return *in_process_; }
  ProcessExecutor& process() { return *process_; }

 private:
  void Rebalance();

  std::unique_ptr<InProcessExecutor> in_process_;
  std::unique_ptr<ProcessExecutor> process_;
  unsigned slots_;
  unsigned in_process_slots_ = ~0u, process_slots_ = ~0u;  // what each was told last
};

}  // namespace sparecycles::worker
