// The primes kernel against primesieve (Debian's primesieve-bin, the `primesieve` CLI), counting
// the primes below N on one thread and on all cores. Ours: primes' Execute() on [0, N) as one
// unit in a tbb::task_arena of 1 or all threads, in this process. Theirs: `primesieve N -c -tT
// --time`, its own reported seconds. Ratio = T(ours) / T(primesieve); goal <= 2.
#include <tbb/info.h>
#include <tbb/task_arena.h>

#include "bench_common.hpp"
#include "sparecycles/tasks/task.hpp"

using namespace sparecycles;
using namespace sparecycles::bench;

int main(int argc, char** argv) {
  return Guarded([&] {
    Args args(argc, argv);
    if (args.help()) {
      std::cout << "Usage: bench_primesieve [--quick] [--to N] [--primesieve PATH]\n"
                   "primes kernel vs primesieve, 1 thread and all cores; JSON lines on stdout.\n";
      return 0;
    }
    const auto to = static_cast<std::uint64_t>(args.Num("to", 1e10, 1e8));
    const std::string primesieve = args.Str("primesieve", "/usr/bin/primesieve");
    const int all = tbb::info::default_concurrency();
    const tasks::Task* primes = tasks::Registry::BuiltIn().Find("primes");
    tasks::JobParams params;
    params.values = {{"from", "0"}, {"to", std::to_string(to)}};
    auto unit = primes->Split(params, 1);
    if (!unit.ok()) Die(unit.status().ToString());
    TempDir dir;
    const bool have_primesieve = access(primesieve.c_str(), X_OK) == 0;
    if (!have_primesieve)
      std::cerr << "no " << primesieve
                << " (apt-get install primesieve-bin): reporting ours only\n";
    std::cerr << "primes below " << to << " vs primesieve\n";
    for (int threads : {1, all}) {
      tbb::task_arena arena(threads);
      tasks::NullContext ctx;
      double ours = 1e300;
      std::string count;
      for (int i = 0; i < 2; ++i) {
        const double t0 = Now();
        auto r = arena.execute([&] { return primes->Execute((*unit)[0], ctx); });
        ours = std::min(ours, Now() - t0);
        if (!r.ok()) Die(r.status().ToString());
        count = primes->Summarize(*primes->Merge(params, std::vector<std::string>{*r}));
      }
      double theirs = NAN;
      if (have_primesieve) {
        for (int i = 0; i < 2; ++i) {
          auto [code, out] =
              testing::RunCommand({primesieve, std::to_string(to), "-c", "-q", "--time",
                                   "--no-status", "-t" + std::to_string(threads)},
                                  dir / "ps", std::chrono::minutes(5));
          if (code != 0) Die("primesieve exited " + std::to_string(code) + ": " + out);
          // Output: "Seconds: 1.050\n455052511\n".
          auto s = out.find("Seconds:");
          if (s == std::string::npos) Die("unexpected primesieve output: " + out);
          const double t = std::strtod(out.c_str() + s + 8, nullptr);
          theirs = std::isnan(theirs) ? t : std::min(theirs, t);
          if (out.find("\n" + count) == std::string::npos)
            Die("primesieve counted differently: " + out + " vs " + count);
        }
      }
      Figure f;
      f.figure = "primes_kernel_vs_primesieve";
      f.case_name =
          "primes below " + std::to_string(to) + ", " + std::to_string(threads) + " thread(s)";
      f.unit = "s";
      f.higher_is_better = false;
      f.value = ours;
      f.baseline = theirs;
      f.baseline_name = "primesieve -t" + std::to_string(threads);
      f.goal = "ratio <= 2";
      Emit(f, args);
    }
    return 0;
  });
}
