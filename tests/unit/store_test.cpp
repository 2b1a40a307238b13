// The durable store: what a coordinator commits is what a restarted coordinator gets back.
#include <doctest/doctest.h>

#include <filesystem>

#include "../../coordinator/src/store.hpp"
#include "fake_task.hpp"
#include "process.hpp"

using namespace sparecycles;
using namespace sparecycles::coordinator;
using sparecycles::testing::HashOf;
using sparecycles::testing::SquaresTask;

namespace {

struct Node {  // one "life" of a coordinator: store + scheduler
  tasks::Registry& registry;
  std::unique_ptr<Store> store;
  std::unique_ptr<Scheduler> s;
  Node(tasks::Registry& r, const std::string& dir, TimePoint now) : registry(r) {
    auto st = Store::Open(dir);
    REQUIRE(st.ok());
    store = std::move(*st);
    SchedulerConfig c;
    c.lease_min = std::chrono::seconds(30);
    c.peer_timeout = std::chrono::seconds(10);
    c.prefetch_seconds = 1e9;  // the fake units (a second each at the fake rate) count as short
    s = std::make_unique<Scheduler>(c, registry, 1000);
    s->SetListener(store.get());
    auto loaded = store->Load(WallSeconds());
    REQUIRE(loaded.ok());
    REQUIRE(s->Restore(std::move(loaded->jobs), std::move(loaded->leases), loaded->next_job, now).ok());
    REQUIRE(store->Commit().ok());
  }
  PeerHandle Peer(const std::string& id, TimePoint now) {
    PeerHello h;
    h.peer_id = id;
    h.host = id;
    h.cores = 2;
    h.work_per_second[TaskKey("squares", 1)] = 1;
    return s->AddPeer(h, now);
  }
  void Finish(PeerHandle p, const proto::Lease& l, TimePoint now) {
    SquaresTask t;
    tasks::NullContext ctx;
    proto::ResultMsg r;
    r.lease_id = l.lease_id;
    r.job_id = l.job_id;
    r.unit_index = l.unit_index;
    r.payload = *t.Execute(l.unit, ctx);
    r.hash = HashOf(r.payload);
    s->OnResult(p, r, now, 0);
  }
};

}  // namespace

TEST_CASE("a restarted coordinator continues a job without recomputing validated units") {
  testing::TempDir dir;
  tasks::Registry registry;
  registry.Add(std::make_unique<SquaresTask>());
  FakeClock clock;
  JobId job = 0;
  std::set<std::uint64_t> validated_before;
  proto::Lease still_running;
  {
    Node n(registry, dir.path(), clock.Now());
    const PeerHandle a = n.Peer("a", clock.Now());
    proto::JobSpecWire spec;
    spec.task = "squares";
    spec.params["n"] = "10";
    spec.units = 10;
    spec.client_token = "tok-7";
    job = *n.s->Submit(spec, 1.0);
    auto leases = n.s->Lease(a, 3, clock.Now());
    REQUIRE(leases.size() == 3);
    n.Finish(a, leases[0], clock.Now());
    n.Finish(a, leases[1], clock.Now());
    validated_before = {leases[0].unit_index, leases[1].unit_index};
    still_running = leases[2];
    REQUIRE(n.store->Commit().ok());
    // The coordinator dies here: nothing after the commit is written.
  }
  Node n(registry, dir.path(), clock.Now());
  const Job* j = n.s->FindJob(job);
  REQUIRE(j != nullptr);
  CHECK(j->done == 2);
  CHECK(j->running == 1);  // a's open lease is honoured until its deadline
  // The same client token finds the same job after the restart.
  proto::JobSpecWire again;
  again.task = "squares";
  again.client_token = "tok-7";
  CHECK(*n.s->Submit(again, 2.0) == job);

  const PeerHandle b = n.Peer("b", clock.Now());
  std::set<std::uint64_t> leased_after;
  for (const auto& l : n.s->Lease(b, 100, clock.Now())) leased_after.insert(l.unit_index);
  for (auto u : validated_before) CHECK_FALSE(leased_after.contains(u));
  CHECK_FALSE(leased_after.contains(still_running.unit_index));

  // Peer a comes back, still running its lease, and delivers it: accepted, not stale.
  const PeerHandle a = n.Peer("a", clock.Now());
  n.s->ReconcileLeases(a, {still_running.lease_id}, clock.Now());
  SquaresTask t;
  tasks::NullContext ctx;
  proto::ResultMsg r;
  r.lease_id = still_running.lease_id;
  r.job_id = still_running.job_id;
  r.unit_index = still_running.unit_index;
  r.payload = *t.Execute(still_running.unit, ctx);
  r.hash = HashOf(r.payload);
  CHECK(n.s->OnResult(a, r, clock.Now(), 0).kind == ResultEffect::Kind::kUnitValidated);
  CHECK(n.store->IntegrityCheck().value() == "ok");
}

TEST_CASE("a finished job's result survives a restart") {
  testing::TempDir dir;
  tasks::Registry registry;
  registry.Add(std::make_unique<SquaresTask>());
  FakeClock clock;
  JobId job = 0;
  {
    Node n(registry, dir.path(), clock.Now());
    const PeerHandle a = n.Peer("a", clock.Now());
    proto::JobSpecWire spec;
    spec.task = "squares";
    spec.params["n"] = "4";
    spec.units = 2;
    job = *n.s->Submit(spec, 1.0);
    for (const auto& l : n.s->Lease(a, 3, clock.Now())) n.Finish(a, l, clock.Now());
    REQUIRE(n.s->FindJob(job)->state == proto::JobState::kDone);
    REQUIRE(n.store->Commit().ok());
  }
  Node n(registry, dir.path(), clock.Now());
  const Job* j = n.s->FindJob(job);
  REQUIRE(j != nullptr);
  CHECK(j->state == proto::JobState::kDone);
  CHECK(testing::BytesU64(j->result) == 0 + 1 + 4 + 9);
  CHECK(n.s->Info(*j).units_total == 2);
  // New jobs get new ids.
  proto::JobSpecWire spec;
  spec.task = "squares";
  CHECK(*n.s->Submit(spec, 2.0) > job);
}

TEST_CASE("an open lease whose deadline passed during the outage is reissued") {
  testing::TempDir dir;
  tasks::Registry registry;
  registry.Add(std::make_unique<SquaresTask>());
  FakeClock clock;
  {
    Node n(registry, dir.path(), clock.Now());
    const PeerHandle a = n.Peer("a", clock.Now());
    proto::JobSpecWire spec;
    spec.task = "squares";
    spec.params["n"] = "1";
    spec.units = 1;
    n.s->Submit(spec, 1.0).value();
    REQUIRE(n.s->Lease(a, 1, clock.Now()).size() == 1);
    REQUIRE(n.store->Commit().ok());
  }
  Node n(registry, dir.path(), clock.Now());
  clock.Advance(std::chrono::seconds(31));
  const PeerHandle b = n.Peer("b", clock.Now());
  n.s->Tick(clock.Now());
  CHECK(n.s->Lease(b, 1, clock.Now()).size() == 1);
}
