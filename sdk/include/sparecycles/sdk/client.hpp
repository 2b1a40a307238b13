// The SpareCycles SDK: submit jobs to a coordinator (or to an embedded one) and collect results.
//
//   auto client = sparecycles::Client::Local();              // coordinator + worker in-process
//   auto job = client->Submit(sparecycles::JobSpec("primes").Set("to", "1000000000"));
//   auto result = job->Wait();                               // result->summary == "50847534"
//
// A job of a task package (docs/packages.md): JobSpec::package names the .scpkg file; the client
// verifies it, cuts the job (a native package's Plan and Split run here), uploads the package if
// the coordinator lacks it, and Wait() merges the units' results (Merge runs here too).
//
// Thread-safety: Client and Job are thread-safe; progress callbacks run on the client's I/O
// thread and must not block. No ZeroMQ or cereal type appears here; SPARECYCLES_EXPORT marks what
// libsparecycles.so exports (export.hpp).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sparecycles/core/status.hpp"
#include "sparecycles/sdk/export.hpp"

namespace sparecycles::tasks {
class Task;  // sparecycles/tasks/task.hpp (SpareCycles::tasks)
}  // namespace sparecycles::tasks

namespace sparecycles {

enum class JobState { kQueued, kRunning, kDone, kFailed, kCancelled };
SPARECYCLES_EXPORT std::string_view JobStateName(JobState state);
inline bool IsFinal(JobState s) {
  return s == JobState::kDone || s == JobState::kFailed || s == JobState::kCancelled;
}

/// How many peers must agree before a unit's result is accepted. 0 = the coordinator's default.
struct Replication {
  std::uint32_t replicas = 0;      // copies issued at first
  std::uint32_t quorum = 0;        // matching results needed
  std::uint32_t max_replicas = 0;  // most copies ever issued for one unit
  std::uint32_t max_errors = 0;    // failed runs after which the unit fails
  int adaptive = 0;                // credibility-based acceptance: 0 = default, 1 = off, 2 = on
  double target_error = 0;         // with adaptive: bound on a wrong accepted unit; 0 = default
};

/// What to run: a task name, its parameters and (for data tasks) input bytes.
struct JobSpec {
  JobSpec() = default;
  explicit JobSpec(std::string task_name) : task(std::move(task_name)) {}

  std::string task;                           // e.g. "primes"; see `sparecycles tasks`
  std::map<std::string, std::string> params;  // task parameters, as text
  std::string input;                          // input bytes for data tasks (e.g. wordfreq)
  std::string name;                           // free text shown in listings
  int priority = 0;                           // higher runs first. Default: 0
  double unit_seconds = 0;  // target seconds per unit. 0 = coordinator default (1 s)
  std::uint64_t units = 0;  // exact number of units. 0 = chosen by the coordinator
  Replication replication;
  std::string client_token;  // retry-safe submit; empty = a fresh random token

  /// A task package to run instead of `task` (which is then ignored): the path of a .scpkg file,
  /// or the package id (64 hex digits) of one this Client already read in an earlier Submit or
  /// Attach. Its job's parameters are `params`; a command package's input is `input` (split =
  /// lines) or `input_dir` (split = files), or its manifest's sweep.
  std::string package;
  std::string input_dir;  // command packages with split = files: one unit per file in it
  /// Called while the package is uploaded: bytes sent so far and the package's size. Default:
  /// none. Runs on the submitting thread.
  std::function<void(std::uint64_t done, std::uint64_t total)> on_upload;

  /// Sets a parameter; returns *this for chaining.
  JobSpec& Set(const std::string& key, const std::string& value) {
    params[key] = value;
    return *this;
  }
  /// Reads a file into `input`. Errors: NotFound, ResourceExhausted (over 64 MiB).
  SPARECYCLES_EXPORT Status LoadInput(const std::string& path);
};

struct JobInfo {
  std::uint64_t id = 0;
  std::string task, name;
  JobState state = JobState::kQueued;
  int priority = 0;
  std::uint64_t units_total = 0, units_done = 0, units_failed = 0, units_running = 0;
  double submitted_at = 0, finished_at = 0;  // seconds since the Unix epoch
  double cpu_seconds = 0;                    // validated CPU time spent on the job
  std::string error;
  /// Why units of a running job cannot go to any connected peer now ("unit 3 waits for a peer
  /// that has not run it: 2 of 2 connected peers already have"); empty while work can go out.
  std::string waiting;
};

struct PeerInfo {
  std::string peer_id, hostname, state, reason;
  std::uint32_t cores = 0, slots = 0, idle_slots = 0;
  std::uint64_t running = 0, units_done = 0;
  double cpu_seconds = 0, connected_seconds = 0, silent_seconds = 0;
  std::uint64_t units_invalid = 0;  // results that lost a vote or failed a spot-check
  double credibility = 0;           // 0..1; 0 = blacklisted (docs/cross-checking.md)
};

struct UnitFailure {
  std::uint64_t unit = 0;
  std::string reason;
};

struct JobResult {
  JobInfo info;
  std::string bytes;                  // the merged result (task-defined; an image for mandelbrot)
  std::string summary;                // a one-line human answer, e.g. "50847534"
  std::string json;                   // the answer as a JSON value
  std::string media_type;             // e.g. "image/png"
  std::vector<UnitFailure> failures;  // why units failed, when info.state == kFailed
  /// A command package's outputs, in unit order: "unit-000042/NAME" -> bytes.
  std::vector<std::pair<std::string, std::string>> files;
  /// Writes `bytes` to a file.
  SPARECYCLES_EXPORT Status WriteTo(const std::string& path) const;
  /// Writes `files` under `dir` (created if missing). Refuses a name that would leave `dir`
  /// ("..", an absolute path, a symbolic link on the way).
  SPARECYCLES_EXPORT Status WriteFiles(const std::string& dir) const;
};

/// A task package the coordinator holds (`sparecycles packages`).
struct PackageInfo {
  std::string id;                   // 64 hex digits
  std::string name, version, kind;  // kind: "native" or "command"
  std::uint64_t size = 0;           // bytes of the .scpkg file
  std::string signer;               // the publisher's public key in hex; empty = unsigned
};

namespace detail {
struct ClientCore;
struct JobCore;
}  // namespace detail

/// A submitted job. Cheap to copy; all copies refer to the same job.
class SPARECYCLES_EXPORT Job {
 public:
  std::uint64_t id() const;
  /// The latest progress the coordinator pushed.
  JobInfo Info() const;
  /// Called on every progress update (on the client's I/O thread), and once at the end.
  void OnProgress(std::function<void(const JobInfo&)> callback);
  /// Waits until the job ends and fetches its result. Errors: DeadlineExceeded after `timeout`
  /// (the job keeps running), Unavailable when the coordinator cannot be reached.
  Result<JobResult> Wait(std::chrono::milliseconds timeout = std::chrono::hours(24 * 365));
  /// Cancels the job; its running units stop on the peers.
  Status Cancel();

 private:
  friend class Client;
  Job(std::shared_ptr<detail::ClientCore> c, std::shared_ptr<detail::JobCore> j)
      : client_(std::move(c)), job_(std::move(j)) {}
  std::shared_ptr<detail::ClientCore> client_;
  std::shared_ptr<detail::JobCore> job_;
};

struct ClientOptions {
  std::chrono::milliseconds request_timeout{10000};  // per request. Default: 10 s
  /// The coordinator's public key, which the endpoint must prove it holds (CurveZMQ): 40 Z85
  /// characters, 64 hex digits or the path of a key file (`sparecycles-coordinator key` prints
  /// it). Default: empty = the key a coordinator of this user on this machine published for the
  /// endpoint; Connect fails with FailedPrecondition when there is none.
  std::string coordinator_key;
  /// This client's key pair, a secret key file (`sparecycles key new`; mode 0600). Default: empty
  /// = a fresh key for this connection (enough unless the coordinator lists client keys).
  std::string key_file;
  /// false = plaintext, for benchmarks against a coordinator with CURVE off. Default: true
  bool curve = true;
};

struct LocalOptions {
  unsigned cores = 0;              // cores for the embedded worker; 0 = all. Default: 0
  double unit_seconds = 0;         // target seconds per unit; 0 = 1 s
  std::vector<std::string> tasks;  // tasks the embedded worker calibrates; empty = all
  bool verbose = false;            // log the embedded coordinator and worker to stderr
  /// Tasks of this process added to the embedded coordinator's and worker's registry beside the
  /// built-ins, so a task author runs their Task against the real scheduler (e.g. in a unit
  /// test). They must be thread-safe (the Task API requires it). Default: none.
  std::vector<std::shared_ptr<const sparecycles::tasks::Task>> in_process_tasks;
};

class SPARECYCLES_EXPORT Client {
 public:
  /// Connects to a coordinator's client endpoint, e.g. "tcp://127.0.0.1:7738", whose public key
  /// is options.coordinator_key (and, with options.key_file, as that client key). The connection
  /// is made lazily; a dead endpoint, or one that does not hold the key, shows up as Unavailable
  /// on the first request. Errors now: InvalidArgument / DataLoss / FailedPrecondition for keys.
  ///
  ///   ClientOptions o;
  ///   o.coordinator_key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";  // or a .pub file
  ///   auto client = sparecycles::Client::Connect("tcp://coord.example.org:7738", o);
  static Result<Client> Connect(const std::string& endpoint, ClientOptions options = {});
  /// Starts a coordinator and a worker inside this process, on 127.0.0.1 with OS-chosen ports.
  static Result<Client> Local(const LocalOptions& options = {});

  Client(Client&&) noexcept;
  Client& operator=(Client&&) noexcept;
  ~Client();

  /// Submits a job. Errors: InvalidArgument / NotFound for a bad spec or unknown task; for a
  /// package, the reason it was refused here or by the coordinator (e.g. "unknown signer: ...").
  Result<Job> Submit(const JobSpec& spec);
  /// Follows a job that already exists (e.g. submitted by another process). A job of a package
  /// is merged by Wait() when `package_path` names its .scpkg file (with the job's `params`, which
  /// the coordinator does not return); without it the result is the raw list of unit results.
  Result<Job> Attach(std::uint64_t job_id, const std::string& package_path = "",
                     const std::map<std::string, std::string>& params = {});
  /// The task packages the coordinator holds.
  Result<std::vector<PackageInfo>> Packages();
  Result<JobInfo> Status(std::uint64_t job_id);
  Result<std::vector<JobInfo>> Jobs();
  Result<std::vector<PeerInfo>> Peers();
  sparecycles::Status Cancel(std::uint64_t job_id);
  /// The coordinator's client endpoint (useful with Local()).
  std::string endpoint() const;

 private:
  explicit Client(std::shared_ptr<detail::ClientCore> core);
  std::shared_ptr<detail::ClientCore> core_;
};

}  // namespace sparecycles
