// The coordinator's durable store: one SQLite database (WAL, synchronous=FULL) under --data.
// It listens to the scheduler and buffers every change; Commit() writes them in one transaction
// per event-loop turn, and only then are results acknowledged to peers and submissions to
// clients. Load() reads everything back after a restart. Owned by the event-loop thread.
// Schema: docs/architecture.md ("Durability").
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "sparecycles/coordinator/scheduler.hpp"
#include "sparecycles/core/status.hpp"

struct sqlite3;
struct sqlite3_stmt;

namespace sparecycles::coordinator {

class Store final : public SchedulerListener {
 public:
  /// Opens (creating if needed) <dir>/coordinator.db. Errors: Unavailable, DataLoss.
  static Result<std::unique_ptr<Store>> Open(const std::string& dir);
  ~Store() override;

  /// Who uploaded a package first, and its size: bytes held against that key's quota.
  struct PackageOwner {
    std::string package;  // id, hex
    std::string owner;    // client key, hex
    std::uint64_t bytes = 0;
  };
  struct Loaded {
    std::vector<PackageOwner> package_owners;
    std::vector<RecoveredJob> jobs;  // with their validated units, votes, failed units, checkpoints
    std::vector<RecoveredLease> leases;
    std::vector<std::pair<std::string, PeerRecord>> records;  // peers' credibility and credit
    JobId next_job = 1;
  };
  /// Which finished jobs are kept (the rest are deleted, not loaded).
  struct Retention {
    std::size_t max_finished = 10000;  // Default: 10000
    double seconds = 7 * 86400.0;      // Default: 7 days
  };
  /// Reads back every unfinished job with its state, the finished jobs within `keep`, open leases
  /// and peer records. `wall_now` turns stored deadlines into time remaining.
  Result<Loaded> Load(double wall_now, const Retention& keep);
  Result<Loaded> Load(double wall_now) { return Load(wall_now, Retention{}); }

  /// Writes everything buffered since the last call in one transaction.
  Status Commit();
  bool dirty() const { return pending_ > 0; }
  /// `PRAGMA integrity_check` == "ok".
  Result<std::string> IntegrityCheck();
  std::uint64_t commits() const { return commits_; }

  // SchedulerListener: each call runs its statement inside the open transaction.
  void OnJobSubmitted(const Job& job) override;
  void OnUnitValidated(const Job& job, std::uint32_t unit) override;
  void OnJobFinished(const Job& job) override;
  void OnLeaseIssued(const LeaseRecord& lease, const std::string& peer_id) override;
  void OnLeaseSettled(LeaseId lease) override;
  void OnPeerRecord(const std::string& peer_id, const PeerRecord& record) override;
  void OnVote(const Job& job, std::uint32_t unit, const UnitResultRecord& vote,
              const std::string& payload) override;
  void OnUnitFailed(const Job& job, std::uint32_t unit) override;
  void OnUnitReopened(const Job& job, std::uint32_t unit) override;
  void OnCheckpoint(const Job& job, std::uint32_t unit) override;
  void OnJobForgotten(JobId job) override;
  /// Not a scheduler event: the package service stored a package a client uploaded.
  void OnPackageStored(const PackageOwner& p);

  /// Wall-clock now, used to store lease deadlines (settable for tests).
  double (*wall_clock)() = &WallSeconds;

 private:
  Store() = default;
  Status Exec(const char* sql);
  Result<int> SchemaVersion();
  /// Creates a new store or upgrades an older one (docs/architecture.md, "Durability").
  Status Migrate(const std::string& path);
  Status AddBlobVersions();
  Status DropExpiredJobs(double wall_now, const Retention& keep);
  void LoadUnitState(const std::map<JobId, std::size_t>& index, Loaded& out);
  void Begin();
  sqlite3_stmt* Prepare(const char* sql);
  void Fail(const char* what);

  sqlite3* db_ = nullptr;
  bool in_tx_ = false;
  std::uint64_t pending_ = 0, commits_ = 0;
  std::vector<sqlite3_stmt*> stmts_;
  sqlite3_stmt *insert_job_ = nullptr, *insert_unit_ = nullptr, *finish_job_ = nullptr,
               *delete_units_ = nullptr;
  sqlite3_stmt *insert_lease_ = nullptr, *delete_lease_ = nullptr, *upsert_peer_ = nullptr;
  sqlite3_stmt* delete_job_leases_ = nullptr;
  sqlite3_stmt *insert_vote_ = nullptr, *delete_unit_votes_ = nullptr, *insert_failed_ = nullptr;
  sqlite3_stmt *upsert_checkpoint_ = nullptr, *delete_unit_checkpoint_ = nullptr,
               *delete_unit_ = nullptr;
  sqlite3_stmt *delete_job_ = nullptr, *insert_package_owner_ = nullptr;
  std::vector<sqlite3_stmt*> delete_job_rows_;
};

}  // namespace sparecycles::coordinator
