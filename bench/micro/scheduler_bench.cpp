// Scheduler micro-benchmarks: how many scheduling operations the coordinator's one event-loop
// thread can do per second, with no sockets and no store. Uses the test fake task ("squares",
// tests/support/fake_task.hpp) so a unit costs nothing to execute.
//   BM_SchedulerSubmit/U          submit (plan + split) a job of U units; items = units
//   BM_SchedulerLeaseComplete/R   lease one unit and return its result, replicas R (quorum R);
//                                 items = units validated; counter "results" = results/s
#include <benchmark/benchmark.h>

#include <memory>
#include <vector>

#include "fake_task.hpp"
#include "sparecycles/coordinator/scheduler.hpp"

namespace sc = sparecycles;
namespace coord = sparecycles::coordinator;

namespace {

const sc::tasks::Registry& Squares() {
  static const sc::tasks::Registry* r = [] {
    auto* reg = new sc::tasks::Registry;
    reg->Add(std::make_unique<sc::testing::SquaresTask>());
    return reg;
  }();
  return *r;
}

sc::proto::JobSpecWire Spec(std::uint64_t units, std::uint32_t replicas) {
  sc::proto::JobSpecWire spec;
  spec.task = "squares";
  spec.params = {{"n", std::to_string(units)}};
  spec.units = units;
  spec.replicas = replicas;
  spec.quorum = replicas;
  spec.max_replicas = replicas + 2;
  return spec;
}

coord::PeerHandle AddPeer(coord::Scheduler& s, int i, sc::TimePoint now) {
  coord::PeerHello h;
  h.peer_id = "peer-" + std::to_string(i);
  h.host = h.hostname = "host-" + std::to_string(i);
  h.cores = 1;
  h.work_per_second[coord::TaskKey("squares", 1)] = 1.0;
  return s.AddPeer(h, now);
}

void BM_SchedulerSubmit(benchmark::State& state) {
  const auto units = static_cast<std::uint64_t>(state.range(0));
  coord::SchedulerConfig cfg;
  cfg.max_jobs_kept = 2;  // finished jobs of 100k units are big
  coord::Scheduler s(cfg, Squares());
  const auto spec = Spec(units, 1);
  for (auto _ : state) {
    auto id = s.Submit(spec, 0.0);
    if (!id.ok()) {
      state.SkipWithError(id.status().ToString().c_str());
      break;
    }
    benchmark::DoNotOptimize(*id);
    state.PauseTiming();
    std::vector<std::pair<coord::PeerHandle, coord::LeaseId>> cancel;
    (void)s.Cancel(*id, cancel);  // keep the scheduler small: one live job at a time
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(units));
}
BENCHMARK(BM_SchedulerSubmit)->Arg(1000)->Arg(100000);

// Lease one unit to each of R peers (replicas of the same unit, when the scheduler pairs them),
// then return every result. A fresh job is submitted (untimed) whenever the previous one ends.
void BM_SchedulerLeaseComplete(benchmark::State& state) {
  const auto replicas = static_cast<std::uint32_t>(state.range(0));
  constexpr std::uint64_t kUnits = 100000;
  coord::SchedulerConfig cfg;
  cfg.max_jobs_kept = 2;  // finished jobs of 100k units are big
  coord::Scheduler s(cfg, Squares());
  sc::TimePoint now{};
  std::vector<coord::PeerHandle> peers;
  for (std::uint32_t i = 0; i < replicas; ++i)
    peers.push_back(AddPeer(s, static_cast<int>(i), now));
  const auto spec = Spec(kUnits, replicas);
  const sc::tasks::Task* task = Squares().Find("squares");
  sc::tasks::NullContext ctx;
  if (!s.Submit(spec, 0.0).ok()) state.SkipWithError("submit failed");
  std::uint64_t validated = 0;
  for (auto _ : state) {
    for (auto peer : peers) {
      auto leases = s.Lease(peer, 1, now);
      if (leases.empty()) {  // job finished: start another one
        state.PauseTiming();
        (void)s.Submit(spec, 0.0);
        state.ResumeTiming();
        leases = s.Lease(peer, 1, now);
      }
      for (const auto& l : leases) {
        sc::proto::ResultMsg r;
        r.lease_id = l.lease_id;
        r.job_id = l.job_id;
        r.unit_index = l.unit_index;
        auto payload = task->Execute(l.unit, ctx);
        r.payload = *payload;
        r.hash = sc::testing::HashOf(r.payload);
        auto effect = s.OnResult(peer, r, now, 0.0);
        if (effect.kind == coord::ResultEffect::Kind::kUnitValidated) ++validated;
        benchmark::DoNotOptimize(effect);
      }
    }
    now += std::chrono::microseconds(10);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(validated));
  state.counters["results"] = benchmark::Counter(static_cast<double>(state.iterations() * replicas),
                                                 benchmark::Counter::kIsRate);
}
BENCHMARK(BM_SchedulerLeaseComplete)->Arg(1)->Arg(2)->ArgName("replicas");

}  // namespace

BENCHMARK_MAIN();
