#include "sparecycles/worker/policy.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <ctime>

#include "sparecycles/core/options.hpp"

namespace sparecycles::worker {
namespace {

constexpr std::array<std::string_view, 7> kDays = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};

int DayIndex(std::string_view d) {
  for (int i = 0; i < 7; ++i)
    if (kDays[i] == d) return i;
  return -1;
}

// "HH:MM" -> minutes, or -1.
int ParseClock(std::string_view s) {
  int h = 0, m = 0;
  if (s.size() != 5 || s[2] != ':' || !std::isdigit(static_cast<unsigned char>(s[0])) ||
      !std::isdigit(static_cast<unsigned char>(s[1])) ||
      !std::isdigit(static_cast<unsigned char>(s[3])) ||
      !std::isdigit(static_cast<unsigned char>(s[4])))
    return -1;
  h = (s[0] - '0') * 10 + (s[1] - '0');
  m = (s[3] - '0') * 10 + (s[4] - '0');
  if (h > 24 || m > 59 || (h == 24 && m != 0)) return -1;
  return h * 60 + m;
}

std::string Percent(double fraction) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.0f%%", fraction * 100);
  return buf;
}
std::string OneDecimal(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f", v);
  return buf;
}
std::string Mib(std::uint64_t bytes) { return std::to_string(bytes >> 20) + " MiB"; }

Result<double> ParsePercent(std::string_view text) {
  if (text.empty() || text.back() != '%')
    return InvalidArgument("expected a percentage such as 50%");
  char* end = nullptr;
  const std::string num(text.substr(0, text.size() - 1));
  const double v = std::strtod(num.c_str(), &end);
  if (end == num.c_str() || *end != '\0' || !(v >= 0 && v <= 100))
    return InvalidArgument("percentage out of 0..100%");
  return v;
}

}  // namespace

LocalTime LocalTimeNow() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  return LocalTime{(tm.tm_wday + 6) % 7, tm.tm_hour * 60 + tm.tm_min};
}

Result<TimeWindows> TimeWindows::Parse(std::string_view text) {
  TimeWindows w;
  w.text_ = std::string(text);
  // Tokens are separated by blanks, commas and semicolons.
  std::vector<std::string> tokens;
  std::string cur;
  for (char c : text) {
    if (c == ' ' || c == '\t' || c == ',' || c == ';') {
      if (!cur.empty()) tokens.push_back(cur), cur.clear();
    } else {
      cur += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
  }
  if (!cur.empty()) tokens.push_back(cur);
  if (tokens.empty()) return w;
  w.always_ = false;
  std::array<bool, 7> days{};
  bool have_days = false, last_was_time = false;
  auto bad = [&](const std::string& why) {
    return InvalidArgument("hours '" + std::string(text) + "': " + why);
  };
  for (const std::string& t : tokens) {
    const bool is_time = t == "all" || t == "none" || (t.size() == 11 && t[5] == '-');
    if (!is_time) {
      if (last_was_time) days.fill(false), have_days = false;
      last_was_time = false;
      if (t == "daily" || t == "every" || t == "*") {
        days.fill(true);
      } else if (auto dash = t.find('-'); dash != std::string::npos) {
        const int a = DayIndex(t.substr(0, dash)), b = DayIndex(t.substr(dash + 1));
        if (a < 0 || b < 0) return bad("unknown day range '" + t + "'");
        for (int d = a;; d = (d + 1) % 7) {
          days[d] = true;
          if (d == b) break;
        }
      } else {
        const int d = DayIndex(t);
        if (d < 0)
          return bad("unknown day or time '" + t +
                     "' (days: mon..sun, ranges mon-fri; times HH:MM-HH:MM, all, none)");
        days[d] = true;
      }
      have_days = true;
      continue;
    }
    if (!have_days) days.fill(true), have_days = true;  // a time alone means every day
    last_was_time = true;
    std::pair<int, int> span[2] = {{0, 0}, {0, 0}};
    int spans = 0;
    if (t == "all") {
      span[spans++] = {0, 1440};
    } else if (t != "none") {
      const int a = ParseClock(t.substr(0, 5)), b = ParseClock(t.substr(6));
      if (a < 0 || b < 0) return bad("bad time range '" + t + "'");
      if (a < b)
        span[spans++] = {a, b};
      else if (a > b)
        span[spans++] = {a, 1440}, span[spans++] = {0, b};
      else
        span[spans++] = {0, 1440};  // "08:00-08:00": the whole day
    }
    for (int d = 0; d < 7; ++d)
      if (days[d])
        for (int i = 0; i < spans; ++i) w.allowed_[d].push_back(span[i]);
  }
  if (!last_was_time)
    return bad("days without a time at the end (add e.g. 'all' or '18:00-08:00')");
  return w;
}

bool TimeWindows::Allows(LocalTime t) const {
  if (always_) return true;
  if (t.weekday < 0 || t.weekday > 6) return false;
  for (auto [a, b] : allowed_[t.weekday])
    if (t.minute >= a && t.minute < b) return true;
  return false;
}

Result<Priority> ParsePriority(std::string_view text) {
  if (text == "idle") return Priority::kIdle;
  if (text == "low") return Priority::kLow;
  if (text == "normal") return Priority::kNormal;
  return InvalidArgument("priority must be idle, low or normal");
}

std::string_view PriorityName(Priority p) {
  switch (p) {
    case Priority::kIdle:
      return "idle";
    case Priority::kLow:
      return "low";
    case Priority::kNormal:
      return "normal";
  }
  return "?";
}

std::string_view StateName(proto::PeerState s) {
  switch (s) {
    case proto::PeerState::kRunning:
      return "running";
    case proto::PeerState::kThrottled:
      return "throttled";
    case proto::PeerState::kPaused:
      return "paused";
  }
  return "?";
}

unsigned Preferences::MaxSlots(unsigned cores) const {
  if (max_cores > 0) return max_cores;
  const auto n = static_cast<unsigned>(std::floor(cores * max_cores_percent / 100.0 + 1e-9));
  return std::max(1u, n);
}

Status Preferences::SetMaxCores(std::string_view text) {
  if (!text.empty() && text.back() == '%') {
    SC_ASSIGN_OR_RETURN(double pct, ParsePercent(text));
    max_cores = 0;
    max_cores_percent = pct;
    return OkStatus();
  }
  auto n = ParseInt(text);
  if (!n.ok() || *n < 0 || *n > proto::kMaxCores)
    return InvalidArgument("cores must be a count 0..4096 or a percentage like 50%");
  max_cores = static_cast<unsigned>(*n);
  max_cores_percent = 100;
  return OkStatus();
}

Status Preferences::SetMaxMemory(std::string_view text) {
  if (!text.empty() && text.back() == '%') {
    SC_ASSIGN_OR_RETURN(double pct, ParsePercent(text));
    max_memory_bytes = 0;
    max_memory_percent = pct;
    return OkStatus();
  }
  // ParseInt's multipliers are decimal; memory sizes read better in binary units.
  std::string t(text);
  std::uint64_t mult = 1;
  if (!t.empty()) {
    switch (std::toupper(static_cast<unsigned char>(t.back()))) {
      case 'K':
        mult = 1ull << 10;
        break;
      case 'M':
        mult = 1ull << 20;
        break;
      case 'G':
        mult = 1ull << 30;
        break;
      case 'T':
        mult = 1ull << 40;
        break;
      default:
        break;
    }
    if (mult != 1) t.pop_back();
  }
  char* end = nullptr;
  const double v = std::strtod(t.c_str(), &end);
  if (t.empty() || *end != '\0' || !(v >= 0) || v * static_cast<double>(mult) > 1e18)
    return InvalidArgument("memory must be a size like 2G or 512M, or a percentage like 50%");
  max_memory_bytes = static_cast<std::uint64_t>(v * static_cast<double>(mult));
  max_memory_percent = max_memory_bytes == 0 ? 100 : 0;
  return OkStatus();
}

namespace {

// "50%", "50" or (with `allow_off`) "off"/"never"/"none" = 100 -> a percentage of 0..100.
Result<double> OwnerPercent(std::string_view name, std::string_view text, bool allow_off) {
  std::string v(text);
  if (allow_off && (v == "off" || v == "never" || v == "none")) return 100.0;
  if (!v.empty() && v.back() == '%') v.pop_back();
  char* end = nullptr;
  const double d = std::strtod(v.c_str(), &end);
  if (v.empty() || *end != '\0' || !(d >= 0 && d <= 100))
    return InvalidArgument(std::string(name) + ": expected a percentage 0..100% (got '" +
                           std::string(text) + "')");
  return d;
}
Result<bool> OwnerOnOff(std::string_view name, std::string_view v, const char* yes,
                        const char* no) {
  if (v == yes || v == "on" || v == "true" || v == "yes" || v == "1") return true;
  if (v == no || v == "off" || v == "false" || v == "no" || v == "0") return false;
  return InvalidArgument(std::string(name) + ": expected " + yes + " or " + no);
}
Status Named(std::string_view name, const Status& s) {
  return s.ok() ? s : InvalidArgument(std::string(name) + ": " + s.message());
}

}  // namespace

const std::vector<std::string>& Preferences::OwnerNames() {
  static const std::vector<std::string> names = {"cores",      "pause-above", "resume-below",
                                                 "idle-time",  "throttle",    "hours",
                                                 "on-battery", "max-memory",  "min-free-memory"};
  return names;
}

Status Preferences::Set(std::string_view name, std::string_view text) {
  if (name == "cores") return Named(name, SetMaxCores(text));
  if (name == "max-memory") return Named(name, SetMaxMemory(text));
  if (name == "pause-above") {
    SC_ASSIGN_OR_RETURN(pause_above_percent, OwnerPercent(name, text, /*allow_off=*/true));
  } else if (name == "resume-below") {
    SC_ASSIGN_OR_RETURN(resume_below_percent, OwnerPercent(name, text, false));
  } else if (name == "min-free-memory") {
    SC_ASSIGN_OR_RETURN(min_free_memory_percent, OwnerPercent(name, text, false));
  } else if (name == "idle-time") {
    auto s = ParseSeconds(text);
    if (!s.ok()) return Named(name, s.status());
    idle_time = FromSeconds(*s);
  } else if (name == "throttle") {
    SC_ASSIGN_OR_RETURN(throttle, OwnerOnOff(name, text, "on", "off"));
  } else if (name == "on-battery") {
    SC_ASSIGN_OR_RETURN(pause_on_battery, OwnerOnOff(name, text, "pause", "run"));
  } else if (name == "hours") {
    auto h = TimeWindows::Parse(text);
    if (!h.ok()) return Named(name, h.status());
    hours = std::move(*h);
  } else {
    return InvalidArgument("unknown preference '" + std::string(name) + "'");
  }
  return OkStatus();
}

Policy::Policy(Preferences prefs, unsigned max_slots)
    : prefs_(std::move(prefs)), max_slots_(std::max(1u, max_slots)) {}

std::uint64_t Policy::MemoryCap(std::uint64_t memory_total) const {
  if (prefs_.max_memory_bytes > 0) return prefs_.max_memory_bytes;
  if (memory_total == 0 || prefs_.max_memory_percent >= 100) return 0;
  return static_cast<std::uint64_t>(static_cast<double>(memory_total) * prefs_.max_memory_percent /
                                    100.0);
}

Decision Policy::Evaluate(const Readings& r, TimePoint now, LocalTime local) {
  const unsigned cores = std::max(1u, r.cores);
  const double other = std::clamp(r.other_cpu, 0.0, 1.0);
  const double other_cores = other * cores;

  // Load pause with hysteresis: pause at once above the threshold; resume only after the load
  // stayed below the lower threshold for idle_time.
  const bool load_rule = prefs_.pause_above_percent < 100;
  bool just_resumed = false;
  if (!load_rule) {
    load_paused_ = false;
  } else if (!load_paused_) {
    if (other * 100 > prefs_.pause_above_percent) {
      load_paused_ = true;
      quiet_since_.reset();
    }
  } else if (other * 100 < prefs_.resume_below_percent) {
    if (!quiet_since_) quiet_since_ = now;
    if (now - *quiet_since_ >= prefs_.idle_time) {
      load_paused_ = false;
      quiet_since_.reset();
      just_resumed = true;
    }
  } else {
    quiet_since_.reset();
  }

  // Throttling: leave the cores other programs use (rounded to whole cores); shrink at once,
  // grow back only after the higher figure held for idle_time (or right after a load pause,
  // which already waited that long).
  unsigned target = max_slots_;
  if (prefs_.throttle) {
    const auto busy = static_cast<unsigned>(std::min<double>(cores, std::floor(other_cores + 0.5)));
    if (busy > 0) target = std::min(max_slots_, cores - busy);
  }
  if (!have_slots_ || target <= slots_ || just_resumed) {
    if (!have_slots_ || target < slots_ || just_resumed) slots_ = target;
    have_slots_ = true;
    grow_since_.reset();
  } else {
    if (!grow_since_) grow_since_ = now, grow_to_ = target;
    grow_to_ = std::min(grow_to_, target);
    if (now - *grow_since_ >= prefs_.idle_time) {
      slots_ = grow_to_;
      grow_since_.reset();
    }
  }

  // Memory, with hysteresis so the decision does not flap at the line.
  const std::uint64_t cap = MemoryCap(r.memory_total);
  if (cap > 0) {
    if (r.own_memory > cap)
      over_cap_ = true;
    else if (r.own_memory < cap / 10 * 9)
      over_cap_ = false;
  } else {
    over_cap_ = false;
  }
  const auto min_free = static_cast<std::uint64_t>(static_cast<double>(r.memory_total) *
                                                   prefs_.min_free_memory_percent / 100.0);
  if (r.memory_total > 0 && min_free > 0) {
    if (r.memory_available < min_free)
      low_memory_ = true;
    else if (r.memory_available > min_free + min_free / 2)
      low_memory_ = false;
  } else {
    low_memory_ = false;
  }

  auto paused = [](std::string why) {
    return Decision{0, proto::PeerState::kPaused, std::move(why)};
  };
  if (!prefs_.hours.Allows(local))
    return paused("outside the allowed hours (" + prefs_.hours.text() + ")");
  if (prefs_.pause_on_battery && r.on_battery) return paused("running on battery");
  if (over_cap_)
    return paused("memory cap: the worker uses " + Mib(r.own_memory) + " of the " + Mib(cap) +
                  " allowed");
  if (low_memory_)
    return paused("low memory: " + Mib(r.memory_available) + " available (pauses below " +
                  Mib(min_free) + ")");
  if (load_paused_) {
    if (quiet_since_)
      return paused("waiting for the owner's load to stay below " +
                    Percent(prefs_.resume_below_percent / 100) + " for " +
                    OneDecimal(Seconds(prefs_.idle_time)) + " s");
    return paused("other programs use " + Percent(other) + " of the CPU (pauses above " +
                  Percent(prefs_.pause_above_percent / 100) + ")");
  }
  if (slots_ == 0)
    return paused("no idle core: other programs use " + OneDecimal(other_cores) + " of " +
                  std::to_string(cores) + " cores");
  if (slots_ < max_slots_)
    return Decision{slots_, proto::PeerState::kThrottled,
                    "other programs use " + OneDecimal(other_cores) + " of " +
                        std::to_string(cores) + " cores"};
  return Decision{max_slots_, proto::PeerState::kRunning, ""};
}

}  // namespace sparecycles::worker
