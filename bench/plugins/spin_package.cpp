// BENCHMARK-ONLY native task plugin: the built-in spin kernel (units that busy-wait `ms`
// milliseconds; ms=0 = no work at all) compiled into a package, so that bench_packages measures
// the per-unit overhead of package units through the sandboxed executor against the same kernel
// built in.
#include <memory>

#include "../../tasks/src/builtin.hpp"
#include "sparecycles/tasks/plugin.hpp"

namespace {

using namespace sparecycles;
using namespace sparecycles::tasks;

class SpinPackage final : public Task {
 public:
  std::string_view Name() const override { return "spin-package"; }
  std::uint32_t Version() const override { return 1; }
  std::string_view Summary() const override { return t_->Summary(); }
  std::vector<ParamSpec> Params() const override { return t_->Params(); }
  std::string_view WorkName() const override { return t_->WorkName(); }
  Result<JobPlan> Plan(const JobParams& p) const override { return t_->Plan(p); }
  Result<std::vector<std::string>> Split(const JobParams& p, std::uint64_t units) const override {
    return t_->Split(p, units);
  }
  Result<std::string> Execute(std::string_view unit, UnitContext& ctx) const override {
    return t_->Execute(unit, ctx);
  }
  Result<std::string> Merge(const JobParams& p,
                            std::span<const std::string> results) const override {
    return t_->Merge(p, results);
  }
  std::string Canonicalize(std::string_view r) const override { return t_->Canonicalize(r); }
  std::string Summarize(std::string_view m) const override { return t_->Summarize(m); }
  std::string ToJson(std::string_view m) const override { return t_->ToJson(m); }
  double Calibrate(double s) const override { return t_->Calibrate(s); }
  double DefaultWorkPerSecond() const override { return t_->DefaultWorkPerSecond(); }

 private:
  std::unique_ptr<Task> t_ = MakeSpinTask();
};

}  // namespace

SPARECYCLES_EXPORT_TASK(SpinPackage)
