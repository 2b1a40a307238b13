#include "sparecycles/worker/owner_control.hpp"

#include "sparecycles/core/clock.hpp"

namespace sparecycles::worker {

void OwnerControl::SetPaused(bool paused) {
  paused_.store(paused);
  changed_.store(true);
}

void OwnerControl::SetPreferences(Preferences prefs) {
  {
    std::lock_guard lock(mu_);
    pending_ = std::move(prefs);
  }
  changed_.store(true);
}

std::optional<Preferences> OwnerControl::TakePreferences() {
  std::lock_guard lock(mu_);
  std::optional<Preferences> p = std::move(pending_);
  pending_.reset();
  return p;
}

void OwnerControl::Apply(Decision& d) const {
  if (!paused_.load(std::memory_order_relaxed)) return;
  d.slots = 0;
  d.state = proto::PeerState::kPaused;
  d.reason = "paused by the owner";
}

void OwnerControl::Publish(const StatusSnapshot& s) {
  std::lock_guard lock(mu_);
  View v = latest_.value_or(View{});
  const bool was_paused = latest_ && latest_->status.state == "paused";
  const bool is_paused = s.state == "paused";
  const double now = s.updated_at > 0 ? s.updated_at : WallSeconds();
  if (is_paused && !was_paused) {
    ++v.pauses;
    paused_since_ = now;
  }
  if (was_paused && paused_since_ >= 0) {
    v.paused_seconds += std::max(0.0, now - paused_since_);
    paused_since_ = is_paused ? now : -1;
  }
  v.status = s;
  v.owner_paused = paused_.load();
  latest_ = std::move(v);
}

std::optional<OwnerControl::View> OwnerControl::Latest() const {
  std::lock_guard lock(mu_);
  return latest_;
}

}  // namespace sparecycles::worker
