// The worker's result spool: a finished unit's Result frame is written to
// <state_dir>/spool/<lease>.result before it is sent, and removed when the coordinator acknowledges
// it, so a worker that crashes or restarts sends its finished work again instead of losing it.
// Only results worth more than the writing are spooled: a unit that ran for less than
// kSpoolMinSeconds is cheaper to recompute (the coordinator reissues it) than the four file
// system calls that would keep it (docs/benchmarks.md). Files are read back with a size limit and
// checked as frames; a bad one is dropped and counted. Owned by the worker's loop thread.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <unordered_set>

#include "sparecycles/core/protocol.hpp"

namespace sparecycles::worker {

class ResultSpool {
 public:
  /// `dir` empty = spooling disabled (nothing on disk).
  explicit ResultSpool(std::string dir);

  /// Units that ran at least this long have their results spooled.
  static constexpr double kSpoolMinSeconds = 0.01;

  /// Writes `result` (write + rename, no fsync: it guards against the process dying, not the
  /// machine) when its unit ran for at least kSpoolMinSeconds. Returns whether it is on disk.
  bool Put(const proto::ResultMsg& result);
  /// Forgets a result (acknowledged); touches the disk only for results that were spooled.
  void Remove(std::uint64_t lease_id);
  /// Every spooled result, by lease id. Unreadable or malformed files are deleted and counted.
  std::map<std::uint64_t, proto::ResultMsg> Load();
  std::uint64_t dropped() const { return dropped_; }
  bool enabled() const { return !dir_.empty(); }

 private:
  std::string Path(std::uint64_t lease_id) const;
  std::string dir_;
  std::unordered_set<std::uint64_t> on_disk_;
  std::uint64_t dropped_ = 0;
};

}  // namespace sparecycles::worker
