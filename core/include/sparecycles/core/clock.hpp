// Time as the scheduler sees it: a monotonic clock behind an interface so tests inject time.
// SteadyClock is thread-safe; FakeClock is for single-threaded tests.
#pragma once

#include <chrono>
#include <cstdint>

namespace sparecycles {

using Duration = std::chrono::nanoseconds;
using TimePoint = std::chrono::time_point<std::chrono::steady_clock, Duration>;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimePoint Now() const = 0;
};

class SteadyClock final : public Clock {
 public:
  TimePoint Now() const override { return std::chrono::steady_clock::now(); }
  static SteadyClock& Instance() {
    static SteadyClock clock;
    return clock;
  }
};

class FakeClock final : public Clock {
 public:
  TimePoint Now() const override { return now_; }
  void Advance(Duration d) { now_ += d; }
  void Set(TimePoint t) { now_ = t; }

 private:
  TimePoint now_{std::chrono::seconds(1000)};
};

inline double Seconds(Duration d) { return std::chrono::duration<double>(d).count(); }
inline Duration FromSeconds(double s) {
  return std::chrono::duration_cast<Duration>(std::chrono::duration<double>(s));
}
inline std::int64_t ToMillis(Duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

/// Wall-clock seconds since the Unix epoch, for records shown to people (never for scheduling).
double WallSeconds();

}  // namespace sparecycles
