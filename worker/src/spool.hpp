// The worker's result spool: each finished unit's Result frame is written to
// <state_dir>/spool/<lease>.result before it is sent, and removed when the coordinator acknowledges
// it, so a worker that crashes or restarts sends its finished work again instead of losing it.
// Files are read back with a size limit and checked as frames; a bad one is dropped and counted.
// Owned by the worker's loop thread.
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace sparecycles::worker {

class ResultSpool {
 public:
  /// `dir` empty = spooling disabled (nothing on disk).
  explicit ResultSpool(std::string dir);

  /// Stores a Result frame durably (fsync + rename). Returns false when the disk refused.
  bool Put(std::uint64_t lease_id, const std::string& frame);
  void Remove(std::uint64_t lease_id);
  /// Every spooled frame, by lease id. Unreadable or malformed files are deleted and counted.
  std::map<std::uint64_t, std::string> Load();
  std::uint64_t dropped() const { return dropped_; }
  bool enabled() const { return !dir_.empty(); }

 private:
  std::string Path(std::uint64_t lease_id) const;
  std::string dir_;
  std::uint64_t dropped_ = 0;
};

}  // namespace sparecycles::worker
