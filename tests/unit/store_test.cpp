// The durable store: what a coordinator commits is what a restarted coordinator gets back.
#include "../../coordinator/src/store.hpp"

#include <doctest/doctest.h>
#include <sqlite3.h>

#include <filesystem>
#include <fstream>

#include "fake_task.hpp"
#include "process.hpp"

using namespace sparecycles;
using namespace sparecycles::coordinator;
using sparecycles::testing::HashOf;
using sparecycles::testing::SquaresTask;

namespace {

struct Node {  // one "life" of a coordinator: store + scheduler
  const tasks::Registry& registry;
  std::unique_ptr<Store> store;
  std::unique_ptr<Scheduler> s;
  Node(const tasks::Registry& r, const std::string& dir, TimePoint now, SchedulerConfig c = {})
      : registry(r) {
    auto st = Store::Open(dir);
    REQUIRE_MESSAGE(st.ok(), st.status().ToString());
    store = std::move(*st);
    c.lease_min = std::chrono::seconds(30);
    c.peer_timeout = std::chrono::seconds(10);
    c.prefetch_seconds = 1e9;  // the fake units (a second each at the fake rate) count as short
    s = std::make_unique<Scheduler>(c, registry, 1000);
    s->SetListener(store.get());
    auto loaded =
        store->Load(WallSeconds(), Store::Retention{c.max_jobs_kept, c.retain_finished_seconds});
    REQUIRE(loaded.ok());
    s->RestoreRecords(loaded->records);
    REQUIRE(s->Restore(std::move(loaded->jobs), loaded->leases, loaded->next_job, now).ok());
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
  static proto::ResultMsg Honest(const proto::Lease& l) {
    SquaresTask t;
    tasks::NullContext ctx;
    proto::ResultMsg r;
    r.lease_id = l.lease_id;
    r.job_id = l.job_id;
    r.unit_index = l.unit_index;
    r.payload = *t.Execute(l.unit, ctx);
    r.hash = HashOf(r.payload);
    return r;
  }
  void Finish(PeerHandle p, const proto::Lease& l, TimePoint now, double wall = 0) {
    s->OnResult(p, Honest(l), now, wall);
  }
  JobId Submit(std::uint64_t units, std::uint32_t replicas = 1, std::uint32_t quorum = 1) {
    proto::JobSpecWire spec;
    spec.task = "squares";
    spec.params["n"] = std::to_string(units);
    spec.units = units;
    spec.replicas = replicas;
    spec.quorum = quorum;
    return s->Submit(spec, WallSeconds()).value();
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

// ------------------------------------------------------------ schema versions and upgrades

namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void Sql(const std::string& db_path, const std::string& sql) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(db_path.c_str(), &db) == SQLITE_OK);
  char* err = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  CHECK_MESSAGE(rc == SQLITE_OK, (err ? err : ""));
  sqlite3_free(err);
  sqlite3_close(db);
}

std::string SqlValue(const std::string& db_path, const std::string& sql) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(db_path.c_str(), &db) == SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK);
  std::string v;
  if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
    v = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
  sqlite3_finalize(st);
  sqlite3_close(db);
  return v;
}

}  // namespace

TEST_CASE("a data directory written by release 0.1 is upgraded and its jobs continue") {
  // tests/data/store-v1.sql is `sqlite3 .dump` of a 0.1 coordinator killed mid-job: job 1
  // (primes below 10^6) done, job 2 (20 spin units) with 8 validated units and one open lease.
  testing::TempDir dir;
  const std::string db = dir.path() + "/coordinator.db";
  Sql(db, ReadFile(std::string(SPARECYCLES_SOURCE_DIR) + "/tests/data/store-v1.sql"));
  FakeClock clock;
  {
    Node n(tasks::Registry::BuiltIn(), dir.path(), clock.Now());
    const Job* done = n.s->FindJob(1);
    REQUIRE(done != nullptr);
    CHECK(done->state == proto::JobState::kDone);
    CHECK(done->task->Summarize(done->result) == "78498");  // pi(10^6)
    CHECK(n.s->Info(*done).units_done == 1);
    const Job* open = n.s->FindJob(2);
    REQUIRE(open != nullptr);
    CHECK(open->state == proto::JobState::kRunning);
    CHECK(open->done == 8);
    CHECK(open->units.size() == 20);
    CHECK(open->running == 1);  // the restored lease
    CHECK(n.store->IntegrityCheck().value() == "ok");
  }
  CHECK(SqlValue(db, "SELECT value FROM meta WHERE key='schema_version'") == "3");
  {
    Node again(tasks::Registry::BuiltIn(), dir.path(),
               clock.Now());  // an upgraded store opens as it is
    CHECK(again.s->FindJob(2)->done == 8);
    CHECK(again.s->FindJob(2)->owner.empty());  // jobs from before owners belong to no key
  }
  // A store from a newer release is refused with a clear message, and left untouched.
  Sql(db, "UPDATE meta SET value='4' WHERE key='schema_version'");
  auto newer = Store::Open(dir.path());
  REQUIRE_FALSE(newer.ok());
  CHECK(newer.status().code() == StatusCode::kFailedPrecondition);
  CHECK(newer.status().message().find("written by a newer SpareCycles (store schema 4") !=
        std::string::npos);
  CHECK(SqlValue(db, "SELECT value FROM meta WHERE key='schema_version'") == "4");
}

TEST_CASE("job owners and package uploaders survive a restart; a schema 2 store gains them") {
  testing::TempDir dir;
  tasks::Registry registry;
  registry.Add(std::make_unique<SquaresTask>());
  FakeClock clock;
  const std::string alice(64, 'a');
  JobId owned = 0, older = 0;
  // Three units of squares under client token t1, submitted by `owner`.
  auto submit_as = [&](Scheduler& s, const std::string& owner) {
    proto::JobSpecWire spec;
    spec.task = "squares";
    spec.params["n"] = "3";
    spec.units = 3;
    spec.client_token = "t1";
    Scheduler::Submitter by;
    by.owner = owner;
    return s.Submit(spec, WallSeconds(), by).value();
  };
  {
    Node n(registry, dir.path(), clock.Now());
    older = n.Submit(4);
    REQUIRE(n.store->Commit().ok());
  }
  // Make it the store a schema 2 coordinator left: no owner column, no package_owners table.
  const std::string db = dir.path() + "/coordinator.db";
  Sql(db,
      "ALTER TABLE jobs DROP COLUMN owner; DROP TABLE package_owners; "
      "UPDATE meta SET value='2' WHERE key='schema_version'");
  {
    Node n(registry, dir.path(), clock.Now());
    CHECK(SqlValue(db, "SELECT value FROM meta WHERE key='schema_version'") == "3");
    REQUIRE(n.s->FindJob(older) != nullptr);
    CHECK(n.s->FindJob(older)->owner.empty());
    owned = submit_as(*n.s, alice);
    n.store->OnPackageStored({"ab12", alice, 12345});
    REQUIRE(n.store->Commit().ok());
  }
  Node n(registry, dir.path(), clock.Now());
  const Job* job = n.s->FindJob(owned);
  REQUIRE(job != nullptr);
  CHECK(job->owner == alice);
  auto loaded = n.store->Load(WallSeconds());
  REQUIRE(loaded.ok());
  REQUIRE(loaded->package_owners.size() == 1);
  CHECK(loaded->package_owners[0].owner == alice);
  CHECK(loaded->package_owners[0].bytes == 12345);
  // A client token names a job per owner: the same token from another key is another job.
  CHECK(submit_as(*n.s, alice) == owned);
  CHECK(submit_as(*n.s, std::string(64, 'b')) != owned);
}

namespace {

struct Lives {  // one data directory, lived in by successive coordinators
  testing::TempDir dir;
  tasks::Registry registry;
  FakeClock clock;
  SchedulerConfig config;
  Lives() {
    registry.Add(std::make_unique<SquaresTask>());
    config.credibility.spot_check_rate = 0;
    config.credibility.spot_check_rate_new = 0;
    config.credibility.blacklist_after = 1;
  }
  std::unique_ptr<Node> Start() {
    return std::make_unique<Node>(registry, dir.path(), clock.Now(), config);
  }
};

}  // namespace

TEST_CASE("a vote on an undecided unit survives a restart and still counts once") {
  Lives lives;
  JobId job = 0;
  {
    auto n = lives.Start();
    const PeerHandle a = n->Peer("a", lives.clock.Now());
    job = n->Submit(1, 2, 2);
    n->Finish(a, n->s->Lease(a, 1, lives.clock.Now()).at(0), lives.clock.Now());
    REQUIRE(n->store->Commit().ok());
  }
  auto n = lives.Start();
  REQUIRE(n->s->FindJob(job)->units.at(0).results.size() == 1);
  const PeerHandle a = n->Peer("a", lives.clock.Now()), b = n->Peer("b", lives.clock.Now());
  CHECK(n->s->Lease(a, 1, lives.clock.Now()).empty());  // it already voted
  auto lb = n->s->Lease(b, 1, lives.clock.Now());
  REQUIRE(lb.size() == 1);
  CHECK(n->s->OnResult(b, Node::Honest(lb[0]), lives.clock.Now(), 0).kind ==
        ResultEffect::Kind::kUnitValidated);
  CHECK(n->s->FindJob(job)->state == proto::JobState::kDone);
}

TEST_CASE("a unit that failed for good stays failed after a restart while its job goes on") {
  Lives lives;
  JobId job = 0;
  {
    auto n = lives.Start();
    const PeerHandle a = n->Peer("a", lives.clock.Now());
    proto::JobSpecWire spec;
    spec.task = "squares";
    spec.params["n"] = "2";
    spec.units = 2;
    spec.max_errors = 1;
    job = n->s->Submit(spec, WallSeconds()).value();
    auto l = n->s->Lease(a, 1, lives.clock.Now());
    REQUIRE(l.size() == 1);
    proto::ResultMsg bad = Node::Honest(l[0]);
    bad.outcome = proto::UnitOutcome::kFailed;
    bad.error = "out of memory";
    bad.payload.clear();
    bad.hash.clear();
    n->s->OnResult(a, bad, lives.clock.Now(), 0);
    REQUIRE(n->s->FindJob(job)->failed == 1);
    REQUIRE(n->store->Commit().ok());
  }
  auto n = lives.Start();
  const Job* f = n->s->FindJob(job);
  CHECK_FALSE(proto::IsFinal(f->state));
  CHECK(f->failed == 1);
  REQUIRE(f->failures.size() == 1);
  CHECK(f->failures[0].reason.find("out of memory") != std::string::npos);
  const PeerHandle a = n->Peer("a", lives.clock.Now());
  auto l = n->s->Lease(a, 2, lives.clock.Now());
  REQUIRE(l.size() == 1);  // only the other unit is run again
  n->Finish(a, l[0], lives.clock.Now());
  CHECK(n->s->FindJob(job)->state == proto::JobState::kFailed);
}

TEST_CASE("a unit's kept checkpoint survives a restart") {
  Lives lives;
  JobId job = 0;
  {
    auto n = lives.Start();
    const PeerHandle a = n->Peer("a", lives.clock.Now());
    job = n->Submit(1);
    auto l = n->s->Lease(a, 1, lives.clock.Now());
    REQUIRE(l.size() == 1);
    proto::Checkpoint cp;
    cp.lease_id = l[0].lease_id;
    cp.job_id = l[0].job_id;
    cp.unit_index = l[0].unit_index;
    cp.fraction = 0.5f;
    cp.state = "half way";
    REQUIRE(n->s->OnCheckpoint(a, cp, lives.clock.Now()));
    REQUIRE(n->store->Commit().ok());
  }
  auto n = lives.Start();
  CHECK(n->s->FindJob(job)->units.at(0).checkpoint == "half way");
  CHECK(n->s->FindJob(job)->units.at(0).checkpoint_fraction == doctest::Approx(0.5));
}

TEST_CASE("peer credibility and the blacklist survive a restart") {
  Lives lives;
  {
    auto n = lives.Start();
    const PeerHandle a = n->Peer("a", lives.clock.Now()), b = n->Peer("b", lives.clock.Now()),
                     sab = n->Peer("sab", lives.clock.Now());
    proto::JobSpecWire spec;
    spec.task = "squares";
    spec.params["n"] = "1";
    spec.units = 1;
    spec.replicas = 2;
    spec.quorum = 2;
    spec.adaptive = 2;
    spec.target_error = 0.05;  // two fresh peers (0.2 x 0.2) are enough here
    const JobId job = n->s->Submit(spec, WallSeconds()).value();
    proto::ResultMsg lie = Node::Honest(n->s->Lease(sab, 1, lives.clock.Now()).at(0));
    lie.payload = testing::U64Bytes(999);
    lie.hash = HashOf(lie.payload);
    n->s->OnResult(sab, lie, lives.clock.Now(), 0);
    n->Finish(a, n->s->Lease(a, 1, lives.clock.Now()).at(0), lives.clock.Now());
    n->Finish(b, n->s->Lease(b, 1, lives.clock.Now()).at(0), lives.clock.Now());
    REQUIRE(n->s->FindJob(job)->state == proto::JobState::kDone);
    REQUIRE(n->s->Record("sab")->blacklisted);
    REQUIRE(n->store->Commit().ok());
  }
  auto n = lives.Start();
  REQUIRE(n->s->Record("sab") != nullptr);
  CHECK(n->s->Record("sab")->blacklisted);
  CHECK(n->s->Record("sab")->offences == 1);
  CHECK(n->s->Credibility("sab") == 0.0);
  CHECK(n->s->Record("a")->validated == 1);
  CHECK(n->s->Record("b")->validated == 1);
  const PeerHandle sab = n->Peer("sab", lives.clock.Now());
  n->Submit(1);
  CHECK(n->s->Lease(sab, 1, lives.clock.Now()).empty());
}

TEST_CASE("finished jobs are kept up to a count and an age, then removed from memory and store") {
  testing::TempDir dir;
  tasks::Registry registry;
  registry.Add(std::make_unique<SquaresTask>());
  FakeClock clock;
  SchedulerConfig c;
  c.max_jobs_kept = 2;
  std::vector<JobId> jobs;
  {
    Node n(registry, dir.path(), clock.Now(), c);
    const PeerHandle a = n.Peer("a", clock.Now());
    for (int i = 0; i < 3; ++i) {
      jobs.push_back(n.Submit(1));
      // The first finished 8 days ago: past the default age of 7 days.
      n.Finish(a, n.s->Lease(a, 1, clock.Now()).at(0), clock.Now(),
               WallSeconds() - (i == 0 ? 8 * 86400 : 0));
      REQUIRE(n.s->FindJob(jobs.back())->state == proto::JobState::kDone);
    }
    REQUIRE(n.store->Commit().ok());
  }
  {
    Node n(registry, dir.path(), clock.Now(), c);
    CHECK(n.s->FindJob(jobs[0]) == nullptr);  // too old: not loaded back, and deleted
    CHECK(n.s->FindJob(jobs[1]) != nullptr);
    CHECK(n.s->FindJob(jobs[2]) != nullptr);
    const PeerHandle a = n.Peer("a", clock.Now());
    jobs.push_back(n.Submit(1));              // the count is enforced when a job is submitted:
    CHECK(n.s->FindJob(jobs[1]) == nullptr);  // the oldest finished job made room
    CHECK(n.s->jobs().size() == 2);
    n.Finish(a, n.s->Lease(a, 1, clock.Now()).at(0), clock.Now(), WallSeconds());
    jobs.push_back(n.Submit(1));
    CHECK(n.s->FindJob(jobs[2]) == nullptr);
    REQUIRE(n.store->Commit().ok());
  }
  Node n(registry, dir.path(), clock.Now(), c);
  CHECK(n.s->FindJob(jobs[1]) == nullptr);
  CHECK(n.s->FindJob(jobs[2]) == nullptr);
  CHECK(n.s->FindJob(jobs[3]) != nullptr);
  CHECK(n.s->FindJob(jobs[4]) != nullptr);
}
