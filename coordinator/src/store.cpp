#include "store.hpp"

#include <sqlite3.h>

#include <cstdlib>
#include <filesystem>

#include "sparecycles/core/codec.hpp"
#include "sparecycles/core/log.hpp"

namespace sparecycles::coordinator {
namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs(
  id INTEGER PRIMARY KEY,
  spec BLOB NOT NULL,            -- proto::JobSpecWire (cereal binary, with its input)
  units INTEGER NOT NULL,        -- the unit count Split() was called with
  state INTEGER NOT NULL,        -- proto::JobState
  submitted REAL NOT NULL,
  finished REAL NOT NULL DEFAULT 0,
  cpu_seconds REAL NOT NULL DEFAULT 0,
  error TEXT NOT NULL DEFAULT '',
  result BLOB,                   -- the merged result once done
  failures BLOB                  -- std::vector<proto::UnitFailure> once failed
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

}  // namespace

Result<std::unique_ptr<Store>> Store::Open(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Unavailable("cannot create " + dir + ": " + ec.message());
  std::unique_ptr<Store> s(new Store());
  const std::string path = dir + "/coordinator.db";
  if (sqlite3_open_v2(path.c_str(), &s->db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK)
    return Unavailable("cannot open " + path + ": " + sqlite3_errmsg(s->db_));
  sqlite3_busy_timeout(s->db_, 5000);
  // WAL + synchronous=FULL: a commit that returned is on disk, whatever happens next.
  SC_RETURN_IF_ERROR(s->Exec("PRAGMA journal_mode=WAL"));
  SC_RETURN_IF_ERROR(s->Exec("PRAGMA synchronous=FULL"));
  SC_RETURN_IF_ERROR(s->Exec("PRAGMA foreign_keys=OFF"));
  SC_RETURN_IF_ERROR(s->Exec(kSchema));
  s->insert_job_ = s->Prepare("INSERT OR REPLACE INTO jobs(id, spec, units, state, submitted) VALUES(?,?,?,?,?)");
  s->insert_unit_ = s->Prepare("INSERT OR REPLACE INTO units(job, idx, result) VALUES(?,?,?)");
  s->finish_job_ = s->Prepare(
      "UPDATE jobs SET state=?, finished=?, cpu_seconds=?, error=?, result=?, failures=?, spec=? WHERE id=?");
  s->delete_units_ = s->Prepare("DELETE FROM units WHERE job=?");
  s->delete_job_leases_ = s->Prepare("DELETE FROM leases WHERE job=?");
  s->insert_lease_ = s->Prepare("INSERT OR REPLACE INTO leases(id, job, idx, peer, deadline) VALUES(?,?,?,?,?)");
  s->delete_lease_ = s->Prepare("DELETE FROM leases WHERE id=?");
  s->upsert_peer_ = s->Prepare(
      "INSERT INTO peers(peer, units_done, units_invalid, cpu_validated) VALUES(?,?,?,?) "
      "ON CONFLICT(peer) DO UPDATE SET units_done=excluded.units_done, units_invalid=excluded.units_invalid, "
      "cpu_validated=excluded.cpu_validated");
  for (auto* st : s->stmts_)
    if (st == nullptr) return DataLoss(std::string("cannot prepare statements: ") + sqlite3_errmsg(s->db_));
  return s;
}

Store::~Store() {
  if (in_tx_) Commit().ok();
  for (auto* st : stmts_) sqlite3_finalize(st);
  sqlite3_close(db_);
}

Status Store::Exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    Status s = DataLoss(std::string("sqlite: ") + (err ? err : "error") + " in: " + std::string(sql).substr(0, 60));
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
  BindBlob(insert_job_, 2, EncodeValue(job.spec));
  sqlite3_bind_int64(insert_job_, 3, static_cast<sqlite3_int64>(job.units.size()));
  sqlite3_bind_int(insert_job_, 4, static_cast<int>(job.state));
  sqlite3_bind_double(insert_job_, 5, job.submitted_wall);
  Step(db_, insert_job_, "insert job");
}

void Store::OnUnitValidated(const Job& job, std::uint32_t unit) {
  Begin();
  ++pending_;
  sqlite3_bind_int64(insert_unit_, 1, static_cast<sqlite3_int64>(job.id));
  sqlite3_bind_int64(insert_unit_, 2, unit);
  BindBlob(insert_unit_, 3, job.units[unit].result);
  Step(db_, insert_unit_, "insert unit");
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
  BindBlob(finish_job_, 6, EncodeValue(job.failures));
  BindBlob(finish_job_, 7, EncodeValue(spec));
  sqlite3_bind_int64(finish_job_, 8, static_cast<sqlite3_int64>(job.id));
  Step(db_, finish_job_, "finish job");
  sqlite3_bind_int64(delete_units_, 1, static_cast<sqlite3_int64>(job.id));
  Step(db_, delete_units_, "delete units");
  sqlite3_bind_int64(delete_job_leases_, 1, static_cast<sqlite3_int64>(job.id));
  Step(db_, delete_job_leases_, "delete leases");
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

void Store::OnPeerCredit(const Peer& peer) {
  Begin();
  ++pending_;
  sqlite3_bind_text(upsert_peer_, 1, peer.hello.peer_id.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(upsert_peer_, 2, static_cast<sqlite3_int64>(peer.units_done));
  sqlite3_bind_int64(upsert_peer_, 3, static_cast<sqlite3_int64>(peer.units_invalid));
  sqlite3_bind_double(upsert_peer_, 4, peer.cpu_seconds_validated);
  Step(db_, upsert_peer_, "upsert peer");
}

static std::string ColumnBlob(sqlite3_stmt* st, int i) {
  const void* p = sqlite3_column_blob(st, i);
  const int n = sqlite3_column_bytes(st, i);
  return p ? std::string(static_cast<const char*>(p), static_cast<std::size_t>(n)) : std::string();
}

Result<Store::Loaded> Store::Load(double wall_now) {
  Loaded out;
  std::map<JobId, std::size_t> index;
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db_, "SELECT id, spec, units, state, submitted, finished, cpu_seconds, error, result, failures FROM jobs ORDER BY id",
                     -1, &st, nullptr);
  while (sqlite3_step(st) == SQLITE_ROW) {
    RecoveredJob j;
    j.id = static_cast<JobId>(sqlite3_column_int64(st, 0));
    if (Status s = DecodeValue(ColumnBlob(st, 1), j.spec); !s.ok()) {
      sqlite3_finalize(st);
      return DataLoss("job " + std::to_string(j.id) + " in the store is corrupt: " + s.message());
    }
    j.units = static_cast<std::uint64_t>(sqlite3_column_int64(st, 2));
    const int state = sqlite3_column_int(st, 3);
    j.state = static_cast<proto::JobState>(state >= 0 && state <= 4 ? state : 3);
    j.submitted_wall = sqlite3_column_double(st, 4);
    j.finished_wall = sqlite3_column_double(st, 5);
    j.cpu_seconds = sqlite3_column_double(st, 6);
    if (const unsigned char* e = sqlite3_column_text(st, 7)) j.error = reinterpret_cast<const char*>(e);
    j.result = ColumnBlob(st, 8);
    const std::string failures = ColumnBlob(st, 9);
    if (!failures.empty()) DecodeValue(failures, j.failures).ok();
    out.next_job = std::max(out.next_job, j.id + 1);
    index[j.id] = out.jobs.size();
    out.jobs.push_back(std::move(j));
  }
  sqlite3_finalize(st);
  sqlite3_prepare_v2(db_, "SELECT job, idx, result FROM units", -1, &st, nullptr);
  while (sqlite3_step(st) == SQLITE_ROW) {
    auto it = index.find(static_cast<JobId>(sqlite3_column_int64(st, 0)));
    if (it == index.end()) continue;
    out.jobs[it->second].validated[static_cast<std::uint32_t>(sqlite3_column_int64(st, 1))] = ColumnBlob(st, 2);
  }
  sqlite3_finalize(st);
  sqlite3_prepare_v2(db_, "SELECT id, job, idx, peer, deadline FROM leases", -1, &st, nullptr);
  while (sqlite3_step(st) == SQLITE_ROW) {
    RecoveredLease l;
    l.id = static_cast<LeaseId>(sqlite3_column_int64(st, 0));
    l.job = static_cast<JobId>(sqlite3_column_int64(st, 1));
    l.unit = static_cast<std::uint32_t>(sqlite3_column_int64(st, 2));
    if (const unsigned char* p = sqlite3_column_text(st, 3)) l.peer_id = reinterpret_cast<const char*>(p);
    l.remaining = FromSeconds(std::max(0.0, sqlite3_column_double(st, 4) - wall_now));
    out.leases.push_back(std::move(l));
  }
  sqlite3_finalize(st);
  return out;
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
