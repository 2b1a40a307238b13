// Writes the worker's status file (<state-dir>/status, see status.hpp) and keeps the totals it
// carries over from earlier runs with the same state directory and peer id. Owned by the worker's
// session, used from its loop thread only: not thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "sparecycles/worker/owner_control.hpp"
#include "sparecycles/worker/status.hpp"

namespace sparecycles::worker {

class StatusWriter {
 public:
  /// `state_dir` empty = write nothing.
  StatusWriter(std::string state_dir, std::string peer_id);

  /// Reads the totals of an earlier run of this peer from the file, if there is one.
  void LoadPreviousTotals();
  /// A unit that resumed at `fraction` finished: that much work was not redone.
  void AddResumedWork(double fraction) { resumed_work_ += fraction; }

  /// Adds the carried-over totals to this run's figures in `s`, stamps it and replaces the file.
  /// A failure is logged once; the worker carries on.
  void Write(StatusSnapshot s);
  /// The volunteer page also gets every snapshot written.
  void SetControl(std::shared_ptr<OwnerControl> control) { control_ = std::move(control); }

 private:
  std::shared_ptr<OwnerControl> control_;
  const std::string state_dir_, peer_id_;
  double base_cpu_seconds_ = 0;
  std::uint64_t base_units_done_ = 0;
  double resumed_work_ = 0;
  bool failure_logged_ = false;
};

}  // namespace sparecycles::worker
