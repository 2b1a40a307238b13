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

TEST_CASE("credibility follows Sarmenta's bound and drops to zero when blacklisted") {
  tasks::Registry registry;
  registry.Add(std::make_unique<SquaresTask>());
  coordinator::SchedulerConfig sc;
  coordinator::Scheduler s(sc, registry);
  CHECK(s.Credibility("nobody") == doctest::Approx(0.8));  // 1 - f with f = 0.2
}
