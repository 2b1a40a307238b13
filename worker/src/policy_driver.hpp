// Applies the owner's preferences while the worker runs: samples the machine (CapacityProbe) every
// sample interval, lets the pure Policy decide how many cores the worker may use, logs changes and
// says when a pause has lasted long enough to hand units back. Owned by the worker's session and
// used from its loop thread only: not thread-safe.
#pragma once

#include <functional>
#include <memory>
#include <optional>

#include "sparecycles/core/clock.hpp"
#include "sparecycles/worker/capacity.hpp"
#include "sparecycles/worker/owner_control.hpp"
#include "sparecycles/worker/policy.hpp"

namespace sparecycles::worker {

class PolicyDriver {
 public:
  /// `max_slots`: the most cores the worker uses (its executor's size). `local_time` null =
  /// LocalTimeNow.
  PolicyDriver(const Preferences& preferences, unsigned max_slots,
               std::shared_ptr<CapacityProbe> probe, std::function<LocalTime()> local_time,
               Duration sample_interval, Duration pause_limit);

  struct Step {
    bool changed = false;        // state or slots differ from the previous decision
    bool hand_back_due = false;  // paused for pause_limit and units not handed back this pause yet
  };
  /// Samples when the interval has passed (or `force`), and decides again.
  Step Sample(TimePoint now, bool force);
  /// The volunteer page: preferences changed live, and the owner's own pause.
  void SetControl(std::shared_ptr<OwnerControl> control) { control_ = std::move(control); }
  /// The units were handed back; not again until the next pause.
  void MarkHandedBack() { handed_back_this_pause_ = true; }

  const Decision& decision() const { return decision_; }
  const Readings& readings() const { return readings_; }
  std::optional<TimePoint> paused_since() const { return paused_since_; }
  /// Memory the units may use: what is available, within the owner's cap.
  std::uint64_t MemoryForUnits(std::uint64_t fallback) const;

 private:
  Policy policy_;
  const unsigned max_slots_;
  const std::shared_ptr<CapacityProbe> probe_;
  const std::function<LocalTime()> local_time_;
  const Duration sample_interval_, pause_limit_;
  Readings readings_;
  Decision decision_;
  TimePoint last_sample_{};
  std::optional<TimePoint> paused_since_;
  bool handed_back_this_pause_ = false;
  std::shared_ptr<OwnerControl> control_;
};

}  // namespace sparecycles::worker
