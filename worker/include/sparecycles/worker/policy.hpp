// The owner's donation preferences and the policy that turns machine readings into a decision:
// how many slots (cores) the worker may use right now, and whether it is running, throttled or
// paused, and why. The policy is a pure state machine: readings and time go in (both injected),
// a Decision comes out; no clock or OS reads inside. Not thread-safe (one loop owns it).
// Documented for owners in deploy/worker.conf and docs/architecture.md.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sparecycles/core/clock.hpp"
#include "sparecycles/core/protocol.hpp"
#include "sparecycles/core/status.hpp"
#include "sparecycles/worker/capacity.hpp"

namespace sparecycles::worker {

/// A moment in the owner's local time, for time windows.
struct LocalTime {
  int weekday = 0;  // 0 = Monday ... 6 = Sunday
  int minute = 0;   // minutes since local midnight, 0..1439
};
/// The current local time of this machine (the only wall-clock read, done by the caller).
LocalTime LocalTimeNow();

/// When the worker may run, per weekday. Text form: rules of days then times, e.g.
/// "mon-fri 18:00-08:00, sat-sun all" or "daily 22:00-06:00" or "mon,wed 09:00-12:00 14:00-17:00".
/// Days: mon tue wed thu fri sat sun, ranges "mon-fri", lists "sat,sun", "daily". Times:
/// "HH:MM-HH:MM" (end before start wraps past midnight *within that day*: "18:00-08:00" on a
/// Monday allows 00:00-08:00 and 18:00-24:00 of Monday), "all", "none". Days not named: no running.
/// Empty text: always.
class TimeWindows {
 public:
  static Result<TimeWindows> Parse(std::string_view text);
  bool always() const { return always_; }
  bool Allows(LocalTime t) const;
  const std::string& text() const { return text_; }

 private:
  bool always_ = true;
  std::string text_;
  std::array<std::vector<std::pair<int, int>>, 7> allowed_;  // per weekday: [start, end) minutes
};

enum class Priority : std::uint8_t {
  kIdle,    // nice 19 for the process, SCHED_IDLE for the compute threads (Linux)
  kLow,     // nice 19
  kNormal,  // unchanged
};
Result<Priority> ParsePriority(std::string_view text);
std::string_view PriorityName(Priority p);

/// What the owner allows. Every field has a default suited to a machine someone uses every day.
struct Preferences {
  unsigned max_cores = 0;            // cores donated at most. Default: 0 = use max_cores_percent
  double max_cores_percent = 100;    // share of this machine's cores (at least 1). Default: 100
  double pause_above_percent = 50;   // other programs' CPU use (% of the machine) above which the
                                     // worker pauses; >= 100 never pauses. Default: 50
  double resume_below_percent = 25;  // ... and below which it may resume. Default: 25
  Duration idle_time = std::chrono::seconds(30);  // other load must stay low this long before
                                                  // resuming (or taking cores back). Default: 30 s
  bool throttle = true;                // give up the cores other programs use. Default: true
  TimeWindows hours;                   // when the worker may run. Default: always
  std::uint64_t max_memory_bytes = 0;  // the worker's resident memory cap. Default: 0 = use percent
  double max_memory_percent = 50;      // ... as a share of the machine's memory. Default: 50
  double min_free_memory_percent = 5;  // pause while less memory than this is available. Default: 5
  bool pause_on_battery = true;        // pause while running on battery. Default: true
  Priority priority = Priority::kIdle;  // Default: idle (nice 19 + SCHED_IDLE)

  /// The most slots this machine may give: max_cores, or max_cores_percent of `cores` (>= 1).
  unsigned MaxSlots(unsigned cores) const;
  /// Parses "4" (a count), "50%" (a share) or "0" (all) into max_cores / max_cores_percent.
  Status SetMaxCores(std::string_view text);
  /// Parses "2G", "512M", "1073741824" or "50%" into max_memory_bytes / max_memory_percent.
  Status SetMaxMemory(std::string_view text);

  /// The preferences an owner sets by name (the worker's option names, as on the volunteer page
  /// and in deploy/worker.conf), in the order the page shows them.
  static const std::vector<std::string>& OwnerNames();
  /// Sets one of OwnerNames() from its text: cores, pause-above (a percentage or off/never/none),
  /// resume-below, idle-time (a duration), throttle (on/off), hours (TimeWindows), on-battery
  /// (pause/run), max-memory, min-free-memory. The one parser of the command line, the config
  /// file and the volunteer page. Errors: InvalidArgument "NAME: why" or "unknown preference
  /// 'NAME'", leaving the field unchanged. Call Reconcile() once all are set.
  Status Set(std::string_view name, std::string_view text);
  /// Keeps resume-below at most pause-above (after Set()).
  void Reconcile() { resume_below_percent = std::min(resume_below_percent, pause_above_percent); }
};

/// The worker's decision for now.
struct Decision {
  unsigned slots = 0;  // cores the worker may use now (0 when paused)
  proto::PeerState state = proto::PeerState::kRunning;
  std::string reason;  // why not running at full strength ("" when running)
  bool operator==(const Decision&) const = default;
};
std::string_view StateName(proto::PeerState s);

class Policy {
 public:
  Policy(Preferences prefs, unsigned max_slots);
  /// Feeds one sample taken at `now` (steady) and `local` (owner's wall time).
  Decision Evaluate(const Readings& r, TimePoint now, LocalTime local);
  const Preferences& preferences() const { return prefs_; }
  unsigned max_slots() const { return max_slots_; }
  /// The worker's memory cap in bytes for a machine with `memory_total` (0 = no cap).
  std::uint64_t MemoryCap(std::uint64_t memory_total) const;

 private:
  Preferences prefs_;
  unsigned max_slots_;
  // Load pause with hysteresis.
  bool load_paused_ = false;
  std::optional<TimePoint> quiet_since_;
  // Throttling: shrink at once, grow only after idle_time.
  bool have_slots_ = false;
  unsigned slots_ = 0;
  std::optional<TimePoint> grow_since_;
  unsigned grow_to_ = 0;
  // Memory pauses with hysteresis.
  bool over_cap_ = false, low_memory_ = false;
};

}  // namespace sparecycles::worker
