// Cross-checking with real processes: a saboteur peer among honest ones cannot get a wrong
// answer into a job.
#include <doctest/doctest.h>

#include "process.hpp"
#include "sparecycles/sdk/client.hpp"

using namespace sparecycles;
using namespace sparecycles::testing;
using namespace std::chrono_literals;

TEST_CASE(
    "with 1 saboteur among 3 peers and replicas 2 / quorum 2, primes still returns the right "
    "count") {
  Cluster cluster(2);
  REQUIRE(cluster.ok());
  Process saboteur({SPARECYCLES_SABOTEUR_BIN, "--coordinator", cluster.peer_endpoint(), "--rate",
                    "1.0", "--state-dir", cluster.dir() / "saboteur"},
                   cluster.dir() / "saboteur");
  auto client = Client::Connect(cluster.client_endpoint());
  REQUIRE(client.ok());
  const auto deadline = std::chrono::steady_clock::now() + 15s;
  while (client->Peers().value().size() < 3 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(20ms);
  REQUIRE(client->Peers().value().size() == 3);

  JobSpec spec("primes");
  spec.Set("from", "0").Set("to", "200000000");
  spec.units = 24;
  spec.replication.replicas = 2;
  spec.replication.quorum = 2;
  spec.replication.max_replicas = 3;
  spec.replication.adaptive = 1;  // the fixed quorum under test
  auto job = client->Submit(spec);
  REQUIRE(job.ok());
  auto r = job->Wait(120s);
  REQUIRE_MESSAGE(r.ok(), (r.status().ToString() + cluster.Logs() + saboteur.Stderr()));
  REQUIRE_MESSAGE(r->info.state == JobState::kDone, r->info.error);
  CHECK(r->summary == "11078937");

  auto peers = client->Peers();
  REQUIRE(peers.ok());
  const std::string sab_id = [&] {
    std::string id = ReadAll(cluster.dir() / "saboteur/peer-id");
    while (!id.empty() && id.back() == '\n') id.pop_back();
    return id;
  }();
  bool saw = false;
  for (const auto& p : *peers) {
    if (p.peer_id != sab_id) {
      CHECK(p.units_invalid == 0);
      continue;
    }
    saw = true;
    CHECK(p.units_done == 0);    // nothing it said was accepted
    CHECK(p.units_invalid > 0);  // it did take part, and was outvoted
    CHECK(p.cpu_seconds == 0);   // and earned no credit
  }
  CHECK(saw);
}

TEST_CASE("two colluding saboteurs are caught by spot-checks under adaptive checking") {
  // Five honest peers: with f = 0.2 and a 1e-3 bound, the first units need five agreeing fresh
  // peers before spot-checks can start (docs/cross-checking.md, "Bootstrapping").
  Cluster cluster(5, {"--pool", "volunteer", "--spot-check-rate", "0.3"});
  REQUIRE(cluster.ok());
  std::vector<std::unique_ptr<Process>> saboteurs;
  saboteurs.reserve(2);
  for (int i = 0; i < 2; ++i)
    saboteurs.push_back(std::make_unique<Process>(
        std::vector<std::string>{SPARECYCLES_SABOTEUR_BIN, "--coordinator", cluster.peer_endpoint(),
                                 "--rate", "1.0", "--seed", "42", "--state-dir",
                                 cluster.dir() / ("sab" + std::to_string(i))},
        cluster.dir() / ("sab" + std::to_string(i))));
  auto client = Client::Connect(cluster.client_endpoint());
  REQUIRE(client.ok());
  const auto deadline = std::chrono::steady_clock::now() + 15s;
  while (client->Peers().value().size() < 7 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(20ms);
  REQUIRE(client->Peers().value().size() == 7);
  JobSpec spec("primes");
  spec.Set("from", "0").Set("to", "100000000");
  spec.units = 40;
  auto job = client->Submit(spec);  // the coordinator's volunteer defaults: adaptive
  REQUIRE(job.ok());
  auto r = job->Wait(120s);
  REQUIRE(r.ok());
  REQUIRE_MESSAGE(r->info.state == JobState::kDone, r->info.error);
  CHECK(r->summary == "5761455");
  std::uint64_t saboteur_accepted = 0;
  std::string table;
  auto all_peers = client->Peers();
  REQUIRE(all_peers.ok());
  for (const auto& p : *all_peers) {
    table += p.peer_id + " done=" + std::to_string(p.units_done) +
             " invalid=" + std::to_string(p.units_invalid) +
             " cred=" + std::to_string(p.credibility) + "\n";
    for (int i = 0; i < 2; ++i) {
      std::string id = ReadAll(cluster.dir() / ("sab" + std::to_string(i)) + "/peer-id");
      while (!id.empty() && id.back() == '\n') id.pop_back();
      if (p.peer_id == id) saboteur_accepted += p.units_done;
    }
  }
  MESSAGE(table);
  CHECK(saboteur_accepted == 0);
}

TEST_CASE(
    "a host over its enrollment limit is refused with the reason; its known peers come back") {
  // Real processes are all on 127.0.0.1, each its own host by default; here loopback is made one
  // host so the limit of the volunteer pool's host rules applies to the three workers.
  Cluster cluster(3,
                  {"--pool", "volunteer", "--loopback-is-one-host", "--new-peers-per-host", "2"});
  REQUIRE(cluster.ok());
  auto client = Client::Connect(cluster.client_endpoint());
  REQUIRE(client.ok());
  auto refused = [&] {
    const std::string logs = cluster.coordinator().Stderr();
    return logs.find("enrolled 2 new peer ids in the last hour") != std::string::npos;
  };
  const auto deadline = std::chrono::steady_clock::now() + 15s;
  while ((client->Peers().value().size() < 2 || !refused()) &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(20ms);
  REQUIRE_MESSAGE(refused(), cluster.Logs());
  CHECK(client->Peers().value().size() == 2);
  // The refused worker was told why (Reject kRefused), and keeps retrying its Hello.
  const auto told = std::chrono::steady_clock::now() + 10s;
  auto worker_told = [&] {
    for (std::size_t i = 0; i < cluster.workers(); ++i)
      if (cluster.worker(i).Stderr().find("coordinator rejected us: host ") != std::string::npos)
        return true;
    return false;
  };
  while (!worker_told() && std::chrono::steady_clock::now() < told)
    std::this_thread::sleep_for(20ms);
  CHECK_MESSAGE(worker_told(), cluster.Logs());
  std::this_thread::sleep_for(2500ms);  // past one Hello retry
  CHECK(client->Peers().value().size() == 2);
}
