// Store micro-benchmarks: SQLite commit throughput of the coordinator's durable store (WAL,
// synchronous=FULL) as the scheduler really drives it: a Store is the listener of a Scheduler,
// each unit costs OnLeaseIssued + OnUnitValidated + OnLeaseSettled + OnPeerCredit, and one
// Commit() writes a batch (the coordinator commits once per event-loop turn).
//   BM_StoreCommitBatch/B   B units per commit; items = units made durable
//   BM_StoreCommitEmpty     a commit with one tiny statement (the fsync floor); items = commits
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <filesystem>
#include <memory>

#include "fake_task.hpp"
#include "sparecycles/coordinator/scheduler.hpp"
#include "store.hpp"

namespace sc = sparecycles;
namespace coord = sparecycles::coordinator;

namespace {

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/sparecycles-bench-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

const sc::tasks::Registry& Squares() {
  static const sc::tasks::Registry* r = [] {
    auto* reg = new sc::tasks::Registry;
    reg->Add(std::make_unique<sc::testing::SquaresTask>());
    return reg;
  }();
  return *r;
}

void BM_StoreCommitBatch(benchmark::State& state) {
  const auto batch = static_cast<std::uint64_t>(state.range(0));
  TempDir dir;
  auto store = coord::Store::Open(dir.path);
  if (!store.ok()) {
    state.SkipWithError(store.status().ToString().c_str());
    return;
  }
  coord::SchedulerConfig cfg;
  cfg.max_jobs_kept = 2;
  coord::Scheduler s(cfg, Squares());
  s.SetListener(store->get());
  sc::TimePoint now{};
  coord::PeerHello hello;
  hello.peer_id = hello.host = hello.hostname = "peer-0";
  hello.cores = 1;
  hello.work_per_second[coord::TaskKey("squares", 1)] = 1.0;
  const auto peer = s.AddPeer(hello, now);
  sc::proto::JobSpecWire spec;
  spec.task = "squares";
  spec.params = {{"n", "100000"}};
  spec.units = 100000;
  const sc::tasks::Task* task = Squares().Find("squares");
  sc::tasks::NullContext ctx;
  (void)s.Submit(spec, 0.0);
  (void)(*store)->Commit();
  std::int64_t units = 0;
  for (auto _ : state) {
    for (std::uint64_t i = 0; i < batch; ++i) {
      auto leases = s.Lease(peer, 1, now);
      if (leases.empty()) {
        (void)s.Submit(spec, 0.0);  // the previous job finished; counted (it is rare)
        leases = s.Lease(peer, 1, now);
      }
      for (const auto& l : leases) {
        sc::proto::ResultMsg r;
        r.lease_id = l.lease_id;
        r.job_id = l.job_id;
        r.unit_index = l.unit_index;
        r.payload = *task->Execute(l.unit, ctx);
        r.hash = sc::testing::HashOf(r.payload);
        benchmark::DoNotOptimize(s.OnResult(peer, r, now, 0.0));
        ++units;
      }
    }
    sc::Status st = (*store)->Commit();
    if (!st.ok()) {
      state.SkipWithError(st.ToString().c_str());
      break;
    }
  }
  state.SetItemsProcessed(units);
  state.counters["commits"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_StoreCommitBatch)->Arg(1)->Arg(64)->Arg(1024)->ArgName("batch")->UseRealTime();

// The fsync floor: one lease insert + delete per commit.
void BM_StoreCommitEmpty(benchmark::State& state) {
  TempDir dir;
  auto store = coord::Store::Open(dir.path);
  if (!store.ok()) {
    state.SkipWithError(store.status().ToString().c_str());
    return;
  }
  coord::LeaseRecord rec;
  rec.job = 1;
  for (auto _ : state) {
    ++rec.id;
    (*store)->OnLeaseIssued(rec, "peer-0");
    (*store)->OnLeaseSettled(rec.id);
    sc::Status st = (*store)->Commit();
    if (!st.ok()) {
      state.SkipWithError(st.ToString().c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_StoreCommitEmpty)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
