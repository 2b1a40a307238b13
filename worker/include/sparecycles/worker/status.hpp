// What a running worker shows its owner: the status file it rewrites in its state directory every
// second (<state-dir>/status, "key=value" lines, replaced atomically) and the text that
// `sparecycles-worker status` prints from it. Plain data and pure functions; thread-compatible.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "sparecycles/core/status.hpp"

namespace sparecycles::worker {

struct UnitStatus {
  std::uint64_t job = 0, unit = 0;
  std::string task;
  double progress = 0;       // 0..1
  double resumed_from = -1;  // progress the unit resumed at from a checkpoint; < 0 = started at 0
  bool waiting = false;      // blocked by a pause or throttle right now
};

struct StatusSnapshot {
  std::string peer_id, coordinator;
  long pid = 0;
  bool connected = false;
  unsigned machine_cores = 0, max_slots = 0, slots = 0;
  std::string state = "running", reason;
  double other_cpu_percent = 0;
  std::uint64_t memory_available = 0;
  std::vector<UnitStatus> units;  // running
  std::uint64_t prefetched = 0;
  std::uint64_t units_done = 0, units_failed = 0, units_returned = 0, units_resumed = 0;
  double cpu_seconds = 0;   // contributed, over every run with this state directory
  double resumed_work = 0;  // sum of resumed_from over resumed units (work not redone)
  double updated_at = 0;    // wall-clock seconds since the epoch
  // Task packages this worker refused: (package id in hex, reason).
  std::vector<std::pair<std::string, std::string>> refused_packages;
  // Why this worker runs no task packages at all (a sandbox layer this machine lacks); empty =
  // it runs them, or was told not to (--packages off).
  std::string packages_off;
};

std::string FormatStatusFile(const StatusSnapshot& s);
Result<StatusSnapshot> ParseStatusFile(std::string_view text);
/// The human-readable view; `now` (wall seconds) tells how fresh the file is; `alive` whether the
/// worker process still exists. `validated_cpu_seconds` < 0 = unknown.
std::string RenderStatus(const StatusSnapshot& s, double now, bool alive,
                         double validated_cpu_seconds = -1);

}  // namespace sparecycles::worker
