// The contract every registered task must keep (tasks/include/sparecycles/tasks/task.hpp), checked
// over each task in Registry::BuiltIn() with a small job of its own: Split gives exactly N units,
// the job merges from them whatever N, Merge rejects missing, duplicated and reordered results,
// Summarize/ToJson survive garbage, Canonicalize is deterministic. A new built-in task fails the
// first case until it has a job here.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "sparecycles/core/hash.hpp"
#include "sparecycles/tasks/task.hpp"
#include "task_runner.hpp"

using namespace sparecycles;
using namespace sparecycles::tasks;

namespace {

// A small job per task, and what the contract can and cannot demand of that task.
struct Contract {
  JobParams params;
  std::vector<std::uint64_t> unit_counts;  // N to split into (each <= the plan's max_units)
  // The merged bytes are the same whatever N. Not for spin: its merged result counts the units.
  bool merged_independent_of_split = true;
  // A merged result cut short still has its summary. True for mandelbrot: the text record sits in
  // the PNG/PGM header, ahead of the pixels.
  bool truncated_merged_still_summarizes = false;
};

std::string Text(std::size_t bytes) {
  std::mt19937 rng(17);
  const char* words[] = {"the",     "spare", "cycles", "of",  "a",
                         "Machine", "idle",  "CPU",    "x86", "it's"};
  std::string out;
  while (out.size() < bytes) {
    out += words[rng() % 10];
    out += (rng() % 7 == 0) ? ".\n" : " ";
  }
  return out;
}

std::map<std::string, Contract> Contracts() {
  std::map<std::string, Contract> c;
  c["primes"].params.values = {{"from", "1000"}, {"to", "1001000"}};  // max 10 units
  c["primes"].unit_counts = {1, 2, 3, 7, 10};
  c["pi"].params.values = {{"samples", "6000000"}, {"seed", "42"}};  // max 6 units
  c["pi"].unit_counts = {1, 2, 5, 6};
  c["mandelbrot"].params.values = {
      {"width", "37"}, {"height", "23"}, {"max_iter", "64"}};  // max 23
  c["mandelbrot"].unit_counts = {1, 2, 3, 7, 23};
  c["mandelbrot"].truncated_merged_still_summarizes = true;
  c["hashsearch"].params.values = {
      {"prefix", "contract"}, {"from", "5"}, {"to", "100005"}, {"bits", "9"}};
  c["hashsearch"].unit_counts = {1, 2, 3, 7, 10};
  c["wordfreq"].params.input = Text(41'000);  // max 10 units
  c["wordfreq"].params.values = {{"top", "5"}};
  c["wordfreq"].unit_counts = {1, 2, 3, 7, 10};
  c["spin"].params.values = {{"units", "12"}, {"ms", "0"}};
  c["spin"].unit_counts = {1, 2, 3, 7, 12};
  c["spin"].merged_independent_of_split = false;
  return c;
}

// Runs `body(task, contract)` for every built-in task, each in its own subcase.
template <class Body>
void ForEachTask(Body body) {
  const auto contracts = Contracts();
  for (const Task* task : Registry::BuiltIn().All()) {
    const std::string name(task->Name());
    auto it = contracts.find(name);
    REQUIRE_MESSAGE(it != contracts.end(), "task " << name << " has no contract job in this test");
    SUBCASE(name.c_str()) { body(*task, it->second); }
  }
}

// Results for the largest N of the task's contract (the most results to remove or reorder).
std::vector<std::string> ManyResults(const Task& task, const Contract& c) {
  return testing::RunUnits(task, c.params, c.unit_counts.back());
}

}  // namespace

TEST_CASE("every built-in task has a contract job, and the registry holds each once") {
  const auto contracts = Contracts();
  const auto all = Registry::BuiltIn().All();
  CHECK(all.size() == contracts.size());
  for (const Task* t : all) {
    CHECK_MESSAGE(contracts.contains(std::string(t->Name())), t->Name());
    CHECK(Registry::BuiltIn().Find(t->Name(), t->Version()) == t);
  }
}

TEST_CASE("split gives exactly N units for every N the plan allows, and refuses 0 and max + 1") {
  ForEachTask([](const Task& task, const Contract& c) {
    auto plan = task.Plan(c.params);
    REQUIRE_MESSAGE(plan.ok(), plan.status().ToString());
    REQUIRE(plan->max_units >= c.unit_counts.back());
    for (std::uint64_t n : c.unit_counts) {
      INFO(n << " units");
      auto split = task.Split(c.params, n);
      REQUIRE_MESSAGE(split.ok(), split.status().ToString());
      CHECK(split->size() == n);
    }
    CHECK_FALSE(task.Split(c.params, 0).ok());
    CHECK_FALSE(task.Split(c.params, plan->max_units + 1).ok());
  });
}

TEST_CASE(
    "the units of any split merge into one answer, the same whatever N where the task says so") {
  ForEachTask([](const Task& task, const Contract& c) {
    const std::string one = testing::RunJob(task, c.params, c.unit_counts.front());
    CHECK_FALSE(task.Summarize(one).empty());
    CHECK(task.ToJson(one).find("\"error\"") == std::string::npos);
    for (std::uint64_t n : c.unit_counts) {
      INFO(n << " units");
      const std::string merged = testing::RunJob(task, c.params, n);
      if (c.merged_independent_of_split) CHECK(merged == one);
    }
  });
}

TEST_CASE("merge rejects no results, a missing result, a duplicated one and a reordered pair") {
  // Every built-in task can detect all of these: each result names the part of the job it covers
  // (a range, rows, slots or input bytes), and Merge checks the parts tile the job in order. The
  // only undetectable reorder is of two byte-identical results (e.g. two empty wordfreq chunks at
  // one offset), which changes nothing; such pairs are skipped.
  ForEachTask([](const Task& task, const Contract& c) {
    const std::vector<std::string> results = ManyResults(task, c);
    REQUIRE(results.size() >= 3);
    REQUIRE(testing::MergeLikeCoordinator(task, c.params, results).ok());
    CHECK_FALSE(testing::MergeLikeCoordinator(task, c.params, {}).ok());
    for (std::size_t skip = 0; skip < results.size(); ++skip) {
      INFO("without result " << skip);
      std::vector<std::string> missing = results;
      missing.erase(missing.begin() + static_cast<std::ptrdiff_t>(skip));
      CHECK_FALSE(testing::MergeLikeCoordinator(task, c.params, missing).ok());
    }
    for (std::size_t i = 0; i + 1 < results.size(); ++i) {
      if (results[i] == results[i + 1]) continue;
      INFO("results " << i << " and " << i + 1 << " swapped / the first twice");
      std::vector<std::string> swapped = results;
      std::swap(swapped[i], swapped[i + 1]);
      CHECK_FALSE(testing::MergeLikeCoordinator(task, c.params, swapped).ok());
      std::vector<std::string> doubled = results;
      doubled[i + 1] = results[i];
      CHECK_FALSE(testing::MergeLikeCoordinator(task, c.params, doubled).ok());
    }
    std::vector<std::string> extra = results;
    extra.push_back(results.back());
    CHECK_FALSE(testing::MergeLikeCoordinator(task, c.params, extra).ok());
    std::vector<std::string> reversed(results.rbegin(), results.rend());
    CHECK_FALSE(testing::MergeLikeCoordinator(task, c.params, reversed).ok());
  });
}

TEST_CASE("execute and merge turn garbage bytes into errors") {
  ForEachTask([](const Task& task, const Contract& c) {
    const std::vector<std::string> results = ManyResults(task, c);
    auto split = task.Split(c.params, 2);
    REQUIRE(split.ok());
    std::mt19937_64 rng(99);
    NullContext ctx;
    std::vector<std::string> junk = {"", std::string(1, '\x01'), std::string(7, '\xff'),
                                     (*split)[0].substr(0, (*split)[0].size() - 1),
                                     (*split)[0] + '\0'};
    for (int i = 0; i < 50; ++i) {
      std::string j(rng() % 200 + 9, '\0');
      for (char& ch : j) ch = static_cast<char>(rng());
      j.replace(0, 8, std::string("\xff\xff\xff\xff\xff\xff\xff\x7f", 8));  // a size tag that lies
      junk.push_back(std::move(j));
    }
    for (const std::string& j : junk) {
      CHECK_FALSE(task.Execute(j, ctx).ok());
      std::vector<std::string> bad = results;
      bad[1] = j;
      CHECK_FALSE(testing::MergeLikeCoordinator(task, c.params, bad).ok());
    }
  });
}

TEST_CASE("summarize and to_json survive garbage and say it is not a merged result") {
  ForEachTask([](const Task& task, const Contract& c) {
    const std::string merged = testing::RunJob(task, c.params, 2);
    std::mt19937_64 rng(7);
    std::vector<std::string> garbage = {"", "x", std::string(8, '\0') + "\x01",
                                        std::string(16, '\xff')};
    // A trailing byte breaks every cereal-encoded merged result; an image's record is still read.
    if (!c.truncated_merged_still_summarizes) garbage.push_back(merged + '\0');
    for (int i = 0; i < 50; ++i) {
      // At least 30 bytes: longer than the fixed-size merged results (20 and 24 bytes), so random
      // bytes cannot happen to be one.
      std::string g(rng() % 300 + 30, '\0');
      for (char& ch : g) ch = static_cast<char>(rng());
      garbage.push_back(std::move(g));
    }
    for (const std::string& g : garbage) {
      INFO(g.size() << " garbage bytes");
      const std::string summary = task.Summarize(g);
      const std::string json = task.ToJson(g);
      CHECK(summary.find("not a merged result") != std::string::npos);
      CHECK(json.rfind("{\"error\":", 0) == 0);
      CHECK(json.back() == '}');
    }
    // Cut short at every length: never a crash; an error unless the task keeps its summary first.
    for (std::size_t len = 0; len < merged.size();
         len += std::max<std::size_t>(1, merged.size() / 97)) {
      INFO("merged result cut to " << len << " of " << merged.size() << " bytes");
      const std::string cut = merged.substr(0, len);
      const std::string summary = task.Summarize(cut);
      const std::string json = task.ToJson(cut);
      CHECK_FALSE(summary.empty());
      CHECK(json.front() == '{');
      if (!c.truncated_merged_still_summarizes) CHECK(json.rfind("{\"error\":", 0) == 0);
    }
  });
}

TEST_CASE("canonicalize is deterministic, and so is execute, so replicas can agree by hash") {
  ForEachTask([](const Task& task, const Contract& c) {
    const std::vector<std::string> first = ManyResults(task, c);
    const std::vector<std::string> again = ManyResults(task, c);
    REQUIRE(first.size() == again.size());
    for (std::size_t i = 0; i < first.size(); ++i) {
      INFO("unit " << i);
      CHECK(first[i] == again[i]);
      const std::string canon = task.Canonicalize(first[i]);
      CHECK(task.Canonicalize(first[i]) == canon);
      CHECK(task.Canonicalize(again[i]) == canon);
      CHECK(Blake2b256(task.Canonicalize(again[i])) == Blake2b256(canon));
      // Different units give different canonical bytes (each names the part it covers).
      if (i > 0) CHECK(task.Canonicalize(first[i - 1]) != canon);
    }
    for (const std::string& g :
         {std::string(), std::string("\x01\x02\x03"), std::string(100, '\xab')})
      CHECK(task.Canonicalize(g) == task.Canonicalize(g));
  });
}
