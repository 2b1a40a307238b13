// A native task package of its own: adaptive Simpson integration of a chosen function over
// [a, b]. The job is cut into equal subintervals (one per unit); inside a unit, TBB integrates
// 64 pieces in parallel, each adaptively to its share of the tolerance. Built against the
// installed header-only task API (SpareCycles::tasks) and exported through the C ABI.
//   sparecycles package build build/integrate-pkg -o integrate.scpkg
//   sparecycles package test integrate.scpkg --function sin --a 0 --b 3.141592653589793
#include <tbb/blocked_range.h>
#include <tbb/parallel_reduce.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <sparecycles/tasks/bytes.hpp>
#include <sparecycles/tasks/helpers.hpp>
#include <sparecycles/tasks/plugin.hpp>

namespace {

using namespace sparecycles;
using namespace sparecycles::tasks;

constexpr int kPiecesPerUnit = 64;
constexpr int kMaxDepth = 48;

double F(std::uint8_t fn, double x) {
  switch (fn) {
    case 0:
      return std::sin(x);
    case 1:
      return std::exp(-x * x);
    default:
      return 1.0 / (1.0 + 25.0 * x * x);  // Runge's function
  }
}

// Adaptive Simpson with Richardson correction; counts evaluations.
double Simpson(std::uint8_t fn, double a, double b, double fa, double fm, double fb, double whole,
               double tol, int depth, std::uint64_t& evals) {
  const double m = 0.5 * (a + b), lm = 0.5 * (a + m), rm = 0.5 * (m + b);
  const double flm = F(fn, lm), frm = F(fn, rm);
  evals += 2;
  const double left = (m - a) / 6 * (fa + 4 * flm + fm), right = (b - m) / 6 * (fm + 4 * frm + fb);
  const double delta = left + right - whole;
  if (depth >= kMaxDepth || std::fabs(delta) <= 15 * tol) return left + right + delta / 15;
  return Simpson(fn, a, m, fa, flm, fm, left, tol / 2, depth + 1, evals) +
         Simpson(fn, m, b, fm, frm, fb, right, tol / 2, depth + 1, evals);
}

struct Sum {
  double value = 0;
  std::uint64_t evals = 0;
};

class Integrate final : public Task {
 public:
  std::string_view Name() const override { return "integrate"; }
  std::uint32_t Version() const override { return 1; }
  std::string_view Summary() const override {
    return "adaptive Simpson integration of sin, gauss or runge over [a, b]";
  }
  std::vector<ParamSpec> Params() const override {
    return {{"function", "sin", "sin | gauss (exp(-x^2)) | runge (1/(1+25x^2))"},
            {"a", "0", "lower bound"},
            {"b", "1", "upper bound"},
            {"tol", "1e-10", "absolute error tolerance of the whole integral"}};
  }
  std::string_view WorkName() const override { return "subintervals"; }

  Result<JobPlan> Plan(const JobParams& p) const override {
    auto fn = Function(p);
    auto a = p.Double("a", 0), b = p.Double("b", 1), tol = p.Double("tol", 1e-10);
    if (!fn.ok()) return fn.status();
    for (const auto* r : {&a, &b, &tol})
      if (!r->ok()) return r->status();
    if (!(*a < *b)) return InvalidArgument("integrate needs a < b");
    if (!(*tol > 0)) return InvalidArgument("integrate needs tol > 0");
    return JobPlan{1000.0, 1000, false};
  }
  Result<std::vector<std::string>> Split(const JobParams& p, std::uint64_t units) const override {
    auto plan = Plan(p);
    if (!plan.ok()) return plan.status();
    if (Status s = CheckUnitCount("integrate", units, plan->max_units); !s.ok()) return s;
    const double a = *p.Double("a", 0), b = *p.Double("b", 1), tol = *p.Double("tol", 1e-10);
    std::vector<std::string> out;
    for (std::uint64_t i = 0; i < units; ++i) {
      const double lo = a + (b - a) * static_cast<double>(i) / static_cast<double>(units);
      const double hi = i + 1 == units
                            ? b
                            : a + (b - a) * static_cast<double>(i + 1) / static_cast<double>(units);
      out.push_back(ByteWriter()
                        .Put<std::uint8_t>(*Function(p))
                        .Put(lo)
                        .Put(hi)
                        .Put(tol / static_cast<double>(units))
                        .bytes());
    }
    return out;
  }
  Result<std::string> Execute(std::string_view unit, UnitContext& ctx) const override {
    ByteReader r(unit, "integrate unit");
    const auto fn = r.Get<std::uint8_t>();
    const double lo = r.Get<double>(), hi = r.Get<double>(), tol = r.Get<double>();
    if (Status s = r.Finish(); !s.ok()) return s;
    if (fn > 2 || !(lo < hi) || !(tol > 0) || !std::isfinite(lo) || !std::isfinite(hi))
      return InvalidArgument("integrate: bad unit");
    ProgressMeter meter(ctx, kPiecesPerUnit, 16);
    const Sum total = tbb::parallel_reduce(
        tbb::blocked_range<int>(0, kPiecesPerUnit), Sum{},
        [&](const tbb::blocked_range<int>& range, Sum acc) {
          for (int i = range.begin(); i != range.end(); ++i) {
            const double a = lo + (hi - lo) * i / kPiecesPerUnit,
                         b = lo + (hi - lo) * (i + 1) / kPiecesPerUnit;
            const double fa = F(fn, a), fb = F(fn, b), fm = F(fn, 0.5 * (a + b));
            acc.evals += 3;
            const double whole = (b - a) / 6 * (fa + 4 * fm + fb);
            acc.value += Simpson(fn, a, b, fa, fm, fb, whole, tol / kPiecesPerUnit, 0, acc.evals);
            meter.Add(1);
          }
          return acc;
        },
        [](Sum x, const Sum& y) {
          x.value += y.value;
          x.evals += y.evals;
          return x;
        });
    return ByteWriter().Put(total.value).Put(total.evals).bytes();
  }
  Result<std::string> Merge(const JobParams&, std::span<const std::string> results) const override {
    Sum total;
    for (const auto& res : results) {
      ByteReader r(res, "integrate result");
      total.value += r.Get<double>();
      total.evals += r.Get<std::uint64_t>();
      if (Status s = r.Finish(); !s.ok()) return s;
    }
    return ByteWriter().Put(total.value).Put(total.evals).bytes();
  }
  // TBB may sum a unit's pieces in any order: the last bits differ between honest runs, so
  // replicas compare the value rounded to 12 significant digits. The canonical form is itself a
  // valid result (a package's Merge receives canonical results: docs/packages.md).
  std::string Canonicalize(std::string_view result) const override {
    ByteReader r(result, "integrate result");
    const double v = r.Get<double>();
    const auto evals = r.Get<std::uint64_t>();
    if (!r.Finish().ok()) return std::string(result);
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%.12g", v);
    return ByteWriter().Put(std::strtod(buf, nullptr)).Put(evals).bytes();
  }
  std::string Summarize(std::string_view merged) const override {
    ByteReader r(merged);
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%.15g", r.Get<double>());
    return buf;
  }
  std::string ToJson(std::string_view merged) const override {
    ByteReader r(merged);
    const double v = r.Get<double>();
    const auto evals = r.Get<std::uint64_t>();
    char buf[128];
    std::snprintf(buf, sizeof(buf), "{\"integral\":%.17g,\"evaluations\":%llu}", v,
                  static_cast<unsigned long long>(evals));
    return buf;
  }
  double Calibrate(double) const override { return DefaultWorkPerSecond(); }
  double DefaultWorkPerSecond() const override { return 200; }

 private:
  static Result<std::uint8_t> Function(const JobParams& p) {
    const std::string f = p.Text("function", "sin");
    if (f == "sin") return std::uint8_t{0};
    if (f == "gauss") return std::uint8_t{1};
    if (f == "runge") return std::uint8_t{2};
    return InvalidArgument("integrate: --function must be sin, gauss or runge");
  }
};

}  // namespace

SPARECYCLES_EXPORT_TASK(Integrate)
