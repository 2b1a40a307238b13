// The thread gate: how many threads may run kernel code at once, enforced where kernels call
// UnitContext::Progress(). A thread passing the gate holds a token that its next Progress() call
// renews; a token not renewed within `expiry` lapses (its thread went idle or left the unit), so
// a thread blocked at the gate can take it. Blocked threads wait on a condition variable: a paused
// unit waits in place, nothing is killed. Thread-safe.
#pragma once

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "sparecycles/core/clock.hpp"

namespace sparecycles::worker {

class ThreadGate {
 public:
  explicit ThreadGate(unsigned allowed, Duration expiry = std::chrono::milliseconds(250))
      : allowed_(allowed), expiry_(expiry) {}

  void SetAllowed(unsigned n) {
    {
      std::lock_guard lock(mu_);
      if (n < allowed_) ++closings_;
      allowed_ = n;
    }
    cv_.notify_all();
  }
  unsigned allowed() const {
    std::lock_guard lock(mu_);
    return allowed_;
  }
  /// Counts how often the gate narrowed: a kernel checkpoints before it may be stopped.
  std::uint64_t closings() const {
    std::lock_guard lock(mu_);
    return closings_;
  }
  /// Threads blocked at the gate right now.
  unsigned waiting() const {
    std::lock_guard lock(mu_);
    return waiting_;
  }
  void Wake() { cv_.notify_all(); }

  /// Returns true when the calling thread may go on; false when `stop()` became true first.
  /// `on_wait(bool)` is told when this thread starts and stops waiting.
  template <class Stop, class OnWait>
  bool Pass(const Stop& stop, const OnWait& on_wait) {
    const auto self = std::this_thread::get_id();
    std::unique_lock lock(mu_);
    bool waited = false;
    for (;;) {
      if (stop()) {
        holders_.erase(self);
        if (waited) on_wait(false);
        return false;
      }
      const TimePoint now = SteadyClock::Instance().Now();
      std::erase_if(holders_,
                    [&](const auto& h) { return h.first != self && now - h.second > expiry_; });
      auto it = holders_.find(self);
      if (it != holders_.end()) {
        if (holders_.size() <= allowed_) {
          it->second = now;
          break;
        }
        holders_.erase(it);  // over the limit: this thread gives its token up and waits
        cv_.notify_all();
      } else if (holders_.size() < allowed_) {
        holders_.emplace(self, now);
        break;
      }
      if (!waited) on_wait(true), waited = true;
      ++waiting_;
      cv_.wait_for(lock, expiry_ / 2);
      --waiting_;
    }
    if (waited) on_wait(false);
    return true;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  unsigned allowed_;
  const Duration expiry_;
  std::uint64_t closings_ = 0;
  unsigned waiting_ = 0;
  std::unordered_map<std::thread::id, TimePoint> holders_;
};

}  // namespace sparecycles::worker
