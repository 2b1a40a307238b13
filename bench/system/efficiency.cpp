// Parallel efficiency of CPU-bound jobs (and, unless --large 0, of a 10x larger one: 2e10).
// Baseline, same run: one local process (this one) running the same kernel with TBB on the same
// cores — primes' Execute() on the whole range as a single unit inside a tbb::task_arena of all
// cores, no network, no coordinator. Efficiency = T(local) / T(SpareCycles); 1.0 is perfect.
//   primes below 2e9, units chosen by the coordinator, 2 workers x 1 core   (goal >= 0.97)
//   primes below 2e8 in 200 units (the job Dask runs), 2 workers x 1 core   (goal >= 0.97)
//   both again through `sparecycles run` timed as a process end to end, i.e. including its
//   start-up (embedded coordinator + worker + calibration)                  (goal >= 0.95)
#include <tbb/info.h>
#include <tbb/task_arena.h>

#include "bench_common.hpp"
#include "sparecycles/tasks/task.hpp"

using namespace sparecycles;
using namespace sparecycles::bench;

namespace {

struct Local {
  double seconds;
  std::string count;
};

Local RunLocal(std::uint64_t to, int repeats, int threads = 0) {
  const tasks::Task* primes = tasks::Registry::BuiltIn().Find("primes");
  tasks::JobParams params;
  params.values = {{"from", "0"}, {"to", std::to_string(to)}};
  auto units = primes->Split(params, 1);
  if (!units.ok()) Die(units.status().ToString());
  tbb::task_arena arena(threads > 0 ? threads : tbb::info::default_concurrency());
  tasks::NullContext ctx;
  Local best{1e300, ""};
  for (int i = 0; i < repeats; ++i) {
    const double t0 = Now();
    auto r = arena.execute([&] { return primes->Execute((*units)[0], ctx); });
    const double t = Now() - t0;
    if (!r.ok()) Die(r.status().ToString());
    auto merged = primes->Merge(params, std::vector<std::string>{*r});
    if (!merged.ok()) Die(merged.status().ToString());
    best = {std::min(best.seconds, t), primes->Summarize(*merged)};
  }
  return best;
}

double TimeCli(const std::vector<std::string>& args, const std::string& expect,
               const TempDir& dir) {
  const double t0 = Now();
  auto [code, out] = testing::RunCommand(args, dir / "cli", std::chrono::minutes(5));
  const double t = Now() - t0;
  if (code != 0) Die("sparecycles run exited " + std::to_string(code) + ": " + out);
  if (out.find(expect) == std::string::npos)
    Die("sparecycles run printed " + out + ", expected " + expect);
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  return Guarded([&] {
    Args args(argc, argv);
    if (args.help()) {
      std::cout << "Usage: bench_efficiency [--quick] [--big N] [--small N] [--repeats N]\n"
                   "CPU-bound job efficiency vs one local TBB process; JSON lines on stdout.\n";
      return 0;
    }
    const auto big = static_cast<std::uint64_t>(args.Num("big", 2e9, 2e8));
    const auto small = static_cast<std::uint64_t>(args.Num("small", 2e8, 2e7));
    // primes below 2e9 is only ~0.2 s of one core with this kernel; a job 10x larger shows the
    // steady state (0 = skip).
    const auto large = static_cast<std::uint64_t>(args.Num("large", 2e10, 0));
    const int repeats = static_cast<int>(args.Num("repeats", 3, 1));
    const int cores = tbb::info::default_concurrency();
    std::cerr << "efficiency: primes below " << big << " and below " << small << " in 200 units, "
              << cores << " cores, best of " << repeats << "\n";

    const Local local_big = RunLocal(big, repeats);
    const Local local_small = RunLocal(small, repeats);
    // One thread: for the strict parallel efficiency T1 / (2 x T(job)), the definition Dask's
    // figure uses (bench/peers/dask_bench.py).
    const Local one_big = RunLocal(big, 1, 1), one_small = RunLocal(small, 1, 1);
    const Local local_large = large ? RunLocal(large, repeats) : Local{},
                one_large = large ? RunLocal(large, 1, 1) : Local{};

    struct Case {
      std::string name;
      std::uint64_t to, units;
      const Local* local;
      const Local* one;
    };
    std::vector<Case> cases = {
        {"primes below " + std::to_string(big) + ", coordinator-chosen units", big, 0, &local_big,
         &one_big},
        {"primes below " + std::to_string(small) + " in 200 units (the Dask job)", small, 200,
         &local_small, &one_small}};
    if (large)
      cases.push_back({"primes below " + std::to_string(large) + ", coordinator-chosen units",
                       large, 0, &local_large, &one_large});
    {
      auto cluster = StartCluster(2, {});
      Client client = ConnectWhenReady(*cluster, 2);
      TimeJob(client, JobSpec("primes").Set("to", "1000000"));  // warm-up
      for (const auto& c : cases) {
        double best = 1e300;
        std::uint64_t units = 0;
        for (int i = 0; i < repeats; ++i) {
          JobSpec spec("primes");
          spec.Set("from", "0").Set("to", std::to_string(c.to));
          spec.units = c.units;
          JobResult r;
          best = std::min(best, TimeJob(client, spec, &r));
          if (r.summary != c.local->count)
            Die("cluster counted " + r.summary + ", local " + c.local->count);
          units = r.info.units_total;
        }
        Figure f;
        f.figure = "cpu_job_efficiency";
        f.case_name = c.name + ", 2 workers x 1 core";
        f.unit = "T(local)/T(job)";
        f.value = c.local->seconds / best;
        f.baseline = 1.0;
        f.baseline_name = "local TBB process, " + std::to_string(cores) + " cores";
        f.goal = ">= 0.97";
        f.extra = {{"job_s", best},
                   {"local_s", c.local->seconds},
                   {"units", static_cast<double>(units)},
                   {"local_1_thread_s", c.one->seconds},
                   {"parallel_efficiency_vs_1_thread", c.one->seconds / (2 * best)}};
        Emit(f, args);
      }
    }

    // `sparecycles run`, timed as a process: start-up, calibration, the job, shut-down.
    TempDir dir;
    const double trivial = TimeCli({SPARECYCLES_CLI_BIN, "run", "spin", "--units", "1", "--ms", "0",
                                    "--json", "--no-progress"},
                                   "{", dir);
    for (const auto& c : cases) {
      std::vector<std::string> cli = {
          SPARECYCLES_CLI_BIN,  "run",    "primes",       "--from", "0", "--to",
          std::to_string(c.to), "--json", "--no-progress"};
      if (c.units) cli.insert(cli.end(), {"--units", std::to_string(c.units)});
      double best = 1e300;
      for (int i = 0; i < repeats; ++i)
        best = std::min(best, TimeCli(cli, "\"count\":" + c.local->count, dir));
      Figure f;
      f.figure = "cpu_job_efficiency_with_startup";
      f.case_name = c.name + ", `sparecycles run` process end to end";
      f.unit = "T(local)/T(cli)";
      f.value = c.local->seconds / best;
      f.baseline = 1.0;
      f.baseline_name = "local TBB process, " + std::to_string(cores) + " cores (kernel only)";
      f.goal = ">= 0.95";
      f.extra = {{"cli_s", best}, {"local_s", c.local->seconds}, {"cli_trivial_job_s", trivial}};
      Emit(f, args);
    }
    return 0;
  });
}
