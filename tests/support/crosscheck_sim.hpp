// A deterministic simulation of cross-checking: the real Scheduler driven by fake peers (no
// sockets, no clock), some of them saboteurs that collude (all return the same wrong answer for a
// unit). Measures wrong results accepted and total work / useful work. Used by a unit test and by
// tests/sim/crosscheck_sim.cpp, which prints the table in docs/cross-checking.md.
#pragma once

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <set>

#include "fake_task.hpp"
#include "sparecycles/coordinator/scheduler.hpp"

namespace sparecycles::testing {

struct SimConfig {
  std::uint64_t units = 100000;
  int peers = 20;
  double saboteur_share = 0.2;  // share of peers that are saboteurs
  double sabotage_rate = 1.0;   // chance a saboteur lies on a unit
  bool adaptive = true;
  std::uint32_t replicas = 2, quorum = 2;
  double target_error = 1e-3;
  std::uint64_t seed = 1;
};

struct SimResult {
  std::uint64_t units = 0, executions = 0, wrong_accepted = 0;
  coordinator::SchedulerStats stats;
  bool finished = false;
  double work() const {
    return units ? static_cast<double>(executions) / static_cast<double>(units) : 0;
  }
};

class WrongCounter final : public coordinator::SchedulerListener {
 public:
  std::set<std::uint32_t> wrong;
  void OnJobSubmitted(const coordinator::Job&) override {}
  void OnUnitValidated(const coordinator::Job& job, std::uint32_t unit) override {
    const std::string& spec = job.units[unit].spec;  // squares: [lo, hi) -> sum of i*i
    std::uint64_t truth = 0;
    for (std::uint64_t i = BytesU64(spec.substr(0, 8)); i < BytesU64(spec.substr(8)); ++i)
      truth += i * i;
    if (BytesU64(job.units[unit].result) != truth)
      wrong.insert(unit);
    else
      wrong.erase(unit);
  }
  void OnJobFinished(const coordinator::Job&) override {}
  void OnLeaseIssued(const coordinator::LeaseRecord&, const std::string&) override {}
  void OnLeaseSettled(coordinator::LeaseId) override {}
  void OnPeerRecord(const std::string&, const coordinator::PeerRecord&) override {}
};

inline SimResult RunSimulation(const SimConfig& cfg) {
  using namespace coordinator;
  tasks::Registry registry;
  registry.Add(std::make_unique<SquaresTask>());
  SchedulerConfig sc;
  sc.lease_min = std::chrono::hours(1);
  sc.peer_timeout = std::chrono::hours(1);
  sc.prefetch = 0;
  sc.backups = false;
  sc.max_units_per_job = cfg.units;
  sc.credibility.seed = cfg.seed * 7919 + 1;
  Scheduler s(sc, registry);
  WrongCounter counter;
  s.SetListener(&counter);
  FakeClock clock;
  std::mt19937_64 rng(cfg.seed);

  std::vector<PeerHandle> peers;
  std::set<PeerHandle> saboteurs;
  const int bad = static_cast<int>(std::lround(cfg.peers * cfg.saboteur_share));
  for (int i = 0; i < cfg.peers; ++i) {
    PeerHello h;
    h.peer_id = "p" + std::to_string(i);
    h.host = h.peer_id;
    h.cores = 1;
    h.work_per_second[TaskKey("squares", 1)] = 1.0;
    peers.push_back(s.AddPeer(h, clock.Now()));
    if (i < bad) saboteurs.insert(peers.back());
  }
  proto::JobSpecWire spec;
  spec.task = "squares";
  spec.params["n"] = std::to_string(cfg.units);
  spec.units = cfg.units;
  spec.adaptive = cfg.adaptive ? 2 : 1;
  spec.target_error = cfg.target_error;
  spec.replicas = cfg.replicas;
  spec.quorum = cfg.quorum;
  spec.max_replicas = cfg.adaptive ? 10 : cfg.replicas + 4;
  const JobId job = s.Submit(spec, 0).value();

  SquaresTask task;
  tasks::NullContext ctx;
  SimResult out;
  out.units = cfg.units;
  std::vector<PeerHandle> order = peers;
  for (std::uint64_t round = 0; round < cfg.units * 20; ++round) {
    if (proto::IsFinal(s.FindJob(job)->state)) break;
    std::shuffle(order.begin(), order.end(), rng);
    bool any = false;
    for (PeerHandle p : order) {
      for (const auto& l : s.Lease(p, 1, clock.Now())) {
        any = true;
        ++out.executions;
        proto::ResultMsg r;
        r.lease_id = l.lease_id;
        r.job_id = l.job_id;
        r.unit_index = l.unit_index;
        r.payload = task.Execute(l.unit, ctx).value();
        const bool lie = saboteurs.contains(p) &&
                         std::uniform_real_distribution<double>(0, 1)(rng) < cfg.sabotage_rate;
        // Colluders agree: the wrong answer depends only on the unit.
        if (lie)
          r.payload = U64Bytes(BytesU64(r.payload) ^ (0x9e3779b97f4a7c15ull * (l.unit_index + 1)));
        r.hash = HashOf(r.payload);
        s.OnResult(p, r, clock.Now(), 0);
      }
    }
    if (!any) break;  // nobody can take anything: the job is stuck (reported as unfinished)
    clock.Advance(std::chrono::milliseconds(1));
  }
  out.finished =
      proto::IsFinal(s.FindJob(job)->state) && s.FindJob(job)->state == proto::JobState::kDone;
  out.wrong_accepted = counter.wrong.size();
  out.stats = s.stats();
  return out;
}

}  // namespace sparecycles::testing
