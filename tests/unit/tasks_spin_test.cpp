// Tests of the spin task: slot bookkeeping in Merge (missing, duplicated and reordered units),
// grouping of slots when there are fewer units, the spin duration and progress/cancellation.
#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "sparecycles/tasks/task.hpp"
#include "task_runner.hpp"
#include "wire_bytes.hpp"

using namespace sparecycles;
using namespace sparecycles::tasks;

namespace {

const Task& Spin() { return testing::BuiltInTask("spin"); }

JobParams Params(int units, int ms) {
  JobParams p;
  p.values["units"] = std::to_string(units);
  p.values["ms"] = std::to_string(ms);
  return p;
}

class RecordingContext final : public UnitContext {
 public:
  void Progress(double f) override {
    if (f < last || f > 1) bad = true;
    last = f;
    ++calls;
  }
  bool StopRequested() const override { return false; }
  double last = 0;
  int calls = 0;
  bool bad = false;
};

}  // namespace

TEST_CASE("the registry knows spin version 1") {
  CHECK(Spin().Name() == "spin");
  CHECK(Spin().Version() == 1);
}

TEST_CASE("one unit per slot merges to the number of slots completed") {
  const JobParams params = Params(10, 0);
  auto plan = Spin().Plan(params);
  REQUIRE(plan.ok());
  CHECK(plan->max_units == 10);
  CHECK(plan->total_work > 0);
  auto merged = Spin().Merge(params, testing::RunUnits(Spin(), params, 10));
  REQUIRE(merged.ok());
  CHECK(Spin().Summarize(*merged) == "10 slots of 0 ms in 10 units");
  CHECK(Spin().ToJson(*merged) == "{\"completed\":10,\"units\":10,\"ms\":0}");
  CHECK(Spin().Plan(Params(100, 20))->total_work == 2000);
}

TEST_CASE("fewer units than slots group the slots and still cover each once") {
  const JobParams params = Params(10, 0);
  for (std::uint64_t units = 1; units <= 10; ++units) {
    auto merged = Spin().Merge(params, testing::RunUnits(Spin(), params, units));
    REQUIRE(merged.ok());
    CHECK(Spin().Summarize(*merged) == "10 slots of 0 ms in " + std::to_string(units) + " units");
  }
  CHECK_FALSE(Spin().Split(params, 0).ok());
  CHECK_FALSE(Spin().Split(params, 11).ok());
}

TEST_CASE("merge detects a missing, duplicated or reordered unit") {
  const JobParams params = Params(5, 0);
  const std::vector<std::string> results = testing::RunUnits(Spin(), params, 5);
  REQUIRE(Spin().Merge(params, results).ok());
  for (std::size_t skip = 0; skip < results.size(); ++skip) {
    std::vector<std::string> missing;
    for (std::size_t i = 0; i < results.size(); ++i)
      if (i != skip) missing.push_back(results[i]);
    auto m = Spin().Merge(params, missing);
    REQUIRE_FALSE(m.ok());
    CHECK(m.status().code() == StatusCode::kDataLoss);
  }
  std::vector<std::string> dup = results;
  dup[3] = results[2];
  CHECK_FALSE(Spin().Merge(params, dup).ok());
  std::vector<std::string> swapped = results;
  std::swap(swapped[0], swapped[4]);
  CHECK_FALSE(Spin().Merge(params, swapped).ok());
  std::vector<std::string> extra = results;
  extra.push_back(results[4]);
  CHECK_FALSE(Spin().Merge(params, extra).ok());
  CHECK_FALSE(Spin().Merge(params, {}).ok());
  std::vector<std::string> garbage = results;
  garbage[1] = "garbage!";
  CHECK_FALSE(Spin().Merge(params, garbage).ok());
}

TEST_CASE("a unit spins at least its duration and reports progress up to completion") {
  auto units = Spin().Split(Params(2, 12), 2);
  REQUIRE(units.ok());
  RecordingContext ctx;
  const auto start = std::chrono::steady_clock::now();
  REQUIRE(Spin().Execute(units->front(), ctx).ok());
  CHECK(std::chrono::steady_clock::now() - start >= std::chrono::milliseconds(12));
  // Reports in between depend on scheduling (a loaded machine may skip them); the last is 1.
  CHECK(ctx.calls >= 1);
  CHECK_FALSE(ctx.bad);
  CHECK(ctx.last == 1.0);
}

TEST_CASE("a unit lets cancellation through") {
  class Cancelling final : public UnitContext {
   public:
    void Progress(double) override { throw UnitCancelled{"stop"}; }
    bool StopRequested() const override { return true; }
  } cancel;
  auto units = Spin().Split(Params(1, 10'000), 1);
  REQUIRE(units.ok());
  const auto start = std::chrono::steady_clock::now();
  CHECK_THROWS_AS((void)Spin().Execute(units->front(), cancel), UnitCancelled);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));
}

TEST_CASE("plan explains bad parameters") {
  for (const auto& [key, value] : std::vector<std::pair<std::string, std::string>>{
           {"units", "0"}, {"units", "2000000"}, {"ms", "-1"}, {"ms", "soon"}}) {
    JobParams p;
    p.values[key] = value;
    auto plan = Spin().Plan(p);
    REQUIRE_FALSE(plan.ok());
    CHECK(plan.status().message().find(key) != std::string::npos);
  }
}

TEST_CASE("execute rejects garbage, truncated and padded unit bytes") {
  auto units = Spin().Split(Params(4, 0), 4);
  REQUIRE(units.ok());
  NullContext ctx;
  const std::string& unit = (*units)[2];
  for (std::size_t len = 0; len < unit.size(); ++len)
    CHECK_FALSE(Spin().Execute(unit.substr(0, len), ctx).ok());
  CHECK_FALSE(Spin().Execute(unit + '\0', ctx).ok());
  std::mt19937_64 rng(13);
  for (int i = 0; i < 500; ++i) {
    std::string junk(rng() % 40, '\0');
    for (char& c : junk) c = static_cast<char>(rng());
    CHECK_FALSE(Spin().Execute(junk, ctx).ok());
  }
}

TEST_CASE("calibration finds at most a thousand milliseconds per second") {
  // Spinning is timed by the wall clock, so a loaded machine measures less, never more.
  const double rate = Spin().Calibrate(0.05);
  CHECK(rate > 0);
  CHECK(rate < 1100);
  CHECK(Spin().DefaultWorkPerSecond() == 1000);
}

TEST_CASE("the unit, result and merged layouts are the ones docs/protocol.md gives") {
  using testing::WireReader;
  using testing::WireWriter;
  NullContext ctx;
  // Appendix A.6: unit = first u64, count u64, total u64, ms u32; result = first, count.
  const std::string unit = WireWriter().U64(2).U64(3).U64(10).U32(0).str();
  REQUIRE(unit.size() == 28);
  auto r = Spin().Execute(unit, ctx);
  REQUIRE_MESSAGE(r.ok(), r.status().ToString());
  CHECK(*r == WireWriter().U64(2).U64(3).str());
  CHECK_FALSE(Spin().Execute(unit + '\0', ctx).ok());
  CHECK_FALSE(
      Spin().Execute(WireWriter().U64(8).U64(3).U64(10).U32(0).str(), ctx).ok());  // past total
  auto split = Spin().Split(Params(10, 5), 3);
  REQUIRE(split.ok());
  CHECK((*split)[0] == WireWriter().U64(0).U64(3).U64(10).U32(5).str());
  CHECK((*split)[1] == WireWriter().U64(3).U64(3).U64(10).U32(5).str());
  CHECK((*split)[2] == WireWriter().U64(6).U64(4).U64(10).U32(5).str());
  // Merged = slots u64, units u64, ms u32.
  const std::string merged_bytes = testing::RunJob(Spin(), Params(10, 0), 3);
  WireReader m(merged_bytes);
  CHECK(m.U64() == 10);
  CHECK(m.U64() == 3);
  CHECK(m.U32() == 0);
  CHECK(m.AtEnd());
}
