// The executor that runs each unit of a task package in its own `sparecycles-executor` process
// (executor_main.cpp), so a crash, abort or hang of the package's code fails only that unit.
// One supervisor thread per running unit spawns its process, talks to it over a socketpair
// (executor_wire.hpp) and reaps it. Owned by the worker's session; its methods are for the loop
// thread (see executor.hpp); supervisor threads share the unit table under one mutex.
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "checkpoint_store.hpp"
#include "executor.hpp"
#include "sparecycles/core/clock.hpp"

namespace sparecycles::worker {

struct ProcessExecutorConfig {
  unsigned slots = 1;  // the most executor processes alive at once
  /// The `sparecycles-executor` binary. Default (empty): DefaultExecutorPath().
  std::string executor_path;
  /// Units get a directory `unit-<lease id>` under it, removed when they end. Must exist.
  std::string work_root;
  Duration checkpoint_interval = std::chrono::seconds(10);  // Default: 10 s.
  const CheckpointStore* store = nullptr;                   // null = checkpoints not kept locally
  /// Time limits, grace and wall time; read by supervisor threads, so it must be thread-safe.
  const Clock* clock = &SteadyClock::Instance();
  Duration kill_grace = std::chrono::seconds(2);  // Default: 2 s from Cancel to SIGKILL.
  /// A unit is killed after this many times its manifest's expected_seconds of running (paused
  /// time does not count). Default: 10.
  double time_limit_factor = 10;
  /// Confinement of every unit (docs/sandbox.md). false = none (trusted clusters only).
  bool sandbox = true;
  /// The unprivileged user and group a root worker's executors switch to. Default: nobody.
  std::uint32_t sandbox_uid = 65534, sandbox_gid = 65534;
  /// RLIMIT_CPU = this many times the manifest's expected_seconds (CPU time of all threads).
  /// Default (0): time_limit_factor times the machine's cores.
  double cpu_limit_factor = 0;
  /// The most memory a unit may have whatever its manifest says. 0 = no cap.
  std::uint64_t memory_cap_bytes = 0;
  /// Tests only: the executor reports this layer unavailable (the refusal path).
  std::string disable_layer_for_test;
};

/// Where the worker looks for `sparecycles-executor`: beside its own binary (a build tree), else
/// the installed libexec directory.
std::string DefaultExecutorPath();

class ProcessExecutor final : public Executor {
 public:
  /// `on_finished` is called from a supervisor thread when the first of a batch of units finishes.
  ProcessExecutor(ProcessExecutorConfig config, std::function<void()> on_finished);
  /// Kills every executor process by its process group and waits for them to be reaped.
  ~ProcessExecutor() override;

  void Start(UnitStart unit) override;
  void Cancel(std::uint64_t lease_id, const std::string& why, bool hand_back) override;
  void CancelAll(const std::string& why, bool hand_back) override;
  /// Fewer slots than running units: the newest are stopped (SIGSTOP to their process groups),
  /// and continued (SIGCONT) oldest first when slots come back. 0 = pause all.
  void SetSlots(unsigned slots) override;
  void SetShortUnits(bool) override {}  // a process per unit either way
  std::size_t running() const override;
  std::vector<UnitView> Units() const override;
  std::vector<proto::Checkpoint> TakeCheckpoints(std::uint64_t* saved) override;
  std::vector<FinishedUnit> TakeFinished() override;
  void WaitIdle() override;

  /// The executor processes alive now (for tests and the status page).
  std::vector<pid_t> Pids() const;

 private:
  struct Unit;
  enum class Phase { kQueued, kStarting, kRunning, kDone };

  // All with mu_ held.
  bool ScheduleLocked();  // returns true when on_finished must be called
  unsigned LiveLocked() const;
  unsigned AliveLocked() const;
  void FinishLocked(Unit& u, proto::ResultMsg r);  // returns via done_first_
  void KillLocked(Unit& u);

  void Supervise(const std::shared_ptr<Unit>& u);  // a supervisor thread; never throws
  void Serve(Unit& u, int sock, int err_fd, proto::ResultMsg& r);
  // Root worker, sandbox on: the unit directory becomes the sandbox user's and the package's
  // files readable by its group. Empty = done.
  std::string ShareWithSandboxUser(const std::string& unit_dir, const std::string& package_dir);

  const ProcessExecutorConfig config_;
  const std::function<void()> on_finished_;

  mutable std::mutex mu_;
  std::condition_variable idle_cv_;
  std::map<std::uint64_t, std::shared_ptr<Unit>> units_;  // every unit not yet taken back
  std::uint64_t next_seq_ = 0;
  unsigned allowed_;
  bool shutting_down_ = false;
  bool notify_pending_ = false;              // a finished unit not yet announced by on_finished
  std::vector<std::uint64_t> finished_;      // lease ids in the order they finished
  std::vector<std::thread> exited_threads_;  // supervisors that are done, to be joined
  std::set<std::string> shared_packages_;    // package dirs ShareWithSandboxUser prepared
};

}  // namespace sparecycles::worker
