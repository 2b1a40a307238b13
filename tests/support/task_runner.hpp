// Runs a task's job in this process the way the coordinator and a worker would, without either:
// Split into units, Execute each with a NullContext, Merge with the input dropped (the coordinator
// releases it once the units carry it). The one copy of this helper for every task test.
// Test-only; uses doctest's REQUIRE, so include it from test files. Stateless.
#pragma once

#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "sparecycles/tasks/task.hpp"

namespace sparecycles::testing {

/// A built-in task by name (version 1); fails the test when it is not registered.
inline const tasks::Task& BuiltInTask(std::string_view name) {
  const tasks::Task* t = tasks::Registry::BuiltIn().Find(name, 1);
  REQUIRE_MESSAGE(t != nullptr, "no built-in task " << std::string(name));
  return *t;
}

/// Splits the job into exactly `units` units (checked) and runs each one; the results in order.
inline std::vector<std::string> RunUnits(const tasks::Task& task, const tasks::JobParams& params,
                                         std::uint64_t units) {
  auto split = task.Split(params, units);
  REQUIRE_MESSAGE(split.ok(), split.status().ToString());
  REQUIRE(split->size() == units);
  std::vector<std::string> results;
  results.reserve(split->size());
  tasks::NullContext ctx;
  for (const std::string& unit : *split) {
    auto r = task.Execute(unit, ctx);
    REQUIRE_MESSAGE(r.ok(), r.status().ToString());
    results.push_back(std::move(*r));
  }
  return results;
}

/// Merges `results` as the coordinator does: with the job's parameters but not its input.
inline Result<std::string> MergeLikeCoordinator(const tasks::Task& task, tasks::JobParams params,
                                                const std::vector<std::string>& results) {
  params.input.clear();
  return task.Merge(params, results);
}

/// The merged result of the whole job run in `units` units (a failed merge fails the test).
inline std::string RunJob(const tasks::Task& task, const tasks::JobParams& params,
                          std::uint64_t units) {
  auto merged = MergeLikeCoordinator(task, params, RunUnits(task, params, units));
  REQUIRE_MESSAGE(merged.ok(), merged.status().ToString());
  return *merged;
}

}  // namespace sparecycles::testing
