// Peers drop out and the coordinator crashes; jobs still finish with the right answer and nothing
// acknowledged is lost. Real processes on 127.0.0.1 (and a network namespace the test makes itself
// for the partition case); every wait is bounded. Figures are printed, never asserted as timings.
#include <doctest/doctest.h>
#include <sqlite3.h>

#include <ctime>
#include <iomanip>
#include <map>
#include <random>
#include <regex>
#include <set>

#include "process.hpp"
#include "sparecycles/sdk/client.hpp"

using namespace sparecycles;
using namespace sparecycles::testing;
using namespace std::chrono_literals;

namespace {

Client Connect(const Cluster& c) {
  ClientOptions o;
  o.request_timeout = 3s;
  auto client = Client::Connect(c.client_endpoint(), o);
  REQUIRE(client.ok());
  return std::move(*client);
}

JobSpec Spin(int units, int ms) {
  JobSpec s("spin");
  s.Set("units", std::to_string(units)).Set("ms", std::to_string(ms));
  s.units = static_cast<std::uint64_t>(units);
  return s;
}

bool WaitFor(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return pred();
}

bool WaitPeers(Client& c, std::size_t n) {
  return WaitFor(
      [&] {
        auto p = c.Peers();
        return p.ok() && p->size() == n;
      },
      15s);
}

// Wall-clock time (seconds since the epoch) of the first log line matching `pattern`.
std::optional<double> LogTime(const std::string& log, const std::string& pattern) {
  std::istringstream in(log);
  for (std::string line; std::getline(in, line);) {
    if (line.find(pattern) == std::string::npos) continue;
    std::tm tm{};
    int ms = 0;
    if (sscanf(line.c_str(), "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
               &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) != 7)
      continue;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return static_cast<double>(timegm(&tm)) + ms / 1000.0;
  }
  return std::nullopt;
}

double Now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

TEST_CASE("killing one of two workers mid-job loses nothing and costs little time") {
  Cluster cluster(2);
  REQUIRE(cluster.ok());
  Client client = Connect(cluster);
  REQUIRE(WaitPeers(client, 2));

  // Fault-free run of the same job, in the same test, as the baseline.
  auto t0 = std::chrono::steady_clock::now();
  auto base = client.Submit(Spin(400, 20));
  REQUIRE(base.ok());
  auto base_r = base->Wait(60s);
  REQUIRE(base_r.ok());
  REQUIRE(base_r->info.state == JobState::kDone);
  const double baseline =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  t0 = std::chrono::steady_clock::now();
  auto job = client.Submit(Spin(400, 20));
  REQUIRE(job.ok());
  REQUIRE(WaitFor([&] { return job->Info().units_done >= 150; }, 60s));
  const double killed_at = Now();
  cluster.worker(1).Signal(SIGKILL);
  auto r = job->Wait(60s);
  const double faulty =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  REQUIRE(r.ok());
  CHECK(r->info.state == JobState::kDone);
  CHECK(r->json.find("\"units\":400") != std::string::npos);  // every unit, once, in order
  auto requeued_at = LogTime(cluster.coordinator().Stderr(), "disconnected; its");
  REQUIRE_MESSAGE(requeued_at.has_value(), cluster.Logs());
  const double detection = *requeued_at - killed_at;
  CHECK(detection < 2.0);  // within the configured silence (2 s), thanks to disconnect detection
  char line[256];
  std::snprintf(
      line, sizeof(line),
      "kill -9 of 1 of 2 workers, 400 units x 20 ms: kill->requeue %.3f s; fault-free %.3f s, "
      "with kill %.3f s, extra %.3f s",
      detection, baseline, faulty, faulty - baseline);
  MESSAGE(line);
}

TEST_CASE("a stopped worker's unit is reissued and its late result is counted once") {
  // Leases as short as the unit's expected time; silence detection far away so the stopped peer
  // is not declared lost while it is stopped.
  Cluster cluster(2, {"--lease-min", "500ms", "--lease-factor", "1", "--peer-timeout", "60s"});
  REQUIRE(cluster.ok());
  Client client = Connect(cluster);
  REQUIRE(WaitPeers(client, 2));
  auto job = client.Submit(Spin(1, 1500));
  REQUIRE(job.ok());
  // Find the worker running the unit and stop it.
  std::string holder;
  REQUIRE(WaitFor(
      [&] {
        auto peers = client.Peers();
        if (!peers.ok()) return false;
        for (const auto& p : *peers)
          if (p.running > 0) holder = p.peer_id;
        return !holder.empty();
      },
      10s));
  const std::size_t stopped = cluster.PeerId(0) == holder ? 0 : 1;
  cluster.worker(stopped).Signal(SIGSTOP);
  auto r = job->Wait(30s);  // the other worker takes the unit over after the lease passes
  REQUIRE(r.ok());
  CHECK(r->info.state == JobState::kDone);
  cluster.worker(stopped).Signal(SIGCONT);
  // The stopped worker finishes its copy and sends it: it must be fenced off, not counted.
  REQUIRE(WaitFor(
      [&] {
        return cluster.worker(stopped).Stderr().find("WARN") != std::string::npos ||
               cluster.coordinator().Stderr().find("passed their deadline") != std::string::npos;
      },
      5s));
  std::this_thread::sleep_for(2500ms);
  auto peers = client.Peers();
  REQUIRE(peers.ok());
  std::uint64_t counted = 0;
  for (const auto& p : *peers) counted += p.units_done;
  CHECK(counted == 1);
  CHECK(client.Status(job->id())->units_done == 1);
  CHECK(cluster.worker(stopped).running());
}

TEST_CASE(
    "the coordinator killed three times during a job still finishes it without recomputing acked "
    "units") {
  TempDir data;
  // Backups off: they are deliberate second copies, and here every second run must be a loss.
  Cluster cluster(2, {"--data", data.path(), "--backups", "off"}, 1, {"--log-level", "debug"});
  REQUIRE(cluster.ok());
  Client client = Connect(cluster);
  REQUIRE(WaitPeers(client, 2));
  auto job = client.Submit(Spin(120, 40));
  REQUIRE(job.ok());
  for (int kill = 0; kill < 3; ++kill) {
    auto done = [&] {
      auto st = client.Status(job->id());  // polled: the client may be reconnecting
      return st.ok() ? st->units_done : 0;
    };
    std::uint64_t before = 0;
    REQUIRE(WaitFor([&] { return (before = done()) > 0 || kill == 0; }, 20s));
    REQUIRE(WaitFor([&] { return done() >= before + 15; }, 30s));
    cluster.coordinator().Signal(SIGKILL);
    cluster.coordinator().Wait(5s);
    std::this_thread::sleep_for(200ms);
    REQUIRE(cluster.RestartCoordinator());
  }
  auto r = job->Wait(60s);  // the client reconnects and keeps waiting on the same job
  REQUIRE_MESSAGE(r.ok(), cluster.Logs());
  CHECK(r->info.state == JobState::kDone);
  CHECK(r->json.find("\"units\":120") != std::string::npos);

  // From the workers' logs: every unit run, and every ack. A unit whose result was acknowledged
  // (committed) must never run again.
  std::map<std::string, int> runs;             // unit -> times finished
  std::map<std::string, std::string> unit_of;  // lease -> unit
  std::set<std::string> acked_units;
  int recomputed_after_ack = 0;
  const std::regex finished(R"(finished unit (\d+/\d+) lease (\d+))"),
      acked(R"(acked lease (\d+))");
  for (std::size_t w = 0; w < cluster.workers(); ++w) {
    std::istringstream in(cluster.worker(w).Stderr());
    for (std::string line; std::getline(in, line);) {
      std::smatch m;
      if (std::regex_search(line, m, finished)) {
        if (acked_units.contains(m[1])) ++recomputed_after_ack;
        ++runs[m[1]];
        unit_of[m[2]] = m[1];
      } else if (std::regex_search(line, m, acked) && unit_of.contains(m[1])) {
        acked_units.insert(unit_of[m[1]]);
      }
    }
  }
  int extra_runs = 0;
  for (auto& [u, n] : runs) extra_runs += n - 1;
  CHECK(runs.size() == 120);
  CHECK(recomputed_after_ack == 0);
  MESSAGE("coordinator killed 3 times during 120 units: units run more than once: " << extra_runs);

  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open((data.path() + "/coordinator.db").c_str(), &db) == SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, nullptr) == SQLITE_OK);
  REQUIRE(sqlite3_step(st) == SQLITE_ROW);
  CHECK(std::string(reinterpret_cast<const char*>(sqlite3_column_text(st, 0))) == "ok");
  sqlite3_finalize(st);
  sqlite3_close(db);
}

TEST_CASE(
    "a worker cut off by the network loses its units to the others and its late results are "
    "fenced") {
  const std::string ns = "sc-test-" + std::to_string(getpid());
  const std::string host_if = "scv" + std::to_string(getpid() % 100000) + "h",
                    ns_if = "scv" + std::to_string(getpid() % 100000) + "n";
  const int octet = 1 + getpid() % 250;
  const std::string host_ip = "10.231." + std::to_string(octet) + ".1",
                    ns_ip = "10.231." + std::to_string(octet) + ".2";
  auto sh = [](const std::string& cmd) {
    return std::system((cmd + " >/dev/null 2>&1").c_str()) == 0;
  };
  if (!sh("ip netns add " + ns)) {
    MESSAGE("skipped: cannot create a network namespace here (needs root and iproute2)");
    return;
  }
  struct Cleanup {
    std::function<void()> f;
    ~Cleanup() { f(); }
  } cleanup{[&] {
    sh("ip link del " + host_if);
    sh("ip netns del " + ns);
  }};
  REQUIRE(sh("ip link add " + host_if + " type veth peer name " + ns_if));
  REQUIRE(sh("ip link set " + ns_if + " netns " + ns));
  REQUIRE(sh("ip addr add " + host_ip + "/30 dev " + host_if));
  REQUIRE(sh("ip link set " + host_if + " up"));
  REQUIRE(sh("ip netns exec " + ns + " ip addr add " + ns_ip + "/30 dev " + ns_if));
  REQUIRE(sh("ip netns exec " + ns + " ip link set " + ns_if + " up"));
  REQUIRE(sh("ip netns exec " + ns + " ip link set lo up"));

  // The coordinator listens on the veth address only; one worker runs inside the namespace.
  Cluster cluster(1, {}, 1, {}, host_ip);
  REQUIRE(cluster.ok());
  cluster.StartWorker("isolated", 1, {}, {"/usr/bin/ip", "netns", "exec", ns});
  Client client = Connect(cluster);
  REQUIRE(WaitPeers(client, 2));
  auto job = client.Submit(Spin(300, 20));
  REQUIRE(job.ok());
  REQUIRE(WaitFor([&] { return job->Info().units_done >= 60; }, 30s));
  const double cut_at = Now();
  REQUIRE(sh("ip link set " + host_if + " down"));
  auto r = job->Wait(60s);
  REQUIRE(r.ok());
  CHECK(r->info.state == JobState::kDone);
  CHECK(r->json.find("\"units\":300") != std::string::npos);
  auto lost_at = LogTime(cluster.coordinator().Stderr(), "lost after");
  REQUIRE_MESSAGE(lost_at.has_value(), cluster.Logs());
  const double detection = *lost_at - cut_at;
  CHECK(detection < 2.0 + 1.0);  // the configured silence (2 s) plus one check interval
  REQUIRE(sh("ip link set " + host_if + " up"));
  // The isolated worker comes back by itself (ZeroMQ reconnects, it says Hello again).
  CHECK(WaitFor(
      [&] {
        auto p = client.Peers();
        return p.ok() && p->size() == 2;
      },
      20s));
  std::this_thread::sleep_for(500ms);
  // Its late results were fenced: the job counted each unit once.
  auto info = client.Status(job->id());
  REQUIRE(info.ok());
  CHECK(info->units_done == 300);
  char line[160];
  std::snprintf(line, sizeof(line),
                "network partition of 1 of 2 workers: link down -> units requeued in %.3f s "
                "(peer timeout 2 s)",
                detection);
  MESSAGE(line);
}

TEST_CASE("a volunteer-pool job survives a killed worker followed by a killed coordinator") {
  // The sequence that once left a job waiting forever: under adaptive acceptance, kill -9 one of
  // two workers, then kill -9 the coordinator, restart it on its data and add a third worker.
  // The dead worker's restored lease expires after the survivors ran its unit and a backup; the
  // unit must still be decided. (The previous scheduler failed this in 2 of 2 runs.)
  TempDir data;
  Cluster cluster(2, {"--data", data.path(), "--pool", "volunteer", "--lease-min", "10s",
                      "--lease-factor", "1"});
  REQUIRE(cluster.ok());
  Client client = Connect(cluster);
  REQUIRE(WaitPeers(client, 2));
  JobSpec spec = Spin(8, 700);
  auto job = client.Submit(spec);
  REQUIRE(job.ok());
  REQUIRE(WaitFor([&] { return job->Info().units_running >= 2; }, 20s));
  std::this_thread::sleep_for(1s);
  cluster.worker(1).Signal(SIGKILL);
  std::this_thread::sleep_for(500ms);
  cluster.coordinator().Signal(SIGKILL);
  cluster.coordinator().Wait(5s);
  REQUIRE(cluster.RestartCoordinator());
  cluster.AddWorker(1);
  auto r = job->Wait(60s);
  REQUIRE_MESSAGE(r.ok(), cluster.Logs());
  CHECK_MESSAGE(r->info.state == JobState::kDone, cluster.Logs());
  CHECK(r->json.find("\"units\":8") != std::string::npos);
}

TEST_CASE(
    "a replicated job survives the coordinator killed at 20 random moments; credit survives too") {
  // Fixed replication (2 copies, quorum 2). Acknowledged results must never be computed again by
  // the peer that sent them, and the peers' validated credit, kept in the store, must add up to
  // every unit's two voters at the end, however many coordinator lives it took.
  TempDir data;
  Cluster cluster(2,
                  {"--data", data.path(), "--backups", "off", "--replicas", "2", "--quorum", "2",
                   "--adaptive", "off"},
                  1, {"--log-level", "debug"});
  REQUIRE(cluster.ok());
  Client client = Connect(cluster);
  REQUIRE(WaitPeers(client, 2));
  const int units = 200;
  auto job = client.Submit(Spin(units, 25));
  REQUIRE(job.ok());
  std::mt19937 rng(20261201);
  int kills = 0;
  for (; kills < 20; ++kills) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100 + rng() % 400));
    auto st = client.Status(job->id());
    if (st.ok() && st->state == JobState::kDone) break;
    cluster.coordinator().Signal(SIGKILL);
    cluster.coordinator().Wait(5s);
    REQUIRE(cluster.RestartCoordinator());
  }
  auto r = job->Wait(120s);
  REQUIRE_MESSAGE(r.ok(), cluster.Logs());
  CHECK(r->info.state == JobState::kDone);
  CHECK(r->json.find("\"units\":" + std::to_string(units)) != std::string::npos);
  CHECK(kills >= 10);  // the job was long enough for most of the kills to land mid-job

  int recomputed_after_ack = 0, runs = 0;
  const std::regex finished(R"(finished unit (\d+/\d+) lease (\d+))"),
      acked(R"(acked lease (\d+))");
  for (std::size_t w = 0; w < cluster.workers(); ++w) {
    std::map<std::string, std::string> unit_of;
    std::set<std::string> acked_units;
    std::istringstream in(cluster.worker(w).Stderr());
    for (std::string line; std::getline(in, line);) {
      std::smatch m;
      if (std::regex_search(line, m, finished)) {
        ++runs;
        if (acked_units.contains(m[1])) ++recomputed_after_ack;
        unit_of[m[2]] = m[1];
      } else if (std::regex_search(line, m, acked) && unit_of.contains(m[1])) {
        acked_units.insert(unit_of[m[1]]);
      }
    }
  }
  CHECK(recomputed_after_ack == 0);
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open((data.path() + "/coordinator.db").c_str(), &db) == SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, "SELECT sum(units_done) FROM peers", -1, &st, nullptr) ==
          SQLITE_OK);
  REQUIRE(sqlite3_step(st) == SQLITE_ROW);
  CHECK(sqlite3_column_int64(st, 0) == 2 * units);
  sqlite3_finalize(st);
  sqlite3_close(db);
  MESSAGE("coordinator killed " << kills << " times during " << units << " units x 2 replicas: "
                                << runs << " unit runs for " << 2 * units << " needed");
}
