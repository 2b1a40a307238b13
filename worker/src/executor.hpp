// How the worker runs units, seen from its coordinator session: leases go in with their resume
// state, finished results come out. InProcessExecutor (executor_in_process.hpp) runs them on a TBB
// arena inside the worker; ProcessExecutor (executor_process.hpp) runs each unit of a task package
// in its own `sparecycles-executor` process; CompositeExecutor routes between the two.
// Every method is called from the session's loop thread only; `on_finished` (given at
// construction) may be called from any thread and must only wake that loop.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "sparecycles/core/hash.hpp"
#include "sparecycles/core/protocol.hpp"
#include "sparecycles/package/manifest.hpp"

namespace sparecycles::worker {

/// A verified task package, extracted on this machine.
struct PackageRef {
  Hash256 id{};     // BLAKE2b-256 of the .scpkg bytes
  std::string dir;  // the extracted package, absolute
  package::Manifest manifest;
};

/// A unit handed to the executor.
struct UnitStart {
  proto::Lease lease;                 // its checkpoint bytes already moved into `resume`
  std::optional<std::string> resume;  // state to resume from (local or uploaded checkpoint)
  float resumed_from = -1;            // the stored fraction of `resume`; < 0 = unknown or none
  std::shared_ptr<const PackageRef> package;  // null = a built-in task
};

/// A unit that stopped running (done, failed or cancelled), with what the session needs to settle
/// it.
struct FinishedUnit {
  proto::Lease lease;
  proto::ResultMsg result;
  bool handed_back = false;    // stopped by Cancel(..., hand_back=true)
  bool stopped_by_us = false;  // stopped by Cancel(..., hand_back=false) (the coordinator knows)
  bool resumed = false;
  float resumed_from = -1;                      // the progress it resumed at (see UnitView)
  std::optional<proto::Checkpoint> checkpoint;  // its newest checkpoint not yet uploaded
  std::uint64_t checkpoints_saved = 0;          // saved locally since last asked
};

/// What a running (or queued) unit looks like now.
struct UnitView {
  std::uint64_t lease_id = 0, job_id = 0, unit_index = 0;
  std::string task;
  float progress = 0;
  float resumed_from = -1;  // < 0 = not resumed
  bool started = false;     // false = still queued inside the executor
  bool waiting = false;     // held at the gate by a pause or throttle
};

class Executor {
 public:
  virtual ~Executor() = default;

  /// Queues a unit. Its result comes back through TakeFinished().
  virtual void Start(UnitStart unit) = 0;
  /// Stops a unit at its next Progress() call (or before it starts). Unknown ids are ignored.
  /// `hand_back` = the unit goes back to the coordinator (a long pause), not dropped.
  virtual void Cancel(std::uint64_t lease_id, const std::string& why, bool hand_back) = 0;
  virtual void CancelAll(const std::string& why, bool hand_back) = 0;
  /// How many units may run kernel code at once now (throttle, pause = 0). At most the size given
  /// at construction.
  virtual void SetSlots(unsigned slots) = 0;
  /// Units are short: run them back to back and do not measure their CPU time one by one.
  virtual void SetShortUnits(bool short_units) = 0;

  /// Units started and not yet taken back through TakeFinished().
  virtual std::size_t running() const = 0;
  virtual std::vector<UnitView> Units() const = 0;
  /// The newest checkpoint of each running unit not yet uploaded, and how many were saved locally.
  virtual std::vector<proto::Checkpoint> TakeCheckpoints(std::uint64_t* saved) = 0;
  /// Units that stopped since the last call, removed from running().
  virtual std::vector<FinishedUnit> TakeFinished() = 0;
  /// Blocks until no unit executes any more (cancel them first to make that quick).
  virtual void WaitIdle() = 0;
};

}  // namespace sparecycles::worker
