#include "policy_driver.hpp"

#include "sparecycles/core/log.hpp"
#include "sparecycles/worker/worker.hpp"  // HardwareCores

namespace sparecycles::worker {

PolicyDriver::PolicyDriver(const Preferences& preferences, unsigned max_slots,
                           std::shared_ptr<CapacityProbe> probe,
                           std::function<LocalTime()> local_time, Duration sample_interval,
                           Duration pause_limit)
    : policy_(preferences, max_slots),
      max_slots_(max_slots),
      probe_(std::move(probe)),
      local_time_(std::move(local_time)),
      sample_interval_(sample_interval),
      pause_limit_(pause_limit),
      decision_{max_slots, proto::PeerState::kRunning, ""} {}

PolicyDriver::Step PolicyDriver::Sample(TimePoint now, bool force) {
  Step step;
  if (!force && now - last_sample_ < sample_interval_) return step;
  last_sample_ = now;
  readings_ = probe_->Sample();
  if (control_)  // volunteer page: preferences changed live (the arena keeps its size)
    if (auto p = control_->TakePreferences())
      policy_ = Policy(*p, std::min(max_slots_, p->MaxSlots(HardwareCores())));
  Decision d = policy_.Evaluate(readings_, now, local_time_ ? local_time_() : LocalTimeNow());
  if (control_) control_->Apply(d);  // volunteer page: paused by the owner
  if (d.state != decision_.state || d.slots != decision_.slots) {
    if (d.state == proto::PeerState::kPaused)
      SC_LOG(Info) << "paused: " << d.reason;
    else if (d.state == proto::PeerState::kThrottled)
      SC_LOG(Info) << "throttled to " << d.slots << " of " << max_slots_ << " cores: " << d.reason;
    else
      SC_LOG(Info) << "running on " << d.slots << " cores";
    if (d.state == proto::PeerState::kPaused) {
      if (!paused_since_) paused_since_ = now;
    } else {
      paused_since_.reset();
      handed_back_this_pause_ = false;
    }
    step.changed = true;
  }
  decision_ = d;  // when unchanged, the reason's figures may still have changed
  step.hand_back_due =
      paused_since_ && !handed_back_this_pause_ && now - *paused_since_ >= pause_limit_;
  return step;
}

std::uint64_t PolicyDriver::MemoryForUnits(std::uint64_t fallback) const {
  if (readings_.memory_total == 0) return fallback;
  std::uint64_t m = readings_.memory_available;
  const std::uint64_t cap = policy_.MemoryCap(readings_.memory_total);
  if (cap > 0) m = std::min(m, cap > readings_.own_memory ? cap - readings_.own_memory : 0);
  return m;
}

}  // namespace sparecycles::worker
