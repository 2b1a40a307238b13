// The driver shared by the built-in task harnesses (task_<name>_fuzz.cpp): one input runs one of
// Execute (unit bytes, optionally with resume state, under a tiny progress budget), Merge (result
// bytes against a small fixed job) or Summarize/ToJson/Canonicalize (merged or result bytes).
// The fixed jobs are shared with make_seeds.cpp, which writes the seed corpora. Single-threaded.
#pragma once

#include <tbb/task_arena.h>

#include <cstdint>
#include <exception>
#include <map>
#include <string>
#include <string_view>

#include "fuzz_support.hpp"
#include "sparecycles/core/protocol.hpp"
#include "sparecycles/tasks/task.hpp"

namespace sparecycles::fuzz {

/// A small valid job of each built-in task: Merge is fuzzed against it, seeds are cut from it.
struct FuzzJob {
  const char* task;
  std::map<std::string, std::string> params;
  std::string input;
  std::uint64_t units;
};
// Two units' worth of text (wordfreq cuts units of at least 4 KiB).
inline std::string WordFreqInput() {
  std::string text;
  for (int i = 0; text.size() < 9000; ++i)
    text += "the quick brown fox jumps over the lazy dog; The dog sleeps " + std::to_string(i % 7) +
            " times, W\xc3\xb6rter und-so-weiter\n";
  return text;
}
inline const FuzzJob& JobFor(std::string_view task) {
  static const FuzzJob kJobs[] = {
      {"primes", {{"from", "0"}, {"to", "300000"}}, "", 3},
      {"pi", {{"samples", "3000000"}, {"seed", "7"}}, "", 3},
      {"mandelbrot", {{"width", "16"}, {"height", "12"}, {"max_iter", "50"}}, "", 3},
      {"hashsearch", {{"prefix", "abc"}, {"from", "0"}, {"to", "30000"}, {"bits", "6"}}, "", 3},
      {"wordfreq", {{"top", "5"}}, WordFreqInput(), 2},
      {"spin", {{"units", "3"}, {"ms", "0"}}, "", 3},
  };
  for (const auto& j : kJobs)
    if (j.task == task) return j;
  Fail("no fuzz job for this task");
}

/// The first input byte picks what runs; the rest is cut into pieces (fuzz_support.hpp).
enum class TaskMode : std::uint8_t { kExecute = 0, kResume = 1, kMerge = 2, kPrint = 3 };

/// `cheapen` rewrites a unit whose parameters would make Execute run long before its first
/// progress report (e.g. a huge max_iter per row) into a cheap one of the same shape; it returns
/// the bytes unchanged when they do not decode. Work per unit is the unit's nature, not a bug.
inline int FuzzTask(std::string_view task_name, std::string (*cheapen)(std::string_view unit),
                    const std::uint8_t* data, std::size_t size) {
  static const tasks::Task* task = tasks::Registry::BuiltIn().Find(task_name);
  static tbb::task_arena arena(1);  // one thread: deterministic and cheap
  if (task == nullptr) Fail("task not registered");
  if (size == 0) return 0;
  const auto mode = static_cast<TaskMode>(data[0] % 4);
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  const FuzzJob& job = JobFor(task_name);
  tasks::JobParams params{job.params, job.input};

  switch (mode) {
    case TaskMode::kExecute:
    case TaskMode::kResume: {
      auto pieces = Pieces(rest, 2);
      pieces.resize(2);
      const std::string unit = cheapen(pieces[0]);
      std::optional<std::string> resume;
      if (mode == TaskMode::kResume) resume = pieces[1];
      BudgetContext ctx(1, resume);
      arena.execute([&] {
        try {
          auto r = task->Execute(unit, ctx);
          if (r.ok()) {
            if (r->size() > proto::kMaxResultBytes) Fail("unit result above the frame limit");
            if (task->Canonicalize(*r) != task->Canonicalize(*r))
              Fail("Canonicalize not deterministic");
            Sink(*r);
          } else {
            Sink(r.status().message());
          }
        } catch (const tasks::UnitCancelled&) {
          Sink(1);  // the budget ran out: fine
        } catch (const std::exception& e) {
          // The worker turns a kernel's exception into a failed unit; allocation failures and
          // the like on hostile bytes are still findings (libFuzzer's -malloc_limit_mb).
          Sink(std::string_view(e.what()));
        }
      });
      Sink(ctx.last_checkpoint());
      break;
    }
    case TaskMode::kMerge: {
      const auto results = Pieces(rest, 64);
      auto merged = task->Merge(params, results);
      if (merged.ok()) {
        // A merged result Merge produced must read back.
        const std::string json = task->ToJson(*merged);
        if (json.rfind("{\"error\"", 0) == 0) Fail("ToJson rejects what Merge produced");
        Sink(json);
        Sink(task->Summarize(*merged));
      } else {
        Sink(merged.status().message());
      }
      break;
    }
    case TaskMode::kPrint: {
      Sink(task->Summarize(rest));
      Sink(task->ToJson(rest));
      Sink(task->Canonicalize(rest));
      break;
    }
  }
  return 0;
}

}  // namespace sparecycles::fuzz
