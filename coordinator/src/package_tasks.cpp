#include "package_tasks.hpp"

#include "sparecycles/coordinator/scheduler.hpp"
#include "sparecycles/package/command.hpp"
#include "sparecycles/package/job.hpp"

namespace sparecycles::coordinator {

PackageTask::PackageTask(const Hash256& id, package::Manifest manifest)
    : name_(package::PackageTaskName(id)),
      summary_(manifest.name + " " + manifest.version + " (" +
               std::string(package::KindName(manifest.kind)) + " package)"),
      manifest_(std::move(manifest)) {}

std::string PackageTask::PeerKey() const {
  return TaskKey(package::KindTaskName(manifest_.kind), package::kKindTaskVersion);
}

Result<tasks::JobPlan> PackageTask::Plan(const tasks::JobParams& params) const {
  auto units = package::DecodeList(params.input, package::kMaxJobUnits, "package job units");
  if (!units.ok()) return units.status();
  if (units->empty()) return InvalidArgument("a package job needs at least one unit");
  tasks::JobPlan plan;
  plan.max_units = units->size();
  plan.fixed_units = true;
  plan.total_work = static_cast<double>(units->size()) *
                    static_cast<double>(manifest_.resources.expected_seconds);
  return plan;
}

Result<std::vector<std::string>> PackageTask::Split(const tasks::JobParams& params,
                                                    std::uint64_t units) const {
  auto list = package::DecodeList(params.input, package::kMaxJobUnits, "package job units");
  if (!list.ok()) return list.status();
  if (list->size() != units)
    return InvalidArgument("the job carries " + std::to_string(list->size()) +
                           " units; it cannot be cut into " + std::to_string(units));
  return list;
}

Result<std::string> PackageTask::Execute(std::string_view, tasks::UnitContext&) const {
  return FailedPrecondition("the coordinator never runs a package's code");
}

Result<std::string> PackageTask::Merge(const tasks::JobParams&,
                                       std::span<const std::string> results) const {
  return package::EncodeList(std::vector<std::string>(results.begin(), results.end()));
}

std::string PackageTask::Canonicalize(std::string_view result) const {
  if (manifest_.kind == package::Kind::kNative) return std::string(result);
  auto outputs = package::DecodeOutputs(result);
  if (!outputs.ok()) return "malformed outputs";  // hashes to what no honest peer reports
  package::OutputFiles canonical;
  canonical.reserve(outputs->size());
  for (auto& [name, bytes] : *outputs)
    canonical.emplace_back(name,
                           package::CanonicalizeOutput(manifest_.command.canonicalizer, bytes));
  return package::EncodeOutputs(std::move(canonical));
}

std::string PackageTask::Summarize(std::string_view merged) const {
  auto list = package::DecodeList(merged, package::kMaxJobUnits, "unit results");
  if (!list.ok()) return "unreadable unit results";
  std::uint64_t bytes = 0;
  for (const auto& r : *list) bytes += r.size();
  return std::to_string(list->size()) + " unit results, " + std::to_string(bytes) +
         " bytes (merge them with the package)";
}

std::string PackageTask::ToJson(std::string_view merged) const {
  auto list = package::DecodeList(merged, package::kMaxJobUnits, "unit results");
  if (!list.ok()) return "null";
  std::uint64_t bytes = 0;
  for (const auto& r : *list) bytes += r.size();
  return "{\"units\":" + std::to_string(list->size()) + ",\"bytes\":" + std::to_string(bytes) + "}";
}

}  // namespace sparecycles::coordinator
