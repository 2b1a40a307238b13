// The executor that runs the units of a task package in `sparecycles-executor` processes
// (executor_main.cpp), so a crash, abort or hang of the package's code fails only the unit it was
// running. A process serves one package (and one set of limits) and is reused for its next units
// (short units go to it in batches); it ends when idle for a while, when its slot is wanted for
// another package, or with the unit that crashed or hit a limit in it. One supervisor thread per
// process spawns it, talks to it over a socketpair (executor_wire.hpp) and reaps it. Owned by the
// worker's session; its methods are for the loop thread (see executor.hpp); supervisor threads
// share the unit and process tables under one mutex.
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <deque>
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
  /// Each executor process gets a directory `exec-<n>` under it (removed when it ends), and each
  /// unit a fresh `unit-<lease id>` beneath that (removed when the unit ends). Must exist.
  std::string work_root;
  /// An executor process with no unit for this long ends. Default: 3 s.
  Duration idle_timeout = std::chrono::seconds(3);
  /// Short units (SetShortUnits): the most units sent ahead to one process. Default: 64.
  unsigned batch_units = 64;
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
  /// The CPU time limit of a unit (all its threads) = this many times the manifest's
  /// expected_seconds. Default (0): time_limit_factor times the machine's cores. Enforced per
  /// unit by the supervisor from the process's CPU clock, with RLIMIT_CPU as a backstop
  /// (docs/sandbox.md, "CPU time with reused executors").
  double cpu_limit_factor = 0;
  /// The most memory a unit may have whatever its manifest says. 0 = no cap.
  std::uint64_t memory_cap_bytes = 0;
  /// Tests only: the executor reports this layer unavailable (the refusal path).
  std::string disable_layer_for_test;
};

/// Where the worker looks for `sparecycles-executor`: beside its own binary (a build tree), else
/// the installed libexec directory.
std::string DefaultExecutorPath();

/// What `sparecycles-executor --probe` found: every confinement layer applied to itself in a
/// scratch directory (docs/sandbox.md).
struct SandboxProbe {
  bool ok = false;      // every layer active, and the checks from inside refused
  std::string report;   // the executor's lines
  std::string missing;  // the failed lines joined with "; " (or why the probe did not run)
};
/// Runs the probe (bounded: 20 s) as the worker would run a unit: `uid`/`gid` are taken by a root
/// worker's executor; `disable_layer` (tests only) is reported unavailable.
SandboxProbe ProbeSandbox(const std::string& executor_path, std::uint32_t uid, std::uint32_t gid,
                          const std::string& disable_layer = "");

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
  /// Short units: up to batch_units units are sent ahead to a process, and their results come
  /// back batched.
  void SetShortUnits(bool short_units) override;
  std::size_t running() const override;
  std::vector<UnitView> Units() const override;
  std::vector<proto::Checkpoint> TakeCheckpoints(std::uint64_t* saved) override;
  std::vector<FinishedUnit> TakeFinished() override;
  void WaitIdle() override;

  /// The executor processes alive now, busy or idle (for tests and the status page).
  std::vector<pid_t> Pids() const;
  /// Executor processes started so far (for tests and benchmarks).
  std::uint64_t processes_started() const;

 private:
  struct Unit;
  struct Proc;
  enum class Phase { kQueued, kAssigned, kSent, kDone };

  // All with mu_ held.
  bool ScheduleLocked();  // returns true when on_finished must be called
  unsigned LiveLocked() const;
  void FinishLocked(Unit& u, proto::ResultMsg r);
  std::string KeyOf(const Unit& u) const;

  void Supervise(const std::shared_ptr<Proc>& p);  // a supervisor thread; never throws
  void Serve(Proc& p, int sock, int err_fd);
  // Root worker, sandbox on: the process's directory becomes the sandbox user's and the
  // package's files readable by its group. Empty = done.
  std::string ShareWithSandboxUser(const std::string& proc_dir, const std::string& package_dir);

  const ProcessExecutorConfig config_;
  const std::function<void()> on_finished_;

  mutable std::mutex mu_;
  std::condition_variable idle_cv_;
  std::map<std::uint64_t, std::shared_ptr<Unit>> units_;   // every unit not yet taken back
  std::map<std::uint64_t, std::shared_ptr<Unit>> queued_;  // kQueued units by seq (start order)
  std::vector<std::shared_ptr<Proc>> procs_;               // every process not yet reaped
  std::uint64_t next_seq_ = 0, next_proc_ = 0;
  unsigned allowed_;
  bool short_units_ = false;
  bool shutting_down_ = false;
  bool notify_pending_ = false;              // a finished unit not yet announced by on_finished
  std::vector<std::uint64_t> finished_;      // lease ids in the order they finished
  std::vector<std::thread> exited_threads_;  // supervisors that are done, to be joined
  std::set<std::string> shared_packages_;    // package dirs ShareWithSandboxUser prepared
  std::uint64_t processes_started_ = 0;
};

}  // namespace sparecycles::worker
