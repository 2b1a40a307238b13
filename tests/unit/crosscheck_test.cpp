// Cross-checking: the deterministic simulation's targets, and the credibility rules one by one.
#include <doctest/doctest.h>

#include "crosscheck_sim.hpp"

using namespace sparecycles;
using namespace sparecycles::testing;

TEST_CASE("with 20% colluding saboteurs no wrong result is accepted, at most 2.2x work") {
  SimConfig c;
  c.units = 100000;
  c.peers = 20;
  c.saboteur_share = 0.2;
  SimResult r = RunSimulation(c);
  CHECK(r.finished);
  CHECK(r.wrong_accepted == 0);
  CHECK(r.work() <= 2.2);
  CHECK(r.stats.blacklisted == 4);  // every saboteur was caught
  MESSAGE("adaptive, 20% colluding saboteurs: work " << r.work() << ", wrong " << r.wrong_accepted);
}

TEST_CASE("sneaky saboteurs that lie rarely are caught and their accepted results backtracked") {
  SimConfig c;
  c.units = 50000;
  c.sabotage_rate = 0.1;
  SimResult r = RunSimulation(c);
  CHECK(r.finished);
  CHECK(r.wrong_accepted == 0);
  CHECK(r.stats.blacklisted > 0);
}

TEST_CASE("with honest peers adaptive replication costs at most 1.2x work") {
  SimConfig c;
  c.units = 100000;
  c.saboteur_share = 0;
  SimResult r = RunSimulation(c);
  CHECK(r.finished);
  CHECK(r.wrong_accepted == 0);
  CHECK(r.work() <= 1.2);
  CHECK(r.stats.blacklisted == 0);
  MESSAGE("adaptive, no saboteurs: work " << r.work());
}

TEST_CASE("a fixed quorum of two is fooled by colluders, which is why adaptive checking exists") {
  SimConfig c;
  c.units = 20000;
  c.adaptive = false;
  SimResult r = RunSimulation(c);
  CHECK(r.wrong_accepted > 0);
}

TEST_CASE("a Sybil with 30% of the ids on 3 hosts is caught and accepted nothing") {
  SimConfig c;
  c.units = 20000;
  c.peers = 100;
  c.saboteur_share = 0.3;
  c.saboteur_hosts = 3;
  c.rotate_keys = true;  // and replaces each caught id while the enrollment rules let it
  SimResult r = RunSimulation(c);
  CHECK(r.finished);
  CHECK(r.wrong_accepted == 0);
  CHECK(r.stats.hosts_blacklisted == 3);
  CHECK(r.joins_refused > 0);
  CHECK(r.work() <= 1.5);
}

TEST_CASE("a Sybil that throws each id away after one answer fools a pool without host rules") {
  SimConfig c;
  c.units = 20000;
  c.peers = 100;
  c.saboteur_share = 0.3;
  c.saboteur_hosts = 3;
  c.answers_per_id = 1;
  SimResult with_rules = RunSimulation(c);
  CHECK(with_rules.finished);
  CHECK(with_rules.wrong_accepted == 0);
  c.hosts = coordinator::HostRules{coordinator::DistinctBy::kOff, false, 0, 0};
  SimResult without = RunSimulation(c);
  CHECK(without.wrong_accepted > 0);  // fresh ids at 1 - f each vouch for each other
  MESSAGE("throwaway Sybil ids: " << with_rules.wrong_accepted << " wrong with host rules, "
                                  << without.wrong_accepted << " without");
}

TEST_CASE("colluders who lie only on units none of them has seen accept nothing wrong") {
  SimConfig c;
  c.units = 20000;
  c.peers = 50;
  c.fresh_only = true;
  for (double rate : {1.0, 0.1}) {
    c.sabotage_rate = rate;
    SimResult r = RunSimulation(c);
    CHECK(r.finished);
    CHECK(r.wrong_accepted == 0);
    CHECK(r.stats.blacklisted > 0);
  }
}

TEST_CASE("credibility follows Sarmenta's bound and drops to zero when blacklisted") {
  tasks::Registry registry;
  registry.Add(std::make_unique<SquaresTask>());
  coordinator::SchedulerConfig sc;
  coordinator::Scheduler s(sc, registry);
  CHECK(s.Credibility("nobody") == doctest::Approx(0.8));  // 1 - f with f = 0.2
}
