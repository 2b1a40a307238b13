// spin: units that busy-wait a fixed time, for benchmarks and tests of the scheduler.
//
// The job is `units` spin slots of `ms` milliseconds each. Plan() sets fixed_units, so the
// coordinator makes one unit per slot; when a submitter asks for fewer units, a unit holds a
// contiguous run of slots and spins for all of them. Work unit: one millisecond of spinning.
// Each slot's result is its index; Merge checks every index arrived, in order.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "builtin.hpp"
#include "common.hpp"

namespace sparecycles::tasks {
namespace {

constexpr std::string_view kName = "spin";

constexpr std::int64_t kMaxSlots = 1'000'000;
constexpr std::int64_t kMaxMs = 3'600'000;  // one hour per slot
// Progress (and so pausing/cancelling) is checked this often while spinning.
constexpr auto kReportEvery = std::chrono::milliseconds(5);

struct Unit {
  std::uint64_t first = 0, count = 0, total = 0;  // slots [first, first + count) of `total`
  std::uint32_t ms = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(first, count, total, ms);
  }
};

struct UnitResult {
  std::uint64_t first = 0, count = 0;  // the slot indices completed
  template <class Archive>
  void serialize(Archive& ar) {
    ar(first, count);
  }
};

struct Merged {
  std::uint64_t slots = 0, units = 0;
  std::uint32_t ms = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(slots, units, ms);
  }
};

struct Config {
  std::uint64_t slots;
  std::uint32_t ms;
};

Result<Config> ParseConfig(const JobParams& params) {
  SC_ASSIGN_OR_RETURN(std::int64_t units,
                      internal::IntParam(kName, params, "units", 100, 1, kMaxSlots));
  SC_ASSIGN_OR_RETURN(std::int64_t ms, internal::IntParam(kName, params, "ms", 20, 0, kMaxMs));
  return Config{static_cast<std::uint64_t>(units), static_cast<std::uint32_t>(ms)};
}

class SpinTask final : public Task {
 public:
  std::string_view Name() const override { return kName; }
  std::uint32_t Version() const override { return 1; }
  std::string_view Summary() const override {
    return "busy-wait 'ms' milliseconds per unit (benchmarks and tests)";
  }
  std::vector<ParamSpec> Params() const override {
    return {{"units", "100", "number of spin slots; submit with this many units for one each"},
            {"ms", "20", "milliseconds each slot spins (0 = trivial units)"}};
  }
  std::string_view WorkName() const override { return "milliseconds spun"; }

  Result<JobPlan> Plan(const JobParams& params) const override {
    SC_ASSIGN_OR_RETURN(Config c, ParseConfig(params));
    JobPlan plan;
    // With ms = 0 the work is still counted as a sliver per slot so the job never looks empty.
    plan.total_work = static_cast<double>(c.slots) * std::max(0.001, static_cast<double>(c.ms));
    plan.max_units = c.slots;
    plan.fixed_units = true;  // one slot per unit unless the submitter asks for a unit count
    return plan;
  }

  Result<std::vector<std::string>> Split(const JobParams& params,
                                         std::uint64_t units) const override {
    SC_ASSIGN_OR_RETURN(Config c, ParseConfig(params));
    SC_RETURN_IF_ERROR(internal::CheckUnitCount(kName, units, c.slots));
    std::vector<std::string> out;
    out.reserve(units);
    for (std::uint64_t i = 0; i < units; ++i) {
      const std::uint64_t lo = internal::SplitPoint(0, c.slots, i, units);
      const std::uint64_t hi = internal::SplitPoint(0, c.slots, i + 1, units);
      out.push_back(EncodeValue(Unit{lo, hi - lo, c.slots, c.ms}));
    }
    return out;
  }

  Result<std::string> Execute(std::string_view bytes, UnitContext& ctx) const override {
    Unit u;
    SC_RETURN_IF_ERROR(internal::DecodeOrError(kName, "unit", bytes, u));
    if (u.total < 1 || u.total > static_cast<std::uint64_t>(kMaxSlots) || u.count < 1 ||
        u.first >= u.total || u.count > u.total - u.first || u.ms > kMaxMs)
      return InvalidArgument("spin: unit slots or duration out of range");
    using Clock = std::chrono::steady_clock;
    const auto duration = std::chrono::milliseconds(std::uint64_t{u.ms} * u.count);
    const auto start = Clock::now();
    auto next_report = start + kReportEvery;
    for (;;) {
      const auto now = Clock::now();
      const auto elapsed = now - start;
      if (elapsed >= duration) break;
      if (now >= next_report) {
        ctx.Progress(std::chrono::duration<double>(elapsed) / duration);
        next_report = now + kReportEvery;
      }
    }
    ctx.Progress(1.0);
    return EncodeValue(UnitResult{u.first, u.count});
  }

  Result<std::string> Merge(const JobParams& params,
                            std::span<const std::string> results) const override {
    SC_ASSIGN_OR_RETURN(Config c, ParseConfig(params));
    Merged m{0, 0, c.ms};
    for (std::size_t i = 0; i < results.size(); ++i) {
      UnitResult r;
      SC_RETURN_IF_ERROR(internal::DecodeOrError(kName, "result", results[i], r));
      if (r.first != m.slots || r.count < 1 || r.count > c.slots - m.slots)
        return DataLoss("spin: result " + std::to_string(i) + " holds slots [" +
                        std::to_string(r.first) + ", +" + std::to_string(r.count) + ") but slot " +
                        std::to_string(m.slots) + " was expected next");
      m.slots += r.count;
      ++m.units;
    }
    if (m.slots != c.slots)
      return DataLoss("spin: " + std::to_string(m.slots) + " of " + std::to_string(c.slots) +
                      " slots completed (missing units?)");
    return EncodeValue(m);
  }

  std::string Summarize(std::string_view bytes) const override {
    Merged m;
    Status s = DecodeValue(bytes, m);
    if (!s.ok()) return internal::BadMerged(kName, s);
    return std::to_string(m.slots) + " slots of " + std::to_string(m.ms) + " ms in " +
           std::to_string(m.units) + " units";
  }

  std::string ToJson(std::string_view bytes) const override {
    Merged m;
    Status s = DecodeValue(bytes, m);
    if (!s.ok()) return internal::BadMergedJson(kName, s);
    return "{\"completed\":" + std::to_string(m.slots) + ",\"units\":" + std::to_string(m.units) +
           ",\"ms\":" + std::to_string(m.ms) + "}";
  }

  double Calibrate(double seconds) const override {
    // Spinning for a millisecond takes a millisecond; measure it anyway so a badly throttled
    // clock shows up here rather than in the scheduler.
    NullContext ctx;
    const std::string unit = EncodeValue(Unit{0, 1, 1, 1});
    std::uint64_t done = 0;
    internal::Stopwatch watch;
    do {
      (void)Execute(unit, ctx);
      ++done;
    } while (watch.Seconds() < seconds);
    return static_cast<double>(done) / watch.Seconds();
  }

  double DefaultWorkPerSecond() const override { return 1000; }
};

}  // namespace

std::unique_ptr<Task> MakeSpinTask() { return std::make_unique<SpinTask>(); }

}  // namespace sparecycles::tasks
