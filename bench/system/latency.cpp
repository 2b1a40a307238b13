// Round-trip latency of a one-unit job: an SDK client submits a spin job of one ms=0 unit to a
// coordinator with 2 idle workers and waits for its result (Submit -> Wait -> result fetched),
// many times. The baseline, same run: a ZeroMQ DEALER<->ROUTER ping-pong round trip on
// 127.0.0.1 (a one-unit job needs at least 3 such round trips: submit, lease+result, fetch).
#include "bench_common.hpp"

using namespace sparecycles;
using namespace sparecycles::bench;

int main(int argc, char** argv) {
  return Guarded([&] {
    Args args(argc, argv);
    if (args.help()) {
      std::cout
          << "Usage: bench_latency [--quick] [--iterations N]\n"
             "One-unit job round trip p50/p99 through a real cluster; JSON lines on stdout.\n";
      return 0;
    }
    const int iterations = static_cast<int>(args.Num("iterations", 500, 20));
    std::cerr << "one-unit job round trip, " << iterations << " iterations\n";

    const std::vector<double> ping = ZmqPingPong(args.quick ? 200 : 5000, 64);

    // CURVE on (the default) and off (plaintext), one after the other in the same run.
    for (const bool curve : {true, false}) {
      auto cluster = StartCluster(2, CurveFlags(curve), CurveFlags(curve));
      Client client = ConnectWhenReady(*cluster, 2, 30, curve);
      for (int i = 0; i < 5; ++i) TimeJob(client, SpinJob(1, 0));  // warm-up
      std::vector<double> rtts;
      rtts.reserve(static_cast<std::size_t>(iterations));
      for (int i = 0; i < iterations; ++i) rtts.push_back(TimeJob(client, SpinJob(1, 0)));
      const std::string suffix = curve ? "" : ", CURVE off (plaintext)";

      Figure f;
      f.figure = "one_unit_job_round_trip_ms";
      f.unit = "ms";
      f.higher_is_better = false;
      f.baseline_name = "ZeroMQ DEALER<->ROUTER ping-pong, same percentile";
      f.case_name = "p50" + suffix;
      f.goal = curve ? "<= 1" : "";
      f.value = Percentile(rtts, 0.5) * 1e3;
      f.baseline = Percentile(ping, 0.5) * 1e3;
      f.extra["min_ms"] = *std::min_element(rtts.begin(), rtts.end()) * 1e3;
      Emit(f, args);
      f.extra.clear();
      f.case_name = "p99" + suffix;
      f.goal = "";
      f.value = Percentile(rtts, 0.99) * 1e3;
      f.baseline = Percentile(ping, 0.99) * 1e3;
      Emit(f, args);
    }
    return 0;
  });
}
