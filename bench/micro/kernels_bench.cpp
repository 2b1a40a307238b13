// Kernel micro-benchmarks: Task::Execute of one typical unit of every built-in task, on one core
// (a one-thread tbb::task_arena) and on all cores. Items = the task's own work units in that unit
// (numbers sieved, samples, pixel-iterations, nonces, input bytes, slots), so items/s is the
// speed a worker calibrates and the coordinator plans with.
#include <benchmark/benchmark.h>
#include <tbb/info.h>
#include <tbb/task_arena.h>

#include <string>

#include "sparecycles/core/hash.hpp"
#include "sparecycles/tasks/task.hpp"

namespace sc = sparecycles;
namespace tasks = sparecycles::tasks;

namespace {

struct KernelCase {
  const char* task;
  tasks::JobParams params;
  std::uint64_t units;       // the job is cut into this many; the middle unit is measured
  bool count_units = false;  // items = units (spin ms=0 has no work to count)
};

std::string SyntheticText(std::size_t bytes) {
  static const char* kWords[] = {"the",       "of",   "and",  "sparecycles", "volunteer",
                                 "computing", "idle", "core", "Prime",       "sieve",
                                 "result",    "unit", "peer"};
  std::string out;
  out.reserve(bytes + 16);
  std::uint64_t x = 88172645463325252ull;
  while (out.size() < bytes) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    out += kWords[x % (sizeof(kWords) / sizeof(*kWords))];
    out += (x >> 20) % 11 == 0 ? ".\n" : " ";
  }
  return out;
}

void KernelBench(benchmark::State& state, const KernelCase& c) {
  const tasks::Task* task = tasks::Registry::BuiltIn().Find(c.task);
  if (!task) {
    state.SkipWithError("task not found");
    return;
  }
  auto plan = task->Plan(c.params);
  if (!plan.ok()) {
    state.SkipWithError(plan.status().ToString().c_str());
    return;
  }
  const std::uint64_t units = std::min(c.units, plan->max_units);
  auto split = task->Split(c.params, units);
  if (!split.ok()) {
    state.SkipWithError(split.status().ToString().c_str());
    return;
  }
  const std::string unit = (*split)[units / 2];
  const int threads =
      state.range(0) == 0 ? tbb::info::default_concurrency() : static_cast<int>(state.range(0));
  tbb::task_arena arena(threads);
  tasks::NullContext ctx;
  for (auto _ : state) {
    sc::Result<std::string> r = arena.execute([&] { return task->Execute(unit, ctx); });
    if (!r.ok()) {
      state.SkipWithError(r.status().ToString().c_str());
      break;
    }
    // The worker hashes every result's canonical form; count it as part of a unit's cost.
    benchmark::DoNotOptimize(sc::Blake2b256(task->Canonicalize(*r)));
  }
  state.SetItemsProcessed(
      c.count_units ? static_cast<std::int64_t>(state.iterations())
                    : static_cast<std::int64_t>(static_cast<double>(state.iterations()) *
                                                plan->total_work / static_cast<double>(units)));
  state.SetLabel(std::string(c.count_units ? "units" : task->WorkName()) + ", " +
                 std::to_string(threads) + " thread(s)");
}

#define SC_KERNEL_BENCH(Case, ...)               \
  void BM_Kernel##Case(benchmark::State& s) {    \
    static const KernelCase kCase = __VA_ARGS__; \
    KernelBench(s, kCase);                       \
  }                                              \
  BENCHMARK(BM_Kernel##Case)                     \
      ->Arg(1)                                   \
      ->Arg(0)                                   \
      ->ArgName("threads")                       \
      ->UseRealTime()                            \
      ->Unit(benchmark::kMillisecond)

// primes: one unit of "primes below 2e9 in 200 units" (10M numbers around 1e9), and one unit of
// 100M numbers near 1e10, where the bucket sieve matters.
SC_KERNEL_BENCH(Primes2e9Unit, {"primes", {{{"from", "0"}, {"to", "2000000000"}}, ""}, 200});
SC_KERNEL_BENCH(Primes1e10Unit,
                {"primes", {{{"from", "9900000000"}, {"to", "10000000000"}}, ""}, 1});
SC_KERNEL_BENCH(Pi, {"pi", {{{"samples", "100000000"}}, ""}, 100});
SC_KERNEL_BENCH(Mandelbrot, {"mandelbrot", {{{"width", "1024"}, {"height", "768"}}, ""}, 48});
SC_KERNEL_BENCH(Hashsearch, {"hashsearch", {{{"to", "100000000"}, {"bits", "64"}}, ""}, 100});
SC_KERNEL_BENCH(Wordfreq, {"wordfreq", {{}, SyntheticText(8 << 20)}, 8});
SC_KERNEL_BENCH(SpinTrivial, {"spin", {{{"units", "1000"}, {"ms", "0"}}, ""}, 1000, true});

}  // namespace

BENCHMARK_MAIN();
