// The task API: what a kind of job must define so SpareCycles can split, run, check and merge it.
// A Task object is stateless and shared: every method must be safe to call from many threads at
// once. Unit and result bytes come off the network, so Execute() and Merge() validate them.
// Installed with SpareCycles::tasks (header-only for plugin authors; see plugin.hpp).
#pragma once

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "sparecycles/core/parse_int.hpp"
#include "sparecycles/core/status.hpp"

namespace sparecycles::tasks {

/// What a job asks for: named parameters (as text) and optional input bytes.
struct JobParams {
  std::map<std::string, std::string> values;
  std::string input;

  /// Helpers that parse a parameter or fall back to `def` when it is absent. Int() takes
  /// "123", "1e9" and the decimal suffixes k, M, G, T ("4M" = 4000000). Inline, so a plugin
  /// built elsewhere needs nothing but this header.
  Result<std::int64_t> Int(const std::string& name, std::int64_t def) const {
    auto it = values.find(name);
    if (it == values.end()) return def;
    auto v = ParseIntText(it->second);
    if (!v.ok()) return InvalidArgument("parameter '" + name + "': " + v.status().message());
    return v;
  }
  Result<double> Double(const std::string& name, double def) const {
    auto it = values.find(name);
    if (it == values.end()) return def;
    const std::string& text = it->second;
    char* end = nullptr;
    errno = 0;
    double v = std::strtod(text.c_str(), &end);
    if (text.empty() || end != text.c_str() + text.size() || errno != 0 || !std::isfinite(v))
      return InvalidArgument("parameter '" + name + "': '" + text + "' is not a number");
    return v;
  }
  std::string Text(const std::string& name, const std::string& def) const {
    auto it = values.find(name);
    return it == values.end() ? def : it->second;
  }

  /// The integer syntax of Int() (the same as the command line's).
  static Result<std::int64_t> ParseIntText(std::string_view text) {
    return sparecycles::ParseInt(text);
  }
};

/// One declared parameter, shown by `sparecycles run TASK --help`.
struct ParamSpec {
  std::string name;
  std::string default_value;  // empty = required
  std::string help;
};

/// What Plan() learns about a job before it is split.
struct JobPlan {
  double total_work = 0;        // in the task's own work units (see Task::WorkName)
  std::uint64_t max_units = 1;  // the most units this job can be cut into
  bool fixed_units = false;     // the job defines its own units: use max_units unless the submitter
                                // asks for a count (e.g. spin, where one unit is one timed piece)
};

/// Given to Execute(): progress reporting, cancellation and checkpoints.
/// Progress() is where a unit may be paused or stopped: it throws UnitCancelled when the unit
/// must stop. Implementations are per unit; a kernel may call them from several TBB threads.
///
/// Checkpoints (optional for a kernel): a long unit may save its state with Checkpoint() whenever
/// CheckpointDue() says so (cheap to poll), best right before a Progress() call, since that is
/// where the unit may be paused or handed back. When the unit starts again — after the worker
/// restarted, or on another peer after this one was lost — ResumeState() returns the last saved
/// state and the kernel continues from it instead of from zero. The state is untrusted bytes
/// (it may have come over the network): a kernel must validate it and start from zero when it
/// does not fit the unit. A kernel that resumes should report its progress so far at once.
class UnitContext {
 public:
  virtual ~UnitContext() = default;
  /// Reports the fraction done (0..1). May block while the worker is paused or throttled; throws
  /// UnitCancelled when the unit has been cancelled (or handed back after a long pause).
  /// Kernels should call it at least every ~100 ms of work so pausing is prompt.
  virtual void Progress(double fraction) = 0;
  /// True when the unit should stop soon (cancelled); kernels may poll it in inner loops.
  virtual bool StopRequested() const = 0;

  /// The state saved by the last Checkpoint() of this unit (here or on another peer), if any.
  /// Default: none.
  virtual std::optional<std::string> ResumeState() const { return std::nullopt; }
  /// True when the worker would like a checkpoint now (its interval passed, or a pause is
  /// starting). Thread-safe. Default: never.
  virtual bool CheckpointDue() const { return false; }
  /// Saves the unit's state (kernel-defined bytes, at most 16 MiB). Thread-safe; the last call
  /// wins. Default: ignored.
  virtual void Checkpoint(std::string_view state) { (void)state; }
};

struct UnitCancelled {
  std::string reason;
};

/// A context for running a unit outside any worker (tests, benchmarks, local reference runs).
class NullContext final : public UnitContext {
 public:
  void Progress(double) override {}
  bool StopRequested() const override { return false; }
};

class Task {
 public:
  virtual ~Task() = default;

  virtual std::string_view Name() const = 0;
  virtual std::uint32_t Version() const = 0;
  virtual std::string_view Summary() const = 0;
  virtual std::vector<ParamSpec> Params() const = 0;
  /// Name of the unit of work used by Plan()/Calibrate(), e.g. "numbers sieved".
  virtual std::string_view WorkName() const = 0;

  /// Validates the parameters and estimates the job's size. Errors are for the submitter.
  virtual Result<JobPlan> Plan(const JobParams& params) const = 0;

  /// Cuts the job into exactly `units` units (1 <= units <= plan.max_units), in order.
  /// Together the units must cover the job's input exactly once.
  virtual Result<std::vector<std::string>> Split(const JobParams& params,
                                                 std::uint64_t units) const = 0;

  /// Runs one unit (bytes from Split, received over the network). May use TBB inside and
  /// may throw: the worker turns an exception into a failed unit.
  virtual Result<std::string> Execute(std::string_view unit, UnitContext& ctx) const = 0;

  /// Combines the results of all units, given in unit order.
  virtual Result<std::string> Merge(const JobParams& params,
                                    std::span<const std::string> results) const = 0;

  /// The bytes that replicas of a unit must agree on bitwise. Default: the result itself.
  virtual std::string Canonicalize(std::string_view result) const { return std::string(result); }

  /// A short human-readable answer for a merged result (the CLI prints it), e.g. "50847534".
  virtual std::string Summarize(std::string_view merged) const = 0;
  /// The merged result as a JSON value (for --json), e.g. {"count":50847534}.
  virtual std::string ToJson(std::string_view merged) const = 0;
  /// The media type of the merged result, e.g. "application/octet-stream" or "image/png".
  virtual std::string_view MediaType() const { return "application/octet-stream"; }

  /// Work units per second on one core, measured by running a small piece for about `seconds`.
  virtual double Calibrate(double seconds) const = 0;
  /// Work units per second assumed before any peer has reported (about one modern core).
  virtual double DefaultWorkPerSecond() const = 0;
};

/// The tasks a process knows, by name and version. Thread-safe after construction. Part of the
/// daemons, not of the plugin API: a plugin never needs it (its definitions are not installed).
/// A copy shares the Task objects (they are stateless), so `Registry r = Registry::BuiltIn();
/// r.AddShared(mine);` extends the built-ins without touching them.
class Registry {
 public:
  /// A registry with every built-in task.
  static const Registry& BuiltIn();

  void Add(std::unique_ptr<Task> task);
  /// Adds a task the caller may keep using too (e.g. an in-process task of Client::Local).
  void AddShared(std::shared_ptr<const Task> task);
  /// version 0 = the newest of that name.
  const Task* Find(std::string_view name, std::uint32_t version = 0) const;
  std::vector<const Task*> All() const;

 private:
  std::vector<std::shared_ptr<const Task>> tasks_;
};

}  // namespace sparecycles::tasks
