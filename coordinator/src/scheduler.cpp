#include "sparecycles/coordinator/scheduler.hpp"

#include <algorithm>
#include <cmath>

#include "credibility.hpp"
#include "sparecycles/core/hash.hpp"
#include "sparecycles/core/log.hpp"

namespace sparecycles::coordinator {
namespace {

// How far into a job's ready queue we look for a unit this peer may take (distinct-peer rule).
constexpr std::size_t kMaxReadyScan = 256;
// Accepted units drawn when choosing a spot-check, and what a viewer in the peer's own subnet
// weighs against a unit (IssueSpotCheck).
constexpr int kSpotCheckDraws = 8;
constexpr std::size_t kLinkedPenalty = 100;

Status ResolvePolicy(const proto::JobSpecWire& spec, const ReplicationPolicy& def,
                     ReplicationPolicy& out) {
  out = def;
  if (spec.replicas) out.replicas = spec.replicas;
  if (spec.quorum) out.quorum = spec.quorum;
  if (spec.max_replicas) out.max_replicas = spec.max_replicas;
  if (spec.max_errors) out.max_errors = spec.max_errors;
  if (spec.adaptive) out.adaptive = spec.adaptive == 2;
  if (spec.target_error > 0) out.target_error = spec.target_error;
  // Credibility may need several agreeing copies while peers are new.
  if (out.adaptive && !spec.max_replicas) out.max_replicas = std::max(out.max_replicas, 8u);
  if (out.quorum == 0) return InvalidArgument("quorum must be at least 1");
  out.replicas = std::max(out.replicas, out.quorum);
  out.max_replicas = std::max(out.max_replicas, out.replicas);
  if (out.max_errors == 0) out.max_errors = 1;
  return OkStatus();
}

}  // namespace

Scheduler::Scheduler(SchedulerConfig config, const tasks::Registry& registry,
                     LeaseId first_lease_id)
    : config_(std::move(config)),
      registry_(registry),
      rng_(config_.credibility.seed | 1),
      next_lease_(first_lease_id) {}

std::uint64_t Scheduler::NextRandom() {  // xorshift64*: deterministic for a given seed
  rng_ ^= rng_ >> 12;
  rng_ ^= rng_ << 25;
  rng_ ^= rng_ >> 27;
  return rng_ * 0x2545F4914F6CDD1Dull;
}

PeerRecord& Scheduler::MutableRecord(const std::string& peer_id) {
  dirty_records_.insert(peer_id);
  return records_[peer_id];
}

void Scheduler::FlushRecords() {
  if (listener_)
    for (const auto& id : dirty_records_) listener_->OnPeerRecord(id, records_[id]);
  dirty_records_.clear();
}

void Scheduler::RestoreRecords(const std::vector<std::pair<std::string, PeerRecord>>& records) {
  for (const auto& [id, r] : records) records_[id] = r;
}

const PeerRecord* Scheduler::Record(const std::string& peer_id) const {
  auto it = records_.find(peer_id);
  return it == records_.end() ? nullptr : &it->second;
}

double Scheduler::Credibility(const std::string& peer_id) const {
  return CappedCredibility(config_.credibility, Record(peer_id), HostRecordOf(HostOfPeer(peer_id)));
}

const HostRecord* Scheduler::HostRecordOf(const std::string& host_key) const {
  auto it = hosts_.find(host_key);
  return it == hosts_.end() ? nullptr : &it->second;
}

std::string Scheduler::HostOfPeer(const std::string& peer_id) const {
  auto it = host_by_id_.find(peer_id);
  return it == host_by_id_.end() ? "peer:" + peer_id : it->second;
}

HostRecord& Scheduler::MutableHost(const std::string& host_key) { return hosts_[host_key]; }

double Scheduler::GroupError(const Unit& unit, const std::string& hash,
                             const std::string& skip_host) const {
  // The chance that every distinct host vouching for `hash` is a saboteur (colluders agree, so
  // agreement alone proves nothing; only independent records do). Keys cost nothing, so several
  // peers of one host are one voter: the host counts once, with its most credible peer.
  std::unordered_map<std::string, double> best;  // host key -> credibility
  for (const auto& rr : unit.results) {
    if (rr.outcome != proto::UnitOutcome::kOk || rr.hash != hash) continue;
    std::string host = HostOfPeer(rr.peer_id);
    if (!skip_host.empty() && host == skip_host) continue;
    const double cr = Credibility(rr.peer_id);
    auto [it, fresh] = best.try_emplace(std::move(host), cr);
    if (!fresh) it->second = std::max(it->second, cr);
  }
  double p = 1.0;
  for (const auto& [host, cr] : best) p *= 1.0 - cr;
  return p;
}

std::uint32_t Scheduler::HostVotes(const Unit& unit, const std::string& hash) const {
  std::unordered_set<std::string> hosts;
  for (const auto& rr : unit.results)
    if (rr.outcome == proto::UnitOutcome::kOk && rr.hash == hash)
      hosts.insert(HostOfPeer(rr.peer_id));
  return static_cast<std::uint32_t>(hosts.size());
}

void Scheduler::CheckPassed(const std::string& peer_id) {
  ++MutableRecord(peer_id).checks_passed;
  ++MutableHost(HostOfPeer(peer_id)).checks_passed;
}

// ------------------------------------------------------------------------------------ peers

PeerHandle Scheduler::HandleFor(const std::string& peer_id) {
  // One handle per peer id for the scheduler's lifetime: a peer that leaves and comes back is the
  // same peer to the distinct-peer rule and cannot collect a second copy of a unit.
  auto [it, fresh] = handles_by_id_.try_emplace(peer_id, next_peer_);
  if (fresh) ++next_peer_;
  return it->second;
}

Result<PeerHandle> Scheduler::Join(PeerHello hello, TimePoint now) {
  const bool known = handles_by_id_.contains(hello.peer_id) || records_.contains(hello.peer_id);
  if (!known) {
    const std::string host = HostKey(config_.hosts, hello.host, hello.peer_id);
    if (auto it = hosts_.find(host); it != hosts_.end()) {
      HostRecord& h = it->second;
      if (h.blacklisted) {
        ++stats_.enrollments_refused;
        return FailedPrecondition("host " + host + " is blacklisted (" +
                                  std::to_string(h.offences) +
                                  " wrong answers caught from its peers); no new peer ids from it");
      }
      while (!h.enrolled.empty() && now - h.enrolled.front() >= std::chrono::hours(1))
        h.enrolled.pop_front();
      const std::uint32_t limit = config_.hosts.new_peers_per_hour;
      if (limit > 0 && h.enrolled.size() >= limit) {
        ++stats_.enrollments_refused;
        const auto wait = std::chrono::duration_cast<std::chrono::seconds>(
            h.enrolled.front() + std::chrono::hours(1) - now);
        return ResourceExhausted("host " + host + " enrolled " + std::to_string(limit) +
                                 " new peer ids in the last hour (the limit); retry in " +
                                 std::to_string(wait.count() + 1) + " s");
      }
    }
  }
  return AddPeer(std::move(hello), now);
}

PeerHandle Scheduler::AddPeer(PeerHello hello, TimePoint now) {
  const bool known = handles_by_id_.contains(hello.peer_id) || records_.contains(hello.peer_id);
  const PeerHandle handle = HandleFor(hello.peer_id);
  // Its host for the Sybil rules. A new host record starts from this peer's own record (a known
  // peer whose address changed keeps its credibility; the cap is for new keys on a known host).
  const std::string host = HostKey(config_.hosts, hello.host, hello.peer_id);
  auto [hit, new_host] = hosts_.try_emplace(host);
  if (new_host) {
    if (const PeerRecord* r = Record(hello.peer_id)) hit->second.checks_passed = r->checks_passed;
  }
  if (!known) {
    hit->second.enrolled.push_back(now);
    ++hit->second.peer_ids;
  }
  host_by_id_[hello.peer_id] = host;
  host_by_handle_[handle] = host;
  if (auto it = peers_.find(handle); it != peers_.end()) {  // the same peer reconnected
    it->second.hello = std::move(hello);
    it->second.host_key = host;
    it->second.link_key = LinkKey(config_.hosts, it->second.hello.host, it->second.hello.peer_id);
    it->second.last_seen = now;
    return handle;
  }
  Peer p;
  p.handle = handle;
  p.host_key = host;
  p.link_key = LinkKey(config_.hosts, hello.host, hello.peer_id);
  p.slots = p.idle_slots = hello.cores;
  p.hello = std::move(hello);
  p.connected_at = p.last_seen = now;
  pool_slots_ += p.slots;
  const PeerHandle h = p.handle;
  auto orphans = orphan_leases_.find(p.hello.peer_id);
  if (orphans != orphan_leases_.end()) {
    // Leases this peer held before the coordinator restarted: they are its again.
    for (LeaseId id : orphans->second) {
      auto it = leases_.find(id);
      if (it == leases_.end()) continue;
      it->second.peer = h;
      p.leases.insert(id);
    }
    orphan_leases_.erase(orphans);
  }
  peers_.emplace(h, std::move(p));
  return h;
}

void Scheduler::RemovePeer(PeerHandle peer, TimePoint now) {
  auto it = peers_.find(peer);
  if (it == peers_.end()) return;
  // Its units go back to the queue at once. The lease records stay (fenced, as if expired) so
  // that if the same peer comes back with finished work, the result is still welcome where the
  // unit needs it; they are dropped when the job ends.
  const std::string peer_id = it->second.hello.peer_id;
  for (LeaseId id : it->second.leases) {
    auto lit = leases_.find(id);
    if (lit == leases_.end()) continue;
    LeaseRecord& rec = lit->second;
    if (rec.spot_check) {
      if (!rec.expired) deadlines_.erase({rec.deadline, id});
      leases_.erase(lit);
      continue;
    }
    if (!rec.expired) {
      rec.expired = true;
      // It may take the unit again if it comes back (a worker restarted in place); one vote per
      // peer per unit keeps it from counting twice.
      Withdraw(rec, /*forget_peer=*/true, /*requeue=*/true);
    } else {
      ReleaseClaim(rec);  // requeued when it expired; the peer is gone now
    }
    rec.peer = 0;
    orphan_leases_[peer_id].push_back(id);
  }
  (void)now;
  pool_slots_ -= it->second.slots;
  peers_.erase(it);
}

void Scheduler::Touch(PeerHandle peer, TimePoint now) {
  if (auto it = peers_.find(peer); it != peers_.end()) it->second.last_seen = now;
}

void Scheduler::SetCapacity(PeerHandle peer, const proto::Capacity& cap, TimePoint now) {
  auto it = peers_.find(peer);
  if (it == peers_.end()) return;
  pool_slots_ = pool_slots_ - it->second.slots + cap.slots;
  it->second.slots = cap.slots;
  it->second.idle_slots = cap.idle_slots;
  it->second.state = cap.state;
  it->second.reason = cap.reason;
  it->second.last_seen = now;
}

void Scheduler::ReconcileLeases(PeerHandle peer, const std::vector<LeaseId>& running,
                                TimePoint now) {
  auto it = peers_.find(peer);
  if (it == peers_.end()) return;
  std::unordered_set<LeaseId> keep(running.begin(), running.end());
  std::vector<LeaseId> lost;
  for (LeaseId id : it->second.leases)
    if (!keep.contains(id)) lost.push_back(id);
  for (LeaseId id : lost) DropLease(id, /*requeue=*/true, now);
}

const Peer* Scheduler::FindPeer(PeerHandle peer) const {
  auto it = peers_.find(peer);
  return it == peers_.end() ? nullptr : &it->second;
}

// ------------------------------------------------------------------------------------- jobs

double Scheduler::RateFor(const Job& job, const Peer* peer) const {
  const std::string& key = job.peer_key;
  if (peer != nullptr) {
    auto it = peer->hello.work_per_second.find(key);
    if (it != peer->hello.work_per_second.end() && it->second > 0) return it->second;
  }
  return job.task->DefaultWorkPerSecond();
}

double Scheduler::ExpectedUnitSeconds(const Job& job, const Peer& peer) const {
  // Enough results to trust the measured time over the declared one (a few, so that one odd
  // unit does not decide; the average follows the latest results).
  constexpr std::uint64_t kTrustMeasuredAfter = 8;
  if (job.measured_units >= kTrustMeasuredAfter) return job.measured_unit_seconds;
  return job.unit_work / std::max(1e-12, RateFor(job, &peer));
}

Status Scheduler::ResolveTask(Job& job) const {
  const std::string& name = job.spec.task;
  if (name.starts_with(proto::kPackageTaskPrefix)) {
    if (!config_.resolve_package)
      return FailedPrecondition("this coordinator does not run task packages");
    auto resolved = config_.resolve_package(name);
    if (!resolved.ok()) return resolved.status();
    job.owned_task = std::move(resolved->task);
    job.task = job.owned_task.get();
    job.peer_key = std::move(resolved->peer_key);  // the kind a peer must run, e.g. "@native/1"
    return OkStatus();
  }
  job.task = registry_.Find(name, job.spec.task_version);
  if (job.task == nullptr) {
    std::string known;
    for (const auto* t : registry_.All())
      known += (known.empty() ? "" : ", ") + std::string(t->Name());
    return NotFound("unknown task '" + name + "' (known: " + known + ")");
  }
  job.peer_key = TaskKey(job.task->Name(), job.task->Version());
  return OkStatus();
}

bool Scheduler::PeerMayRun(const Job& job, const Peer& peer) const {
  return peer.hello.work_per_second.contains(job.peer_key) &&
         (job.refused_by.empty() || !job.refused_by.contains(peer.hello.peer_id));
}

void Scheduler::RefusePackage(PeerHandle peer, const std::string& task,
                              const std::vector<LeaseId>& leases, const std::string& reason,
                              TimePoint now) {
  const Peer* p = FindPeer(peer);
  if (p == nullptr) return;
  for (auto& [id, job] : jobs_) {
    if (job->spec.task != task || proto::IsFinal(job->state)) continue;
    job->refused_by.insert(p->hello.peer_id);
    if (job->refusal.empty()) job->refusal = reason;
  }
  // Handed back without penalty: the unit is not counted as run by this peer.
  // (DropLease with requeue forgets that the peer had the unit.)
  ReturnLeases(peer, leases, now);
  work_added_ = true;
}

Result<JobId> Scheduler::Submit(const proto::JobSpecWire& spec, double wall_now,
                                const Submitter& by) {
  if (!spec.client_token.empty()) {
    if (auto it = tokens_.find(TokenKey(by.owner, spec.client_token)); it != tokens_.end())
      return it->second;
  }
  auto job = std::make_unique<Job>();
  job->spec = spec;
  job->owner = by.owner;
  job->input_bytes = spec.input.size();
  SC_RETURN_IF_ERROR(ResolveTask(*job));
  SC_RETURN_IF_ERROR(BuildUnits(*job, std::nullopt));
  if (by.admit) SC_RETURN_IF_ERROR(by.admit(*job));
  job->id = next_job_++;
  job->seq = ++seq_;
  job->submitted_wall = wall_now;
  for (std::uint32_t i = 0; i < job->units.size(); ++i) {
    job->units[i].queued = job->policy.adaptive ? 1 : job->policy.replicas;
    job->fresh.push_back(i);
  }
  ShuffleFresh(*job);
  const JobId id = job->id;
  if (!spec.client_token.empty()) tokens_[TokenKey(by.owner, spec.client_token)] = id;
  if (listener_) listener_->OnJobSubmitted(*job);
  job->params.input.clear();  // the chunks live in the units now
  job->spec.input.clear();
  jobs_.emplace(id, std::move(job));
  dirty_.insert(id);
  work_added_ = true;
  if (jobs_.size() > config_.max_jobs_kept) ForgetOldJobs(wall_now);
  return id;
}

void Scheduler::ShuffleFresh(Job& job) {
  // Adaptive jobs hand out fresh units in a random order: in index order, a unit far behind the
  // frontier of what went out would be a requeued copy or a spot-check, and colluders who compare
  // notes would lie only on the frontier (docs/cross-checking.md, "Spot-checks").
  if (!job.policy.adaptive || job.fresh.size() < 2) return;
  for (std::size_t i = job.fresh.size() - 1; i > 0; --i)
    std::swap(job.fresh[i], job.fresh[static_cast<std::size_t>(NextRandom() % (i + 1))]);
}

Status Scheduler::BuildUnits(Job& job, std::optional<std::uint64_t> units) {
  job.params.values = job.spec.params;
  job.params.input = job.spec.input;
  SC_RETURN_IF_ERROR(ResolvePolicy(job.spec, config_.policy, job.policy));
  auto plan = job.task->Plan(job.params);
  if (!plan.ok()) return plan.status();
  const std::uint64_t n = units ? *units : UnitCount(job, *plan);
  auto split = job.task->Split(job.params, n);
  if (!split.ok()) return split.status();
  if (split->size() != n)
    return Internal("task '" + job.spec.task + "' split into " + std::to_string(split->size()) +
                    " units instead of " + std::to_string(n));
  job.unit_work = plan->total_work / static_cast<double>(n);
  job.units.resize(n);
  for (std::uint64_t i = 0; i < n; ++i) job.units[i].spec = std::move((*split)[i]);
  return OkStatus();
}

std::uint64_t Scheduler::UnitCount(const Job& job, const tasks::JobPlan& plan) const {
  const tasks::Task* task = job.task;
  const std::string& key = job.peer_key;
  const std::uint64_t max_units =
      std::max<std::uint64_t>(1, std::min(plan.max_units, config_.max_units_per_job));
  if (job.spec.units != 0) return std::clamp<std::uint64_t>(job.spec.units, 1, max_units);
  if (plan.fixed_units) return max_units;
  // Median measured speed of the peers that can run this task, so a unit takes about the target
  // time on a typical peer...
  std::vector<double> rates;
  std::uint64_t slots = 0;
  for (const auto& [h, p] : peers_) {
    auto it = p.hello.work_per_second.find(key);
    if (it == p.hello.work_per_second.end()) continue;
    slots += p.slots;
    if (it->second > 0) rates.push_back(it->second);
  }
  double rate = task->DefaultWorkPerSecond();
  if (!rates.empty()) {
    std::nth_element(rates.begin(), rates.begin() + static_cast<std::ptrdiff_t>(rates.size() / 2),
                     rates.end());
    rate = rates[rates.size() / 2];
  }
  const double seconds = job.spec.unit_seconds > 0 ? job.spec.unit_seconds : config_.unit_seconds;
  const double n = std::ceil(plan.total_work / std::max(1e-9, rate * seconds));
  std::uint64_t units = n < 1 ? 1 : (n > 1e15 ? max_units : static_cast<std::uint64_t>(n));
  // ...and at least one unit per slot of those peers, so no core sits idle on a job that is
  // small compared with the target unit time.
  units = std::max(units, slots);
  return std::clamp<std::uint64_t>(units, 1, max_units);
}

Status Scheduler::Cancel(JobId id, std::vector<std::pair<PeerHandle, LeaseId>>& to_cancel) {
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return NotFound("no job " + std::to_string(id));
  Job& job = *it->second;
  if (proto::IsFinal(job.state)) return OkStatus();
  std::vector<LeaseId> leases;
  for (auto& [lid, rec] : leases_)
    if (rec.job == id) leases.push_back(lid);
  for (LeaseId lid : leases) {
    to_cancel.emplace_back(leases_[lid].peer, lid);
    DropLease(lid, /*requeue=*/false, TimePoint{});
  }
  job.ready.clear();
  job.fresh.clear();
  job.units_total_final = job.units.size();
  job.state = proto::JobState::kCancelled;
  job.error = "cancelled";
  job.units.clear();
  job.units.shrink_to_fit();
  if (listener_) listener_->OnJobFinished(job);
  dirty_.insert(id);
  return OkStatus();
}

const Job* Scheduler::FindJob(JobId id) const {
  auto it = jobs_.find(id);
  return it == jobs_.end() ? nullptr : it->second.get();
}

proto::JobInfo Scheduler::Info(const Job& job) const {
  proto::JobInfo info;
  info.job_id = job.id;
  info.task = job.spec.task;
  info.name = job.spec.name;
  info.state = job.state;
  info.priority = job.spec.priority;
  info.units_total = job.units.empty() ? job.units_total_final : job.units.size();
  info.units_done = job.done;
  info.units_failed = job.failed;
  info.units_running = job.running;
  info.submitted_at = job.submitted_wall;
  info.finished_at = job.finished_wall;
  info.cpu_seconds = job.cpu_seconds;
  info.error = job.error;
  info.waiting = WhyWaiting(job);
  return info;
}

std::string Scheduler::WhyWaiting(const Job& job) const {
  if (proto::IsFinal(job.state) || (job.fresh.empty() && job.ready.empty())) return {};
  const std::string task = std::string(job.task->Name());
  std::vector<const Peer*> usable;
  std::size_t able = 0, paused = 0, refused = 0;
  std::string pause_reason;
  for (const auto& [h, p] : peers_) {
    if (!p.hello.work_per_second.contains(job.peer_key)) continue;
    if (job.refused_by.contains(p.hello.peer_id)) {
      ++refused;
      continue;
    }
    ++able;
    if (Barred(p)) continue;
    if (p.state == proto::PeerState::kPaused) {
      ++paused;
      if (pause_reason.empty()) pause_reason = p.reason;
      continue;
    }
    usable.push_back(&p);
  }
  if (peers_.empty()) return "no peer is connected";
  if (able == 0 && refused > 0)
    return "every connected peer that runs packages refused this one (" + std::to_string(refused) +
           " of " + std::to_string(peers_.size()) + "): " + job.refusal;
  if (able == 0)
    return "no connected peer runs task " + task + " (" + std::to_string(peers_.size()) +
           " connected)";
  if (usable.empty()) {
    if (paused == 0) return "every connected peer that runs task " + task + " is blacklisted";
    return "every connected peer that runs task " + task + " is paused (" + std::to_string(paused) +
           " of " + std::to_string(able) + ")" + (pause_reason.empty() ? "" : ": " + pause_reason);
  }
  if (!job.fresh.empty()) return {};
  // Bounded: a few queued copies, each against the usable peers until one may take it.
  const std::size_t scan = std::min<std::size_t>(job.ready.size(), 16);
  for (std::size_t i = 0; i < scan; ++i) {
    const Unit& u = job.units[job.ready[i]];
    for (const Peer* p : usable)
      if (Eligible(u, *p)) return {};
  }
  const std::uint32_t ui = job.ready.front();
  const Unit& u = job.units[ui];
  std::size_t had = 0;
  for (const Peer* p : usable) had += u.peers.contains(p->handle) ? 1 : 0;
  std::string why = "unit " + std::to_string(ui) +
                    " waits for a peer that has not run it: " + std::to_string(had) + " of " +
                    std::to_string(usable.size()) + " connected peers already have";
  if (config_.hosts.distinct != DistinctBy::kOff && had < usable.size())
    why += " (the others share a host with one that has)";
  if (!job.policy.adaptive && job.policy.quorum > usable.size())
    why += "; quorum " + std::to_string(job.policy.quorum) + " needs that many distinct peers";
  return why;
}

std::vector<proto::UnitFailure> Scheduler::Failures(const Job& job) const { return job.failures; }

void Scheduler::ForgetOldJobs(double wall_now) {
  // Finished jobs are kept for status queries up to a count and an age, oldest dropped first
  // (ids grow with submission time). From memory and from the store alike.
  const double cutoff = wall_now - config_.retain_finished_seconds;
  for (auto it = jobs_.begin(); it != jobs_.end();) {
    const Job& job = *it->second;
    const bool too_many = jobs_.size() > config_.max_jobs_kept;
    const bool too_old = wall_now > 0 && job.finished_wall > 0 && job.finished_wall < cutoff;
    if (!proto::IsFinal(job.state) || !(too_many || too_old)) {
      ++it;
      continue;
    }
    if (!job.spec.client_token.empty()) tokens_.erase(TokenKey(job.owner, job.spec.client_token));
    if (listener_) listener_->OnJobForgotten(job.id);
    it = jobs_.erase(it);
  }
}

// ------------------------------------------------------------------------------------- work

bool Scheduler::Eligible(const Unit& unit, const Peer& peer) const {
  return unit.state == Unit::State::kPending && !SeenBy(unit, peer);
}

bool Scheduler::SeenBy(const Unit& unit, const Peer& peer) const {
  if (unit.peers.contains(peer.handle)) return true;
  if (config_.hosts.distinct != DistinctBy::kOff) {
    for (const auto& h : unit.hosts)
      if (h == peer.host_key) return true;
  }
  return false;
}

bool Scheduler::Barred(const Peer& peer) const {
  if (const PeerRecord* r = Record(peer.hello.peer_id); r && r->blacklisted) return true;
  const HostRecord* h = HostRecordOf(peer.host_key);
  return h != nullptr && h->blacklisted;
}

Scheduler::Pick Scheduler::PickJob(const Peer& peer, const Job* no_ready_for_peer) {
  Pick best;
  for (auto& [id, jp] : jobs_) {
    Job& job = *jp;
    if (proto::IsFinal(job.state) || (job.ready.empty() && job.fresh.empty())) continue;
    if (!PeerMayRun(job, peer)) continue;
    if (best.job != nullptr) {
      // Higher priority first; within a priority, the job with fewer units running (fair share);
      // then the older job.
      if (job.spec.priority < best.job->spec.priority) continue;
      if (job.spec.priority == best.job->spec.priority) {
        if (job.running > best.job->running) continue;
        if (job.running == best.job->running && job.seq > best.job->seq) continue;
      }
    }
    // Only consider jobs that have a unit this peer may take: any fresh unit will do; without
    // fresh units, a further copy it may take.
    if (!job.fresh.empty()) {
      best = {&job, std::nullopt};
    } else if (auto pos = FindReady(job, peer)) {
      best = {&job, pos};
    }
  }
  // The chosen job still has fresh units: further copies in `ready` come first if this peer may
  // take one near the front (not scanned again where that already failed during this request).
  if (best.job != nullptr && !best.ready_pos && best.job != no_ready_for_peer)
    best.ready_pos = FindReady(*best.job, peer);
  return best;
}

std::optional<std::size_t> Scheduler::FindReady(const Job& job, const Peer& peer) const {
  // While fresh units remain, a peer that finds nothing near the front takes a fresh one, so the
  // scan is bounded; at the end of a job it covers the whole queue, or a peer whose copies are
  // deep in it would wait for nothing.
  const std::size_t scan =
      job.fresh.empty() ? job.ready.size() : std::min(job.ready.size(), kMaxReadyScan);
  for (std::size_t i = 0; i < scan; ++i)
    if (Eligible(job.units[job.ready[i]], peer)) return i;
  return std::nullopt;
}

std::vector<proto::Lease> Scheduler::Lease(PeerHandle peer_handle, std::uint32_t count,
                                           TimePoint now) {
  std::vector<proto::Lease> out;
  auto pit = peers_.find(peer_handle);
  if (pit == peers_.end()) return out;
  Peer& peer = pit->second;
  // Leasing is not hearing from the peer: a standing request is served long after it was sent,
  // and a peer cut off by a partition must still fall silent (its frames Touch() it).
  if (peer.state == proto::PeerState::kPaused) return out;
  if (Barred(peer)) return out;
  const std::uint64_t cap = static_cast<std::uint64_t>(peer.slots) + config_.prefetch;
  const std::uint64_t held = peer.leases.size();
  std::uint64_t want = std::min<std::uint64_t>(count, cap > held ? cap - held : 0);
  const Job* no_ready = nullptr;  // a job whose `ready` queue had nothing for this peer
  while (want-- > 0) {
    // Now and then, test the peer with a unit whose answer is already known. It cannot tell a
    // spot-check from real work.
    {
      const double q = SpotCheckRate(config_.credibility, Record(peer.hello.peer_id));
      const double draw = static_cast<double>(NextRandom() >> 11) * 0x1.0p-53;
      if (draw < q && IssueSpotCheck(peer, now, out)) continue;
    }
    const Pick pick = PickJob(peer, no_ready);
    Job* job = pick.job;
    if (job == nullptr) break;
    // Beyond its slots a peer prefetches short units, up to prefetch_seconds of expected work per
    // slot: a job of a few long units goes one unit per peer, not all to the first peer that
    // asks. A long unit is prefetched too, one per slot, while the job's fresh units could fill
    // every slot of the pool twice: its input is then here when the unit before it ends (no
    // round trip between units), and no other peer can be left without work by it.
    if (peer.leases.size() >= peer.slots) {
      const double expected = ExpectedUnitSeconds(*job, peer);
      const std::uint64_t beyond = peer.leases.size() + 1 - peer.slots;
      const bool short_units = expected * static_cast<double>(beyond) <=
                               config_.prefetch_seconds * std::max(1u, peer.slots);
      const bool plenty = beyond <= peer.slots && job->fresh.size() >= 2 * pool_slots_;
      if (!short_units && !plenty) break;
    }
    // Further copies of units already out come first (they finish units); then fresh units. What
    // this peer cannot take in `ready` stays so during this call (only its own units are added),
    // so a failed scan is not repeated for every lease.
    std::uint32_t ui = 0;
    if (pick.ready_pos) {
      ui = job->ready[*pick.ready_pos];
      job->ready.erase(job->ready.begin() + static_cast<std::ptrdiff_t>(*pick.ready_pos));
      --job->units[ui].queued;
    } else {
      no_ready = job;
      ui = job->fresh
               .front();  // PickJob returns a job without a ready position only with fresh units
      job->fresh.pop_front();
      // The unit's other copies wait in `ready`, in the order their first copies went out.
      for (std::uint32_t left = --job->units[ui].queued; left > 0; --left) job->ready.push_back(ui);
    }
    out.push_back(MakeLease(*job, ui, peer, now));
  }
  // Nothing left to hand out: near the end of a job, back up the oldest units still running
  // elsewhere so one slow or vanished peer does not hold the whole job back.
  while (config_.backups && out.size() < count && peer.leases.size() < cap) {
    if (!IssueBackup(peer, now, out)) break;
  }
  return out;
}

bool Scheduler::IssueBackup(Peer& peer, TimePoint now, std::vector<proto::Lease>& out) {
  std::size_t scanned = 0;
  for (const auto& [deadline, id] : deadlines_) {  // oldest leases first
    if (++scanned > kMaxReadyScan) break;
    const LeaseRecord& rec = leases_.at(id);
    auto jit = jobs_.find(rec.job);
    if (jit == jobs_.end()) continue;
    Job& job = *jit->second;
    if (proto::IsFinal(job.state) || !job.ready.empty() || !job.fresh.empty() ||
        rec.unit >= job.units.size())
      continue;
    if (!PeerMayRun(job, peer)) continue;
    Unit& unit = job.units[rec.unit];
    // One backup per unit beyond what its quorum needs, within max_replicas.
    if (unit.in_flight.size() > job.policy.replicas || unit.issued >= job.policy.max_replicas)
      continue;
    if (!Eligible(unit, peer)) continue;
    // Skip units that started just now: a backup only pays off for units that have been running
    // a while compared with their expected time.
    const double expected = job.unit_work / std::max(1e-9, RateFor(job, FindPeer(rec.peer)));
    if (Seconds(now - rec.issued_at) < config_.backup_after * expected) continue;
    ++stats_.backups_issued;
    out.push_back(MakeLease(job, rec.unit, peer, now));
    return true;
  }
  return false;
}

bool Scheduler::AnyEligiblePeer(const Job& job, const Unit& unit) const {
  for (const auto& [h, p] : peers_) {
    if (p.state == proto::PeerState::kPaused || !PeerMayRun(job, p)) continue;
    if (Barred(p)) continue;
    if (Eligible(unit, p)) return true;
  }
  return false;
}

bool Scheduler::IssueSpotCheck(Peer& peer, TimePoint now, std::vector<proto::Lease>& out) {
  // A spot-check must look like fresh work to a group of colluders who compare notes: it goes
  // only to a host that has not seen the unit, and among a few accepted units drawn from every
  // running job of a task the peer runs, the one seen by the fewest hosts, none of them linked to
  // the peer's (same /24 or /64) if possible. See docs/cross-checking.md, "Spot-checks".
  std::vector<Job*> candidates;
  for (auto& [id, jp] : jobs_) {
    Job& job = *jp;
    if (!job.policy.adaptive || proto::IsFinal(job.state) || job.done == 0 || job.units.empty())
      continue;
    if (PeerMayRun(job, peer)) candidates.push_back(&job);
  }
  if (candidates.empty()) return false;
  Job* best_job = nullptr;
  std::uint32_t best_unit = 0;
  std::size_t best_score = SIZE_MAX;
  for (int attempt = 0; attempt < kSpotCheckDraws; ++attempt) {
    Job& job = *candidates[NextRandom() % candidates.size()];
    const auto ui = static_cast<std::uint32_t>(NextRandom() % job.units.size());
    const Unit& unit = job.units[ui];
    if (unit.state != Unit::State::kDone || unit.accepted_hash.empty() || SeenBy(unit, peer))
      continue;
    // Fewer viewers = less chance one of them is in the peer's group; a linked viewer (same
    // subnet) is likelier to be.
    std::size_t score = unit.peers.size();
    for (PeerHandle viewer : unit.peers) {
      auto hit = peers_.find(viewer);
      if (hit != peers_.end() && hit->second.link_key == peer.link_key) score += kLinkedPenalty;
    }
    if (score < best_score) {
      best_score = score;
      best_job = &job;
      best_unit = ui;
    }
  }
  if (best_job == nullptr) return false;
  // Not part of the unit's replication: never stored, never counted as a copy. The unit's peer
  // (and host) set still records it, so the same check never goes to a peer or host twice.
  out.push_back(NewLease(*best_job, best_unit, peer, now, /*spot_check=*/true));
  ++stats_.spot_checks;
  return true;
}

proto::Lease Scheduler::NewLease(Job& job, std::uint32_t ui, Peer& peer, TimePoint now,
                                 bool spot_check) {
  Unit& unit = job.units[ui];
  LeaseRecord rec;
  rec.id = next_lease_++;
  rec.job = job.id;
  rec.unit = ui;
  rec.peer = peer.handle;
  rec.issued_at = now;
  const double expected = job.unit_work / std::max(1e-9, RateFor(job, &peer));
  const Duration length =
      std::max(config_.lease_min, FromSeconds(std::min(expected * config_.lease_factor, 1e6)));
  rec.deadline = now + length;
  rec.spot_check = spot_check;
  if (spot_check) rec.expected_hash = unit.accepted_hash;
  leases_.emplace(rec.id, rec);
  deadlines_.emplace(rec.deadline, rec.id);
  peer.leases.insert(rec.id);
  unit.peers.insert(peer.handle);
  // Its host has seen the unit: no other copy and no spot-check of it goes there.
  if (config_.hosts.distinct != DistinctBy::kOff) unit.hosts.push_back(peer.host_key);
  if (!spot_check && listener_) listener_->OnLeaseIssued(rec, peer.hello.peer_id);

  proto::Lease l;
  l.lease_id = rec.id;
  l.job_id = job.id;
  l.unit_index = ui;
  l.task = std::string(job.task->Name());
  l.task_version = job.task->Version();
  l.unit = unit.spec;
  l.deadline_ms =
      static_cast<std::uint32_t>(std::min<std::int64_t>(ToMillis(length), 0xffffffffll));
  return l;
}

proto::Lease Scheduler::MakeLease(Job& job, std::uint32_t ui, Peer& peer, TimePoint now) {
  proto::Lease l = NewLease(job, ui, peer, now, /*spot_check=*/false);
  Unit& unit = job.units[ui];
  unit.in_flight.push_back(l.lease_id);
  ++unit.issued;
  ++job.running;
  job.state = proto::JobState::kRunning;
  dirty_.insert(job.id);
  ++stats_.leases_issued;
  if (!unit.checkpoint.empty() &&
      (job.policy.quorum <= 1 || unit.checkpoint_peer == peer.hello.peer_id))
    l.checkpoint = unit.checkpoint;
  return l;
}

void Scheduler::DropLease(LeaseId id, bool requeue, TimePoint) {
  auto it = leases_.find(id);
  if (it == leases_.end()) return;
  const LeaseRecord rec = it->second;
  leases_.erase(it);
  if (rec.spot_check) {  // not part of the unit's replication, never stored
    if (!rec.expired) deadlines_.erase({rec.deadline, id});
    if (auto pit = peers_.find(rec.peer); pit != peers_.end()) pit->second.leases.erase(id);
    return;
  }
  if (listener_) listener_->OnLeaseSettled(id);
  if (auto pit = peers_.find(rec.peer); pit != peers_.end()) pit->second.leases.erase(id);
  // Lost or handed back without a result: that peer may take the unit again (it computed nothing
  // the replicas would have to differ from), e.g. a worker restarted in place.
  if (!rec.expired) {
    Withdraw(rec, /*forget_peer=*/requeue, requeue);
  } else if (requeue) {
    // Expired earlier (the unit was requeued then, the slow peer keeping its turn); now the peer
    // says it no longer runs it: it may take the unit again, or with a small pool nobody might.
    ReleaseClaim(rec);
  }
}

void Scheduler::ReleaseClaim(const LeaseRecord& rec) {
  auto jit = jobs_.find(rec.job);
  if (jit == jobs_.end() || rec.unit >= jit->second->units.size()) return;
  ForgetUnitPeer(jit->second->units[rec.unit], rec.peer);
  work_added_ = true;
}

void Scheduler::Withdraw(const LeaseRecord& rec, bool forget_peer, bool requeue) {
  deadlines_.erase({rec.deadline, rec.id});
  auto jit = jobs_.find(rec.job);
  if (jit == jobs_.end()) return;
  Job& job = *jit->second;
  if (job.running > 0) --job.running;
  dirty_.insert(job.id);
  if (rec.unit >= job.units.size()) return;
  auto& fl = job.units[rec.unit].in_flight;
  fl.erase(std::remove(fl.begin(), fl.end(), rec.id), fl.end());
  if (forget_peer) ForgetUnitPeer(job.units[rec.unit], rec.peer);
  if (requeue) Requeue(job, rec.unit);
}

void Scheduler::Requeue(Job& job, std::uint32_t unit_index) {
  if (proto::IsFinal(job.state) || unit_index >= job.units.size()) return;
  Unit& unit = job.units[unit_index];
  if (unit.state != Unit::State::kPending) return;
  // Reissued units go first: they are the oldest work and hold the job's completion back.
  job.ready.push_front(unit_index);
  ++unit.queued;
  work_added_ = true;
  dirty_.insert(job.id);
}

void Scheduler::ForgetUnitPeer(Unit& unit, PeerHandle peer) {
  // A peer that answered stays excluded: replicas must come from other peers.
  for (const auto& rr : unit.results)
    if (rr.peer == peer) return;
  unit.peers.erase(peer);
  if (config_.hosts.distinct == DistinctBy::kOff) return;
  if (auto hit = host_by_handle_.find(peer); hit != host_by_handle_.end()) {
    auto h = std::find(unit.hosts.begin(), unit.hosts.end(), hit->second);
    if (h != unit.hosts.end()) unit.hosts.erase(h);
  }
}

bool Scheduler::OnCheckpoint(PeerHandle peer, const proto::Checkpoint& cp, TimePoint now) {
  auto lit = leases_.find(cp.lease_id);
  if (lit == leases_.end()) return false;
  const LeaseRecord& rec = lit->second;
  if (rec.peer != peer || rec.job != cp.job_id || rec.unit != cp.unit_index) return false;
  auto jit = jobs_.find(rec.job);
  auto pit = peers_.find(peer);
  if (jit == jobs_.end() || pit == peers_.end() || proto::IsFinal(jit->second->state)) return false;
  if (rec.unit >= jit->second->units.size()) return false;
  Unit& unit = jit->second->units[rec.unit];
  if (unit.state != Unit::State::kPending) return false;
  // Replicas may checkpoint the same unit: keep the most advanced state.
  if (!unit.checkpoint.empty() && cp.fraction < unit.checkpoint_fraction) return false;
  unit.checkpoint = cp.state;
  unit.checkpoint_fraction = cp.fraction;
  unit.checkpoint_peer = pit->second.hello.peer_id;
  pit->second.last_seen = now;
  if (listener_) listener_->OnCheckpoint(*jit->second, rec.unit);
  return true;
}

void Scheduler::ReturnLeases(PeerHandle peer, const std::vector<LeaseId>& leases, TimePoint now) {
  for (LeaseId id : leases) {
    auto it = leases_.find(id);
    if (it == leases_.end() || it->second.peer != peer) continue;
    DropLease(id, /*requeue=*/true, now);
  }
}

// ------------------------------------------------------------------------- the result path
// A result goes through: settle its lease, then either judge the peer (spot-check) or count its
// vote, then decide the unit (accept an answer, fail the unit, or ask for another copy), then
// finish the job when its last unit is decided.

std::optional<LeaseRecord> Scheduler::SettleLease(PeerHandle peer, const proto::ResultMsg& r,
                                                  ResultEffect& effect) {
  auto lit = leases_.find(r.lease_id);
  if (lit == leases_.end()) {
    effect.kind = ResultEffect::Kind::kStale;
    effect.reason = "lease " + std::to_string(r.lease_id) + " is unknown or already settled";
    ++stats_.results_stale;
    return std::nullopt;
  }
  const LeaseRecord rec = lit->second;
  if (rec.peer != peer || rec.job != r.job_id || rec.unit != r.unit_index) {
    effect.kind = ResultEffect::Kind::kRejected;
    effect.reason = "result does not match lease " + std::to_string(r.lease_id);
    ++stats_.results_rejected;
    return std::nullopt;
  }
  DropLease(r.lease_id, /*requeue=*/false, TimePoint{});
  return rec;
}

void Scheduler::JudgeSpotCheck(const std::string& peer_id, const LeaseRecord& rec,
                               const proto::ResultMsg& r, TimePoint now, double wall_now,
                               ResultEffect& effect) {
  effect.kind = ResultEffect::Kind::kAccepted;
  if (r.outcome != proto::UnitOutcome::kOk) return;  // an error proves nothing either way
  if (r.hash == rec.expected_hash) {
    CheckPassed(peer_id);
    return;
  }
  ++stats_.spot_checks_failed;
  effect.reason = "failed a spot-check";
  SC_LOG(Warn) << "peer " << peer_id << " failed a spot-check on job " << rec.job << " unit "
               << rec.unit;
  Offence(peer_id, now, wall_now);
}

ResultEffect Scheduler::OnResult(PeerHandle peer_handle, const proto::ResultMsg& r, TimePoint now,
                                 double wall_now) {
  ResultEffect effect;
  const std::optional<LeaseRecord> settled = SettleLease(peer_handle, r, effect);
  if (!settled) return effect;
  const LeaseRecord& rec = *settled;
  auto pit = peers_.find(peer_handle);
  Peer* peer = pit == peers_.end() ? nullptr : &pit->second;
  if (peer) peer->last_seen = now;
  const std::string peer_id = peer ? peer->hello.peer_id : std::string();
  if (rec.spot_check) {
    JudgeSpotCheck(peer_id, rec, r, now, wall_now, effect);
    return effect;
  }
  Job& job = *jobs_.at(rec.job);
  if (proto::IsFinal(job.state) || job.units[rec.unit].state != Unit::State::kPending) {
    effect.kind = ResultEffect::Kind::kStale;
    effect.reason = "unit already settled";
    ++stats_.results_stale;
    return effect;
  }
  if (r.outcome == proto::UnitOutcome::kCancelled) {
    // The peer gave the unit back (shutdown or pause): not the unit's fault, and the peer may
    // take it again later.
    ForgetUnitPeer(job.units[rec.unit], peer_handle);
    Requeue(job, rec.unit);
    effect.kind = ResultEffect::Kind::kAccepted;
    return effect;
  }
  if (r.outcome == proto::UnitOutcome::kOk && std::isfinite(r.wall_seconds) &&
      r.wall_seconds >= 0) {
    job.measured_unit_seconds = job.measured_units == 0
                                    ? r.wall_seconds
                                    : 0.9 * job.measured_unit_seconds + 0.1 * r.wall_seconds;
    ++job.measured_units;
  }
  if (CountVote(job, rec.unit, peer, peer_id, r, effect)) {
    Decide(job, rec.unit, now, wall_now, effect);
    const Unit& unit = job.units[rec.unit];
    if (listener_ && unit.state == Unit::State::kPending && !unit.results.empty()) {
      // Undecided: the vote must survive a restart. The first vote of an answer carries it.
      const UnitResultRecord& vote = unit.results.back();
      auto g = unit.groups.find(vote.hash);
      const bool first =
          vote.outcome == proto::UnitOutcome::kOk && g != unit.groups.end() && g->second.first == 1;
      listener_->OnVote(job, rec.unit, vote, first ? g->second.second : std::string());
    }
  } else {
    FinishUnitIfDecided(job, rec.unit, effect);
  }
  MaybeFinishJob(job, wall_now, &effect);
  FlushRecords();
  return effect;
}

bool Scheduler::CountVote(Job& job, std::uint32_t ui, Peer* peer, const std::string& peer_id,
                          const proto::ResultMsg& r, ResultEffect& effect) {
  Unit& unit = job.units[ui];
  // One vote per peer per unit, whatever leases it held: a peer that got the unit again after
  // handing it back (or after being lost) must not count twice towards a quorum.
  for (const auto& prev : unit.results) {
    if (prev.peer_id == peer_id && prev.outcome == proto::UnitOutcome::kOk &&
        r.outcome == proto::UnitOutcome::kOk) {
      effect.kind = ResultEffect::Kind::kStale;
      effect.reason = "this peer already answered this unit";
      ++stats_.results_stale;
      return false;
    }
  }
  const PeerHandle handle = peer ? peer->handle : 0;
  unit.results.push_back(UnitResultRecord{handle, peer_id, r.outcome, r.hash, r.cpu_seconds});
  effect.kind = ResultEffect::Kind::kAccepted;
  if (r.outcome == proto::UnitOutcome::kFailed) {
    ++unit.errors;
    unit.failure = r.error;
    if (peer) ++peer->units_failed;
    return true;
  }
  auto git = unit.groups.find(r.hash);
  if (git == unit.groups.end()) {
    // The first payload of a group is kept; check it really hashes to what the peer claims, so a
    // peer cannot vote for one answer and upload another.
    const Hash256 h = Blake2b256(job.task->Canonicalize(r.payload));
    if (std::string_view(reinterpret_cast<const char*>(h.data()), h.size()) != r.hash) {
      effect.kind = ResultEffect::Kind::kRejected;
      effect.reason = "payload does not match its hash";
      ++stats_.results_rejected;
      ++unit.errors;
      unit.failure = "a peer sent a payload that does not match its hash";
      if (peer) ++peer->units_invalid;
      return false;
    }
    git = unit.groups.emplace(r.hash, std::make_pair(0u, r.payload)).first;
  }
  ++git->second.first;
  ++stats_.results_accepted;
  const std::uint32_t host_votes = HostVotes(unit, r.hash);
  if (host_votes < git->second.first) ++stats_.same_host_votes;  // counted once for its host
  if (job.policy.adaptive && host_votes >= job.policy.quorum)
    undecided_quorums_.emplace(job.id, ui);  // see DecideStalled
  return true;
}

std::optional<std::string> Scheduler::AcceptableAnswer(const Job& job, const Unit& unit) {
  for (const auto& entry : unit.groups) {
    const std::string& hash = entry.first;
    if (job.policy.adaptive ? GroupError(unit, hash) <= job.policy.target_error
                            : HostVotes(unit, hash) >= job.policy.quorum)
      return hash;
  }
  // A pool too small to reach the credibility bound (fewer than about 5 fresh peers): rather than
  // wait for peers that may never come, accept an undisputed quorum once no connected peer may
  // run another copy, and say so. Copies still queued do not count: nobody can take them. These
  // answers then serve as spot-checks, so credibility can grow from here.
  if (!job.policy.adaptive || unit.groups.size() != 1 || !unit.in_flight.empty())
    return std::nullopt;
  const std::string& hash = unit.groups.begin()->first;
  if (HostVotes(unit, hash) < job.policy.quorum || AnyEligiblePeer(job, unit)) return std::nullopt;
  ++stats_.quorum_fallbacks;
  if (stats_.quorum_fallbacks == 1 || stats_.quorum_fallbacks % 1000 == 0)
    SC_LOG(Warn)
        << "too few peers to reach the credibility bound; accepted by an undisputed quorum of "
        << job.policy.quorum << " (" << stats_.quorum_fallbacks << " units so far)";
  return hash;
}

void Scheduler::Decide(Job& job, std::uint32_t ui, TimePoint now, double wall_now,
                       ResultEffect& effect) {
  Unit& unit = job.units[ui];
  if (unit.state != Unit::State::kPending) return;
  if (auto hash = AcceptableAnswer(job, unit)) {
    AcceptUnit(job, ui, *hash, now, wall_now, effect);
  } else {
    FinishUnitIfDecided(job, ui, effect);
  }
}

void Scheduler::AcceptUnit(Job& job, std::uint32_t ui, const std::string& hash, TimePoint now,
                           double wall_now, ResultEffect& effect) {
  Unit& unit = job.units[ui];
  unit.state = Unit::State::kDone;
  unit.result = std::move(unit.groups.at(hash).second);
  unit.accepted_hash = hash;
  unit.checkpoint = std::string();
  undecided_quorums_.erase({job.id, ui});
  if (unit.groups.size() > 1) ++stats_.replicas_disagreed;
  CreditVoters(job, ui, hash);
  // Outvoted peers returned a wrong answer: in adaptive jobs that is an offence.
  if (job.policy.adaptive) {
    std::vector<std::string> losers;
    for (const auto& rr : unit.results)
      if (rr.outcome == proto::UnitOutcome::kOk && rr.hash != hash) losers.push_back(rr.peer_id);
    for (const auto& l : losers) Offence(l, now, wall_now);
  }
  unit.groups.clear();
  for (LeaseId other : std::vector<LeaseId>(unit.in_flight)) {
    effect.cancel.emplace_back(leases_.at(other).peer, other);
    DropLease(other, /*requeue=*/false, now);
  }
  if (unit.queued > 0) {
    // Only `ready` can hold it: a unit in `fresh` has never been leased, so it has no result.
    job.ready.erase(std::remove(job.ready.begin(), job.ready.end(), ui), job.ready.end());
    unit.queued = 0;
  }
  ++job.done;
  ++stats_.units_validated;
  if (listener_) listener_->OnUnitValidated(job, ui);
  effect.kind = ResultEffect::Kind::kUnitValidated;
  dirty_.insert(job.id);
}

void Scheduler::CreditVoters(Job& job, std::uint32_t ui, const std::string& hash) {
  Unit& unit = job.units[ui];
  for (const auto& rr : unit.results) {
    if (rr.outcome != proto::UnitOutcome::kOk) continue;
    auto p = peers_.find(rr.peer);
    if (rr.hash != hash) {
      ++MutableRecord(rr.peer_id).invalid;
      if (p != peers_.end()) ++p->second.units_invalid;
      continue;
    }
    job.cpu_seconds += rr.cpu_seconds;
    PeerRecord& record = MutableRecord(rr.peer_id);
    ++record.validated;
    record.cpu_seconds_validated += rr.cpu_seconds;
    // Agreeing with an answer that the other voters alone make very likely right is as good as
    // passing a spot-check: the peer could not know its answer would be compared.
    // The others are the other hosts: a second key of the peer's own host vouches for nothing.
    if (job.policy.adaptive &&
        AgreementIsCheck(config_.credibility, GroupError(unit, hash, HostOfPeer(rr.peer_id))))
      CheckPassed(rr.peer_id);
    accepted_by_[rr.peer_id].emplace_back(job.id, ui);
    if (p != peers_.end()) {
      ++p->second.units_done;
      p->second.cpu_seconds_validated += rr.cpu_seconds;
    }
  }
}

void Scheduler::DecideStalled(TimePoint now, double wall_now, TickEffect& tick) {
  // Units with an undisputed quorum short of the credibility bound are decided when a result
  // arrives; but the last thing that happens to such a unit may be that a copy in flight is lost
  // or expires, or that the last peer able to run another copy leaves or pauses, and then no
  // result ever comes to decide it. Looked at again on every tick.
  for (auto it = undecided_quorums_.begin(); it != undecided_quorums_.end();) {
    const auto [jid, ui] = *it;
    auto jit = jobs_.find(jid);
    if (jit == jobs_.end() || proto::IsFinal(jit->second->state) ||
        ui >= jit->second->units.size() || jit->second->units[ui].state != Unit::State::kPending) {
      it = undecided_quorums_.erase(it);
      continue;
    }
    ++it;  // Decide may erase this entry
    Job& job = *jit->second;
    if (!job.units[ui].in_flight.empty()) continue;  // a copy is running: its result decides
    ResultEffect effect;
    Decide(job, ui, now, wall_now, effect);
    MaybeFinishJob(job, wall_now, &effect);
    tick.cancel.insert(tick.cancel.end(), effect.cancel.begin(), effect.cancel.end());
    if (effect.job_finished) tick.jobs_finished.push_back(*effect.job_finished);
  }
}

void Scheduler::Offence(const std::string& peer_id, TimePoint now, double wall_now) {
  PeerRecord& rec = MutableRecord(peer_id);
  ++stats_.offences;
  const bool peer_blacklisted = RecordOffence(config_.credibility, rec);
  // The host's budget goes too: every key of the host starts again from nothing, and a host
  // whose keys keep lying is blacklisted whole (new keys from it are refused by Join).
  const std::string host_key = HostOfPeer(peer_id);
  // A peer that is its own host ("peer:") is judged by blacklist_after alone.
  HostRules rules = config_.hosts;
  if (host_key.starts_with("peer:")) rules.host_blacklist_after = 0;
  const bool host_blacklisted = RecordHostOffence(rules, MutableHost(host_key));
  if (peer_blacklisted) {
    ++stats_.blacklisted;
    SC_LOG(Warn) << "peer " << peer_id << " blacklisted after " << rec.offences << " wrong answers";
  }
  if (host_blacklisted) {
    ++stats_.hosts_blacklisted;
    SC_LOG(Warn) << "host " << host_key << " blacklisted after " << hosts_[host_key].offences
                 << " wrong answers from its peers";
  }
  if (peer_blacklisted || host_blacklisted) {
    for (auto& [h, p] : peers_) {
      if (p.hello.peer_id != peer_id && !(host_blacklisted && p.host_key == host_key)) continue;
      for (LeaseId id : std::vector<LeaseId>(p.leases.begin(), p.leases.end()))
        DropLease(id, true, now);
    }
  }
  // Backtracking: every unit accepted with this peer's vote — or, the host's budget having gone
  // too, with a vote of another key of its host — is checked again with the lowered credibility;
  // where the rest of the group no longer meets the bound, the unit is reopened.
  std::vector<std::string> voters{peer_id};
  if (!host_key.starts_with("peer:"))
    for (const auto& [id, host] : host_by_id_)
      if (host == host_key && id != peer_id) voters.push_back(id);
  std::vector<std::pair<JobId, std::uint32_t>> units;
  for (const auto& id : voters) {
    auto it = accepted_by_.find(id);
    if (it == accepted_by_.end()) continue;
    units.insert(units.end(), it->second.begin(), it->second.end());
    // Kept until the peer is blacklisted: each later offence lowers its credibility again.
    if (Credibility(id) == 0.0) accepted_by_.erase(it);
  }
  for (auto [jid, ui] : units) {
    auto jit = jobs_.find(jid);
    if (jit == jobs_.end()) continue;
    Job& job = *jit->second;
    if (!job.policy.adaptive || proto::IsFinal(job.state) || ui >= job.units.size()) continue;
    Unit& unit = job.units[ui];
    if (unit.state != Unit::State::kDone) continue;
    if (GroupError(unit, unit.accepted_hash) <= job.policy.target_error) continue;
    unit.state = Unit::State::kPending;
    unit.groups[unit.accepted_hash] = std::make_pair(0u, std::move(unit.result));
    unit.result.clear();
    unit.accepted_hash.clear();
    --job.done;
    ++stats_.backtracked;
    if (listener_) listener_->OnUnitReopened(job, ui);
    Requeue(job, ui);
  }
  (void)wall_now;
}

void Scheduler::FinishUnitIfDecided(Job& job, std::uint32_t ui, ResultEffect& effect) {
  Unit& unit = job.units[ui];
  if (unit.state != Unit::State::kPending || !unit.in_flight.empty() || unit.queued > 0) return;
  std::string why;
  if (unit.errors >= job.policy.max_errors) {
    why = "failed on " + std::to_string(unit.errors) + " run(s): " + unit.failure;
  } else if (unit.issued >= job.policy.max_replicas) {
    why = "no quorum of " + std::to_string(job.policy.quorum) + " after " +
          std::to_string(unit.issued) + " replicas (" + std::to_string(unit.groups.size()) +
          " different answers)";
  }
  if (why.empty()) {
    Requeue(job, ui);
    return;
  }
  unit.state = Unit::State::kFailed;
  unit.failure = why;
  ++job.failed;
  ++stats_.units_failed;
  job.failures.push_back(proto::UnitFailure{ui, why});
  undecided_quorums_.erase({job.id, ui});
  if (listener_) listener_->OnUnitFailed(job, ui);
  dirty_.insert(job.id);
  (void)effect;
}

void Scheduler::MaybeFinishJob(Job& job, double wall_now, ResultEffect* effect) {
  if (proto::IsFinal(job.state) || job.done + job.failed < job.units.size()) return;
  if (job.failed > 0) {
    job.state = proto::JobState::kFailed;
    job.error = std::to_string(job.failed) + " of " + std::to_string(job.units.size()) +
                " units failed; first: unit " + std::to_string(job.failures.front().unit_index) +
                ": " + job.failures.front().reason;
  } else {
    std::vector<std::string> results;
    results.reserve(job.units.size());
    for (auto& u : job.units) results.push_back(std::move(u.result));
    auto merged = job.task->Merge(job.params, results);
    if (merged.ok()) {
      job.result = std::move(*merged);
      job.state = proto::JobState::kDone;
    } else {
      job.state = proto::JobState::kFailed;
      job.error = "merge failed: " + merged.status().ToString();
    }
  }
  // Settle leases that are still out (expired ones whose peers are slow).
  for (auto& u : job.units) {
    for (LeaseId other : std::vector<LeaseId>(u.in_flight)) {
      if (effect) effect->cancel.emplace_back(leases_.at(other).peer, other);
      DropLease(other, false, TimePoint{});
    }
  }
  std::vector<LeaseId> expired;
  for (auto& [lid, rec] : leases_)
    if (rec.job == job.id) expired.push_back(lid);
  for (LeaseId lid : expired) {
    if (effect) effect->cancel.emplace_back(leases_.at(lid).peer, lid);
    DropLease(lid, false, TimePoint{});
  }
  job.units_total_final = job.units.size();
  job.units.clear();
  job.units.shrink_to_fit();
  job.ready.clear();
  job.fresh.clear();
  job.finished_wall = wall_now;
  if (listener_) listener_->OnJobFinished(job);
  dirty_.insert(job.id);
  if (effect) effect->job_finished = job.id;
}

TickEffect Scheduler::Tick(TimePoint now, double wall_now) {
  TickEffect effect;
  std::vector<PeerHandle> lost;
  for (const auto& [h, p] : peers_)
    if (now - p.last_seen >= config_.peer_timeout) lost.push_back(h);
  for (PeerHandle h : lost) {
    RemovePeer(h, now);
    ++stats_.peers_lost;
    effect.lost_peers.push_back(h);
  }
  while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
    const LeaseId id = deadlines_.begin()->second;
    deadlines_.erase(deadlines_.begin());
    auto it = leases_.find(id);
    if (it == leases_.end()) continue;
    LeaseRecord& rec = it->second;
    if (rec.spot_check) {  // an unanswered spot-check is simply forgotten
      rec.expired = true;
      DropLease(id, false, now);
      continue;
    }
    rec.expired = true;
    ++stats_.leases_expired;
    effect.expired_leases.push_back(id);
    if (auto pit = peers_.find(rec.peer); pit != peers_.end()) ++pit->second.timeouts;
    Withdraw(rec, /*forget_peer=*/false, /*requeue=*/true);  // the slow peer keeps its turn
  }
  DecideStalled(now, wall_now, effect);
  FlushRecords();
  if (wall_now > 0 && now >= next_retention_check_) {
    ForgetOldJobs(wall_now);
    next_retention_check_ = now + std::chrono::seconds(10);
  }
  return effect;
}

std::optional<TimePoint> Scheduler::NextDeadline() const {
  if (deadlines_.empty()) return std::nullopt;
  return deadlines_.begin()->first;
}

Status Scheduler::Restore(std::vector<RecoveredJob> jobs, const std::vector<RecoveredLease>& leases,
                          JobId next_job, TimePoint now) {
  next_job_ = std::max(next_job_, next_job);
  for (auto& rj : jobs) {
    std::unique_ptr<Job> job = RestoreJob(rj);
    next_job_ = std::max(next_job_, job->id + 1);
    if (!job->spec.client_token.empty())
      tokens_[TokenKey(job->owner, job->spec.client_token)] = job->id;
    jobs_.emplace(job->id, std::move(job));
  }
  for (const auto& rl : leases) RestoreLease(rl, now);
  for (auto& [id, jp] : jobs_) {
    if (proto::IsFinal(jp->state)) continue;
    QueueRestored(*jp);
    MaybeFinishJob(*jp, WallSeconds(), nullptr);
    dirty_.insert(id);
  }
  work_added_ = true;
  return OkStatus();
}

std::unique_ptr<Job> Scheduler::RestoreJob(RecoveredJob& rj) {
  auto job = std::make_unique<Job>();
  job->id = rj.id;
  job->seq = ++seq_;
  job->owner = std::move(rj.owner);
  job->spec = std::move(rj.spec);
  job->input_bytes = job->spec.input.size();
  const Status resolved = ResolveTask(*job);
  job->state = rj.state;
  job->submitted_wall = rj.submitted_wall;
  job->finished_wall = rj.finished_wall;
  job->cpu_seconds = rj.cpu_seconds;
  job->error = std::move(rj.error);
  job->result = std::move(rj.result);
  job->failures = std::move(rj.failures);
  job->units_total_final = rj.units;
  if (proto::IsFinal(job->state)) {  // what Info() reports of a finished job
    job->done = job->state == proto::JobState::kDone ? rj.units : 0;
    job->failed = job->failures.size();
    return job;
  }
  if (job->task == nullptr) {
    job->state = proto::JobState::kFailed;
    job->error = "task " + job->spec.task + " cannot run here any more: " + resolved.message();
    return job;
  }
  if (Status s = BuildUnits(*job, rj.units); !s.ok()) {
    job->state = proto::JobState::kFailed;
    job->error = "could not split the job again after a restart: " + s.ToString();
    job->units.clear();
    return job;
  }
  for (auto& [ui, result] : rj.validated) {
    if (ui >= job->units.size()) continue;
    job->units[ui].state = Unit::State::kDone;
    job->units[ui].result = std::move(result);
    ++job->done;
  }
  RestoreUnitState(*job, rj);
  job->params.input.clear();
  job->spec.input.clear();
  return job;
}

void Scheduler::RestoreLease(const RecoveredLease& rl, TimePoint now) {
  // A lease that was out when the coordinator stopped stays with its peer until the deadline.
  auto jit = jobs_.find(rl.job);
  if (jit == jobs_.end() || proto::IsFinal(jit->second->state) ||
      rl.unit >= jit->second->units.size())
    return;
  Job& job = *jit->second;
  Unit& unit = job.units[rl.unit];
  if (unit.state != Unit::State::kPending) return;
  LeaseRecord rec;
  rec.id = rl.id;
  rec.job = rl.job;
  rec.unit = rl.unit;
  rec.peer = 0;  // attached when the peer says hello again
  rec.issued_at = now;
  rec.deadline = now + std::max(Duration::zero(), rl.remaining);
  leases_.emplace(rec.id, rec);
  deadlines_.emplace(rec.deadline, rec.id);
  orphan_leases_[rl.peer_id].push_back(rec.id);
  unit.in_flight.push_back(rec.id);
  unit.peers.insert(HandleFor(rl.peer_id));
  ++unit.issued;
  ++job.running;
  job.state = proto::JobState::kRunning;
  next_lease_ = std::max(next_lease_, rl.id + 1);
}

void Scheduler::QueueRestored(Job& job) {
  for (std::uint32_t i = 0; i < job.units.size(); ++i) {
    Unit& u = job.units[i];
    if (u.state != Unit::State::kPending) continue;
    std::uint32_t have = static_cast<std::uint32_t>(u.in_flight.size());
    for (const auto& rr : u.results) have += rr.outcome == proto::UnitOutcome::kOk ? 1 : 0;
    if (have == 0 && u.peers.empty() && job.policy.replicas > 0) {
      job.fresh.push_back(i);  // never given to anyone: any peer may take it
      u.queued = job.policy.replicas;
      continue;
    }
    // Votes restored but undecided, nothing in flight: at least one more copy.
    const std::uint32_t want = std::max(job.policy.replicas, u.in_flight.empty() ? have + 1 : have);
    for (std::uint32_t r = have; r < want; ++r) {
      job.ready.push_back(i);
      ++u.queued;
    }
  }
  ShuffleFresh(job);
}

void Scheduler::RestoreUnitState(Job& job, RecoveredJob& rj) {
  // Failed units, votes and checkpoints of the job's undecided units, as committed.
  for (auto& [ui, reason] : rj.failed_units) {
    if (ui >= job.units.size() || job.units[ui].state != Unit::State::kPending) continue;
    Unit& u = job.units[ui];
    u.state = Unit::State::kFailed;
    u.failure = reason;
    ++job.failed;
    job.failures.push_back(proto::UnitFailure{ui, reason});
  }
  for (auto& v : rj.votes) {
    if (v.unit >= job.units.size() || job.units[v.unit].state != Unit::State::kPending) continue;
    Unit& u = job.units[v.unit];
    UnitResultRecord rr = v.record;
    rr.peer = HandleFor(rr.peer_id);
    u.peers.insert(rr.peer);  // it ran the unit: the distinct-peer rule holds across restarts
    ++u.issued;
    if (rr.outcome == proto::UnitOutcome::kFailed) {
      ++u.errors;
    } else {
      auto& group = u.groups[rr.hash];
      if (group.second.empty()) group.second = std::move(v.payload);
      ++group.first;
      if (job.policy.adaptive && group.first >= job.policy.quorum)
        undecided_quorums_.emplace(job.id, v.unit);
    }
    u.results.push_back(std::move(rr));
  }
  for (auto& cp : rj.checkpoints) {
    if (cp.unit >= job.units.size() || job.units[cp.unit].state != Unit::State::kPending) continue;
    Unit& u = job.units[cp.unit];
    u.checkpoint = std::move(cp.state);
    u.checkpoint_fraction = cp.fraction;
    u.checkpoint_peer = cp.peer_id;
  }
}

std::vector<JobId> Scheduler::TakeDirtyJobs() {
  std::vector<JobId> out(dirty_.begin(), dirty_.end());
  dirty_.clear();
  return out;
}

}  // namespace sparecycles::coordinator
