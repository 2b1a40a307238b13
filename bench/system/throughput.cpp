// Trivial units per second: a coordinator and 2 worker processes (1 core each) on 127.0.0.1 run
// a spin job of ms=0 units (no work at all), so the figure is the system's per-unit overhead:
// scheduling, the network round trip, hashing, validation and (with --data) durable commits.
//   replicas=1, memory store (the goal: >= 50,000 units/s)
//   replicas=2 quorum=2, durable store --data (goal: >= 20,000 units/s)
// Baseline, same run: ZeroMQ DEALER->ROUTER echo round trips per second from 2 clients with 64
// requests in flight each — as many units as a worker holds for short units (slots + adaptive
// prefetch) — i.e. the transport's ceiling for one message per unit on this machine. Workers
// batch results (Results frames), so beating it is possible; the JSON also carries the echo rate
// with 2 in flight (one unit per round trip, how workers ran before batching).
// The replicas=1 case runs twice, CURVE on (the default) and off (--curve off): the cost of the
// security layer, as a ratio measured in the same run.
#include "bench_common.hpp"

using namespace sparecycles;
using namespace sparecycles::bench;

namespace {

double Measure(const Args& args, std::uint64_t units, std::uint32_t replicas, bool durable,
               int prefetch, int repeats, bool curve = true) {
  TempDir data;
  std::vector<std::string> cflags = CurveFlags(curve), wflags = CurveFlags(curve);
  if (durable) cflags = {"--data", data.path()};
  if (prefetch > 1) {
    cflags.insert(cflags.end(), {"--prefetch", std::to_string(prefetch)});
    wflags.insert(wflags.end(), {"--prefetch", std::to_string(prefetch)});
  }
  auto cluster = StartCluster(2, cflags, wflags);
  Client client = ConnectWhenReady(*cluster, 2, 30, curve);
  TimeJob(client, SpinJob(std::min<std::uint64_t>(units, 200), 0, replicas));  // warm-up
  double best = 0;
  for (int i = 0; i < repeats; ++i) {
    const double t = TimeJob(client, SpinJob(units, 0, replicas));
    best = std::max(best, static_cast<double>(units) / t);
  }
  (void)args;
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  return Guarded([&] {
    Args args(argc, argv);
    if (args.help()) {
      std::cout
          << "Usage: bench_throughput [--quick] [--units N] [--durable-units N] [--repeats N]\n"
             "Trivial (spin ms=0) units per second with 2 workers; JSON lines on stdout.\n";
      return 0;
    }
    const auto units = static_cast<std::uint64_t>(args.Num("units", 100000, 300));
    const int repeats = static_cast<int>(args.Num("repeats", 2, 1));
    // The durable replicas=2 case is slower; a smaller job keeps the run bounded.
    const auto durable_units = static_cast<std::uint64_t>(args.Num("durable-units", 40000, 300));
    std::cerr << "trivial units/s, " << units << " units per job, best of " << repeats << "\n";

    const double echo = ZmqEchoRate(2, 2, 64, args.quick ? 0.3 : 2.0);
    const double echo64 = ZmqEchoRate(2, 64, 64, args.quick ? 0.3 : 2.0);

    Figure f;
    f.figure = "trivial_units_per_s";
    f.unit = "units/s";
    f.baseline = echo64;
    f.baseline_name = "ZeroMQ echo round trips/s, 2 DEALERs x 64 in flight";
    f.case_name = "replicas=1, memory store, 2 workers";
    f.goal = ">= 50000";
    f.extra["units"] = static_cast<double>(units);
    f.extra["echo_2_in_flight"] = echo;
    f.value = Measure(args, units, 1, false, 1, repeats);
    Emit(f, args);

    // The security layer's cost: the same case with CURVE off (plaintext), in the same run.
    const double with_curve = f.value;
    Figure off = f;
    off.case_name = "replicas=1, memory store, 2 workers, CURVE off (plaintext)";
    off.goal = "";
    off.value = Measure(args, units, 1, false, 1, repeats, /*curve=*/false);
    Emit(off, args);
    std::cerr << "CURVE on / off: " << with_curve << " / " << off.value
              << " units/s = " << with_curve / off.value << " (goal >= 0.8)\n";

    f.case_name = "replicas=2 quorum=2, durable store (--data), 2 workers";
    f.goal = ">= 20000";
    f.value = Measure(args, durable_units, 2, true, 1, repeats);
    f.extra["units"] = static_cast<double>(durable_units);
    f.extra["results_per_s"] = 2 * f.value;
    Emit(f, args);
    return 0;
  });
}
