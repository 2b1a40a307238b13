// Extra time when one of two workers is killed (SIGKILL) mid-job: 400 units of 20 ms on 2 workers
// (1 core each). Baseline, same run: the same job without the kill, T_base. With the kill at
// t_kill, the ideal finish is t_kill plus the work not yet done then, on the one worker left:
//   ideal = t_kill + (1 - t_kill / T_base) * 2 * T_base
// and extra = T_kill_run - ideal. The goal: extra <= lost work + 0.1 s, where the lost
// work is at most the killed worker's running unit (20 ms).
// The figure is reported with the coordinator's defaults and with fast failure detection.
#include "bench_common.hpp"

using namespace sparecycles;
using namespace sparecycles::bench;

namespace {

struct Run {
  double total = 0, kill_at = 0;
};

Run RunJob(std::uint64_t units, int ms, double kill_after, const std::vector<std::string>& flags) {
  auto cluster = StartCluster(2, flags);
  Client client = ConnectWhenReady(*cluster, 2);
  TimeJob(client, SpinJob(4, 1));  // warm-up
  Run run;
  const double t0 = Now();
  auto job = client.Submit(SpinJob(units, ms));
  if (!job.ok()) Die("submit: " + job.status().ToString());
  if (kill_after > 0) {
    std::this_thread::sleep_for(std::chrono::duration<double>(kill_after));
    run.kill_at = Now() - t0;
    cluster->worker(1).Signal(SIGKILL);
  }
  auto r = job->Wait(std::chrono::minutes(5));
  run.total = Now() - t0;
  if (!r.ok()) Die("wait: " + r.status().ToString());
  if (r->info.state != JobState::kDone)
    Die("job ended " + std::string(JobStateName(r->info.state)));
  return run;
}

}  // namespace

int main(int argc, char** argv) {
  return Guarded([&] {
    Args args(argc, argv);
    if (args.help()) {
      std::cout
          << "Usage: bench_recovery [--quick] [--units N] [--ms N]\n"
             "Extra time after kill -9 of one of two workers mid-job; JSON lines on stdout.\n";
      return 0;
    }
    const auto units = static_cast<std::uint64_t>(args.Num("units", 400, 40));
    const int ms = static_cast<int>(args.Num("ms", 20, 20));
    // The coordinator notices a dead worker by its dropped connection (after --disconnect-grace,
    // where supported) or else by its silence (--peer-timeout).
    std::vector<std::pair<std::string, std::vector<std::string>>> cases;
    if (Supports(SPARECYCLES_COORDINATOR_BIN, "--disconnect-grace")) {
      cases.push_back({"coordinator defaults", {}});
      cases.push_back({"--disconnect-grace 100ms", {"--disconnect-grace", "100ms"}});
    } else {
      cases.push_back({"--heartbeat 100ms --peer-timeout 500ms",
                       {"--heartbeat", "100ms", "--peer-timeout", "500ms"}});
      cases.push_back({"--heartbeat 200ms --peer-timeout 2s",
                       {"--heartbeat", "200ms", "--peer-timeout", "2s"}});
    }
    if (args.quick) cases.resize(1);
    std::cerr << "recovery: " << units << " units of " << ms
              << " ms, kill -9 one of 2 workers halfway\n";
    for (const auto& [label, flags] : cases) {
      const Run base = RunJob(units, ms, 0, flags);
      const Run kill = RunJob(units, ms, base.total / 2, flags);
      const double ideal = kill.kill_at + (1 - kill.kill_at / base.total) * 2 * base.total;
      Figure f;
      f.figure = "extra_time_after_worker_kill_s";
      f.case_name = std::to_string(units) + " x " + std::to_string(ms) + " ms units, " + label;
      f.unit = "s";
      f.higher_is_better = false;
      f.value = kill.total - ideal;
      f.baseline = ms / 1000.0 + 0.1;
      f.baseline_name = "goal bound: lost work (one unit) + 0.1 s";
      f.goal = "<= lost work + 0.1 s";
      f.extra = {{"job_s_no_kill", base.total},
                 {"job_s_with_kill", kill.total},
                 {"kill_at_s", kill.kill_at},
                 {"ideal_s", ideal}};
      Emit(f, args);
    }
    return 0;
  });
}
