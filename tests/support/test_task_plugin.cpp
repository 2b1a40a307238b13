// TEST-ONLY task plugin: sums i*i over [from, to), built as a shared library against the
// header-only task API exactly as an outside author would. Parameter `mode` makes a unit fail
// on purpose (error, throw) so the tests can check how failures cross the ABI.
#include <csignal>
#include <stdexcept>

#include "sparecycles/tasks/bytes.hpp"
#include "sparecycles/tasks/helpers.hpp"
#include "sparecycles/tasks/plugin.hpp"

namespace {

using namespace sparecycles;
using namespace sparecycles::tasks;

class SumSquares final : public Task {
 public:
  std::string_view Name() const override { return "sumsq"; }
  std::uint32_t Version() const override { return 3; }
  std::string_view Summary() const override { return "sum of i*i over [from, to) (test plugin)"; }
  std::vector<ParamSpec> Params() const override {
    return {{"from", "0", "first number"},
            {"to", "", "one past the last number"},
            {"mode", "ok", "ok | error | throw | crash (the unit holding 0 segfaults)"}};
  }
  std::string_view WorkName() const override { return "numbers"; }
  Result<JobPlan> Plan(const JobParams& p) const override {
    auto from = p.Int("from", 0);
    auto to = p.Int("to", -1);
    if (!from.ok()) return from.status();
    if (!to.ok()) return to.status();
    if (*to < *from || *from < 0 || *to > 2'000'000)
      return InvalidArgument("sumsq needs 0 <= from <= to <= 2000000");
    return JobPlan{static_cast<double>(*to - *from),
                   static_cast<std::uint64_t>(std::max<std::int64_t>(*to - *from, 1)), false};
  }
  Result<std::vector<std::string>> Split(const JobParams& p, std::uint64_t units) const override {
    auto plan = Plan(p);
    if (!plan.ok()) return plan.status();
    if (Status s = CheckUnitCount("sumsq", units, plan->max_units); !s.ok()) return s;
    const std::string mode = p.Text("mode", "ok");
    const std::uint8_t m = mode == "error" ? 1 : mode == "throw" ? 2 : mode == "crash" ? 3 : 0;
    std::vector<std::string> out;
    for (auto [lo, hi] : SplitRange(static_cast<std::uint64_t>(*p.Int("from", 0)),
                                    static_cast<std::uint64_t>(*p.Int("to", 0)), units))
      out.push_back(
          ByteWriter().Put<std::uint64_t>(lo).Put<std::uint64_t>(hi).Put<std::uint8_t>(m).bytes());
    return out;
  }
  Result<std::string> Execute(std::string_view unit, UnitContext& ctx) const override {
    ByteReader r(unit, "sumsq unit");
    const auto lo = r.Get<std::uint64_t>(), hi = r.Get<std::uint64_t>();
    const auto mode = r.Get<std::uint8_t>();
    if (Status s = r.Finish(); !s.ok()) return s;
    if (hi < lo || hi > 2'000'000) return InvalidArgument("sumsq unit out of range");
    if (mode == 1) return FailedPrecondition("sumsq was asked to fail");
    if (mode == 2) throw std::runtime_error("sumsq threw on purpose");
    if (mode == 3 && lo == 0) std::raise(SIGSEGV);  // user code that crashes its process
    std::uint64_t next = lo, sum = 0;
    if (auto state = ctx.ResumeState()) {
      ByteReader s(*state, "sumsq checkpoint");
      const auto n = s.Get<std::uint64_t>(), v = s.Get<std::uint64_t>();
      if (s.Finish().ok() && n >= lo && n <= hi) next = n, sum = v;
    }
    ProgressMeter meter(ctx, hi - lo, 10);
    meter.Add(next - lo);
    for (; next < hi; ++next) {
      sum += next * next;
      if ((next - lo) % 1000 == 999) {
        CheckpointIfDue(ctx, [&] {
          return ByteWriter().Put<std::uint64_t>(next + 1).Put<std::uint64_t>(sum).bytes();
        });
        meter.Add(1000);
      }
    }
    return ByteWriter().Put<std::uint64_t>(sum).bytes();
  }
  Result<std::string> Merge(const JobParams&, std::span<const std::string> results) const override {
    std::uint64_t total = 0;
    for (const auto& r : results) {
      ByteReader in(r, "sumsq result");
      total += in.Get<std::uint64_t>();
      if (Status s = in.Finish(); !s.ok()) return s;
    }
    return ByteWriter().Put<std::uint64_t>(total).bytes();
  }
  std::string Summarize(std::string_view merged) const override {
    ByteReader in(merged);
    return std::to_string(in.Get<std::uint64_t>());
  }
  std::string ToJson(std::string_view merged) const override {
    return "{\"sum\":" + Summarize(merged) + "}";
  }
  double Calibrate(double) const override { return 5e8; }
  double DefaultWorkPerSecond() const override { return 1e8; }
};

}  // namespace

SPARECYCLES_EXPORT_TASK(SumSquares)
