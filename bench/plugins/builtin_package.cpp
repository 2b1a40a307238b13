// BENCHMARK-ONLY native task plugin: a built-in kernel compiled into a package, so that
// bench_packages compares exactly the same code built into the worker and shipped as a package
// (run in a sandboxed sparecycles-executor process). bench/CMakeLists.txt builds it once per
// kernel: SC_MAKE_TASK names the built-in's factory (MakePrimesTask: the efficiency figures;
// MakeSpinTask: trivial units, per-unit overhead only), SC_PACKAGE_TASK the task's name.
#include <memory>

#include "../../tasks/src/builtin.hpp"
#include "sparecycles/tasks/plugin.hpp"

namespace {

using namespace sparecycles;
using namespace sparecycles::tasks;

class BuiltinPackage final : public Task {
 public:
  std::string_view Name() const override { return SC_PACKAGE_TASK; }
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
  std::unique_ptr<Task> t_ = SC_MAKE_TASK();
};

}  // namespace

SPARECYCLES_EXPORT_TASK(BuiltinPackage)
