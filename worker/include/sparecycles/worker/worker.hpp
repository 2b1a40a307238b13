// The worker (peer) process as a library: connects to a coordinator, announces what it can run and
// how fast, asks for units when it has idle slots, runs them through an executor (in process: one
// tbb::task_arena sized to the donated cores) and sends back hashed results. Start() connects and
// calibrates; Run() blocks until Stop() (thread-safe, also from a signal handler through
// RequestStop()). With owner preferences set, it samples the machine (capacity.hpp), lets the
// policy (policy.hpp) decide how many cores it may use, announces that to the coordinator,
// throttles or pauses running units in place at their next Progress() call, hands units back after
// a long pause, and keeps checkpoints locally and at the coordinator. It writes a status file into
// its state directory.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "sparecycles/core/clock.hpp"
#include "sparecycles/core/curve_keys.hpp"
#include "sparecycles/core/status.hpp"
#include "sparecycles/tasks/task.hpp"
#include "sparecycles/worker/capacity.hpp"
#include "sparecycles/worker/owner_control.hpp"
#include "sparecycles/worker/policy.hpp"

namespace sparecycles::worker {

struct WorkerConfig {
  std::string coordinator = "tcp://127.0.0.1:7737";  // the coordinator's peer endpoint
  unsigned cores = 0;     // cores donated; 0 = all of this machine's. Default: 0
  std::string state_dir;  // where the key pair and pins are kept; empty = nothing on disk
  // Security layer (docs/security.md). The worker's CURVE key pair, whose public key is its peer
  // id (curve::PeerIdFor): `key` when given, else <state_dir>/curve/worker.key (created at first
  // start), else a fresh key for this run.
  std::optional<curve::KeyPair> key;
  // The coordinator's public key (Z85/hex or a key file). Empty = the key pinned in
  // <state_dir>/coordinator.pub, else the key a coordinator of this user on this machine
  // published for the endpoint (then pinned: trust on first use). A key that differs from the
  // pinned one is refused.
  std::string coordinator_key;
  bool curve = true;           // false = plaintext, for benchmarks only (the coordinator's `curve`)
  std::string account;         // the volunteer's account name (for the distinct-owner rule)
  std::uint32_t prefetch = 1;  // units held beyond the idle slots. Default: 1
  double calibrate_seconds = 0.02;  // per task, for the speed announced in Hello. Default: 20 ms
  std::vector<std::string> only_tasks;             // calibrate/announce only these; empty = all
  Duration hello_retry = std::chrono::seconds(2);  // resend Hello when no Welcome came back
  // On SIGTERM, let running units finish for up to this long before handing the rest back.
  // Default: 0 (hand everything back at once)
  Duration leave_grace = Duration::zero();

  // Donating only what is idle. Empty = donate `cores` whatever the machine does, at normal
  // priority (the embedded local cluster, tests). sparecycles-worker always sets it.
  std::optional<Preferences> preferences;
  Duration sample_interval =
      std::chrono::seconds(1);  // how often the machine is sampled. Default: 1 s
  Duration pause_limit =
      std::chrono::minutes(5);  // a pause this long hands units back. Default: 5 min
  Duration checkpoint_interval =
      std::chrono::seconds(10);           // how often units save state. Default: 10 s
  std::shared_ptr<CapacityProbe> probe;   // null = SystemProbe (the real machine)
  std::function<LocalTime()> local_time;  // null = LocalTimeNow
  // The owner's live controls and the status they see (the volunteer page). Default: null = none
  std::shared_ptr<OwnerControl> control;
  // Where the worker reads the time (its loop, timers, units' checkpoint intervals, which arena
  // threads read: a test clock must be thread-safe). Must outlive the Worker. Default: the steady
  // clock
  const Clock* clock = &SteadyClock::Instance();

  // Task packages (docs/packages.md, "Trust model"). A package runs only when it verifies here,
  // signed by a publisher this worker trusts: the keys its coordinator announces (pinned on first
  // use in <state_dir>/publishers.pinned) plus `trust`, or only `trust` with `trust_only`.
  bool packages = true;       // run task packages at all. Default: on
  bool accept_native = true;  // the owner's choice of kinds. Default: both
  bool accept_command = true;
  std::vector<std::string> trust;  // extra publisher keys: directories, key files or hex keys
  bool trust_only = false;         // ignore the keys the coordinator announces
  bool allow_unsigned = false;     // the embedded local mode: the researcher's own packages
  std::uint64_t package_cache_bytes = 2ull << 30;  // fetched packages kept. Default: 2 GiB
  // The executor binary that runs package units in their own processes. Empty = found:
  // $SPARECYCLES_EXECUTOR, then beside the running program, then the installed libexec path.
  std::string executor_path;
  // Package units run confined by the kernel (docs/sandbox.md). false = `--sandbox off`: no
  // confinement, for trusted clusters only (logged loudly at start).
  bool sandbox = true;
  // The dedicated unprivileged user and group a root worker's executors switch to
  // (`--sandbox-user`). Default: nobody (65534).
  std::uint32_t sandbox_uid = 65534, sandbox_gid = 65534;
};

struct WorkerStats {
  std::uint64_t units_done = 0, units_failed = 0, units_cancelled = 0, bad_frames = 0;
  std::uint64_t results_unacked = 0, running = 0, hellos_sent = 0;
  double cpu_seconds = 0;
  bool connected = false;  // a Welcome arrived from the current coordinator session
  unsigned slots = 0;      // cores it may use now
  proto::PeerState state = proto::PeerState::kRunning;
  std::string reason;
  std::uint64_t units_resumed = 0, units_returned = 0, checkpoints_saved = 0,
                checkpoints_uploaded = 0;
};

class Worker {
 public:
  Worker(WorkerConfig config, const tasks::Registry& registry);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  /// Resolves the peer id, measures task speeds and connects. Errors: InvalidArgument for a bad
  /// endpoint, Unavailable when the state directory cannot be used.
  Status Start();
  /// Runs until Stop(); on the way out hands unfinished leases back to the coordinator.
  void Run();
  /// Thread-safe and async-signal-safe: asks Run() to hand back its leases and return.
  void Stop();

  const std::string& peer_id() const;
  WorkerStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// This machine's core count and total memory (bytes), read from the OS.
unsigned HardwareCores();
std::uint64_t TotalMemoryBytes();

}  // namespace sparecycles::worker
