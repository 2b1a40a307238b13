// Tests of the pi task: a statistical bound, bitwise determinism across runs, thread counts and
// splits, and a naive reimplementation of the documented sample generator as reference.
#include <doctest/doctest.h>
#include <tbb/task_arena.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <numbers>
#include <random>
#include <string>
#include <vector>

#include "sparecycles/tasks/task.hpp"
#include "task_runner.hpp"
#include "wire_bytes.hpp"

using namespace sparecycles;
using namespace sparecycles::tasks;

namespace {

const Task& Pi() { return testing::BuiltInTask("pi"); }

JobParams Params(std::uint64_t samples, std::int64_t seed) {
  JobParams p;
  p.values["samples"] = std::to_string(samples);
  p.values["seed"] = std::to_string(seed);
  return p;
}

std::string Merged(const JobParams& params, std::uint64_t units) {
  return testing::RunJob(Pi(), params, units);
}

// The number after "key": in a flat JSON object.
double JsonNumber(const std::string& json, const std::string& key) {
  const std::size_t at = json.find("\"" + key + "\":");
  REQUIRE(at != std::string::npos);
  return std::strtod(json.c_str() + at + key.size() + 3, nullptr);
}

// Reference: the generator exactly as documented in pi.cpp, one sample at a time.
std::uint64_t ReferenceHits(std::uint64_t seed, std::uint64_t samples) {
  auto mix = [](std::uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  };
  const std::uint64_t key = mix(seed);
  std::uint64_t hits = 0;
  for (std::uint64_t i = 0; i < samples; ++i) {
    const std::uint64_t z = mix(key + (i + 1) * 0x9E3779B97F4A7C15ull);
    __extension__ typedef unsigned __int128 U128;
    const U128 x = z >> 32, y = z & 0xFFFFFFFFu;
    if (x * x + y * y < (U128{1} << 64)) ++hits;
  }
  return hits;
}

}  // namespace

TEST_CASE("the registry knows pi version 1") {
  CHECK(Pi().Name() == "pi");
  CHECK(Pi().Version() == 1);
}

TEST_CASE("the estimate lies within five standard errors of pi") {
  for (std::int64_t seed : {1, 2, 987654321}) {
    const std::string json = Pi().ToJson(Merged(Params(10'000'000, seed), 4));
    const double estimate = JsonNumber(json, "estimate");
    const double err = JsonNumber(json, "std_error");
    INFO(json);
    CHECK(err > 0);
    CHECK(err < 0.001);
    CHECK(std::abs(estimate - std::numbers::pi) < 5 * err);
    CHECK(JsonNumber(json, "samples") == 10'000'000);
  }
}

TEST_CASE("hits match a naive reimplementation of the documented generator") {
  for (std::int64_t seed : {1, 42, -7}) {
    const std::string json = Pi().ToJson(Merged(Params(3'000'000, seed), 3));
    CHECK(static_cast<std::uint64_t>(JsonNumber(json, "hits")) ==
          ReferenceHits(static_cast<std::uint64_t>(seed), 3'000'000));
  }
}

TEST_CASE("a unit gives identical bytes on every run and with any thread count") {
  auto units = Pi().Split(Params(5'000'000, 3), 2);
  REQUIRE(units.ok());
  NullContext ctx;
  const std::string& unit = (*units)[1];
  auto first = Pi().Execute(unit, ctx);
  REQUIRE(first.ok());
  auto again = Pi().Execute(unit, ctx);
  REQUIRE(again.ok());
  CHECK(*first == *again);
  for (int threads : {1, 2, 3}) {
    tbb::task_arena arena(threads);
    std::string bytes;
    arena.execute([&] {
      auto r = Pi().Execute(unit, ctx);
      REQUIRE(r.ok());
      bytes = *r;
    });
    INFO(threads << " threads");
    CHECK(bytes == *first);
    CHECK(Pi().Canonicalize(bytes) == Pi().Canonicalize(*first));
  }
}

TEST_CASE("the merged answer does not depend on how the job was split") {
  const JobParams params = Params(4'000'000, 11);
  const std::string one = Merged(params, 1);
  CHECK(Merged(params, 3) == one);
  CHECK(Merged(params, 4) == one);
  CHECK(Merged(Params(4'000'000, 12), 2) != one);
}

TEST_CASE("split covers every sample exactly once for any unit count") {
  const JobParams params = Params(7'654'321, 5);
  auto plan = Pi().Plan(params);
  REQUIRE(plan.ok());
  REQUIRE(plan->max_units == 7);
  for (std::uint64_t units = 1; units <= plan->max_units; ++units) {
    const std::string json = Pi().ToJson(Merged(params, units));
    CHECK(JsonNumber(json, "samples") == 7'654'321);
  }
  CHECK_FALSE(Pi().Split(params, 0).ok());
  CHECK_FALSE(Pi().Split(params, 8).ok());
}

TEST_CASE("plan explains bad parameters and uses the defaults") {
  JobParams none;
  auto plan = Pi().Plan(none);
  REQUIRE(plan.ok());
  CHECK(plan->total_work == 1e8);
  for (const char* bad : {"0", "-5", "many", "2e15"}) {
    JobParams p;
    p.values["samples"] = bad;
    auto r = Pi().Plan(p);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == StatusCode::kInvalidArgument);
    CHECK(r.status().message().find("samples") != std::string::npos);
  }
  JobParams p;
  p.values["seed"] = "x";
  CHECK_FALSE(Pi().Plan(p).ok());
}

TEST_CASE("execute rejects garbage, truncated and padded unit bytes") {
  auto units = Pi().Split(Params(2'000'000, 1), 2);
  REQUIRE(units.ok());
  NullContext ctx;
  const std::string& unit = (*units)[0];
  for (std::size_t len = 0; len < unit.size(); ++len)
    CHECK_FALSE(Pi().Execute(unit.substr(0, len), ctx).ok());
  CHECK_FALSE(Pi().Execute(unit + "x", ctx).ok());
  std::mt19937_64 rng(3);
  for (int i = 0; i < 500; ++i) {
    std::string junk(rng() % 48, '\0');
    for (char& c : junk) c = static_cast<char>(rng());
    CHECK_FALSE(Pi().Execute(junk, ctx).ok());
  }
}

TEST_CASE("merge rejects missing, reordered, foreign and garbage results") {
  const JobParams params = Params(3'000'000, 1);
  const std::vector<std::string> results = testing::RunUnits(Pi(), params, 3);
  REQUIRE(Pi().Merge(params, results).ok());
  CHECK_FALSE(Pi().Merge(params, {}).ok());
  CHECK_FALSE(Pi().Merge(params, std::vector<std::string>{results[0], results[2]}).ok());
  CHECK_FALSE(Pi().Merge(params, std::vector<std::string>{results[0], results[1]}).ok());
  CHECK_FALSE(
      Pi().Merge(params, std::vector<std::string>{results[1], results[0], results[2]}).ok());
  CHECK_FALSE(Pi().Merge(Params(4'000'000, 1), results).ok());
  std::vector<std::string> garbage = results;
  garbage[2] = std::string(24, '\xff');
  CHECK_FALSE(Pi().Merge(params, garbage).ok());
  garbage[2] = results[2] + '\0';
  CHECK_FALSE(Pi().Merge(params, garbage).ok());
}

TEST_CASE("the summary prints the estimate with its uncertainty") {
  const std::string summary = Pi().Summarize(Merged(Params(10'000'000, 1), 2));
  INFO(summary);
  CHECK(summary.rfind("3.14", 0) == 0);
  CHECK(summary.find("(±0.000") != std::string::npos);
  CHECK(Pi().Summarize("??").find("not a merged result") != std::string::npos);
}

TEST_CASE("a unit lets cancellation through") {
  class Cancelling final : public UnitContext {
   public:
    void Progress(double) override { throw UnitCancelled{"stop"}; }
    bool StopRequested() const override { return true; }
  } cancel;
  auto units = Pi().Split(Params(5'000'000, 1), 1);
  REQUIRE(units.ok());
  CHECK_THROWS_AS((void)Pi().Execute(units->front(), cancel), UnitCancelled);
}

TEST_CASE("calibration measures a positive speed") {
  CHECK(Pi().Calibrate(0.05) > 1e6);
  CHECK(Pi().DefaultWorkPerSecond() > 0);
}

TEST_CASE("the unit, result and merged layouts are the ones docs/protocol.md gives") {
  using testing::WireReader;
  using testing::WireWriter;
  NullContext ctx;
  // Appendix A.2: unit = seed, first, count; result = first, count, hits (samples of the job's
  // stream, so a unit starting at 5000 counts samples 5000.. of the documented generator).
  const std::string unit = WireWriter().U64(7).U64(5000).U64(100'000).str();
  auto r = Pi().Execute(unit, ctx);
  REQUIRE_MESSAGE(r.ok(), r.status().ToString());
  const std::uint64_t hits = ReferenceHits(7, 105'000) - ReferenceHits(7, 5000);
  CHECK(*r == WireWriter().U64(5000).U64(100'000).U64(hits).str());
  CHECK_FALSE(Pi().Execute(unit + '\0', ctx).ok());
  CHECK_FALSE(
      Pi().Execute(WireWriter().U64(7).U64(1'000'000'000'000'000ull).U64(1).str(), ctx).ok());
  // Unit i of N holds samples [S i / N, S (i + 1) / N).
  auto split = Pi().Split(Params(5'000'000, -3), 3);
  REQUIRE(split.ok());
  for (std::uint64_t i = 0; i < 3; ++i) {
    const std::uint64_t lo = 5'000'000 * i / 3, hi = 5'000'000 * (i + 1) / 3;
    CHECK((*split)[i] ==
          WireWriter().U64(static_cast<std::uint64_t>(-3)).U64(lo).U64(hi - lo).str());
  }
  // Merged = seed, samples, hits.
  const std::string merged_bytes = testing::RunJob(Pi(), Params(2'000'000, 11), 2);
  WireReader m(merged_bytes);
  CHECK(m.U64() == 11);
  CHECK(m.U64() == 2'000'000);
  CHECK(m.U64() == ReferenceHits(11, 2'000'000));
  CHECK(m.AtEnd());
}
