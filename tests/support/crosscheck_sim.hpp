// A deterministic simulation of cross-checking: the real Scheduler driven by fake peers (no
// sockets, a fake clock), some of them saboteurs that collude (all return the same wrong answer
// for a unit). Two smarter attackers too: a Sybil holding many peer ids on a few hosts, and
// colluders who share notes and lie only on units none of them has seen. Measures wrong results
// accepted and total work / useful work. Used by unit tests and by tests/sim/crosscheck_sim.cpp,
// which prints the tables in docs/cross-checking.md.
#pragma once

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <unordered_map>

#include "fake_task.hpp"
#include "sparecycles/coordinator/scheduler.hpp"

namespace sparecycles::testing {

struct SimConfig {
  std::uint64_t units = 100000;
  int peers = 20;
  double saboteur_share = 0.2;  // share of peers that are saboteurs
  double sabotage_rate = 1.0;   // chance a saboteur lies on a unit
  // Saboteurs' peer ids live on this many hosts (a Sybil); 0 = each on its own host, like the
  // honest peers.
  int saboteur_hosts = 0;
  // Saboteurs share notes: on a unit one of them has run (by its bytes) they repeat what was said
  // then; they lie (at sabotage_rate) only on units none of them has seen, so a spot-check they
  // recognise is passed.
  bool fresh_only = false;
  // ...and only on units near the highest index any of them has seen (in index order, a unit
  // far behind what went out would be a requeued copy or a spot-check).
  bool frontier_only = false;
  // A blacklisted saboteur id is replaced by a new id from the same host (refused by the
  // enrollment rules when its host is over the rate or blacklisted).
  bool rotate_keys = false;
  // ...and each saboteur id is thrown away after this many answers, before it can be caught
  // (0 = kept): with keys free and no host rules, every vote comes from a fresh id.
  int answers_per_id = 0;
  coordinator::HostRules hosts{coordinator::DistinctBy::kHosts, false, 10, 4};
  bool adaptive = true;
  std::uint32_t replicas = 2, quorum = 2;
  double target_error = 1e-3;
  std::uint64_t seed = 1;
};

struct SimResult {
  std::uint64_t units = 0, executions = 0, wrong_accepted = 0;
  std::uint64_t joins_refused = 0, saboteur_ids = 0;
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

  sc.hosts = cfg.hosts;
  Scheduler s(sc, registry);
  WrongCounter counter;
  s.SetListener(&counter);
  FakeClock clock;
  std::mt19937_64 rng(cfg.seed);

  SimResult out;
  std::vector<PeerHandle> peers;
  std::set<PeerHandle> saboteurs;
  std::map<PeerHandle, std::string> host_of;
  std::map<PeerHandle, int> answers;  // by saboteur id
  int next_id = 0;
  auto join = [&](const std::string& host, bool saboteur) {
    PeerHello h;
    h.peer_id = "p" + std::to_string(next_id++);
    h.host = host.empty() ? h.peer_id : host;
    h.cores = 1;
    h.work_per_second[TaskKey("squares", 1)] = 1.0;
    auto joined = s.Join(h, clock.Now());
    if (!joined.ok()) {
      ++out.joins_refused;
      return false;
    }
    peers.push_back(*joined);
    host_of[*joined] = h.host;
    if (saboteur) {
      saboteurs.insert(*joined);
      ++out.saboteur_ids;
    }
    return true;
  };
  const int bad = static_cast<int>(std::lround(cfg.peers * cfg.saboteur_share));
  for (int i = 0; i < cfg.peers; ++i) {
    const bool saboteur = i < bad;
    std::string host;
    if (saboteur && cfg.saboteur_hosts > 0)
      host = "sybil-" + std::to_string(i % cfg.saboteur_hosts);
    join(host, saboteur);
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
  out.units = cfg.units;
  std::unordered_map<std::string, std::string>
      notes;                   // the colluders' shared notes: unit -> answer
  std::uint64_t frontier = 0;  // the highest unit index they have seen
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
        if (saboteurs.contains(p)) {
          if (auto seen = cfg.fresh_only ? notes.find(l.unit) : notes.end(); seen != notes.end()) {
            r.payload = seen->second;  // seen before: maybe a check, so say the same again
          } else {
            // Colluders agree: the wrong answer depends only on the unit.
            const bool near = !cfg.frontier_only ||
                              l.unit_index + 4 * static_cast<std::uint64_t>(cfg.peers) >= frontier;
            frontier = std::max(frontier, l.unit_index);
            if (near && std::uniform_real_distribution<double>(0, 1)(rng) < cfg.sabotage_rate)
              r.payload =
                  U64Bytes(BytesU64(r.payload) ^ (0x9e3779b97f4a7c15ull * (l.unit_index + 1)));
            if (cfg.fresh_only) notes.emplace(l.unit, r.payload);
          }
        }
        r.hash = HashOf(r.payload);
        if (saboteurs.contains(p)) ++answers[p];
        s.OnResult(p, r, clock.Now(), 0);
      }
    }
    if (cfg.rotate_keys || cfg.answers_per_id > 0) {
      // The Sybil replaces each caught (or used) id with a new one from the same host, while the
      // enrollment rules let it.
      std::vector<PeerHandle> caught;
      for (PeerHandle p : saboteurs) {
        const Peer* peer = s.FindPeer(p);
        if (peer == nullptr) continue;
        if ((cfg.rotate_keys && s.Credibility(peer->hello.peer_id) == 0.0) ||
            (cfg.answers_per_id > 0 && answers[p] >= cfg.answers_per_id))
          caught.push_back(p);
      }
      for (PeerHandle p : caught) {
        saboteurs.erase(p);
        s.RemovePeer(p, clock.Now());
        peers.erase(std::remove(peers.begin(), peers.end(), p), peers.end());
        order.erase(std::remove(order.begin(), order.end(), p), order.end());
        if (join(host_of[p], true)) order.push_back(peers.back());
      }
    }
    if (!any) break;  // nobody can take anything: the job is stuck (reported as unfinished)
    clock.Advance(std::chrono::seconds(1));  // a round: every peer ran one unit of ~1 s
  }
  out.finished =
      proto::IsFinal(s.FindJob(job)->state) && s.FindJob(job)->state == proto::JobState::kDone;
  out.wrong_accepted = counter.wrong.size();
  out.stats = s.stats();
  return out;
}

}  // namespace sparecycles::testing
