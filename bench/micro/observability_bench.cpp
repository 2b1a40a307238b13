// What the HTTP side costs the coordinator's loop thread, per operation (no sockets):
//   BM_LoopMetricsAfterTurnUnread   the per-turn hook when nobody reads (the common case)
//   BM_LoopMetricsObserve           one histogram observation (turn, commit) + one unit run time
//   BM_LoopMetricsPublish/J/P       building a snapshot with J jobs and P peers (only while read)
//   BM_RenderMetrics/J/P            rendering /metrics from it (on an HTTP thread, not the loop)
#include <benchmark/benchmark.h>

#include "metrics.hpp"
#include "sparecycles/core/metrics_text.hpp"

namespace sc = sparecycles;
namespace coord = sparecycles::coordinator;

namespace {

struct World {
  coord::Scheduler scheduler{coord::SchedulerConfig{}, sc::tasks::Registry::BuiltIn()};
  sc::net::WireStats peers, clients;
  World(int jobs, int peers_n) {
    const sc::TimePoint now = sc::SteadyClock::Instance().Now();
    for (int i = 0; i < peers_n; ++i) {
      coord::PeerHello h;
      h.peer_id = "peer-" + std::to_string(i);
      h.host = h.hostname = "host" + std::to_string(i);
      h.cores = 4;
      h.work_per_second[coord::TaskKey("spin", 1)] = 1000;
      scheduler.AddPeer(h, now);
    }
    for (int j = 0; j < jobs; ++j) {
      sc::proto::JobSpecWire spec;
      spec.task = "spin";
      spec.units = 100;
      spec.params["ms"] = "0";
      spec.params["units"] = "100";
      if (!scheduler.Submit(spec, sc::WallSeconds()).ok()) std::abort();
    }
  }
};

void BM_LoopMetricsAfterTurnUnread(benchmark::State& state) {
  World w(1, 2);
  coord::LoopMetrics m([] {});
  sc::TimePoint t = sc::SteadyClock::Instance().Now();
  m.AfterTurn(w.scheduler, w.peers, w.clients, 0, t);
  for (auto _ : state) {
    t += std::chrono::microseconds(10);  // turns of 10 µs: a sample every 100,000 turns
    m.AfterTurn(w.scheduler, w.peers, w.clients, 0, t);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_LoopMetricsAfterTurnUnread);

void BM_LoopMetricsObserve(benchmark::State& state) {
  World w(1, 1);
  coord::LoopMetrics m([] {});
  sc::proto::ResultMsg r;
  r.job_id = 1;
  r.wall_seconds = 0.0003;
  double v = 0.00001;
  for (auto _ : state) {
    m.ObserveTurn(v);
    m.ObserveCommit(v);
    m.ObserveResult(w.scheduler, r);
    v = v < 1 ? v * 1.01 : 0.00001;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_LoopMetricsObserve);

void BM_LoopMetricsPublish(benchmark::State& state) {
  World w(static_cast<int>(state.range(0)), static_cast<int>(state.range(1)));
  coord::LoopMetrics m([] {}, sc::Duration::zero());  // every read asks for a new snapshot
  sc::TimePoint t = sc::SteadyClock::Instance().Now();
  for (auto _ : state) {
    (void)m.Latest(sc::Duration::zero());  // a reader asks; the next turn builds a snapshot
    t += std::chrono::milliseconds(1);
    m.AfterTurn(w.scheduler, w.peers, w.clients, 0, t);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_LoopMetricsPublish)->Args({1, 2})->Args({100, 100})->Args({1000, 1000});

void BM_RenderMetrics(benchmark::State& state) {
  World w(static_cast<int>(state.range(0)), static_cast<int>(state.range(1)));
  coord::LoopMetrics m([] {});
  (void)m.Latest(sc::Duration::zero());
  m.AfterTurn(w.scheduler, w.peers, w.clients, 0, sc::SteadyClock::Instance().Now());
  auto snap = m.Latest(sc::Duration::zero());
  std::size_t bytes = 0;
  for (auto _ : state) {
    std::string text = coord::RenderMetrics(*snap);
    bytes += text.size();
    benchmark::DoNotOptimize(text);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
}
BENCHMARK(BM_RenderMetrics)->Args({1, 2})->Args({100, 100})->Args({1000, 1000});

}  // namespace

BENCHMARK_MAIN();
