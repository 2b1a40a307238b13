// The scheduler's state machine, driven with a fake clock and fake peers: no sockets, no sleeps.
#include "sparecycles/coordinator/scheduler.hpp"

#include <doctest/doctest.h>

#include <map>

#include "fake_task.hpp"

using namespace sparecycles;
using namespace sparecycles::coordinator;
using sparecycles::testing::HashOf;
using sparecycles::testing::SquaresTask;

namespace {

struct Fixture {
  tasks::Registry registry;
  FakeClock clock;
  SchedulerConfig config;
  std::unique_ptr<Scheduler> s;

  // The fake task's units are about a second of work at the fake peers' rate (1 work unit/s);
  // tests treat them as short enough to prefetch unless they test prefetch_seconds themselves.
  explicit Fixture(SchedulerConfig c = {}, bool prefetch_any_unit = true) : config(std::move(c)) {
    if (prefetch_any_unit) config.prefetch_seconds = 1e9;
    registry.Add(std::make_unique<SquaresTask>());
    config.peer_timeout = std::chrono::seconds(10);
    config.lease_min = std::chrono::seconds(30);
    s = std::make_unique<Scheduler>(config, registry);
  }
  PeerHandle Peer(const std::string& id, std::uint32_t cores = 1, const std::string& host = "") {
    PeerHello h;
    h.peer_id = id;
    h.host = host.empty() ? id : host;
    h.cores = cores;
    h.work_per_second[TaskKey("squares", 1)] = 1.0;
    return s->AddPeer(h, clock.Now());
  }
  JobId Submit(std::uint64_t n, std::uint32_t replicas = 1, std::uint32_t quorum = 1,
               int priority = 0, std::uint32_t max_replicas = 0, std::uint32_t max_errors = 0) {
    proto::JobSpecWire spec;
    spec.task = "squares";
    spec.params["n"] = std::to_string(n);
    spec.units = n;
    spec.replicas = replicas;
    spec.quorum = quorum;
    spec.priority = priority;
    spec.max_replicas = max_replicas;
    spec.max_errors = max_errors;
    auto id = s->Submit(spec, 0);
    REQUIRE(id.ok());
    return *id;
  }
  // Runs the lease honestly and returns the result message.
  proto::ResultMsg Honest(const proto::Lease& l) {
    SquaresTask t;
    tasks::NullContext ctx;
    auto out = t.Execute(l.unit, ctx);
    proto::ResultMsg r;
    r.lease_id = l.lease_id;
    r.job_id = l.job_id;
    r.unit_index = l.unit_index;
    r.payload = *out;
    r.hash = HashOf(*out);
    r.cpu_seconds = 1;
    return r;
  }
  proto::ResultMsg Wrong(const proto::Lease& l) {
    proto::ResultMsg r = Honest(l);
    r.payload = testing::U64Bytes(12345);
    r.hash = HashOf(r.payload);
    return r;
  }
  ResultEffect Deliver(PeerHandle p, const proto::ResultMsg& r) {
    return s->OnResult(p, r, clock.Now(), 0);
  }
  std::uint64_t Answer(JobId id) { return testing::BytesU64(s->FindJob(id)->result); }
};

std::uint64_t SumSquares(std::uint64_t n) { return (n - 1) * n * (2 * n - 1) / 6; }

}  // namespace

TEST_CASE("every unit of a job is leased exactly once and the merged answer is right") {
  Fixture f;
  const PeerHandle a = f.Peer("a", 2), b = f.Peer("b", 2);
  const JobId job = f.Submit(20);
  std::map<std::uint64_t, int> seen;
  while (!proto::IsFinal(f.s->FindJob(job)->state)) {
    bool progress = false;
    for (PeerHandle p : {a, b}) {
      for (const auto& l : f.s->Lease(p, 3, f.clock.Now())) {
        ++seen[l.unit_index];
        f.Deliver(p, f.Honest(l));
        progress = true;
      }
    }
    REQUIRE(progress);
  }
  CHECK(seen.size() == 20);
  for (auto& [u, n] : seen) CHECK(n == 1);
  CHECK(f.s->FindJob(job)->state == proto::JobState::kDone);
  CHECK(f.Answer(job) == SumSquares(20));
  CHECK(f.s->in_flight() == 0);
}

TEST_CASE("a peer is never leased more than its slots plus prefetch") {
  SchedulerConfig c;
  c.prefetch = 1;
  Fixture f(c);
  const PeerHandle a = f.Peer("a", 2);
  f.Submit(50);
  CHECK(f.s->Lease(a, 100, f.clock.Now()).size() == 3);  // 2 slots + prefetch 1
  CHECK(f.s->Lease(a, 100, f.clock.Now()).empty());
}

TEST_CASE("long units are not prefetched, so a small job spreads over the idle peers") {
  SchedulerConfig c;
  c.prefetch = 64;
  c.prefetch_seconds = 0.05;
  Fixture f(c, /*prefetch_any_unit=*/false);
  const PeerHandle a = f.Peer("a"), b = f.Peer("b");
  const JobId id = f.Submit(2);  // each unit is about a second of work at 1 work unit/s
  const auto first = f.s->Lease(a, 65, f.clock.Now());
  CHECK(first.size() == 1);  // its slot, nothing beyond
  const auto second = f.s->Lease(b, 65, f.clock.Now());
  REQUIRE(second.size() == 1);
  CHECK(second[0].unit_index != first[0].unit_index);
  f.Deliver(a, f.Honest(first[0]));
  f.Deliver(b, f.Honest(second[0]));
  CHECK(f.s->FindJob(id)->state == proto::JobState::kDone);
  // Short units are prefetched up to prefetch_seconds of expected work per slot.
  SchedulerConfig quick = c;
  quick.prefetch_seconds = 10.5;  // ten more units of about a second
  Fixture g(quick, /*prefetch_any_unit=*/false);
  const PeerHandle p = g.Peer("p");
  g.Submit(100);
  const double unit_s = g.s->FindJob(1)->unit_work / 1.0;
  const auto leased = g.s->Lease(p, 65, g.clock.Now());
  CHECK(leased.size() == 1 + static_cast<std::size_t>(10.5 / unit_s));
}

TEST_CASE("a long unit is prefetched one per slot while the job could fill the pool twice") {
  SchedulerConfig c;
  c.prefetch = 64;
  c.prefetch_seconds = 0.05;
  Fixture f(c, /*prefetch_any_unit=*/false);
  const PeerHandle a = f.Peer("a"), b = f.Peer("b");  // a pool of 2 slots
  const JobId id = f.Submit(7);                       // units of about a second each
  // 7 fresh units >= 2 x 2 slots: the next unit waits at the peer, one per slot and no more.
  auto at_a = f.s->Lease(a, 65, f.clock.Now());
  CHECK(at_a.size() == 2);
  // 5 fresh units left: still plenty for b.
  auto at_b = f.s->Lease(b, 65, f.clock.Now());
  CHECK(at_b.size() == 2);
  // 3 fresh units < 4: a finishes one and its prefetched unit takes the slot; nothing beyond.
  f.Deliver(a, f.Honest(at_a[0]));
  CHECK(f.s->Lease(a, 65, f.clock.Now()).empty());
  // b finishes both and gets one for its slot only.
  f.Deliver(b, f.Honest(at_b[0]));
  f.Deliver(b, f.Honest(at_b[1]));
  const auto next_b = f.s->Lease(b, 65, f.clock.Now());
  REQUIRE(next_b.size() == 1);
  // A new peer joins a pool of 3 slots with 2 fresh units: it gets exactly one, and so does a
  // when it is free: the last units spread, one per idle slot.
  const PeerHandle p = f.Peer("c");
  const auto at_c = f.s->Lease(p, 65, f.clock.Now());
  REQUIRE(at_c.size() == 1);
  f.Deliver(a, f.Honest(at_a[1]));
  const auto last = f.s->Lease(a, 65, f.clock.Now());
  REQUIRE(last.size() == 1);
  for (const auto& [peer, lease] : {std::pair{b, next_b[0]}, {p, at_c[0]}, {a, last[0]}})
    f.Deliver(peer, f.Honest(lease));
  CHECK(f.s->FindJob(id)->state == proto::JobState::kDone);
}

TEST_CASE("once units come back faster than declared, they are prefetched as short units") {
  SchedulerConfig c;
  c.prefetch = 64;
  c.prefetch_seconds = 0.05;
  Fixture f(c, /*prefetch_any_unit=*/false);
  const PeerHandle a = f.Peer("a");
  f.Submit(200);                 // declared: about a second per unit
  for (int i = 0; i < 8; ++i) {  // eight results of 1 ms each, one unit at a time
    const auto l = f.s->Lease(a, 1, f.clock.Now());
    REQUIRE(l.size() == 1);
    proto::ResultMsg r = f.Honest(l[0]);
    r.wall_seconds = 0.001;
    f.Deliver(a, r);
  }
  // 1 ms measured: its slot plus 50 ms of work beyond it (50 units), not the one long unit.
  CHECK(f.s->Lease(a, 65, f.clock.Now()).size() == 51);
  // A peer that lies about run times gains nothing but deeper prefetch, capped by `prefetch`.
  SchedulerConfig capped = c;
  capped.prefetch = 10;
  Fixture g(capped, /*prefetch_any_unit=*/false);
  const PeerHandle p = g.Peer("p");
  g.Submit(200);
  for (int i = 0; i < 8; ++i) {
    const auto l = g.s->Lease(p, 1, g.clock.Now());
    REQUIRE(l.size() == 1);
    proto::ResultMsg r = g.Honest(l[0]);
    r.wall_seconds = 0;
    g.Deliver(p, r);
  }
  CHECK(g.s->Lease(p, 65, g.clock.Now()).size() == 11);
}

TEST_CASE("the unit count follows the job size and the peers' measured speed") {
  Fixture f;
  PeerHello h;
  h.peer_id = "fast";
  h.cores = 1;
  h.work_per_second[TaskKey("squares", 1)] = 10.0;  // 10 work units per second
  f.s->AddPeer(h, f.clock.Now());
  proto::JobSpecWire spec;
  spec.task = "squares";
  spec.params = {{"n", "1000"}, {"work", "1"}};  // 1000 work units in total
  spec.unit_seconds = 2.0;                       // 20 work units per unit -> 50 units
  auto id = f.s->Submit(spec, 0);
  REQUIRE(id.ok());
  CHECK(f.s->FindJob(*id)->units.size() == 50);
}

TEST_CASE("replicas of one unit never go to the same peer") {
  Fixture f;
  const PeerHandle a = f.Peer("a", 4);
  f.Submit(3, /*replicas=*/2, /*quorum=*/2);
  auto leases = f.s->Lease(a, 10, f.clock.Now());
  std::set<std::uint64_t> units;
  for (const auto& l : leases) CHECK(units.insert(l.unit_index).second);
  CHECK(leases.size() == 3);
}

TEST_CASE("replicas never go to two peers of the same host when hosts are distinct") {
  SchedulerConfig c;
  c.hosts.distinct = DistinctBy::kHosts;
  Fixture f(c);
  const PeerHandle a = f.Peer("a", 1, "10.0.0.1"), b = f.Peer("b", 1, "10.0.0.1"),
                   d = f.Peer("d", 1, "10.0.0.2");
  f.Submit(1, 2, 2);
  CHECK(f.s->Lease(a, 1, f.clock.Now()).size() == 1);
  CHECK(f.s->Lease(b, 1, f.clock.Now()).empty());
  CHECK(f.s->Lease(d, 1, f.clock.Now()).size() == 1);
}

TEST_CASE("a unit is accepted when a quorum of peers agree") {
  Fixture f;
  const PeerHandle a = f.Peer("a"), b = f.Peer("b");
  const JobId job = f.Submit(1, 2, 2);
  auto la = f.s->Lease(a, 1, f.clock.Now());
  auto lb = f.s->Lease(b, 1, f.clock.Now());
  REQUIRE(la.size() == 1);
  REQUIRE(lb.size() == 1);
  CHECK(f.Deliver(a, f.Honest(la[0])).kind == ResultEffect::Kind::kAccepted);
  CHECK(f.s->FindJob(job)->state == proto::JobState::kRunning);
  auto e = f.Deliver(b, f.Honest(lb[0]));
  CHECK(e.kind == ResultEffect::Kind::kUnitValidated);
  CHECK(e.job_finished == job);
  CHECK(f.Answer(job) == 0);
  CHECK(f.s->FindPeer(a)->units_done == 1);
  CHECK(f.s->FindPeer(a)->cpu_seconds_validated == doctest::Approx(1.0));
}

TEST_CASE("disagreement issues another replica and the majority answer wins") {
  Fixture f;
  const PeerHandle a = f.Peer("a"), b = f.Peer("b"), c = f.Peer("c");
  const JobId job = f.Submit(1, 2, 2, 0, /*max_replicas=*/3);
  auto la = f.s->Lease(a, 1, f.clock.Now());
  auto lb = f.s->Lease(b, 1, f.clock.Now());
  f.Deliver(a, f.Wrong(la[0]));
  f.Deliver(b, f.Honest(lb[0]));
  CHECK(f.s->Lease(a, 1, f.clock.Now()).empty());  // a and b already had this unit
  auto lc = f.s->Lease(c, 1, f.clock.Now());
  REQUIRE(lc.size() == 1);
  CHECK(f.Deliver(c, f.Honest(lc[0])).kind == ResultEffect::Kind::kUnitValidated);
  CHECK(f.s->FindJob(job)->state == proto::JobState::kDone);
  CHECK(f.s->FindPeer(a)->units_invalid == 1);
  CHECK(f.s->FindPeer(a)->cpu_seconds_validated == 0);
  CHECK(f.s->stats().replicas_disagreed == 1);
}

TEST_CASE("a unit without a quorum after max replicas fails and the job reports why") {
  Fixture f;
  const PeerHandle a = f.Peer("a"), b = f.Peer("b");
  const JobId job = f.Submit(2, 2, 2, 0, /*max_replicas=*/2);
  for (PeerHandle p : {a, b})
    for (const auto& l : f.s->Lease(p, 2, f.clock.Now()))
      f.Deliver(p, (p == a && l.unit_index == 1) ? f.Wrong(l) : f.Honest(l));
  const Job* j = f.s->FindJob(job);
  CHECK(j->state == proto::JobState::kFailed);
  REQUIRE(j->failures.size() == 1);
  CHECK(j->failures[0].unit_index == 1);
  CHECK(j->failures[0].reason.find("no quorum") != std::string::npos);
}

TEST_CASE("a unit that fails max_errors times fails with the kernel's message") {
  Fixture f;
  const PeerHandle a = f.Peer("a"), b = f.Peer("b"), c = f.Peer("c");
  const JobId job = f.Submit(1, 1, 1, 0, 4, /*max_errors=*/2);
  for (PeerHandle p : {a, b, c}) {
    for (const auto& l : f.s->Lease(p, 1, f.clock.Now())) {
      proto::ResultMsg r = f.Honest(l);
      r.outcome = proto::UnitOutcome::kFailed;
      r.error = "kernel threw: boom";
      r.hash.clear();
      f.Deliver(p, r);
    }
  }
  const Job* j = f.s->FindJob(job);
  CHECK(j->state == proto::JobState::kFailed);
  CHECK(j->error.find("boom") != std::string::npos);
  CHECK(f.s->stats().leases_issued == 2);
}

TEST_CASE("a late result after the unit is validated is stale and not counted") {
  Fixture f;
  const PeerHandle a = f.Peer("a"), b = f.Peer("b");
  const JobId job = f.Submit(2, 1, 1);
  auto la = f.s->Lease(a, 1, f.clock.Now());
  REQUIRE(la.size() == 1);
  f.clock.Advance(std::chrono::seconds(31));  // the lease passes its deadline; a is still alive
  f.s->Touch(a, f.clock.Now());
  f.s->Touch(b, f.clock.Now());
  auto t = f.s->Tick(f.clock.Now());
  CHECK(t.expired_leases.size() == 1);
  auto lb = f.s->Lease(b, 2, f.clock.Now());
  REQUIRE(lb.size() == 2);
  CHECK(lb[0].unit_index == la[0].unit_index);  // the reissued unit goes first
  auto eb = f.Deliver(b, f.Honest(lb[0]));
  CHECK(eb.kind == ResultEffect::Kind::kUnitValidated);
  // a's old lease was settled with the unit: its result is fenced off.
  auto ea = f.Deliver(a, f.Honest(la[0]));
  CHECK(ea.kind == ResultEffect::Kind::kStale);
  f.Deliver(b, f.Honest(lb[1]));
  CHECK(f.s->FindJob(job)->done == 2);
  CHECK(f.Answer(job) == SumSquares(2));
  CHECK(f.s->stats().units_validated == 2);
}

TEST_CASE("a result from an expired lease is still welcome when the unit needs it") {
  Fixture f;
  const PeerHandle a = f.Peer("a"), b = f.Peer("b");
  const JobId job = f.Submit(1);
  auto la = f.s->Lease(a, 1, f.clock.Now());
  f.clock.Advance(std::chrono::seconds(31));
  f.s->Touch(a, f.clock.Now());
  f.s->Touch(b, f.clock.Now());
  f.s->Tick(f.clock.Now());
  auto lb = f.s->Lease(b, 1, f.clock.Now());
  REQUIRE(lb.size() == 1);
  auto ea = f.Deliver(a, f.Honest(la[0]));  // the slow peer finishes first after all
  CHECK(ea.kind == ResultEffect::Kind::kUnitValidated);
  REQUIRE(ea.cancel.size() == 1);  // b's copy is now pointless
  CHECK(ea.cancel[0].second == lb[0].lease_id);
  CHECK(f.Deliver(b, f.Honest(lb[0])).kind == ResultEffect::Kind::kStale);
  CHECK(f.s->FindJob(job)->done == 1);
}

TEST_CASE("a unit is requeued when its peer falls silent past the timeout") {
  Fixture f;
  const PeerHandle a = f.Peer("a"), b = f.Peer("b");
  const JobId job = f.Submit(1);
  REQUIRE(f.s->Lease(a, 1, f.clock.Now()).size() == 1);
  f.clock.Advance(std::chrono::seconds(5));
  f.s->Touch(b, f.clock.Now());
  CHECK(f.s->Tick(f.clock.Now()).lost_peers.empty());
  f.clock.Advance(std::chrono::seconds(6));  // a silent for 11 s > 10 s; b for 6 s
  f.s->Touch(b, f.clock.Now());
  auto t = f.s->Tick(f.clock.Now());
  REQUIRE(t.lost_peers.size() == 1);
  CHECK(t.lost_peers[0] == a);
  auto lb = f.s->Lease(b, 1, f.clock.Now());
  REQUIRE(lb.size() == 1);
  f.Deliver(b, f.Honest(lb[0]));
  CHECK(f.s->FindJob(job)->state == proto::JobState::kDone);
}

TEST_CASE("leases handed back on a graceful leave go to the queue at once") {
  Fixture f;
  const PeerHandle a = f.Peer("a", 2), b = f.Peer("b");
  f.Submit(2);
  auto la = f.s->Lease(a, 2, f.clock.Now());
  REQUIRE(la.size() == 2);
  f.s->ReturnLeases(a, {la[0].lease_id, la[1].lease_id}, f.clock.Now());
  f.s->RemovePeer(a, f.clock.Now());
  CHECK(f.s->Lease(b, 2, f.clock.Now()).size() == 2);
}

TEST_CASE("a reconnecting peer keeps the leases it still runs and loses the others") {
  Fixture f;
  const PeerHandle a = f.Peer("a", 2), b = f.Peer("b", 2);
  f.Submit(2);
  auto la = f.s->Lease(a, 2, f.clock.Now());
  REQUIRE(la.size() == 2);
  CHECK(f.Peer("a", 2) == a);  // same peer id: same peer
  f.s->ReconcileLeases(a, {la[0].lease_id}, f.clock.Now());
  auto lb = f.s->Lease(b, 2, f.clock.Now());
  REQUIRE(lb.size() == 1);
  CHECK(lb[0].unit_index == la[1].unit_index);
}

TEST_CASE("a result for another peer's lease or with a forged payload is rejected") {
  Fixture f;
  const PeerHandle a = f.Peer("a"), b = f.Peer("b");
  f.Submit(1);
  auto la = f.s->Lease(a, 1, f.clock.Now());
  CHECK(f.Deliver(b, f.Honest(la[0])).kind == ResultEffect::Kind::kRejected);
  proto::ResultMsg forged = f.Honest(la[0]);
  forged.payload = testing::U64Bytes(99);  // hash says one thing, payload another
  CHECK(f.Deliver(a, forged).kind == ResultEffect::Kind::kRejected);
  CHECK(f.s->stats().results_rejected == 2);
}

TEST_CASE("higher priority jobs are served first and equal priorities share peers") {
  Fixture f;
  const PeerHandle a = f.Peer("a", 4);
  const JobId low = f.Submit(10, 1, 1, 0);
  const JobId high = f.Submit(10, 1, 1, 5);
  for (const auto& l : f.s->Lease(a, 4, f.clock.Now())) CHECK(l.job_id == high);

  Fixture g;
  const PeerHandle p = g.Peer("p", 3);
  const JobId j1 = g.Submit(10), j2 = g.Submit(10);
  std::map<JobId, int> per_job;
  for (const auto& l : g.s->Lease(p, 4, g.clock.Now())) ++per_job[l.job_id];
  CHECK(per_job[j1] == 2);
  CHECK(per_job[j2] == 2);
  (void)low;
}

TEST_CASE("cancelling a job returns its running leases so peers can stop them") {
  Fixture f;
  const PeerHandle a = f.Peer("a", 2);
  const JobId job = f.Submit(5);
  auto la = f.s->Lease(a, 2, f.clock.Now());
  std::vector<std::pair<PeerHandle, LeaseId>> cancel;
  REQUIRE(f.s->Cancel(job, cancel).ok());
  CHECK(cancel.size() == 2);
  CHECK(f.s->FindJob(job)->state == proto::JobState::kCancelled);
  CHECK(f.Deliver(a, f.Honest(la[0])).kind == ResultEffect::Kind::kStale);
  CHECK(f.s->Lease(a, 2, f.clock.Now()).empty());
}

TEST_CASE("a retried submission with the same client token is the same job") {
  Fixture f;
  proto::JobSpecWire spec;
  spec.task = "squares";
  spec.client_token = "tok-1";
  auto a = f.s->Submit(spec, 0), b = f.s->Submit(spec, 0);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(*a == *b);
  CHECK(f.s->jobs().size() == 1);
}

TEST_CASE("an unknown task or bad parameters are refused with a clear error") {
  Fixture f;
  proto::JobSpecWire spec;
  spec.task = "nope";
  auto r = f.s->Submit(spec, 0);
  CHECK(r.status().code() == StatusCode::kNotFound);
  CHECK(r.status().message().find("squares") != std::string::npos);
  spec.task = "squares";
  spec.params["n"] = "zero";
  CHECK(f.s->Submit(spec, 0).status().code() == StatusCode::kInvalidArgument);
}

TEST_CASE("a paused peer gets no new units") {
  Fixture f;
  const PeerHandle a = f.Peer("a", 2);
  f.Submit(4);
  proto::Capacity cap;
  cap.slots = 2;
  cap.state = proto::PeerState::kPaused;
  f.s->SetCapacity(a, cap, f.clock.Now());
  CHECK(f.s->Lease(a, 3, f.clock.Now()).empty());
}

TEST_CASE("a straggling unit is backed up on an idle peer and the first result wins") {
  Fixture f;
  const PeerHandle slow = f.Peer("slow"), fast = f.Peer("fast");
  const JobId job = f.Submit(2);
  auto ls = f.s->Lease(slow, 1, f.clock.Now());
  auto lf = f.s->Lease(fast, 1, f.clock.Now());
  REQUIRE(ls.size() == 1);
  REQUIRE(lf.size() == 1);
  f.Deliver(fast, f.Honest(lf[0]));
  // Right away the slow unit has not run for its expected time (1 s): no backup yet.
  CHECK(f.s->Lease(fast, 1, f.clock.Now()).empty());
  f.clock.Advance(std::chrono::seconds(2));
  f.s->Touch(slow, f.clock.Now());
  auto backup = f.s->Lease(fast, 1, f.clock.Now());
  REQUIRE(backup.size() == 1);
  CHECK(backup[0].unit_index == ls[0].unit_index);
  CHECK(f.s->stats().backups_issued == 1);
  CHECK(f.s->Lease(fast, 1, f.clock.Now()).empty());  // one backup per unit
  auto e = f.Deliver(fast, f.Honest(backup[0]));
  CHECK(e.kind == ResultEffect::Kind::kUnitValidated);
  REQUIRE(e.cancel.size() == 1);
  CHECK(e.cancel[0] == std::make_pair(slow, ls[0].lease_id));  // the slow copy is stopped
  CHECK(f.s->FindJob(job)->state == proto::JobState::kDone);
  CHECK(f.Deliver(slow, f.Honest(ls[0])).kind == ResultEffect::Kind::kStale);
}

TEST_CASE(
    "a lost peer that comes back with finished work is counted once if the unit still needs it") {
  Fixture f;
  const PeerHandle a = f.Peer("a"), b = f.Peer("b");
  const JobId job = f.Submit(2);
  auto la = f.s->Lease(a, 2, f.clock.Now());
  REQUIRE(la.size() == 2);
  f.s->RemovePeer(a, f.clock.Now());  // declared lost: both units requeued
  auto lb = f.s->Lease(b, 1, f.clock.Now());
  REQUIRE(lb.size() == 1);
  f.Deliver(b, f.Honest(lb[0]));
  const PeerHandle a2 = f.Peer("a");  // it reconnects and resends both results
  CHECK(f.Deliver(a2, f.Honest(la[0])).kind == ResultEffect::Kind::kStale);  // b already did it
  CHECK(f.Deliver(a2, f.Honest(la[1])).kind == ResultEffect::Kind::kUnitValidated);
  CHECK(f.Deliver(a2, f.Honest(la[1])).kind == ResultEffect::Kind::kStale);  // never counted twice
  CHECK(f.s->FindJob(job)->state == proto::JobState::kDone);
  CHECK(f.Answer(job) == SumSquares(2));
}

TEST_CASE("a peer that was lost and comes back may redo its unit but never votes twice") {
  Fixture f;
  const PeerHandle a = f.Peer("a");
  const PeerHandle b = f.Peer("b");
  const JobId job = f.Submit(1, 2, 2);
  auto la = f.s->Lease(a, 1, f.clock.Now());
  REQUIRE(la.size() == 1);
  f.s->RemovePeer(a, f.clock.Now());
  const PeerHandle again = f.Peer("a");
  CHECK(again == a);  // the same peer id keeps its handle
  auto la2 = f.s->Lease(again, 1, f.clock.Now());
  REQUIRE(la2.size() == 1);  // a restarted worker may take the unit again...
  auto wrong1 = f.Wrong(la[0]), wrong2 = f.Wrong(la2[0]);
  CHECK(f.Deliver(again, wrong1).kind == ResultEffect::Kind::kAccepted);
  CHECK(f.Deliver(again, wrong2).kind ==
        ResultEffect::Kind::kStale);                             // ...but its answer counts once
  CHECK(f.s->FindJob(job)->state == proto::JobState::kRunning);  // no quorum of 2 from one peer
  auto lb = f.s->Lease(b, 1, f.clock.Now());
  REQUIRE(lb.size() == 1);
  f.Deliver(b, f.Honest(lb[0]));
  CHECK(f.s->FindJob(job)->state == proto::JobState::kRunning);  // 1 vs 1: still undecided
}

TEST_CASE(
    "a peer running ahead of the others still gets work while any unit needs a copy from it") {
  // Two peers, every unit twice (quorum 2): the fast peer's copies leave the slow peer's copies
  // at the front of the queue. The fast one must still find the units it has not had.
  SchedulerConfig c;
  c.prefetch = 64;
  Fixture f(c);
  const PeerHandle fast = f.Peer("fast"), slow = f.Peer("slow");
  const JobId id = f.Submit(3000, 2, 2);
  std::map<PeerHandle, std::vector<proto::Lease>> held;
  std::map<PeerHandle, std::size_t> leased;
  for (int round = 0; round < 1000 && !proto::IsFinal(f.s->FindJob(id)->state); ++round) {
    // The fast peer works four rounds for each of the slow peer's.
    const PeerHandle p = round % 5 == 4 ? slow : fast;
    for (const auto& l : held[p]) f.Deliver(p, f.Honest(l));
    held[p] = f.s->Lease(p, 65, f.clock.Now());
    leased[p] += held[p].size();
    if (leased[p] < 3000)
      CHECK_MESSAGE(!held[p].empty(),
                    "round " << round << ": peer had " << leased[p] << " of 3000 units");
  }
  CHECK(f.s->FindJob(id)->state == proto::JobState::kDone);
  CHECK(f.Answer(id) == SumSquares(3000));
  CHECK(leased[fast] == 3000);
  CHECK(leased[slow] == 3000);
}

// ---------------------------------------------------------------- faults in combination (issue 13)

namespace {

// The volunteer pool's policy (2 replicas, quorum 2, adaptive) without spot-checks, so the draws
// do not change which unit goes where.
SchedulerConfig VolunteerConfig() {
  SchedulerConfig c;
  c.policy.replicas = 2;
  c.policy.quorum = 2;
  c.policy.adaptive = true;
  c.credibility.spot_check_rate = 0;
  c.credibility.spot_check_rate_new = 0;
  return c;
}

RecoveredJob RunningJob(JobId id, std::uint64_t units) {
  RecoveredJob rj;
  rj.id = id;
  rj.spec.task = "squares";
  rj.spec.params["n"] = std::to_string(units);
  rj.spec.units = units;
  rj.units = units;
  rj.state = proto::JobState::kRunning;
  return rj;
}

}  // namespace

TEST_CASE(
    "a unit whose only missing copy was a dead peer's restored lease is decided after it expires") {
  // The history of the stuck job: worker A is killed while it runs unit 0, then the coordinator
  // is killed. After the restart A's lease is restored (A never comes back); survivor B runs the
  // unit's second copy, newcomer C a backup of it. Both agree, but two fresh peers are short of
  // the credibility bound and A's lease still counts as a copy in flight. When that lease
  // expires the unit is requeued, and no connected peer may take it: nobody ever decided it.
  Fixture f(VolunteerConfig());
  std::vector<RecoveredJob> jobs;
  jobs.push_back(RunningJob(1, 1));
  std::vector<RecoveredLease> leases;
  leases.push_back(RecoveredLease{7, 1, 0, "A", std::chrono::seconds(30)});
  REQUIRE(f.s->Restore(std::move(jobs), leases, 2, f.clock.Now()).ok());

  const PeerHandle b = f.Peer("B");
  auto lb = f.s->Lease(b, 1, f.clock.Now());
  REQUIRE(lb.size() == 1);
  CHECK(f.Deliver(b, f.Honest(lb[0])).kind == ResultEffect::Kind::kAccepted);

  f.clock.Advance(std::chrono::seconds(5));  // A's copy has run long enough to deserve a backup
  const PeerHandle c = f.Peer("C");
  auto lc = f.s->Lease(c, 1, f.clock.Now());
  REQUIRE(lc.size() == 1);
  CHECK(lc[0].unit_index == 0);
  CHECK(f.Deliver(c, f.Honest(lc[0])).kind == ResultEffect::Kind::kAccepted);
  CHECK(f.s->FindJob(1)->state == proto::JobState::kRunning);  // A's copy may still come

  f.clock.Advance(std::chrono::seconds(30));
  f.s->Tick(f.clock.Now());  // A's lease expires: the unit goes back to the queue
  CHECK(f.s->Lease(b, 1, f.clock.Now()).empty());
  CHECK(f.s->Lease(c, 1, f.clock.Now()).empty());
  f.clock.Advance(std::chrono::seconds(1));
  f.s->Tick(f.clock.Now());
  REQUIRE(f.s->FindJob(1)->state == proto::JobState::kDone);
  CHECK(f.Answer(1) == SumSquares(1));
  CHECK(f.s->stats().quorum_fallbacks == 1);
}

TEST_CASE(
    "a job that cannot progress says why: no peer, paused peers, every peer already ran the unit") {
  SchedulerConfig c;
  c.policy.replicas = 2;
  c.policy.quorum = 2;
  Fixture f(c);
  const JobId id = f.Submit(2, 2, 2);
  const Job* job = f.s->FindJob(id);
  CHECK(f.s->Info(*job).waiting == "no peer is connected");

  const PeerHandle a = f.Peer("a");
  CHECK(f.s->Info(*job).waiting.empty());  // a may take the fresh units
  proto::Capacity paused;
  paused.slots = 1;
  paused.state = proto::PeerState::kPaused;
  paused.reason = "the owner is using the machine";
  f.s->SetCapacity(a, paused, f.clock.Now());
  CHECK(f.s->Info(*job).waiting ==
        "every connected peer that runs task squares is paused (1 of 1): the owner is using the "
        "machine");

  proto::Capacity running = paused;
  running.state = proto::PeerState::kRunning;
  running.reason.clear();
  f.s->SetCapacity(a, running, f.clock.Now());
  for (const auto& l : f.s->Lease(a, 4, f.clock.Now())) f.Deliver(a, f.Honest(l));
  // Both units' second copies need a peer other than a, and there is none.
  CHECK(f.s->Info(*job).waiting ==
        "unit 0 waits for a peer that has not run it: 1 of 1 connected peers already have; quorum "
        "2 needs that many "
        "distinct peers");
  f.Peer("b");
  CHECK(f.s->Info(*job).waiting.empty());
}

TEST_CASE("a peer whose expired lease it no longer runs may take the unit again") {
  // Found by the nemesis test: c's lease on the unit expired (requeued, c keeping its turn), then
  // c reconnected without it. c still counted as having run the unit, and with b's vote in, no
  // connected peer was left to give the second one.
  Fixture f;
  const PeerHandle b = f.Peer("b"), c = f.Peer("c");
  const JobId id = f.Submit(1, 2, 2);
  auto lb = f.s->Lease(b, 1, f.clock.Now());
  auto lc = f.s->Lease(c, 1, f.clock.Now());
  REQUIRE(lb.size() == 1);
  REQUIRE(lc.size() == 1);
  f.Deliver(b, f.Honest(lb[0]));
  f.clock.Advance(std::chrono::seconds(31));
  f.s->Touch(b, f.clock.Now());
  f.s->Touch(c, f.clock.Now());
  CHECK(f.s->Tick(f.clock.Now()).expired_leases.size() == 1);
  f.s->ReconcileLeases(c, {}, f.clock.Now());  // c says hello again, running nothing
  auto again = f.s->Lease(c, 1, f.clock.Now());
  REQUIRE(again.size() == 1);
  CHECK(f.Deliver(c, f.Honest(again[0])).kind == ResultEffect::Kind::kUnitValidated);
  CHECK(f.s->FindJob(id)->state == proto::JobState::kDone);
  CHECK(f.Answer(id) == SumSquares(1));
}
