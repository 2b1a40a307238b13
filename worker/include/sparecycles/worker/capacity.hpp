// The capacity probe: what the rest of this machine is doing, read from the OS, so the worker can
// donate only what is idle. CPU used by everything except this process comes from /proc/stat minus
// /proc/self/stat; memory from /proc/meminfo and /proc/self/statm; battery from
// /sys/class/power_supply. Behind an interface so tests inject readings. A probe is used by one
// thread (the worker's loop); not thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "sparecycles/core/status.hpp"

namespace sparecycles::worker {

/// One sample of the machine.
struct Readings {
  unsigned cores = 1;                  // logical CPUs of the machine
  double other_cpu = 0;                // CPU used by other processes since the last sample, as a
                                       // fraction of the whole machine (0..1; 0.5 = half the cores)
  std::uint64_t memory_total = 0;      // bytes (0 = unknown)
  std::uint64_t memory_available = 0;  // MemAvailable, bytes
  std::uint64_t own_memory = 0;        // this process's resident set, bytes
  bool on_battery = false;             // a battery is discharging and no mains supply is online
};

class CapacityProbe {
 public:
  virtual ~CapacityProbe() = default;
  /// Measures; CPU figures cover the time since the previous call (or since construction).
  virtual Readings Sample() = 0;
};

/// Reads the real machine. `root` prefixes every path ("" = the real /proc and /sys); tests point
/// it at a directory laid out like them.
class SystemProbe final : public CapacityProbe {
 public:
  explicit SystemProbe(std::string root = "");
  Readings Sample() override;

 private:
  std::string root_;
  std::uint64_t last_total_ = 0, last_idle_ = 0, last_own_ = 0;
  bool have_last_ = false;
};

// Parsers, exposed for tests. Times are in clock ticks (USER_HZ) as the kernel writes them.
struct CpuTimes {
  std::uint64_t total = 0;  // user+nice+system+idle+iowait+irq+softirq+steal, all CPUs
  std::uint64_t idle = 0;   // idle+iowait
  unsigned cpus = 0;        // "cpuN" lines
};
Result<CpuTimes> ParseProcStat(std::string_view text);
/// utime + stime of /proc/<pid>/stat (fields 14 and 15; the command name may contain spaces).
Result<std::uint64_t> ParseProcessCpuTicks(std::string_view text);
struct MemInfo {
  std::uint64_t total = 0, available = 0;  // bytes
};
Result<MemInfo> ParseMeminfo(std::string_view text);

}  // namespace sparecycles::worker
