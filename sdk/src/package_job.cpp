#include "package_job.hpp"

#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <exception>
#include <filesystem>

#include "sparecycles/core/protocol.hpp"
#include "sparecycles/package/command.hpp"
#include "sparecycles/package/job.hpp"
#include "sparecycles/package/plugin_loader.hpp"

namespace sparecycles::sdk {

using package::Kind;
using package::SplitMode;

Result<std::shared_ptr<const LoadedPackage>> LoadedPackage::Open(const std::string& path,
                                                                 std::uint64_t max_bytes) {
  package::DecodeOptions d;
  d.max_package_bytes = max_bytes;
  auto pkg = package::Package::ReadFile(path, d);
  if (!pkg.ok()) return Status(pkg.status().code(), path + ": " + pkg.status().message());
  return FromPackage(std::move(pkg).value());
}

Result<std::shared_ptr<const LoadedPackage>> LoadedPackage::FromPackage(package::Package pkg) {
  std::shared_ptr<LoadedPackage> out(new LoadedPackage());
  out->pkg_ = std::move(pkg);
  const package::Manifest& m = out->pkg_.manifest();
  package::VerifyOptions vo;
  vo.require_signature = false;                 // the researcher's own package
  vo.check_platform = m.kind == Kind::kNative;  // its code runs here
  if (package::Verdict v = out->pkg_.Verify(vo); !v.ok())
    return FailedPrecondition("package " + m.name + " " + m.version +
                              " refused here: " + v.ToString());
  out->bytes_ = out->pkg_.Encode();
  out->id_ = Blake2b256(out->bytes_);
  if (m.kind != Kind::kNative) return std::shared_ptr<const LoadedPackage>(std::move(out));
  // The manifest's ABI claim is checked before any of the library's code runs.
  if (m.abi_version != package::HostTaskAbiVersion())
    return FailedPrecondition(m.name + " declares task ABI version " +
                              std::to_string(m.abi_version) + ", this SpareCycles speaks version " +
                              std::to_string(package::HostTaskAbiVersion()) + ": rebuild it");
  const char* tmp_root = std::getenv("TMPDIR");
  std::string tmpl =
      std::string(tmp_root && tmp_root[0] ? tmp_root : "/tmp") + "/sparecycles-pkg-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr)
    return Unavailable("cannot create a temporary directory under " + tmpl);
  out->scratch_ = tmpl;
  const std::string root = tmpl + "/pkg";
  SC_RETURN_IF_ERROR(out->pkg_.Extract(root));
  auto task = package::LoadTaskPlugin(root + "/" + m.entry);
  if (!task.ok()) return Status(task.status().code(), m.name + ": " + task.status().message());
  out->task_ = std::move(task).value();
  return std::shared_ptr<const LoadedPackage>(std::move(out));
}

LoadedPackage::~LoadedPackage() {
  task_.reset();  // unloads the library before its file goes
  if (!scratch_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(scratch_, ec);
  }
}

std::string LoadedPackage::task_name() const { return package::PackageTaskName(id_); }

std::uint64_t NativeUnitCount(const tasks::JobPlan& plan, double work_per_second,
                              std::uint64_t units, double unit_seconds) {
  const std::uint64_t max_units =
      std::clamp<std::uint64_t>(plan.max_units, 1, package::kMaxJobUnits);
  if (units > 0) return units;
  if (plan.fixed_units) return max_units;
  const double seconds = unit_seconds > 0 ? unit_seconds : 1.0;
  const double per_unit = (work_per_second > 0 ? work_per_second : 1.0) * seconds;
  const double n = std::ceil(plan.total_work / per_unit);
  if (!(n >= 1)) return 1;  // also NaN
  if (n >= static_cast<double>(max_units)) return max_units;
  return static_cast<std::uint64_t>(n);
}

namespace {

Result<std::vector<std::string>> CutNative(const tasks::Task& t, const CutRequest& req) {
  tasks::JobParams params;
  for (const auto& [k, v] : req.params) {
    bool known = false;
    for (const auto& p : t.Params()) known |= p.name == k;
    if (!known)
      return InvalidArgument("task " + std::string(t.Name()) + " has no parameter '" + k + "'");
    params.values[k] = v;
  }
  params.input = req.input;
  try {
    auto plan = t.Plan(params);
    if (!plan.ok()) return plan.status();
    const std::uint64_t units =
        NativeUnitCount(*plan, t.DefaultWorkPerSecond(), req.units, req.unit_seconds);
    if (units > package::kMaxJobUnits)
      return InvalidArgument("a package job has at most " + std::to_string(package::kMaxJobUnits) +
                             " units; " + std::to_string(units) + " were asked for");
    auto split = t.Split(params, units);
    if (!split.ok()) return split.status();
    if (split->size() != units)
      return Internal("task " + std::string(t.Name()) + " split the job into " +
                      std::to_string(split->size()) + " units, not the " + std::to_string(units) +
                      " asked for");
    return split;
  } catch (const std::exception& e) {
    return Internal("task " + std::string(t.Name()) + " threw: " + e.what());
  }
}

Result<std::vector<std::string>> CutCommand(const package::Manifest& m, const CutRequest& req) {
  if (!req.params.empty())
    return InvalidArgument("command package " + m.name +
                           " takes no parameters (its sweep is in its manifest); got '" +
                           req.params.begin()->first + "'");
  Result<std::vector<package::CommandUnit>> units = Internal("unset");
  switch (m.command.split.mode) {
    case SplitMode::kLines:
      if (req.input.empty())
        return InvalidArgument(m.name + " splits its input by lines: give the input file");
      units = package::SplitLines(m, req.input);
      break;
    case SplitMode::kFiles:
      if (req.input_dir.empty())
        return InvalidArgument(m.name + " makes one unit per input file: give the input directory");
      units = package::SplitFiles(m, req.input_dir, proto::kMaxInputBytes);
      break;
    case SplitMode::kSweep:
      units = package::SplitSweep(m);
      break;
    case SplitMode::kNone:
      units = std::vector<package::CommandUnit>(1);
      break;
  }
  if (!units.ok()) return units.status();
  if (units->size() > package::kMaxJobUnits)
    return InvalidArgument("a package job has at most " + std::to_string(package::kMaxJobUnits) +
                           " units; " + m.name + "'s split makes " + std::to_string(units->size()));
  std::vector<std::string> out;
  out.reserve(units->size());
  for (const auto& u : *units) out.push_back(package::EncodeCommandUnit(u));
  return out;
}

}  // namespace

Result<CutJob> Cut(const LoadedPackage& pkg, const CutRequest& req) {
  const package::Manifest& m = pkg.manifest();
  Result<std::vector<std::string>> units = Internal("unset");
  if (m.kind == Kind::kNative) {
    if (pkg.task() == nullptr) return Internal("native package " + m.name + " is not loaded");
    if (!req.input_dir.empty())
      return InvalidArgument("native package " + m.name + " takes no input directory");
    units = CutNative(*pkg.task(), req);
  } else {
    units = CutCommand(m, req);
  }
  if (!units.ok()) return units.status();
  std::uint64_t total = 8;
  for (const auto& u : *units) total += 8 + u.size();
  if (total > proto::kMaxInputBytes)
    return ResourceExhausted("the job's " + std::to_string(units->size()) + " units take " +
                             std::to_string(total) + " bytes; a job's input holds at most " +
                             std::to_string(proto::kMaxInputBytes) +
                             " (fewer or smaller units, or data the package reads itself)");
  CutJob out;
  out.units = units->size();
  out.input = package::EncodeList(*units);
  return out;
}

std::string UnitDirName(std::uint64_t index) {
  char name[32];
  std::snprintf(name, sizeof(name), "unit-%06llu", static_cast<unsigned long long>(index));
  return name;
}

Result<Merged> Merge(const LoadedPackage& pkg, const std::map<std::string, std::string>& params,
                     std::string_view input, std::string_view unit_results) {
  auto results = package::DecodeList(unit_results, package::kMaxJobUnits, "unit results");
  if (!results.ok()) return results.status();
  const package::Manifest& m = pkg.manifest();
  Merged out;
  if (m.kind == Kind::kNative) {
    const tasks::Task* t = pkg.task();
    if (t == nullptr) return Internal("native package " + m.name + " is not loaded");
    tasks::JobParams p;
    p.values = params;
    p.input = std::string(input);
    try {
      auto merged = t->Merge(p, *results);
      if (!merged.ok())
        return Status(merged.status().code(),
                      m.name + " could not merge: " + merged.status().message());
      out.summary = t->Summarize(*merged);
      out.json = t->ToJson(*merged);
      out.media_type = std::string(t->MediaType());
      out.bytes = std::move(merged).value();
    } catch (const std::exception& e) {
      return Internal(m.name + " threw while merging: " + e.what());
    }
    return out;
  }
  std::uint64_t files = 0, bytes = 0;
  for (std::size_t i = 0; i < results->size(); ++i) {
    auto outputs = package::DecodeOutputs((*results)[i]);
    if (!outputs.ok())
      return DataLoss("unit " + std::to_string(i) + "'s outputs: " + outputs.status().message());
    const std::string dir = UnitDirName(i);
    for (auto& [name, data] : *outputs) {
      ++files;
      bytes += data.size();
      out.files.emplace_back(dir + "/" + name, std::move(data));
    }
  }
  out.summary = std::to_string(results->size()) + " units, " + std::to_string(files) + " files, " +
                std::to_string(bytes) + " bytes";
  out.json =
      "{\"units\":" + std::to_string(results->size()) + ",\"files\":" + std::to_string(files) + "}";
  out.media_type = "inode/directory";
  return out;
}

Merged Unmerged(std::string_view task, std::string unit_results) {
  Merged out;
  std::uint64_t n = 0;
  if (unit_results.size() >= 8)
    for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(unit_results[i]);
  auto id = package::ParsePackageTaskName(task);
  const std::string hex = id ? ToHex(*id) : std::string(task);
  out.summary = std::to_string(n) + " unit results, not merged: package " + hex +
                " merges them (give its .scpkg file)";
  out.json = "{\"units\":" + std::to_string(n) + ",\"merged\":false,\"package\":\"" + hex + "\"}";
  out.media_type = std::string(kUnitResultsMediaType);
  out.bytes = std::move(unit_results);
  return out;
}

Status WriteFiles(const std::vector<std::pair<std::string, std::string>>& files,
                  const std::string& dir) {
  namespace fs = std::filesystem;
  for (const auto& [name, data] : files)
    if (Status s = package::ValidatePackagePath(name); !s.ok())
      return InvalidArgument("refusing to write '" + name + "' under " + dir + ": " + s.message());
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Unavailable("cannot create " + dir + ": " + ec.message());
  for (const auto& [name, data] : files) {
    // Every directory between `dir` and the file is made here, and none may be a link planted
    // to lead elsewhere.
    fs::path at(dir);
    const fs::path rel(name);
    for (auto it = rel.begin(); it != rel.end(); ++it) {
      at /= *it;
      const auto st = fs::symlink_status(at, ec);
      if (fs::is_symlink(st))
        return FailedPrecondition("refusing to write through the symbolic link " + at.string());
      if (std::next(it) == rel.end()) break;
      if (!fs::exists(st)) {
        fs::create_directory(at, ec);
        if (ec) return Unavailable("cannot create " + at.string() + ": " + ec.message());
      } else if (!fs::is_directory(st)) {
        return FailedPrecondition(at.string() + " exists and is not a directory");
      }
    }
    SC_RETURN_IF_ERROR(package::WriteFileAtomic(at.string(), data));
  }
  return OkStatus();
}

bool IsPackageId(std::string_view text) {
  return text.size() == 64 && std::all_of(text.begin(), text.end(), [](char c) {
           return std::isxdigit(static_cast<unsigned char>(c)) != 0;
         });
}

}  // namespace sparecycles::sdk
