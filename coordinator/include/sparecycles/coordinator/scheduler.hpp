// The scheduler: all coordinator state (jobs, units, leases, peers) and every decision about it.
// Pure logic: no sockets, no threads, no clock reads — callers pass `now`. One thread owns a
// Scheduler (the coordinator's event loop); it is not thread-safe and needs no locks.
// Decisions: pull leasing with deadlines, fair share across jobs by priority, replication with a
// quorum of canonical-result hashes, distinct peers (and hosts) per unit, reissue on loss or
// expiry; the Sybil bounds of docs/cross-checking.md (hosts, enrollment rate, host credibility).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "sparecycles/core/clock.hpp"
#include "sparecycles/core/protocol.hpp"
#include "sparecycles/core/status.hpp"
#include "sparecycles/tasks/task.hpp"

namespace sparecycles::coordinator {

using PeerHandle = std::uint64_t;
using JobId = std::uint64_t;
using LeaseId = std::uint64_t;

struct ReplicationPolicy {
  std::uint32_t replicas = 1;      // copies issued at first. Default: 1 (trusted cluster)
  std::uint32_t quorum = 1;        // matching results needed. Default: 1
  std::uint32_t max_replicas = 4;  // most copies ever issued for one unit. Default: 4
  std::uint32_t max_errors = 3;    // failed runs after which the unit fails. Default: 3
  // Credibility-based acceptance (docs/cross-checking.md): instead of a fixed quorum, a unit is
  // accepted once the chance that every peer in the agreeing group is a saboteur is at most
  // target_error, given each peer's record of passed spot-checks. Default: off
  bool adaptive = false;
  double target_error = 1e-3;  // the bound on a wrong accepted result. Default: 1e-3
};

/// How the scheduler judges peers (applies to adaptive jobs; records are kept for all).
struct CredibilityConfig {
  double saboteur_fraction = 0.2;  // f: assumed upper bound on the share of bad peers. Default: 0.2
  double spot_check_rate = 0.1;    // q: share of assignments that are spot-checks. Default: 0.1
  double spot_check_rate_new = 0.5;   // ...for peers with fewer than 5 passed checks. Default: 0.5
  std::uint32_t blacklist_after = 2;  // offences (failed spot-check, outvoted) before blacklisting
  // Agreeing with an accepted answer counts as a passed check when the other voters alone leave
  // at most this chance that it is wrong. Default: 0.05
  double agreement_check = 0.05;
  std::uint64_t seed = 0x5eed;  // for the spot-check draws (deterministic in tests)
};

/// What counts as one "host" for the Sybil rules (docs/cross-checking.md, "Sybils"): peers on one
/// host never get two copies of one unit, their agreeing votes count once, and they share one
/// credibility budget and one enrollment rate.
enum class DistinctBy : std::uint8_t {
  kOff,      // every peer id is its own host (trusted cluster pools)
  kHosts,    // one network address (IPv4 or IPv6) = one host
  kSubnets,  // one IPv4 /24 or IPv6 /64 = one host
};

/// The Sybil bounds: keys cost nothing, addresses do.
struct HostRules {
  DistinctBy distinct = DistinctBy::kOff;  // Default: off (the coordinator's volunteer pool: hosts)
  // Loopback addresses (127.0.0.0/8, ::1) are one host too; off, each peer on loopback is its own
  // host, so a whole test pool can run on one machine. Default: off
  bool loopback_is_one_host = false;
  // New peer ids a host may enroll per hour (Scheduler::Join); 0 = unlimited. Default: 0
  std::uint32_t new_peers_per_hour = 0;
  // Offences by a host's peers after which the host is blacklisted: its peers get no work and it
  // enrolls no new peer id. 0 = never. Default: 4
  std::uint32_t host_blacklist_after = 4;
};

/// What the scheduler knows of a host (HostRules) in memory: one credibility budget for all its
/// peers. Not stored: after a restart a host's budget starts again from its first returning peer.
struct HostRecord {
  std::uint32_t checks_passed = 0;  // checks passed by any of its peers since any one's offence
  std::uint32_t offences = 0;       // offences of all its peers
  bool blacklisted = false;
  std::deque<TimePoint> enrolled;  // when its new peer ids joined, within the last hour
  std::uint32_t peer_ids = 0;      // distinct peer ids seen from it
};

/// What the scheduler knows of a peer id across reconnects.
struct PeerRecord {
  std::uint32_t checks_passed = 0;  // spot-checks passed since the last offence
  std::uint32_t offences = 0;       // wrong answers caught (spot-check failed or outvoted)
  bool blacklisted = false;
  std::uint64_t validated = 0, invalid = 0;
  double cpu_seconds_validated = 0;
};

struct ResolvedTask {
  std::shared_ptr<const tasks::Task> task;
  std::string peer_key;
};

struct SchedulerConfig {
  Duration peer_timeout = std::chrono::seconds(60);  // silence before a peer is lost. Default: 60 s
  Duration lease_min = std::chrono::seconds(60);     // shortest lease. Default: 60 s
  double lease_factor = 5.0;       // lease = max(lease_min, factor x expected unit time)
  std::uint32_t prefetch = 64;     // most units a peer may hold beyond its slots (workers ask
                                   // for fewer unless units are short). Default: 64
  double prefetch_seconds = 0.05;  // ...and at most this much expected work per slot beyond
                                   // them: prefetch hides round trips for short units, but
                                   // long ones would sit on a busy peer while others idle.
  double unit_seconds = 1.0;       // target seconds per unit on a median peer. Default: 1
  std::uint64_t max_units_per_job = 1'000'000;
  HostRules hosts;            // the Sybil bounds (what one host may weigh)
  bool backups = true;        // back up straggling units when the queue is empty. Default: on
  double backup_after = 1.0;  // ...once they have run this many times their expected time
  ReplicationPolicy policy;   // default for jobs that do not set their own
  CredibilityConfig credibility;
  std::size_t max_jobs_kept = 10000;  // finished jobs kept for status queries. Default: 10000
  double retain_finished_seconds = 7 * 86400.0;  // ...and for at most this long. Default: 7 days
  // Resolves a task named "pkg:<id>" (a task package) to the task that stands in for it and the
  // TaskKey a peer must announce to run it, or an error for the submitter. Unset = packages are
  // refused. See coordinator/src/package_tasks.hpp.
  std::function<Result<ResolvedTask>(const std::string& task)> resolve_package;
};

/// How a peer's task speeds are keyed: "name/version" (a peer only gets units of versions it runs).
inline std::string TaskKey(std::string_view name, std::uint32_t version) {
  return std::string(name) + "/" + std::to_string(version);
}

struct PeerHello {
  std::string peer_id;
  // Where the peer connects from, for HostRules: the connection's IP address (the coordinator
  // reads ZeroMQ's "Peer-Address"), or a label chosen by the caller; empty = its own host.
  std::string host;
  std::string hostname;
  std::uint32_t cores = 1;
  std::uint64_t memory_bytes = 0;
  std::map<std::string, double> work_per_second;  // by TaskKey(name, version)
};

/// What the scheduler decided when a result arrived.
struct ResultEffect {
  enum class Kind { kAccepted, kUnitValidated, kStale, kRejected } kind = Kind::kRejected;
  std::string reason;                                  // for kRejected / kStale
  std::vector<std::pair<PeerHandle, LeaseId>> cancel;  // leases now pointless (unit done)
  std::optional<JobId> job_finished;
};

/// Leases that went back to the queue (peer lost or deadline passed).
struct TickEffect {
  std::vector<PeerHandle> lost_peers;
  std::vector<LeaseId> expired_leases;
  std::vector<std::pair<PeerHandle, LeaseId>> cancel;  // leases now pointless (units decided)
  std::vector<JobId> jobs_finished;                    // by units decided on this tick
};

struct UnitResultRecord {  // what a replica said about a unit
  PeerHandle peer = 0;
  std::string peer_id;
  proto::UnitOutcome outcome = proto::UnitOutcome::kOk;
  std::string hash;
  double cpu_seconds = 0;
};

struct Unit {
  enum class State : std::uint8_t { kPending, kDone, kFailed };
  State state = State::kPending;
  std::string spec;          // bytes from Task::Split
  std::uint32_t issued = 0;  // leases ever created
  std::uint32_t errors = 0;
  std::uint32_t queued = 0;  // copies waiting in the ready queue
  std::vector<LeaseId> in_flight;
  std::vector<UnitResultRecord> results;
  std::unordered_set<PeerHandle> peers;  // peers that were given this unit
  std::vector<std::string> hosts;        // their host keys (HostKey; not kept with kOff)
  std::map<std::string, std::pair<std::uint32_t, std::string>> groups;  // hash -> (votes, payload)
  std::string result;                                                   // accepted payload
  std::string accepted_hash;  // its canonical hash (for spot-checks)
  std::string failure;
  // The latest state a peer saved for this unit (proto::Checkpoint), handed out with the unit's
  // next lease so the work continues instead of starting over. Memory only; dropped when settled.
  std::string checkpoint;
  float checkpoint_fraction = 0;
  std::string checkpoint_peer;  // peer_id that uploaded it
};

struct Job {
  JobId id = 0;
  proto::JobSpecWire spec;
  const tasks::Task* task = nullptr;
  std::shared_ptr<const tasks::Task> owned_task;  // a package's stand-in, kept alive by its jobs
  std::string peer_key;  // what a peer must announce to be given its units (TaskKey)
  // Peers (by peer_id) that refused the job's package, and the first reason given.
  std::set<std::string> refused_by;
  std::string refusal;
  tasks::JobParams params;
  ReplicationPolicy policy;
  std::vector<Unit> units;
  // Units waiting for copies. `fresh` holds units never leased, once each (any peer may take
  // them); `ready` holds one entry per further copy of units already given to some peer, and
  // requeued units (at the front). Kept apart so a peer that ran ahead, whose own units fill the
  // front of `ready` waiting for other peers, still finds fresh work at once.
  std::deque<std::uint32_t> fresh;
  std::deque<std::uint32_t> ready;
  proto::JobState state = proto::JobState::kQueued;
  std::uint64_t done = 0, failed = 0, running = 0;
  double submitted_wall = 0, finished_wall = 0, cpu_seconds = 0;
  std::string error;
  std::string result;  // merged
  std::vector<proto::UnitFailure> failures;
  double unit_work = 0;  // task work units per unit (for lease deadlines)
  // Run time of this job's units as peers report it (an average that follows the latest results),
  // once `measured_units` of them came back. Prefetch decisions trust it over the declared time:
  // a package's manifest can only say "at least a second".
  double measured_unit_seconds = 0;
  std::uint64_t measured_units = 0;
  std::uint64_t units_total_final = 0;  // unit count once `units` has been released
  std::uint64_t seq = 0;                // submission order, for fairness ties
  // The client key (64 hex digits) that submitted the job; empty when the endpoint had no keys
  // (CURVE off) or the job predates owners. docs/security.md, "Client roles".
  std::string owner;
  std::uint64_t input_bytes = 0;  // the spec's input, counted against the owner's byte quota
};

struct Peer {
  PeerHandle handle = 0;
  PeerHello hello;
  std::string host_key;  // HostKey(hello.host) under the scheduler's HostRules
  std::string link_key;  // its /24 or /64 (or host_key): peers "linked" to it for spot-checks
  TimePoint connected_at{}, last_seen{};
  std::uint32_t slots = 0, idle_slots = 0;
  proto::PeerState state = proto::PeerState::kRunning;
  std::string reason;
  std::unordered_set<LeaseId> leases;
  std::uint64_t units_done = 0, units_invalid = 0, units_failed = 0, timeouts = 0;
  double cpu_seconds_validated = 0;
};

struct LeaseRecord {
  LeaseId id = 0;
  JobId job = 0;
  std::uint32_t unit = 0;
  PeerHandle peer = 0;
  TimePoint issued_at{}, deadline{};
  bool expired = false;     // deadline passed; the unit was reissued but a result is still welcome
  bool spot_check = false;  // a copy of an accepted unit, to test the peer; not part of the unit
  std::string expected_hash;
};

struct SchedulerStats {
  std::uint64_t leases_issued = 0, results_accepted = 0, results_stale = 0, results_rejected = 0;
  std::uint64_t units_validated = 0, units_failed = 0, leases_expired = 0, peers_lost = 0;
  std::uint64_t replicas_disagreed = 0, backups_issued = 0;
  std::uint64_t spot_checks = 0, spot_checks_failed = 0, offences = 0, blacklisted = 0,
                backtracked = 0;
  std::uint64_t quorum_fallbacks = 0;  // adaptive units accepted by quorum in a too-small pool
  std::uint64_t same_host_votes = 0;   // agreeing votes not counted again for their host
  std::uint64_t enrollments_refused = 0, hosts_blacklisted = 0;
};

/// Told about every change that must survive a crash (the durable store implements it).
/// Called synchronously from the scheduler's thread.
class SchedulerListener {
 public:
  virtual ~SchedulerListener() = default;
  virtual void OnJobSubmitted(const Job& job) = 0;
  virtual void OnUnitValidated(const Job& job, std::uint32_t unit) = 0;
  virtual void OnJobFinished(const Job& job) = 0;
  virtual void OnLeaseIssued(const LeaseRecord& lease, const std::string& peer_id) = 0;
  virtual void OnLeaseSettled(LeaseId lease) = 0;
  /// A peer's record (credibility, blacklist, validated work) changed.
  virtual void OnPeerRecord(const std::string& peer_id, const PeerRecord& record) = 0;
  /// A vote on a unit that stays undecided; `payload` is set for the first vote of its answer.
  virtual void OnVote(const Job&, std::uint32_t /*unit*/, const UnitResultRecord&,
                      const std::string& /*payload*/) {}
  /// A unit failed for good while its job goes on.
  virtual void OnUnitFailed(const Job&, std::uint32_t /*unit*/) {}
  /// A validated unit was reopened (backtracking after its voter was caught).
  virtual void OnUnitReopened(const Job&, std::uint32_t /*unit*/) {}
  /// The unit's kept checkpoint changed (Unit::checkpoint*).
  virtual void OnCheckpoint(const Job&, std::uint32_t /*unit*/) {}
  /// A finished job passed its retention and was dropped.
  virtual void OnJobForgotten(JobId) {}
};

/// What a restarted coordinator read back from its store.
struct RecoveredJob {
  JobId id = 0;
  std::string owner;
  proto::JobSpecWire spec;  // with its input
  std::uint64_t units = 0;
  proto::JobState state = proto::JobState::kQueued;
  double submitted_wall = 0, finished_wall = 0, cpu_seconds = 0;
  std::string error, result;
  std::vector<proto::UnitFailure> failures;
  std::map<std::uint32_t, std::string> validated;  // unit -> accepted payload (unfinished jobs)
  // What undecided units had gathered (unfinished jobs):
  struct Vote {
    std::uint32_t unit = 0;
    UnitResultRecord record;  // peer handle unset
    std::string payload;      // for the first vote of each answer
  };
  std::vector<Vote> votes;
  std::map<std::uint32_t, std::string> failed_units;  // unit -> reason
  struct Checkpoint {
    std::uint32_t unit = 0;
    std::string peer_id, state;
    float fraction = 0;
  };
  std::vector<Checkpoint> checkpoints;
};
struct RecoveredLease {
  LeaseId id = 0;
  JobId job = 0;
  std::uint32_t unit = 0;
  std::string peer_id;
  Duration remaining{};  // time left until the lease's deadline
};

class Scheduler {
 public:
  Scheduler(SchedulerConfig config, const tasks::Registry& registry, LeaseId first_lease_id = 1);

  void SetListener(SchedulerListener* listener) { listener_ = listener; }
  /// Rebuilds state after a restart: unfinished jobs continue without recomputing validated
  /// units; leases still running on peers stay honoured until their deadlines.
  Status Restore(std::vector<RecoveredJob> jobs, const std::vector<RecoveredLease>& leases,
                 JobId next_job, TimePoint now);
  JobId next_job_id() const { return next_job_; }
  /// Peers' records as they were before a restart (credibility survives it). Before Restore().
  void RestoreRecords(const std::vector<std::pair<std::string, PeerRecord>>& records);

  // ---- peers
  /// Admits a peer under HostRules and registers it (AddPeer): a peer id seen before is always
  /// admitted (a reconnect); a new one is refused (ResourceExhausted / FailedPrecondition, with the
  /// reason) when its host is blacklisted or has enrolled new_peers_per_hour ids in the last hour.
  Result<PeerHandle> Join(PeerHello hello, TimePoint now);
  /// Registers a peer without the enrollment rules (trusted callers and tests); counts it as
  /// enrolled from its host all the same.
  PeerHandle AddPeer(PeerHello hello, TimePoint now);
  /// The peer left or was lost: every lease it held goes back to the queue at once.
  void RemovePeer(PeerHandle peer, TimePoint now);
  void Touch(PeerHandle peer, TimePoint now);
  void SetCapacity(PeerHandle peer, const proto::Capacity& cap, TimePoint now);
  /// After a reconnect: keep the leases the peer still runs, requeue the ones it lost.
  void ReconcileLeases(PeerHandle peer, const std::vector<LeaseId>& running, TimePoint now);
  const Peer* FindPeer(PeerHandle peer) const;
  const std::unordered_map<PeerHandle, Peer>& peers() const { return peers_; }

  // ---- jobs
  /// Validates, plans and splits a job. The unit count follows the job's size and the peers'
  /// measured speed unless the spec fixes it.
  /// Who submits a job, and what must hold of it before it is accepted.
  struct Submitter {
    std::string owner;  // the client key; a client token names a job per owner
    /// Called once the job is split, before it is stored: an error refuses the job (quotas).
    std::function<Status(const Job&)> admit;
  };
  Result<JobId> Submit(const proto::JobSpecWire& spec, double wall_now, const Submitter& by = {});
  Status Cancel(JobId job, std::vector<std::pair<PeerHandle, LeaseId>>& to_cancel);
  const Job* FindJob(JobId job) const;
  proto::JobInfo Info(const Job& job) const;
  std::vector<proto::UnitFailure> Failures(const Job& job) const;
  /// Why queued units of `job` cannot go to any connected peer now (no peer runs the task, every
  /// such peer is paused or blacklisted, every one has already run the waiting unit); empty while
  /// some peer may take work of it.
  std::string WhyWaiting(const Job& job) const;
  const std::map<JobId, std::unique_ptr<Job>>& jobs() const { return jobs_; }

  // ---- work
  /// Leases up to `count` units to `peer` (capped by its slots + prefetch).
  std::vector<proto::Lease> Lease(PeerHandle peer, std::uint32_t count, TimePoint now);
  ResultEffect OnResult(PeerHandle peer, const proto::ResultMsg& result, TimePoint now,
                        double wall_now);
  /// A peer saved the state of a unit it runs. Kept (replacing an older, less advanced one) when
  /// the lease is live and the unit pending; returns whether it was kept. Forwarded with later
  /// leases of the unit: to any peer when the job's quorum is 1, otherwise only to the peer that
  /// saved it (a replica must not build on another peer's unchecked state).
  bool OnCheckpoint(PeerHandle peer, const proto::Checkpoint& cp, TimePoint now);
  /// Peers handed these leases back unfinished (graceful leave): requeue at once.
  void ReturnLeases(PeerHandle peer, const std::vector<LeaseId>& leases, TimePoint now);
  /// A peer will not run the package `task` ("pkg:<id>"): its leases of it go back without
  /// penalty and it is offered no more units of any job of that package. `reason` is shown to the
  /// submitter in JobInfo.waiting when no peer is left that would run them.
  void RefusePackage(PeerHandle peer, const std::string& task, const std::vector<LeaseId>& leases,
                     const std::string& reason, TimePoint now);
  /// Declares silent peers lost, reissues leases past their deadline, and decides units that
  /// nothing else would decide any more (an undisputed quorum that no connected peer can add to).
  TickEffect Tick(TimePoint now, double wall_now = 0);
  /// The next time Tick() has something to do (for the loop's poll timeout).
  std::optional<TimePoint> NextDeadline() const;

  /// Jobs whose progress changed since the last call (for watchers).
  std::vector<JobId> TakeDirtyJobs();
  /// True when units became ready since the last call (so waiting peers should be served).
  bool TakeWorkAdded() {
    const bool w = work_added_;
    work_added_ = false;
    return w;
  }
  const SchedulerStats& stats() const { return stats_; }
  /// A peer's credibility: 1 - f for a peer with no passed spot-check, 1 - f/(k e) after k
  /// (Sarmenta's bound with blacklisting), 0 once blacklisted.
  double Credibility(const std::string& peer_id) const;
  const PeerRecord* Record(const std::string& peer_id) const;
  /// The record of a host key (Peer::host_key), if any of its peers joined.
  const HostRecord* HostRecordOf(const std::string& host_key) const;
  /// The host key a peer id was last seen with ("peer:<id>" when it has none).
  std::string HostOfPeer(const std::string& peer_id) const;
  const SchedulerConfig& config() const { return config_; }
  std::size_t in_flight() const { return leases_.size(); }

 private:
  bool Eligible(const Unit& unit, const Peer& peer) const;
  /// The peer, or another peer of its host, was given the unit.
  bool SeenBy(const Unit& unit, const Peer& peer) const;
  /// The peer or its host is blacklisted: no work.
  bool Barred(const Peer& peer) const;
  /// The peer announces what the job needs and has not refused its package.
  bool PeerMayRun(const Job& job, const Peer& peer) const;
  /// Finds the task of job.spec (built-in, or a package's stand-in) and sets job.peer_key.
  Status ResolveTask(Job& job) const;
  double RateFor(const Job& job, const Peer* peer) const;
  /// Seconds a unit of `job` is expected to take on `peer`: measured once results came back,
  /// else from the job's unit work and the peer's rate.
  double ExpectedUnitSeconds(const Job& job, const Peer& peer) const;
  void Requeue(Job& job, std::uint32_t unit_index);
  void ForgetUnitPeer(Unit& unit, PeerHandle peer);
  /// The peer of an expired lease no longer runs it: it may take the unit again.
  void ReleaseClaim(const LeaseRecord& rec);
  void DropLease(LeaseId id, bool requeue, TimePoint now);
  // Takes a live lease out of its unit's replication: off the deadline index, out of the job's
  // running count and the unit's in-flight list; optionally lets its peer take the unit again
  // and puts the unit back in the queue. The one place this bookkeeping is done.
  void Withdraw(const LeaseRecord& rec, bool forget_peer, bool requeue);
  // The result path, in the order a result goes through it (OnResult).
  std::optional<LeaseRecord> SettleLease(PeerHandle peer, const proto::ResultMsg& r,
                                         ResultEffect& effect);
  void JudgeSpotCheck(const std::string& peer_id, const LeaseRecord& rec, const proto::ResultMsg& r,
                      TimePoint now, double wall_now, ResultEffect& effect);
  /// Records the result as a vote; false when it does not count (a second vote of one peer, a
  /// payload that does not match its hash).
  bool CountVote(Job& job, std::uint32_t unit_index, Peer* peer, const std::string& peer_id,
                 const proto::ResultMsg& r, ResultEffect& effect);
  /// Accepts an answer when the policy allows it, else fails the unit or asks for another copy.
  void Decide(Job& job, std::uint32_t unit_index, TimePoint now, double wall_now,
              ResultEffect& effect);
  std::optional<std::string> AcceptableAnswer(const Job& job, const Unit& unit);
  void AcceptUnit(Job& job, std::uint32_t unit_index, const std::string& hash, TimePoint now,
                  double wall_now, ResultEffect& effect);
  void CreditVoters(Job& job, std::uint32_t unit_index, const std::string& hash);
  void DecideStalled(TimePoint now, double wall_now, TickEffect& effect);
  void FinishUnitIfDecided(Job& job, std::uint32_t unit_index, ResultEffect& effect);
  void MaybeFinishJob(Job& job, double wall_now, ResultEffect* effect);
  /// Resolves the policy, plans and splits `job` (spec and task set) into `units` units, or as
  /// many as UnitCount() finds: the one place units are built, for Submit and Restore alike.
  Status BuildUnits(Job& job, std::optional<std::uint64_t> units);
  std::uint64_t UnitCount(const Job& job, const tasks::JobPlan& plan) const;
  /// Puts an adaptive job's fresh units in a random order (spot-checks look like fresh work).
  void ShuffleFresh(Job& job);
  std::unique_ptr<Job> RestoreJob(RecoveredJob& rj);
  void RestoreLease(const RecoveredLease& rl, TimePoint now);
  void QueueRestored(Job& job);
  void ForgetOldJobs(double wall_now);
  void RestoreUnitState(Job& job, RecoveredJob& rj);
  PeerRecord& MutableRecord(const std::string& peer_id);
  void FlushRecords();
  /// The job `peer` should get its next unit from, and where in its `ready` queue that unit is
  /// (none: take a fresh unit). `no_ready_for_peer`: a job whose bounded ready scan already
  /// failed for this peer during the current request.
  struct Pick {
    Job* job = nullptr;
    std::optional<std::size_t> ready_pos;
  };
  Pick PickJob(const Peer& peer, const Job* no_ready_for_peer = nullptr);
  /// Position in `job.ready` of the first copy `peer` may take, if any.
  std::optional<std::size_t> FindReady(const Job& job, const Peer& peer) const;
  bool IssueBackup(Peer& peer, TimePoint now, std::vector<proto::Lease>& out);
  PeerHandle HandleFor(const std::string& peer_id);
  /// The one lease constructor: the record, its deadline, the peer's and unit's bookkeeping and
  /// the wire form. MakeLease adds what a copy of the unit's replication needs.
  proto::Lease NewLease(Job& job, std::uint32_t unit, Peer& peer, TimePoint now, bool spot_check);
  proto::Lease MakeLease(Job& job, std::uint32_t unit, Peer& peer, TimePoint now);
  bool IssueSpotCheck(Peer& peer, TimePoint now, std::vector<proto::Lease>& out);
  bool AnyEligiblePeer(const Job& job, const Unit& unit) const;
  /// The chance that every host vouching for `hash` is a saboteur: one factor per distinct host
  /// (its most credible voter), leaving out `skip_host`.
  double GroupError(const Unit& unit, const std::string& hash,
                    const std::string& skip_host = {}) const;
  /// Distinct hosts among the voters for `hash` (the fixed quorum counts these).
  std::uint32_t HostVotes(const Unit& unit, const std::string& hash) const;
  HostRecord& MutableHost(const std::string& host_key);
  /// A check passed / an offence, on the peer's record and its host's.
  void CheckPassed(const std::string& peer_id);
  void Offence(const std::string& peer_id, TimePoint now, double wall_now);
  std::uint64_t NextRandom();

  SchedulerConfig config_;
  const tasks::Registry& registry_;
  std::unordered_map<PeerHandle, Peer> peers_;
  std::uint64_t pool_slots_ = 0;  // sum of the slots of every peer in peers_
  std::map<JobId, std::unique_ptr<Job>> jobs_;
  std::unordered_map<LeaseId, LeaseRecord> leases_;
  std::set<std::pair<TimePoint, LeaseId>> deadlines_;
  std::unordered_map<std::string, JobId> tokens_;  // TokenKey(owner, client token) -> job
  static std::string TokenKey(const std::string& owner, const std::string& token) {
    return owner + '/' + token;
  }
  std::unordered_map<std::string, std::vector<LeaseId>>
      orphan_leases_;  // by peer id, after Restore
  SchedulerListener* listener_ = nullptr;
  bool work_added_ = false;
  std::unordered_map<std::string, PeerRecord> records_;  // by peer id
  std::unordered_map<std::string, PeerHandle> handles_by_id_;
  std::unordered_map<std::string, HostRecord> hosts_;           // by host key
  std::unordered_map<std::string, std::string> host_by_id_;     // peer id -> host key
  std::unordered_map<PeerHandle, std::string> host_by_handle_;  // the same by handle
  // Units accepted with each peer's vote, for backtracking when the peer is caught.
  std::unordered_map<std::string, std::vector<std::pair<JobId, std::uint32_t>>> accepted_by_;
  std::uint64_t rng_;
  std::set<JobId> dirty_;
  // Adaptive units whose one answer has a quorum of votes but not yet the credibility bound: the
  // ones a tick may have to decide (DecideStalled).
  std::set<std::pair<JobId, std::uint32_t>> undecided_quorums_;
  std::set<std::string> dirty_records_;
  TimePoint next_retention_check_{};  // peer records changed since FlushRecords()
  PeerHandle next_peer_ = 1;
  JobId next_job_ = 1;
  LeaseId next_lease_;
  std::uint64_t seq_ = 0;
  SchedulerStats stats_;
};

}  // namespace sparecycles::coordinator
