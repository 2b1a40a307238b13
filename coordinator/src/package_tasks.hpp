// Task packages as the coordinator sees them: data, never code. A PackageTask stands in for a
// package's task in the scheduler: its Split hands back the unit bytes the client cut, its Merge
// lists the units' results in order, and its Canonicalize needs no user code (identity for native
// packages, whose workers send canonical results; the manifest's canonicalizer for command
// packages). docs/packages.md, "Where user code runs". Immutable after construction: thread-safe.
#pragma once

#include <memory>
#include <string>

#include "sparecycles/core/hash.hpp"
#include "sparecycles/package/manifest.hpp"
#include "sparecycles/tasks/task.hpp"

namespace sparecycles::coordinator {

class PackageTask final : public tasks::Task {
 public:
  PackageTask(const Hash256& id, package::Manifest manifest);

  std::string_view Name() const override { return name_; }
  std::uint32_t Version() const override { return 1; }
  std::string_view Summary() const override { return summary_; }
  std::vector<tasks::ParamSpec> Params() const override { return {}; }
  std::string_view WorkName() const override { return "expected seconds"; }
  /// The job's input is the list of unit bytes (package::EncodeList); each unit is one piece of
  /// the manifest's expected time.
  Result<tasks::JobPlan> Plan(const tasks::JobParams& params) const override;
  Result<std::vector<std::string>> Split(const tasks::JobParams& params,
                                         std::uint64_t units) const override;
  /// Never called in the coordinator.
  Result<std::string> Execute(std::string_view unit, tasks::UnitContext& ctx) const override;
  /// package::EncodeList of the results in unit order; the client merges them with the package.
  Result<std::string> Merge(const tasks::JobParams& params,
                            std::span<const std::string> results) const override;
  std::string Canonicalize(std::string_view result) const override;
  std::string Summarize(std::string_view merged) const override;
  std::string ToJson(std::string_view merged) const override;
  std::string_view MediaType() const override { return kMediaType; }
  double Calibrate(double) const override { return 1.0; }
  /// One expected second per second of a core.
  double DefaultWorkPerSecond() const override { return 1.0; }

  const package::Manifest& manifest() const { return manifest_; }
  /// The TaskKey a peer announces when it runs packages of this kind ("@native/1").
  std::string PeerKey() const;

  static constexpr std::string_view kMediaType = "application/x-sparecycles-unit-results";

 private:
  std::string name_, summary_;
  package::Manifest manifest_;
};

}  // namespace sparecycles::coordinator
