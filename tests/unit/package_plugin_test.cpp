// Native task plugins through the C ABI: a plugin built in the tree against the header-only task
// API is loaded and run like a built-in task (plan, split, execute, merge, checkpoints,
// cancellation, errors and exceptions crossing as values), and wrong libraries are refused.
#include <doctest/doctest.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "sparecycles/package/plugin_loader.hpp"
#include "sparecycles/tasks/bytes.hpp"
#include "sparecycles/tasks/task_abi.h"

using namespace sparecycles;
using namespace sparecycles::tasks;

namespace {

std::unique_ptr<Task> Load() {
  auto t = package::LoadTaskPlugin(SC_TEST_PLUGIN);
  REQUIRE_MESSAGE(t.ok(), t.status().ToString());
  return std::move(t).value();
}

// Sum of i*i for i in [0, n), computed independently of the plugin.
std::uint64_t SumSquaresBelow(std::uint64_t n) {
  return n == 0 ? 0 : (n - 1) * n * (2 * n - 1) / 6;
}

std::uint64_t Number(std::string_view bytes) {
  ByteReader r(bytes);
  const auto v = r.Get<std::uint64_t>();
  REQUIRE(r.Finish().ok());
  return v;
}

class RecordingContext final : public UnitContext {
 public:
  void Progress(double f) override {
    std::lock_guard lock(mu);
    fractions.push_back(f);
    if (cancel_after >= 0 && static_cast<int>(fractions.size()) > cancel_after)
      throw UnitCancelled{"owner paused the worker"};
  }
  bool StopRequested() const override { return false; }
  std::optional<std::string> ResumeState() const override { return resume; }
  bool CheckpointDue() const override { return checkpoints_wanted; }
  void Checkpoint(std::string_view state) override {
    std::lock_guard lock(mu);
    saved.emplace_back(state);
  }
  std::mutex mu;
  std::vector<double> fractions;
  std::vector<std::string> saved;
  std::optional<std::string> resume;
  bool checkpoints_wanted = false;
  int cancel_after = -1;
};

}  // namespace

TEST_CASE("a plugin describes itself through the ABI") {
  auto t = Load();
  CHECK(t->Name() == "sumsq");
  CHECK(t->Version() == 3);
  CHECK(t->WorkName() == "numbers");
  CHECK(t->DefaultWorkPerSecond() == 1e8);
  CHECK(t->Calibrate(0.01) == 5e8);
  const auto params = t->Params();
  REQUIRE(params.size() == 3);
  CHECK(params[1].name == "to");
  CHECK(params[1].default_value.empty());
  CHECK(package::HostTaskAbiVersion() == SPARECYCLES_TASK_ABI_VERSION);
}

TEST_CASE("a plugin job plans, splits, runs and merges to the independently computed answer") {
  auto t = Load();
  JobParams p;
  p.values = {{"from", "1000"}, {"to", "1M"}};  // the suffix syntax works inside the plugin too
  auto plan = t->Plan(p);
  REQUIRE_MESSAGE(plan.ok(), plan.status().ToString());
  CHECK(plan->total_work == 999000);
  auto units = t->Split(p, 7);
  REQUIRE(units.ok());
  REQUIRE(units->size() == 7);
  std::vector<std::string> results;
  for (const auto& u : *units) {
    NullContext ctx;
    auto r = t->Execute(u, ctx);
    REQUIRE_MESSAGE(r.ok(), r.status().ToString());
    results.push_back(*r);
  }
  auto merged = t->Merge(p, results);
  REQUIRE(merged.ok());
  const std::uint64_t expected = SumSquaresBelow(1'000'000) - SumSquaresBelow(1000);
  CHECK(Number(*merged) == expected);
  CHECK(t->Summarize(*merged) == std::to_string(expected));
  CHECK(t->ToJson(*merged) == "{\"sum\":" + std::to_string(expected) + "}");
  CHECK(t->Canonicalize(results[0]) == results[0]);
}

TEST_CASE("errors and exceptions inside a plugin come back as failed results, never a crash") {
  auto t = Load();
  JobParams bad;
  bad.values = {{"to", "-5"}};
  auto plan = t->Plan(bad);
  REQUIRE_FALSE(plan.ok());
  CHECK(plan.status().code() == StatusCode::kInvalidArgument);
  CHECK(plan.status().message().find("0 <= from <= to") != std::string::npos);
  JobParams p;
  p.values = {{"to", "100"}, {"mode", "error"}};
  NullContext ctx;
  auto failed = t->Execute(t->Split(p, 1)->at(0), ctx);
  REQUIRE_FALSE(failed.ok());
  CHECK(failed.status().code() == StatusCode::kFailedPrecondition);
  p.values["mode"] = "throw";
  auto thrown = t->Execute(t->Split(p, 1)->at(0), ctx);
  REQUIRE_FALSE(thrown.ok());
  CHECK(thrown.status().code() == StatusCode::kInternal);
  CHECK(thrown.status().message().find("threw on purpose") != std::string::npos);
  // Malformed unit bytes are caught by the plugin's bounded reader.
  auto junk = t->Execute("xyz", ctx);
  REQUIRE_FALSE(junk.ok());
  CHECK(junk.status().code() == StatusCode::kDataLoss);
  CHECK_FALSE(t->Split(p, 0).ok());
  CHECK_FALSE(t->Merge(p, std::vector<std::string>{"short"}).ok());
}

TEST_CASE("progress, checkpoints and resumption pass through the ABI") {
  auto t = Load();
  JobParams p;
  p.values = {{"to", "100000"}};
  const std::string unit = t->Split(p, 1)->at(0);
  RecordingContext ctx;
  ctx.checkpoints_wanted = true;
  auto r = t->Execute(unit, ctx);
  REQUIRE(r.ok());
  CHECK(Number(*r) == SumSquaresBelow(100000));
  CHECK(ctx.fractions.size() >= 9);
  CHECK(ctx.fractions.back() == doctest::Approx(1.0));
  REQUIRE(ctx.saved.size() == 100);
  // Resuming from a checkpoint halfway gives the same answer.
  RecordingContext resumed;
  resumed.resume = ctx.saved[49];
  auto again = t->Execute(unit, resumed);
  REQUIRE(again.ok());
  CHECK(*again == *r);
  REQUIRE_FALSE(resumed.fractions.empty());
  CHECK(resumed.fractions.front() >= 0.5);  // it started from the checkpoint, not from zero
}

TEST_CASE("a unit cancelled by the host stops inside the plugin and is reported as cancelled") {
  auto t = Load();
  JobParams p;
  p.values = {{"to", "100000"}};
  RecordingContext ctx;
  ctx.cancel_after = 2;
  bool cancelled = false;
  try {
    (void)t->Execute(t->Split(p, 1)->at(0), ctx);
  } catch (const UnitCancelled& c) {
    cancelled = true;
    CHECK(c.reason == "owner paused the worker");
  }
  CHECK(cancelled);
  CHECK(ctx.fractions.size() == 3);  // no progress after the cancellation
}

TEST_CASE("a plugin task is safe to run from many threads at once") {
  auto t = Load();
  JobParams p;
  p.values = {{"to", "400000"}};
  auto units = t->Split(p, 16);
  REQUIRE(units.ok());
  std::vector<std::string> results(16);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (int w = 0; w < 4; ++w)
    threads.emplace_back([&, w] {
      for (int i = w; i < 16; i += 4) {
        NullContext ctx;
        auto r = t->Execute((*units)[i], ctx);
        if (r.ok())
          results[i] = *r;
        else
          ++failures;
      }
    });
  for (auto& th : threads) th.join();
  CHECK(failures == 0);
  CHECK(Number(*t->Merge(p, results)) == SumSquaresBelow(400000));
}

TEST_CASE(
    "a plugin of another ABI version, a library without the entry point, and a missing file are "
    "refused") {
  auto bad = package::LoadTaskPlugin(SC_TEST_BAD_ABI_PLUGIN);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().message().find("ABI version 99") != std::string::npos);
  CHECK(bad.status().message().find("speaks version 1") != std::string::npos);
  auto none = package::LoadTaskPlugin(SC_TEST_NOT_A_PLUGIN);
  REQUIRE_FALSE(none.ok());
  CHECK(none.status().message().find("not a SpareCycles task plugin") != std::string::npos);
  auto missing = package::LoadTaskPlugin("/nonexistent/plugin.so");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().message().find("cannot load") != std::string::npos);
}
