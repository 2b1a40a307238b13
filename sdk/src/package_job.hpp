// The client's side of task package jobs (docs/packages.md, "Where user code runs";
// docs/protocol.md §7.1): a package read and verified for this machine, a job of it cut into unit
// bytes, and the units' results merged. Pure functions over data, no sockets. A LoadedPackage is
// immutable once opened and may be shared between threads (its native task is as thread-safe as
// the Task API requires); it owns the private directory its files were extracted to.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sparecycles/core/hash.hpp"
#include "sparecycles/core/status.hpp"
#include "sparecycles/package/package.hpp"
#include "sparecycles/tasks/task.hpp"

namespace sparecycles::sdk {

/// The media type of a package job's unmerged result (docs/protocol.md §7.1).
inline constexpr std::string_view kUnitResultsMediaType = "application/x-sparecycles-unit-results";

class LoadedPackage {
 public:
  /// Reads `path` (refused before reading when over `max_bytes`) and calls FromPackage.
  static Result<std::shared_ptr<const LoadedPackage>> Open(
      const std::string& path, std::uint64_t max_bytes = package::kDefaultMaxPackageBytes);
  /// Verifies a package for the submitting client: a signature that is present must be valid,
  /// files must match their hashes; none is required (it is the researcher's own). A native
  /// package must run on this host (its Plan, Split and Merge run here): it is extracted to a
  /// private temporary directory and its library loaded through the plugin ABI.
  static Result<std::shared_ptr<const LoadedPackage>> FromPackage(package::Package pkg);

  LoadedPackage(const LoadedPackage&) = delete;
  LoadedPackage& operator=(const LoadedPackage&) = delete;
  ~LoadedPackage();

  const package::Package& package() const { return pkg_; }
  const package::Manifest& manifest() const { return pkg_.manifest(); }
  const Hash256& id() const { return id_; }
  /// "pkg:<64 hex digits>", the job's task name.
  std::string task_name() const;
  /// The .scpkg bytes (what is uploaded).
  const std::string& bytes() const { return bytes_; }
  /// The native task; null for a command package.
  const tasks::Task* task() const { return task_.get(); }

 private:
  LoadedPackage() = default;
  package::Package pkg_;
  Hash256 id_{};
  std::string bytes_;
  std::string scratch_;  // the private directory holding the extracted package; removed last
  std::unique_ptr<tasks::Task> task_;
};

/// What the submitter asked for (from JobSpec).
struct CutRequest {
  std::map<std::string, std::string> params;
  std::string input;        // native: JobParams.input; command split = lines: the file's bytes
  std::string input_dir;    // command split = files
  std::uint64_t units = 0;  // native: exact count; 0 = from the plan
  double unit_seconds = 0;  // native: target seconds per unit; 0 = 1 s
};

struct CutJob {
  std::string input;        // package::EncodeList(unit bytes): the job's wire input
  std::uint64_t units = 0;  // how many units
};

/// The number of units of a native job: `units` when set, else the plan's max_units when the
/// task fixes its units, else ceil(total_work / (work_per_second x unit_seconds)) within
/// [1, max_units].
std::uint64_t NativeUnitCount(const tasks::JobPlan& plan, double work_per_second,
                              std::uint64_t units, double unit_seconds);

/// Cuts a job: a native package's Plan and Split, a command package's declarative split. The
/// encoded list must fit the job input limit (64 MiB); errors say how large it came out.
Result<CutJob> Cut(const LoadedPackage& pkg, const CutRequest& req);

struct Merged {
  std::string bytes, summary, json, media_type;
  std::vector<std::pair<std::string, std::string>> files;  // "unit-000042/NAME" -> bytes
};

/// Merges a done package job's result (the list of unit results in order): a native package's
/// Merge, Summarize, ToJson, MediaType; a command package's outputs as files.
Result<Merged> Merge(const LoadedPackage& pkg, const std::map<std::string, std::string>& params,
                     std::string_view input, std::string_view unit_results);
/// A package job's result when the package is not at hand: the raw list, and a summary naming
/// the package that merges it.
Merged Unmerged(std::string_view task, std::string unit_results);

/// "unit-000042".
std::string UnitDirName(std::uint64_t index);
/// Writes `files` under `dir` (created if missing). Every name must be a relative package path
/// (no "..", no absolute path) and no component may be an existing symbolic link, so nothing is
/// written outside `dir`.
Status WriteFiles(const std::vector<std::pair<std::string, std::string>>& files,
                  const std::string& dir);

/// True when `text` is 64 hex digits (a package id rather than a path).
bool IsPackageId(std::string_view text);

}  // namespace sparecycles::sdk
