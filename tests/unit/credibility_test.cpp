// The credibility bound and blacklisting of docs/cross-checking.md, asserted directly on the pure
// functions of coordinator/src/credibility.hpp and through the public Scheduler API (Credibility,
// Record, stats): 1 - f with no check, 1 - f/(k e) after k
// passed spot-checks, back to 1 - f after an offence, 0 once blacklisted after `blacklist_after`
// offences; a blacklisted peer loses its leases and gets no more; backtracking reopens units whose
// accepted group no longer meets the bound. Fake clock, fake task, no sockets, no sleeps.
#include "../../coordinator/src/credibility.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "fake_task.hpp"
#include "sparecycles/coordinator/scheduler.hpp"

using namespace sparecycles;
using namespace sparecycles::coordinator;
using sparecycles::testing::HashOf;
using sparecycles::testing::SquaresTask;

namespace {

constexpr double kE = 2.718281828459045;

// A scheduler with the fake `squares` task whose spot-check rate the test chooses: 1 = a peer is
// offered a spot-check whenever one exists (so the test knows what it gets), 0 = never.
struct CredFixture {
  tasks::Registry registry;
  FakeClock clock;
  SchedulerConfig config;
  std::unique_ptr<Scheduler> s;
  std::set<std::pair<JobId, std::uint64_t>> accepted;  // units the test saw validated

  CredFixture(double spot_check_rate, std::uint32_t blacklist_after, double f = 0.2) {
    registry.Add(std::make_unique<SquaresTask>());
    config.peer_timeout = std::chrono::seconds(60);
    config.lease_min = std::chrono::seconds(30);
    config.prefetch_seconds = 1e9;  // a peer may hold several of the fake (1 s) units at once
    config.backups = false;         // no backup copies: every lease below is one the test expects
    config.credibility.saboteur_fraction = f;
    config.credibility.spot_check_rate = spot_check_rate;
    config.credibility.spot_check_rate_new = spot_check_rate;
    config.credibility.blacklist_after = blacklist_after;
    s = std::make_unique<Scheduler>(config, registry);
  }
  PeerHandle Peer(const std::string& id, std::uint32_t cores = 1) {
    PeerHello h;
    h.peer_id = id;
    h.host = id;
    h.hostname = id;
    h.cores = cores;
    h.work_per_second[TaskKey("squares", 1)] = 1.0;
    return s->AddPeer(h, clock.Now());
  }
  JobId Submit(std::uint64_t n, bool adaptive, double target_error = 0) {
    proto::JobSpecWire spec;
    spec.task = "squares";
    spec.params["n"] = std::to_string(n);
    spec.units = n;
    spec.adaptive = adaptive ? 2 : 1;
    spec.target_error = target_error;
    auto id = s->Submit(spec, 0);
    REQUIRE_MESSAGE(id.ok(), id.status().ToString());
    return *id;
  }
  proto::ResultMsg Answer(const proto::Lease& l, bool honest) {
    SquaresTask t;
    tasks::NullContext ctx;
    auto out = t.Execute(l.unit, ctx);
    REQUIRE(out.ok());
    proto::ResultMsg r;
    r.lease_id = l.lease_id;
    r.job_id = l.job_id;
    r.unit_index = l.unit_index;
    r.payload = honest ? *out : testing::U64Bytes(testing::BytesU64(*out) + 1);
    r.hash = HashOf(r.payload);
    r.cpu_seconds = 1;
    return r;
  }
  ResultEffect Deliver(PeerHandle p, const proto::Lease& l, bool honest) {
    clock.Advance(std::chrono::milliseconds(10));
    ResultEffect e = s->OnResult(p, Answer(l, honest), clock.Now(), 0);
    if (e.kind == ResultEffect::Kind::kUnitValidated) accepted.emplace(l.job_id, l.unit_index);
    return e;
  }
  bool IsSpotCheck(const proto::Lease& l) const {
    return accepted.contains({l.job_id, l.unit_index});
  }
  std::vector<proto::Lease> Lease(PeerHandle p, std::uint32_t count) {
    return s->Lease(p, count, clock.Now());
  }

  // `peer` runs units of `job` honestly, one lease at a time, until `done` of them are validated;
  // it keeps the next lease of that job unanswered, so the job stays open for spot-checks.
  proto::Lease RunAllButOne(PeerHandle peer, JobId job, std::uint64_t done) {
    for (int i = 0; i < 100; ++i) {
      auto leases = Lease(peer, 1);
      REQUIRE(leases.size() == 1);
      REQUIRE(leases[0].job_id == job);
      REQUIRE_FALSE(IsSpotCheck(leases[0]));  // nobody else has validated anything to check
      if (s->FindJob(job)->done == done) return leases[0];
      REQUIRE(Deliver(peer, leases[0], true).kind == ResultEffect::Kind::kUnitValidated);
    }
    FAIL("the reference peer did not get through the job");
    return {};
  }
  // The next spot-check offered to `peer` (a lease for an already validated unit).
  proto::Lease NextSpotCheck(PeerHandle peer) {
    for (int i = 0; i < 50; ++i) {
      auto leases = Lease(peer, 1);
      if (leases.empty()) continue;  // the random pick missed every unit this peer may check
      REQUIRE(leases.size() == 1);
      REQUIRE_MESSAGE(IsSpotCheck(leases[0]),
                      "expected a spot-check, got unit " << leases[0].unit_index);
      return leases[0];
    }
    FAIL("no spot-check offered");
    return {};
  }
};

double Bound(double f, std::uint32_t k) { return k == 0 ? 1 - f : 1 - f / (k * kE); }

}  // namespace

TEST_CASE("PeerCredibility: 1 - f without a passed check, 1 - f/(k e) after k, 0 if blacklisted") {
  for (double f : {0.2, 0.05, 0.4}) {
    INFO("f = " << f);
    CredibilityConfig config;
    config.saboteur_fraction = f;
    CHECK(PeerCredibility(config, nullptr) == doctest::Approx(1 - f));
    PeerRecord r;
    CHECK(PeerCredibility(config, &r) == doctest::Approx(1 - f));
    for (std::uint32_t k : {1u, 2u, 5u, 100u}) {
      r.checks_passed = k;
      CHECK(PeerCredibility(config, &r) == doctest::Approx(Bound(f, k)).epsilon(1e-12));
    }
    r.blacklisted = true;  // with or without checks passed
    CHECK(PeerCredibility(config, &r) == 0.0);
    r.checks_passed = 0;
    CHECK(PeerCredibility(config, &r) == 0.0);
  }
}

TEST_CASE("SpotCheckRate: the new-peer rate below kNewPeerChecks passed checks, then the other") {
  CredibilityConfig config;
  config.spot_check_rate = 0.1;
  config.spot_check_rate_new = 0.5;
  CHECK(SpotCheckRate(config, nullptr) == 0.5);
  PeerRecord r;
  for (std::uint32_t k = 0; k < kNewPeerChecks; ++k) {
    r.checks_passed = k;
    CHECK(SpotCheckRate(config, &r) == 0.5);
  }
  r.checks_passed = kNewPeerChecks;
  CHECK(SpotCheckRate(config, &r) == 0.1);
}

TEST_CASE("AgreementIsCheck: agreeing counts when the others leave at most agreement_check") {
  CredibilityConfig config;
  config.agreement_check = 0.05;
  CHECK(AgreementIsCheck(config, 0.0));
  CHECK(AgreementIsCheck(config, 0.05));
  CHECK_FALSE(AgreementIsCheck(config, 0.0500001));
  CHECK_FALSE(AgreementIsCheck(config, 1.0));
}

TEST_CASE("RecordOffence: counts, resets the checks, blacklists once at blacklist_after") {
  for (std::uint32_t blacklist_after : {0u, 1u, 3u}) {
    INFO("blacklist_after = " << blacklist_after);
    CredibilityConfig config;
    config.blacklist_after = blacklist_after;
    PeerRecord r;
    int newly_blacklisted = 0;
    for (std::uint32_t offence = 1; offence <= 5; ++offence) {
      r.checks_passed = 7;
      const bool now = RecordOffence(config, r);
      newly_blacklisted += now ? 1 : 0;
      CHECK(r.offences == offence);
      CHECK(r.checks_passed == 0);
      const bool expect = blacklist_after > 0 && offence >= blacklist_after;
      CHECK(r.blacklisted == expect);
      CHECK(now == (blacklist_after > 0 && offence == blacklist_after));
    }
    CHECK(newly_blacklisted == (blacklist_after > 0 ? 1 : 0));
  }
}

TEST_CASE("a peer with no passed check has credibility 1 - f, known or not") {
  for (double f : {0.2, 0.05, 0.4}) {
    CredFixture fx(1.0, 2, f);
    CHECK(fx.s->Credibility("never-seen") == doctest::Approx(1 - f));
    CHECK(fx.s->Record("never-seen") == nullptr);
    fx.Peer("fresh");
    CHECK(fx.s->Credibility("fresh") == doctest::Approx(1 - f));
  }
}

TEST_CASE(
    "credibility is 1 - f/(k e) after k passed spot-checks; being accepted alone is no check") {
  CredFixture fx(1.0, 2);
  const PeerHandle ref = fx.Peer("reference");
  const JobId job = fx.Submit(12, /*adaptive=*/true, /*target_error=*/0.25);  // 1 - 0.8 <= 0.25
  fx.RunAllButOne(ref, job, 11);
  // The reference's answers were accepted on its own vote: that proves nothing about it.
  CHECK(fx.s->Credibility("reference") == doctest::Approx(Bound(0.2, 0)));
  REQUIRE(fx.s->Record("reference") != nullptr);
  CHECK(fx.s->Record("reference")->checks_passed == 0);

  const PeerHandle p = fx.Peer("checked");
  for (std::uint32_t k = 1; k <= 8; ++k) {
    INFO(k << " checks");
    const proto::Lease check = fx.NextSpotCheck(p);
    CHECK(fx.Deliver(p, check, /*honest=*/true).kind == ResultEffect::Kind::kAccepted);
    REQUIRE(fx.s->Record("checked") != nullptr);
    CHECK(fx.s->Record("checked")->checks_passed == k);
    CHECK(fx.s->Record("checked")->offences == 0);
    CHECK(fx.s->Credibility("checked") == doctest::Approx(Bound(0.2, k)).epsilon(1e-12));
  }
  CHECK(fx.s->stats().spot_checks >= 8);
  CHECK(fx.s->stats().spot_checks_failed == 0);
}

TEST_CASE("an offence resets the checks; blacklist_after offences blacklist (0 = never)") {
  for (std::uint32_t blacklist_after : {0u, 1u, 2u, 3u}) {
    INFO("blacklist_after = " << blacklist_after);
    CredFixture fx(1.0, blacklist_after);
    const PeerHandle ref = fx.Peer("reference");
    const JobId job = fx.Submit(12, true, 0.25);
    fx.RunAllButOne(ref, job, 11);
    const PeerHandle p = fx.Peer("liar");
    // Two honest checks first: the offence must throw them away.
    for (int i = 0; i < 2; ++i) fx.Deliver(p, fx.NextSpotCheck(p), true);
    CHECK(fx.s->Credibility("liar") == doctest::Approx(Bound(0.2, 2)));
    const std::uint32_t rounds = blacklist_after == 0 ? 4 : blacklist_after;
    for (std::uint32_t offence = 1; offence <= rounds; ++offence) {
      INFO("offence " << offence);
      const ResultEffect e = fx.Deliver(p, fx.NextSpotCheck(p), /*honest=*/false);
      CHECK(e.reason == "failed a spot-check");
      const PeerRecord* r = fx.s->Record("liar");
      REQUIRE(r != nullptr);
      CHECK(r->offences == offence);
      CHECK(r->checks_passed == 0);
      const bool blacklisted = blacklist_after > 0 && offence >= blacklist_after;
      CHECK(r->blacklisted == blacklisted);
      CHECK(fx.s->Credibility("liar") == doctest::Approx(blacklisted ? 0.0 : Bound(0.2, 0)));
      CHECK(fx.s->stats().blacklisted == (blacklisted ? 1u : 0u));
    }
    CHECK(fx.s->stats().spot_checks_failed == rounds);
    CHECK(fx.s->stats().offences == rounds);
    if (blacklist_after == 0) continue;
    // Passing checks no longer helps a blacklisted peer: it is not even offered any.
    const JobId more = fx.Submit(3, /*adaptive=*/false);
    CHECK(fx.Lease(p, 8).empty());
    CHECK(fx.s->Credibility("liar") == 0.0);
    // Work is there: an honest newcomer gets it.
    const PeerHandle other = fx.Peer("newcomer", 4);
    bool got_new_job = false;
    for (int i = 0; i < 10 && !got_new_job; ++i)
      for (const auto& l : fx.Lease(other, 4)) got_new_job = got_new_job || l.job_id == more;
    CHECK(got_new_job);
  }
}

TEST_CASE(
    "a peer blacklisted for being outvoted loses its leases, gets none, and its units reopen") {
  // No spot-checks here: the offence is losing a vote. Target 0.1 needs two agreeing fresh peers
  // ((1 - 0.8)^2 = 0.04); one fresh peer alone (0.2) is not enough.
  for (std::uint32_t blacklist_after : {1u, 2u}) {
    INFO("blacklist_after = " << blacklist_after);
    CredFixture fx(0.0, blacklist_after);
    const PeerHandle d = fx.Peer("d"), e = fx.Peer("e"), f = fx.Peer("f");
    const JobId job = fx.Submit(4, /*adaptive=*/true, /*target_error=*/0.1);
    // d takes every unit and is wrong on unit 3; nothing is accepted on d's vote alone.
    const auto first = fx.Lease(d, 4);
    REQUIRE(first.size() == 4);
    for (const auto& l : first) fx.Deliver(d, l, /*honest=*/l.unit_index != 3);
    CHECK(fx.s->FindJob(job)->done == 0);
    // e agrees with d on units 0..2 (accepted with d's vote) and disagrees on unit 3.
    const auto second = fx.Lease(e, 4);
    REQUIRE(second.size() == 4);
    for (const auto& l : second) fx.Deliver(e, l, true);
    CHECK(fx.s->FindJob(job)->done == 3);
    // d now holds two units of a second job when it is caught.
    const JobId other = fx.Submit(2, /*adaptive=*/false);
    const auto held = fx.Lease(d, 2);
    REQUIRE(held.size() == 2);
    REQUIRE(held[0].job_id == other);
    REQUIRE(fx.s->FindPeer(d)->leases.size() == 2);
    // f breaks the tie on unit 3: e and f agree, d is outvoted — an offence.
    const auto third = fx.Lease(f, 1);
    REQUIRE(third.size() == 1);
    REQUIRE(third[0].job_id == job);
    REQUIRE(third[0].unit_index == 3);
    CHECK(fx.Deliver(f, third[0], true).kind == ResultEffect::Kind::kUnitValidated);
    const PeerRecord* r = fx.s->Record("d");
    REQUIRE(r != nullptr);
    CHECK(r->offences == 1);
    CHECK(fx.s->stats().offences == 1);
    if (blacklist_after == 2) {
      // Not blacklisted: credibility back to 1 - f, and units 0..2 (e and d at 0.8 each: 0.04)
      // still meet the bound, so nothing is reopened and d keeps its leases.
      CHECK_FALSE(r->blacklisted);
      CHECK(fx.s->Credibility("d") == doctest::Approx(0.8));
      CHECK(fx.s->stats().backtracked == 0);
      CHECK(fx.s->FindJob(job)->state == proto::JobState::kDone);
      CHECK(fx.s->FindPeer(d)->leases.size() == 2);
      continue;
    }
    CHECK(r->blacklisted);
    CHECK(fx.s->Credibility("d") == 0.0);
    // Backtracking: units 0..2 now rest on e alone (0.2 > 0.1) and are reopened.
    CHECK(fx.s->stats().backtracked == 3);
    CHECK(fx.s->FindJob(job)->done == 1);
    CHECK(fx.s->FindJob(job)->state == proto::JobState::kRunning);
    // Its leases went back to the queue, and it gets nothing, though work is waiting.
    CHECK(fx.s->FindPeer(d)->leases.empty());
    CHECK(fx.Lease(d, 8).empty());
    // f redoes the reopened units and the requeued ones; the job ends with the right answer.
    for (int round = 0; round < 10 && fx.s->FindJob(job)->state != proto::JobState::kDone; ++round)
      for (const auto& l : fx.Lease(f, 8)) fx.Deliver(f, l, true);
    REQUIRE(fx.s->FindJob(job)->state == proto::JobState::kDone);
    CHECK(testing::BytesU64(fx.s->FindJob(job)->result) == 0 + 1 + 4 + 9);
    CHECK(fx.s->FindJob(other)->state == proto::JobState::kDone);
  }
}
