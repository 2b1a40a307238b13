// Checkpoints kept on this machine, so a unit resumes where it stopped after the worker restarts.
// One file per unit in <state-dir>/checkpoints/, named after the job, the unit and a fingerprint of
// the unit's bytes (a different job that reuses the id never picks up a foreign state), written
// atomically. The names of the files present are kept in memory, so the common case — a unit
// that never checkpointed — costs no system call at start or end. Thread-safe (writers of one
// unit are serialised by the caller).
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>

#include "sparecycles/core/clock.hpp"
#include "sparecycles/core/protocol.hpp"

namespace sparecycles::worker {

struct StoredCheckpoint {
  float fraction = 0;
  std::string state;
};

class CheckpointStore {
 public:
  /// `dir` empty = keep nothing.
  explicit CheckpointStore(std::string dir);
  bool enabled() const { return !dir_.empty(); }

  void Save(const proto::Lease& lease, float fraction, std::string_view state) const;
  std::optional<StoredCheckpoint> Load(const proto::Lease& lease) const;
  void Remove(const proto::Lease& lease) const;
  /// Deletes checkpoints not written for `max_age` (units long settled elsewhere).
  void RemoveOlderThan(std::chrono::hours max_age) const;

 private:
  std::string NameFor(const proto::Lease& lease) const;
  bool Present(const std::string& name) const;
  std::string dir_;
  mutable std::mutex mu_;
  mutable std::unordered_set<std::string> present_;  // file names in dir_
};

}  // namespace sparecycles::worker
