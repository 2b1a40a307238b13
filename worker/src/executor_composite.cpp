#include "executor_composite.hpp"

#include <algorithm>

namespace sparecycles::worker {

CompositeExecutor::CompositeExecutor(std::unique_ptr<InProcessExecutor> in_process,
                                     std::unique_ptr<ProcessExecutor> process, unsigned slots)
    : in_process_(std::move(in_process)), process_(std::move(process)), slots_(slots) {
  Rebalance();
}

CompositeExecutor::~CompositeExecutor() {
  // Package processes first: they are ended by group at once; built-in units finish in place.
  process_.reset();
  in_process_.reset();
}

void CompositeExecutor::Rebalance() {
  // Called for every unit: only a changed budget reaches the executors (their SetSlots take locks
  // and wake threads, which trivial built-in units cannot afford per unit).
  const auto held = static_cast<unsigned>(std::min<std::size_t>(in_process_->running(), slots_));
  if (slots_ != in_process_slots_) {
    in_process_slots_ = slots_;
    in_process_->SetSlots(slots_);
  }
  if (slots_ - held != process_slots_) {
    process_slots_ = slots_ - held;
    process_->SetSlots(process_slots_);
  }
}

void CompositeExecutor::Start(UnitStart unit) {
  if (unit.package != nullptr) {
    process_->Start(std::move(unit));
  } else {
    in_process_->Start(std::move(unit));
  }
  Rebalance();
}

void CompositeExecutor::Cancel(std::uint64_t lease_id, const std::string& why, bool hand_back) {
  // Each executor ignores ids it does not run (executor.hpp).
  in_process_->Cancel(lease_id, why, hand_back);
  process_->Cancel(lease_id, why, hand_back);
}

void CompositeExecutor::CancelAll(const std::string& why, bool hand_back) {
  process_->CancelAll(why, hand_back);
  in_process_->CancelAll(why, hand_back);
}

void CompositeExecutor::SetSlots(unsigned slots) {
  slots_ = slots;
  Rebalance();
}

void CompositeExecutor::SetShortUnits(bool short_units) {
  in_process_->SetShortUnits(short_units);
  process_->SetShortUnits(short_units);
}

std::size_t CompositeExecutor::running() const {
  return in_process_->running() + process_->running();
}

std::vector<UnitView> CompositeExecutor::Units() const {
  std::vector<UnitView> out = in_process_->Units();
  std::vector<UnitView> more = process_->Units();
  out.insert(out.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
  return out;
}

std::vector<proto::Checkpoint> CompositeExecutor::TakeCheckpoints(std::uint64_t* saved) {
  std::vector<proto::Checkpoint> out = in_process_->TakeCheckpoints(saved);
  std::vector<proto::Checkpoint> more = process_->TakeCheckpoints(saved);
  out.insert(out.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
  return out;
}

std::vector<FinishedUnit> CompositeExecutor::TakeFinished() {
  std::vector<FinishedUnit> out = in_process_->TakeFinished();
  std::vector<FinishedUnit> more = process_->TakeFinished();
  out.insert(out.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
  Rebalance();
  return out;
}

void CompositeExecutor::WaitIdle() {
  process_->WaitIdle();
  in_process_->WaitIdle();
}

}  // namespace sparecycles::worker
