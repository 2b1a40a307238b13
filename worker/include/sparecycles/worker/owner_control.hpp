// What the machine's owner changes while the worker runs (the volunteer page): pause/resume and
// new preferences, handed to the worker's loop, and the latest status the loop publishes back.
// Shared by the worker (loop thread) and the page (HTTP threads) through a shared_ptr; every
// method is thread-safe (one small mutex; the loop only takes it when something changed or once
// per status write).
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>

#include "sparecycles/worker/policy.hpp"
#include "sparecycles/worker/status.hpp"

namespace sparecycles::worker {

class OwnerControl {
 public:
  // ---- the page (any thread)
  /// Pauses (units wait in place; after --pause-limit they are handed back) or resumes.
  void SetPaused(bool paused);
  bool paused() const { return paused_.load(); }
  /// New preferences, applied at the loop's next turn (the arena's size stays as started).
  void SetPreferences(Preferences prefs);
  /// The latest status the loop published, with counters kept here. Null before the first.
  struct View {
    StatusSnapshot status;
    std::uint64_t pauses = 0;   // times the worker went into the paused state
    double paused_seconds = 0;  // time spent paused, this run
    bool owner_paused = false;
  };
  std::optional<View> Latest() const;

  // ---- the worker's loop thread
  /// True once after any change (the loop then samples at once).
  bool TakeChanged() {
    return changed_.load(std::memory_order_relaxed) && changed_.exchange(false);
  }
  std::optional<Preferences> TakePreferences();
  /// Overrides the policy's decision while the owner paused the worker.
  void Apply(Decision& d) const;
  void Publish(const StatusSnapshot& s);

 private:
  std::atomic<bool> paused_{false}, changed_{false};
  mutable std::mutex mu_;
  std::optional<Preferences> pending_;
  std::optional<View> latest_;
  double paused_since_ = -1;  // wall seconds, while the published state is paused
};

}  // namespace sparecycles::worker
