#include "store.hpp"

#include <sqlite3.h>

#include <cstdlib>
#include <filesystem>

#include "sparecycles/core/codec.hpp"
#include "sparecycles/core/log.hpp"

namespace sparecycles::coordinator {
namespace {

// Schema version 3. Version 1 (release 0.1) had no `schema_version` row, no blob version
// bytes, no votes, failed units, checkpoints or peer credibility; version 2 no job owners and no
// package uploaders. Migrate() brings either forward.
constexpr int kSchemaVersion = 3;
// Every cereal blob starts with this byte, so a later layout of a stored struct can still read
// the older ones (a decoder per version).
constexpr char kBlobVersion = 1;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs(
  id INTEGER PRIMARY KEY,
  spec BLOB NOT NULL,            -- blob: proto::JobSpecWire (with its input while unfinished)
  units INTEGER NOT NULL,        -- the unit count Split() was called with
  state INTEGER NOT NULL,        -- proto::JobState
  submitted REAL NOT NULL,
  finished REAL NOT NULL DEFAULT 0,
  cpu_seconds REAL NOT NULL DEFAULT 0,
  error TEXT NOT NULL DEFAULT '',
  result BLOB,                   -- the merged result once done (task bytes)
  failures BLOB                  -- blob: std::vector<proto::UnitFailure> once finished
);
CREATE TABLE IF NOT EXISTS units(  -- accepted unit results of unfinished jobs
  job INTEGER NOT NULL,
  idx INTEGER NOT NULL,
  result BLOB NOT NULL,
  PRIMARY KEY(job, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS leases(
  id INTEGER PRIMARY KEY,
  job INTEGER NOT NULL,
  idx INTEGER NOT NULL,
  peer TEXT NOT NULL,
  deadline REAL NOT NULL          -- wall-clock seconds since the epoch
);
CREATE TABLE IF NOT EXISTS peers(
  peer TEXT PRIMARY KEY,
  units_done INTEGER NOT NULL,
  units_invalid INTEGER NOT NULL,
  cpu_validated REAL NOT NULL
) WITHOUT ROWID;
)sql";

// Added by schema 2 (also run on a fresh store).
constexpr const char* kSchema2 = R"sql(
ALTER TABLE peers ADD COLUMN checks_passed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE peers ADD COLUMN offences INTEGER NOT NULL DEFAULT 0;
ALTER TABLE peers ADD COLUMN blacklisted INTEGER NOT NULL DEFAULT 0;
CREATE TABLE votes(              -- votes on undecided units of unfinished jobs
  job INTEGER NOT NULL,
  idx INTEGER NOT NULL,
  peer TEXT NOT NULL,
  outcome INTEGER NOT NULL,      -- proto::UnitOutcome
  hash BLOB NOT NULL,
  payload BLOB NOT NULL,         -- with the first vote of each answer, else empty
  cpu REAL NOT NULL,
  PRIMARY KEY(job, idx, peer, outcome)
) WITHOUT ROWID;
CREATE TABLE failed_units(       -- units failed for good in unfinished jobs
  job INTEGER NOT NULL,
  idx INTEGER NOT NULL,
  reason TEXT NOT NULL,
  PRIMARY KEY(job, idx)
) WITHOUT ROWID;
CREATE TABLE checkpoints(        -- the kept checkpoint of a pending unit
  job INTEGER NOT NULL,
  idx INTEGER NOT NULL,
  peer TEXT NOT NULL,
  fraction REAL NOT NULL,
  state BLOB NOT NULL,
  PRIMARY KEY(job, idx)
) WITHOUT ROWID;
)sql";

template <class T>
std::string EncodeBlob(const T& value) {
  std::string out(1, kBlobVersion);
  EncodeValue(value, out);
  return out;
}

template <class T>
Status DecodeBlob(std::string_view bytes, T& out) {
  if (bytes.empty()) return DataLoss("empty blob");
  if (bytes[0] != kBlobVersion)
    return DataLoss("blob version " + std::to_string(static_cast<unsigned char>(bytes[0])) +
                    " is not known here");
  return DecodeValue(bytes.substr(1), out);
}

// Added by schema 3 (also run on a fresh store): who submitted each job, who uploaded each
// package (the client key, 64 hex digits; '' before owners were kept), for roles and quotas.
constexpr const char* kSchema3 = R"sql(
ALTER TABLE jobs ADD COLUMN owner TEXT NOT NULL DEFAULT '';
CREATE TABLE package_owners(
  package TEXT PRIMARY KEY,      -- the package id, hex
  owner TEXT NOT NULL,
  bytes INTEGER NOT NULL
) WITHOUT ROWID;
)sql";

}  // namespace

Result<std::unique_ptr<Store>> Store::Open(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Unavailable("cannot create " + dir + ": " + ec.message());
  std::unique_ptr<Store> s(new Store());
  const std::string path = dir + "/coordinator.db";
  if (sqlite3_open_v2(path.c_str(), &s->db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK)
    return Unavailable("cannot open " + path + ": " + sqlite3_errmsg(s->db_));
  sqlite3_busy_timeout(s->db_, 5000);
  // WAL + synchronous=FULL: a commit that returned is on disk, whatever happens next.
  SC_RETURN_IF_ERROR(s->Exec("PRAGMA journal_mode=WAL"));
  SC_RETURN_IF_ERROR(s->Exec("PRAGMA synchronous=FULL"));
  SC_RETURN_IF_ERROR(s->Exec("PRAGMA foreign_keys=OFF"));
  SC_RETURN_IF_ERROR(s->Migrate(path));
  s->insert_job_ = s->Prepare(
      "INSERT OR REPLACE INTO jobs(id, spec, units, state, submitted, owner) VALUES(?,?,?,?,?,?)");
  s->insert_package_owner_ =
      s->Prepare("INSERT OR IGNORE INTO package_owners(package, owner, bytes) VALUES(?,?,?)");
  s->insert_unit_ = s->Prepare("INSERT OR REPLACE INTO units(job, idx, result) VALUES(?,?,?)");
  s->finish_job_ = s->Prepare(
      "UPDATE jobs SET state=?, finished=?, cpu_seconds=?, error=?, result=?, failures=?, spec=? "
      "WHERE id=?");
  s->delete_units_ = s->Prepare("DELETE FROM units WHERE job=?");
  s->delete_job_leases_ = s->Prepare("DELETE FROM leases WHERE job=?");
  s->insert_lease_ =
      s->Prepare("INSERT OR REPLACE INTO leases(id, job, idx, peer, deadline) VALUES(?,?,?,?,?)");
  s->delete_lease_ = s->Prepare("DELETE FROM leases WHERE id=?");
  s->upsert_peer_ = s->Prepare(
      "INSERT OR REPLACE INTO peers(peer, units_done, units_invalid, cpu_validated, checks_passed, "
      "offences, "
      "blacklisted) VALUES(?,?,?,?,?,?,?)");
  s->insert_vote_ = s->Prepare(
      "INSERT OR REPLACE INTO votes(job, idx, peer, outcome, hash, payload, cpu) "
      "VALUES(?,?,?,?,?,?,?)");
  s->delete_unit_votes_ = s->Prepare("DELETE FROM votes WHERE job=? AND idx=?");
  s->insert_failed_ =
      s->Prepare("INSERT OR REPLACE INTO failed_units(job, idx, reason) VALUES(?,?,?)");
  s->upsert_checkpoint_ = s->Prepare(
      "INSERT OR REPLACE INTO checkpoints(job, idx, peer, fraction, state) VALUES(?,?,?,?,?)");
  s->delete_unit_checkpoint_ = s->Prepare("DELETE FROM checkpoints WHERE job=? AND idx=?");
  s->delete_unit_ = s->Prepare("DELETE FROM units WHERE job=? AND idx=?");
  s->delete_job_ = s->Prepare("DELETE FROM jobs WHERE id=?");
  for (const char* table : {"votes", "failed_units", "checkpoints"})
    s->delete_job_rows_.push_back(
        s->Prepare((std::string("DELETE FROM ") + table + " WHERE job=?").c_str()));
  for (auto* st : s->stmts_)
    if (st == nullptr)
      return DataLoss(std::string("cannot prepare statements: ") + sqlite3_errmsg(s->db_));
  return s;
}

Result<int> Store::SchemaVersion() {
  // No jobs table: a new store. A jobs table but no schema_version row: release 0.1 (schema 1).
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db_, "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='jobs'",
                     -1, &st, nullptr);
  const bool has_jobs = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) > 0;
  sqlite3_finalize(st);
  if (!has_jobs) return 0;
  int version = 1;
  if (sqlite3_prepare_v2(db_, "SELECT value FROM meta WHERE key='schema_version'", -1, &st,
                         nullptr) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW) {
    const unsigned char* v = sqlite3_column_text(st, 0);
    version = v ? std::atoi(reinterpret_cast<const char*>(v)) : 0;
    if (version < 1) version = -1;
  }
  sqlite3_finalize(st);
  if (version < 0) return DataLoss("the store's schema_version is not a number");
  return version;
}

Status Store::Migrate(const std::string& path) {
  auto version = SchemaVersion();
  if (!version.ok()) return version.status();
  if (*version > kSchemaVersion)
    return FailedPrecondition(
        path + " was written by a newer SpareCycles (store schema " + std::to_string(*version) +
        "; this coordinator reads schema " + std::to_string(kSchemaVersion) +
        " and older): run a newer coordinator, or use another --data directory");
  if (*version == kSchemaVersion) return OkStatus();
  // One transaction: a store is either upgraded whole or left as it was.
  SC_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
  Status s = OkStatus();
  if (*version < 2) {
    s = Exec(kSchema);
    if (s.ok()) s = Exec(kSchema2);
    if (s.ok() && *version == 1) s = AddBlobVersions();
  }
  if (s.ok()) s = Exec(kSchema3);
  if (s.ok()) {
    const std::string set = "INSERT OR REPLACE INTO meta(key, value) VALUES('schema_version','" +
                            std::to_string(kSchemaVersion) + "')";
    s = Exec(set.c_str());
  }
  if (!s.ok()) {
    Exec("ROLLBACK").ok();
    return DataLoss("cannot upgrade " + path + " from store schema " + std::to_string(*version) +
                    ": " + s.message());
  }
  SC_RETURN_IF_ERROR(Exec("COMMIT"));
  if (*version > 0)
    SC_LOG(Info) << "upgraded " << path << " from store schema " << *version << " to "
                 << kSchemaVersion;
  return OkStatus();
}

Status Store::AddBlobVersions() {
  // Schema 1 stored cereal bytes bare; prefix each with the blob version of that layout.
  sqlite3_stmt* st = nullptr;
  const char* update =
      "UPDATE jobs SET spec = CAST(? AS BLOB) || spec, "
      "failures = CASE WHEN failures IS NULL OR length(failures) = 0 THEN failures "
      "ELSE CAST(? AS BLOB) || failures END";
  if (sqlite3_prepare_v2(db_, update, -1, &st, nullptr) != SQLITE_OK)
    return DataLoss(sqlite3_errmsg(db_));
  sqlite3_bind_blob(st, 1, &kBlobVersion, 1, SQLITE_STATIC);
  sqlite3_bind_blob(st, 2, &kBlobVersion, 1, SQLITE_STATIC);
  const int rc = sqlite3_step(st);
  sqlite3_finalize(st);
  return rc == SQLITE_DONE ? OkStatus() : DataLoss(sqlite3_errmsg(db_));
}

Store::~Store() {
  if (in_tx_) Commit().ok();
  for (auto* st : stmts_) sqlite3_finalize(st);
  sqlite3_close(db_);
}

Status Store::Exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    Status s = DataLoss(std::string("sqlite: ") + (err ? err : "error") +
                        " in: " + std::string(sql).substr(0, 60));
    sqlite3_free(err);
    return s;
  }
  return OkStatus();
}

sqlite3_stmt* Store::Prepare(const char* sql) {
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, nullptr);
  stmts_.push_back(st);
  return st;
}

void Store::Fail(const char* what) {
  // A write that fails means acknowledged work could be lost: stop loudly rather than lie.
  SC_LOG(Error) << "store: " << what << ": " << sqlite3_errmsg(db_) << " — stopping";
  std::abort();
}

void Store::Begin() {
  if (in_tx_) return;
  if (!Exec("BEGIN").ok()) Fail("BEGIN");
  in_tx_ = true;
}

Status Store::Commit() {
  if (!in_tx_) return OkStatus();
  SC_RETURN_IF_ERROR(Exec("COMMIT"));
  in_tx_ = false;
  pending_ = 0;
  ++commits_;
  return OkStatus();
}

static void Step(sqlite3* db, sqlite3_stmt* st, const char* what) {
  const int rc = sqlite3_step(st);
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  if (rc != SQLITE_DONE) {
    SC_LOG(Error) << "store: " << what << ": " << sqlite3_errmsg(db) << " — stopping";
    std::abort();
  }
}

static void BindBlob(sqlite3_stmt* st, int i, const std::string& b) {
  sqlite3_bind_blob64(st, i, b.data(), b.size(), SQLITE_TRANSIENT);
}

void Store::OnJobSubmitted(const Job& job) {
  Begin();
  ++pending_;
  sqlite3_bind_int64(insert_job_, 1, static_cast<sqlite3_int64>(job.id));
  BindBlob(insert_job_, 2, EncodeBlob(job.spec));
  sqlite3_bind_int64(insert_job_, 3, static_cast<sqlite3_int64>(job.units.size()));
  sqlite3_bind_int(insert_job_, 4, static_cast<int>(job.state));
  sqlite3_bind_double(insert_job_, 5, job.submitted_wall);
  sqlite3_bind_text(insert_job_, 6, job.owner.data(), static_cast<int>(job.owner.size()),
                    SQLITE_TRANSIENT);
  Step(db_, insert_job_, "insert job");
}

void Store::OnUnitValidated(const Job& job, std::uint32_t unit) {
  Begin();
  ++pending_;
  sqlite3_bind_int64(insert_unit_, 1, static_cast<sqlite3_int64>(job.id));
  sqlite3_bind_int64(insert_unit_, 2, unit);
  BindBlob(insert_unit_, 3, job.units[unit].result);
  Step(db_, insert_unit_, "insert unit");
  for (sqlite3_stmt* st : {delete_unit_votes_, delete_unit_checkpoint_}) {
    sqlite3_bind_int64(st, 1, static_cast<sqlite3_int64>(job.id));
    sqlite3_bind_int64(st, 2, unit);
    Step(db_, st, "delete unit state");
  }
}

void Store::OnVote(const Job& job, std::uint32_t unit, const UnitResultRecord& vote,
                   const std::string& payload) {
  Begin();
  ++pending_;
  sqlite3_bind_int64(insert_vote_, 1, static_cast<sqlite3_int64>(job.id));
  sqlite3_bind_int64(insert_vote_, 2, unit);
  sqlite3_bind_text(insert_vote_, 3, vote.peer_id.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_int(insert_vote_, 4, static_cast<int>(vote.outcome));
  BindBlob(insert_vote_, 5, vote.hash);
  BindBlob(insert_vote_, 6, payload);
  sqlite3_bind_double(insert_vote_, 7, vote.cpu_seconds);
  Step(db_, insert_vote_, "insert vote");
}

void Store::OnUnitFailed(const Job& job, std::uint32_t unit) {
  Begin();
  ++pending_;
  sqlite3_bind_int64(insert_failed_, 1, static_cast<sqlite3_int64>(job.id));
  sqlite3_bind_int64(insert_failed_, 2, unit);
  sqlite3_bind_text(insert_failed_, 3, job.units[unit].failure.c_str(), -1, SQLITE_TRANSIENT);
  Step(db_, insert_failed_, "insert failed unit");
}

void Store::OnUnitReopened(const Job& job, std::uint32_t unit) {
  Begin();
  ++pending_;
  sqlite3_bind_int64(delete_unit_, 1, static_cast<sqlite3_int64>(job.id));
  sqlite3_bind_int64(delete_unit_, 2, unit);
  Step(db_, delete_unit_, "reopen unit");
}

void Store::OnCheckpoint(const Job& job, std::uint32_t unit) {
  Begin();
  ++pending_;
  const Unit& u = job.units[unit];
  sqlite3_bind_int64(upsert_checkpoint_, 1, static_cast<sqlite3_int64>(job.id));
  sqlite3_bind_int64(upsert_checkpoint_, 2, unit);
  sqlite3_bind_text(upsert_checkpoint_, 3, u.checkpoint_peer.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_double(upsert_checkpoint_, 4, u.checkpoint_fraction);
  BindBlob(upsert_checkpoint_, 5, u.checkpoint);
  Step(db_, upsert_checkpoint_, "upsert checkpoint");
}

void Store::OnJobForgotten(JobId job) {
  Begin();
  ++pending_;
  sqlite3_bind_int64(delete_job_, 1, static_cast<sqlite3_int64>(job));
  Step(db_, delete_job_, "delete job");
}

void Store::OnJobFinished(const Job& job) {
  Begin();
  ++pending_;
  proto::JobSpecWire spec = job.spec;
  spec.input.clear();  // the input is not needed once the job is over
  sqlite3_bind_int(finish_job_, 1, static_cast<int>(job.state));
  sqlite3_bind_double(finish_job_, 2, job.finished_wall);
  sqlite3_bind_double(finish_job_, 3, job.cpu_seconds);
  sqlite3_bind_text(finish_job_, 4, job.error.c_str(), -1, SQLITE_TRANSIENT);
  BindBlob(finish_job_, 5, job.result);
  BindBlob(finish_job_, 6, EncodeBlob(job.failures));
  BindBlob(finish_job_, 7, EncodeBlob(spec));
  sqlite3_bind_int64(finish_job_, 8, static_cast<sqlite3_int64>(job.id));
  Step(db_, finish_job_, "finish job");
  sqlite3_bind_int64(delete_units_, 1, static_cast<sqlite3_int64>(job.id));
  Step(db_, delete_units_, "delete units");
  sqlite3_bind_int64(delete_job_leases_, 1, static_cast<sqlite3_int64>(job.id));
  Step(db_, delete_job_leases_, "delete leases");
  for (sqlite3_stmt* st : delete_job_rows_) {
    sqlite3_bind_int64(st, 1, static_cast<sqlite3_int64>(job.id));
    Step(db_, st, "delete job state");
  }
}

void Store::OnLeaseIssued(const LeaseRecord& lease, const std::string& peer_id) {
  Begin();
  ++pending_;
  const double deadline = wall_clock() + Seconds(lease.deadline - lease.issued_at);
  sqlite3_bind_int64(insert_lease_, 1, static_cast<sqlite3_int64>(lease.id));
  sqlite3_bind_int64(insert_lease_, 2, static_cast<sqlite3_int64>(lease.job));
  sqlite3_bind_int64(insert_lease_, 3, lease.unit);
  sqlite3_bind_text(insert_lease_, 4, peer_id.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_double(insert_lease_, 5, deadline);
  Step(db_, insert_lease_, "insert lease");
}

void Store::OnLeaseSettled(LeaseId lease) {
  Begin();
  ++pending_;
  sqlite3_bind_int64(delete_lease_, 1, static_cast<sqlite3_int64>(lease));
  Step(db_, delete_lease_, "delete lease");
}

void Store::OnPeerRecord(const std::string& peer_id, const PeerRecord& r) {
  Begin();
  ++pending_;
  sqlite3_bind_text(upsert_peer_, 1, peer_id.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(upsert_peer_, 2, static_cast<sqlite3_int64>(r.validated));
  sqlite3_bind_int64(upsert_peer_, 3, static_cast<sqlite3_int64>(r.invalid));
  sqlite3_bind_double(upsert_peer_, 4, r.cpu_seconds_validated);
  sqlite3_bind_int64(upsert_peer_, 5, r.checks_passed);
  sqlite3_bind_int64(upsert_peer_, 6, r.offences);
  sqlite3_bind_int(upsert_peer_, 7, r.blacklisted ? 1 : 0);
  Step(db_, upsert_peer_, "upsert peer");
}

static std::string ColumnBlob(sqlite3_stmt* st, int i) {
  const void* p = sqlite3_column_blob(st, i);
  const int n = sqlite3_column_bytes(st, i);
  return p ? std::string(static_cast<const char*>(p), static_cast<std::size_t>(n)) : std::string();
}

Status Store::DropExpiredJobs(double wall_now, const Retention& keep) {
  // Finished jobs past their age, or beyond the newest `max_finished`, are not loaded back.
  const std::string sql =
      "DELETE FROM jobs WHERE state >= 2 AND ((finished > 0 AND finished < " +
      std::to_string(wall_now - keep.seconds) + ")" +
      " OR id NOT IN (SELECT id FROM jobs WHERE state >= 2 ORDER BY id DESC LIMIT " +
      std::to_string(keep.max_finished) + "))";
  return Exec(sql.c_str());
}

Result<Store::Loaded> Store::Load(double wall_now, const Retention& keep) {
  SC_RETURN_IF_ERROR(DropExpiredJobs(wall_now, keep));
  Loaded out;
  std::map<JobId, std::size_t> index;
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db_,
                     "SELECT id, spec, units, state, submitted, finished, cpu_seconds, error, "
                     "result, failures, owner FROM jobs ORDER BY id",
                     -1, &st, nullptr);
  while (sqlite3_step(st) == SQLITE_ROW) {
    RecoveredJob j;
    j.id = static_cast<JobId>(sqlite3_column_int64(st, 0));
    if (Status s = DecodeBlob(ColumnBlob(st, 1), j.spec); !s.ok()) {
      sqlite3_finalize(st);
      return DataLoss("job " + std::to_string(j.id) + " in the store is corrupt: " + s.message());
    }
    j.units = static_cast<std::uint64_t>(sqlite3_column_int64(st, 2));
    const int state = sqlite3_column_int(st, 3);
    j.state = static_cast<proto::JobState>(state >= 0 && state <= 4 ? state : 3);
    j.submitted_wall = sqlite3_column_double(st, 4);
    j.finished_wall = sqlite3_column_double(st, 5);
    j.cpu_seconds = sqlite3_column_double(st, 6);
    if (const unsigned char* e = sqlite3_column_text(st, 7))
      j.error = reinterpret_cast<const char*>(e);
    j.result = ColumnBlob(st, 8);
    const std::string failures = ColumnBlob(st, 9);
    if (!failures.empty()) DecodeBlob(failures, j.failures).ok();
    if (const unsigned char* o = sqlite3_column_text(st, 10))
      j.owner = reinterpret_cast<const char*>(o);
    out.next_job = std::max(out.next_job, j.id + 1);
    index[j.id] = out.jobs.size();
    out.jobs.push_back(std::move(j));
  }
  sqlite3_finalize(st);
  sqlite3_prepare_v2(db_, "SELECT job, idx, result FROM units", -1, &st, nullptr);
  while (sqlite3_step(st) == SQLITE_ROW) {
    auto it = index.find(static_cast<JobId>(sqlite3_column_int64(st, 0)));
    if (it == index.end()) continue;
    out.jobs[it->second].validated[static_cast<std::uint32_t>(sqlite3_column_int64(st, 1))] =
        ColumnBlob(st, 2);
  }
  sqlite3_finalize(st);
  sqlite3_prepare_v2(db_, "SELECT id, job, idx, peer, deadline FROM leases", -1, &st, nullptr);
  while (sqlite3_step(st) == SQLITE_ROW) {
    RecoveredLease l;
    l.id = static_cast<LeaseId>(sqlite3_column_int64(st, 0));
    l.job = static_cast<JobId>(sqlite3_column_int64(st, 1));
    l.unit = static_cast<std::uint32_t>(sqlite3_column_int64(st, 2));
    if (const unsigned char* p = sqlite3_column_text(st, 3))
      l.peer_id = reinterpret_cast<const char*>(p);
    l.remaining = FromSeconds(std::max(0.0, sqlite3_column_double(st, 4) - wall_now));
    out.leases.push_back(std::move(l));
  }
  sqlite3_finalize(st);
  sqlite3_prepare_v2(db_, "SELECT package, owner, bytes FROM package_owners", -1, &st, nullptr);
  while (sqlite3_step(st) == SQLITE_ROW) {
    const unsigned char* id = sqlite3_column_text(st, 0);
    const unsigned char* owner = sqlite3_column_text(st, 1);
    if (id == nullptr || owner == nullptr) continue;
    out.package_owners.push_back({reinterpret_cast<const char*>(id),
                                  reinterpret_cast<const char*>(owner),
                                  static_cast<std::uint64_t>(sqlite3_column_int64(st, 2))});
  }
  sqlite3_finalize(st);
  LoadUnitState(index, out);
  return out;
}

void Store::LoadUnitState(const std::map<JobId, std::size_t>& index, Loaded& out) {
  sqlite3_stmt* st = nullptr;
  auto job_of = [&](sqlite3_stmt* s) -> RecoveredJob* {
    auto it = index.find(static_cast<JobId>(sqlite3_column_int64(s, 0)));
    return it == index.end() ? nullptr : &out.jobs[it->second];
  };
  sqlite3_prepare_v2(db_, "SELECT job, idx, peer, outcome, hash, payload, cpu FROM votes", -1, &st,
                     nullptr);
  while (sqlite3_step(st) == SQLITE_ROW) {
    RecoveredJob* j = job_of(st);
    const int outcome = sqlite3_column_int(st, 3);
    if (j == nullptr || outcome < 0 || outcome > 2) continue;
    RecoveredJob::Vote v;
    v.unit = static_cast<std::uint32_t>(sqlite3_column_int64(st, 1));
    if (const unsigned char* p = sqlite3_column_text(st, 2))
      v.record.peer_id = reinterpret_cast<const char*>(p);
    v.record.outcome = static_cast<proto::UnitOutcome>(outcome);
    v.record.hash = ColumnBlob(st, 4);
    v.payload = ColumnBlob(st, 5);
    v.record.cpu_seconds = sqlite3_column_double(st, 6);
    j->votes.push_back(std::move(v));
  }
  sqlite3_finalize(st);
  sqlite3_prepare_v2(db_, "SELECT job, idx, reason FROM failed_units", -1, &st, nullptr);
  while (sqlite3_step(st) == SQLITE_ROW) {
    if (RecoveredJob* j = job_of(st)) {
      const unsigned char* r = sqlite3_column_text(st, 2);
      j->failed_units[static_cast<std::uint32_t>(sqlite3_column_int64(st, 1))] =
          r ? reinterpret_cast<const char*>(r) : "";
    }
  }
  sqlite3_finalize(st);
  sqlite3_prepare_v2(db_, "SELECT job, idx, peer, fraction, state FROM checkpoints", -1, &st,
                     nullptr);
  while (sqlite3_step(st) == SQLITE_ROW) {
    if (RecoveredJob* j = job_of(st)) {
      RecoveredJob::Checkpoint cp;
      cp.unit = static_cast<std::uint32_t>(sqlite3_column_int64(st, 1));
      if (const unsigned char* p = sqlite3_column_text(st, 2))
        cp.peer_id = reinterpret_cast<const char*>(p);
      cp.fraction = static_cast<float>(sqlite3_column_double(st, 3));
      cp.state = ColumnBlob(st, 4);
      j->checkpoints.push_back(std::move(cp));
    }
  }
  sqlite3_finalize(st);
  sqlite3_prepare_v2(db_,
                     "SELECT peer, units_done, units_invalid, cpu_validated, checks_passed, "
                     "offences, blacklisted FROM peers",
                     -1, &st, nullptr);
  while (sqlite3_step(st) == SQLITE_ROW) {
    const unsigned char* p = sqlite3_column_text(st, 0);
    if (p == nullptr) continue;
    PeerRecord r;
    r.validated = static_cast<std::uint64_t>(sqlite3_column_int64(st, 1));
    r.invalid = static_cast<std::uint64_t>(sqlite3_column_int64(st, 2));
    r.cpu_seconds_validated = sqlite3_column_double(st, 3);
    r.checks_passed = static_cast<std::uint32_t>(sqlite3_column_int64(st, 4));
    r.offences = static_cast<std::uint32_t>(sqlite3_column_int64(st, 5));
    r.blacklisted = sqlite3_column_int(st, 6) != 0;
    out.records.emplace_back(reinterpret_cast<const char*>(p), r);
  }
  sqlite3_finalize(st);
}

void Store::OnPackageStored(const PackageOwner& p) {
  Begin();
  ++pending_;
  sqlite3_bind_text(insert_package_owner_, 1, p.package.data(), static_cast<int>(p.package.size()),
                    SQLITE_TRANSIENT);
  sqlite3_bind_text(insert_package_owner_, 2, p.owner.data(), static_cast<int>(p.owner.size()),
                    SQLITE_TRANSIENT);
  sqlite3_bind_int64(insert_package_owner_, 3, static_cast<sqlite3_int64>(p.bytes));
  Step(db_, insert_package_owner_, "insert package owner");
}

Result<std::string> Store::IntegrityCheck() {
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db_, "PRAGMA integrity_check", -1, &st, nullptr);
  std::string out;
  while (sqlite3_step(st) == SQLITE_ROW) {
    if (!out.empty()) out += "; ";
    out += reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
  }
  sqlite3_finalize(st);
  return out;
}

}  // namespace sparecycles::coordinator
