// Helpers for task authors: even range splitting, unit-count checks, thread-safe progress
// metering and checkpoint plumbing. Header-only (so a plugin built by another compiler uses its
// own copy); every function is stateless, ProgressMeter is safe to feed from many TBB threads.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "sparecycles/core/status.hpp"
#include "sparecycles/tasks/task.hpp"

namespace sparecycles::tasks {

/// The i-th of n boundaries that cut [lo, hi) into n nearly equal contiguous pieces
/// (i = 0 gives lo, i = n gives hi). 128-bit arithmetic, so huge ranges cannot overflow.
inline std::uint64_t SplitPoint(std::uint64_t lo, std::uint64_t hi, std::uint64_t i,
                                std::uint64_t n) {
  __extension__ typedef unsigned __int128 U128;
  return lo + static_cast<std::uint64_t>(static_cast<U128>(hi - lo) * i / n);
}

/// [lo, hi) cut into `n` contiguous pieces that cover it exactly once.
inline std::vector<std::pair<std::uint64_t, std::uint64_t>> SplitRange(std::uint64_t lo,
                                                                       std::uint64_t hi,
                                                                       std::uint64_t n) {
  std::vector<std::pair<std::uint64_t, std::uint64_t>> out;
  out.reserve(static_cast<std::size_t>(n));
  for (std::uint64_t i = 0; i < n; ++i)
    out.emplace_back(SplitPoint(lo, hi, i, n), SplitPoint(lo, hi, i + 1, n));
  return out;
}

/// The standard check of Split()'s unit count.
inline Status CheckUnitCount(std::string_view task, std::uint64_t units, std::uint64_t max_units) {
  if (units < 1 || units > max_units)
    return InvalidArgument(std::string(task) + ": cannot split into " + std::to_string(units) +
                           " units (must be between 1 and " + std::to_string(max_units) + ")");
  return OkStatus();
}

/// Counts work done from many threads and reports the fraction to the unit's context at most
/// every `1/steps` of the total. Add() may throw UnitCancelled (from UnitContext::Progress).
class ProgressMeter {
 public:
  ProgressMeter(UnitContext& ctx, std::uint64_t total, std::uint64_t steps = 200)
      : ctx_(ctx),
        total_(std::max<std::uint64_t>(total, 1)),
        stride_(std::max<std::uint64_t>(total_ / steps, 1)) {}
  void Add(std::uint64_t done) {
    const std::uint64_t before = done_.fetch_add(done, std::memory_order_relaxed);
    if ((before + done) / stride_ != before / stride_)
      ctx_.Progress(
          std::min(1.0, static_cast<double>(before + done) / static_cast<double>(total_)));
  }
  std::uint64_t done() const { return done_.load(std::memory_order_relaxed); }

 private:
  UnitContext& ctx_;
  std::uint64_t total_, stride_;
  std::atomic<std::uint64_t> done_{0};
};

/// Saves `make_state()` as the unit's checkpoint when the worker asks for one. Cheap to call
/// often: it only builds the state when a checkpoint is due.
template <class F>
void CheckpointIfDue(UnitContext& ctx, F&& make_state) {
  if (ctx.CheckpointDue()) ctx.Checkpoint(std::forward<F>(make_state)());
}

}  // namespace sparecycles::tasks
