// The SpareCycles wire protocol: every message struct, its type number and its field limits.
// The byte layout is specified in docs/protocol.md; keep both in step (and bump kProtocolVersion
// on any incompatible change). Each frame = 8-byte header + cereal binary body (core/codec.hpp).
// Plain data; thread-compatible.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sparecycles/core/codec.hpp"
#include "sparecycles/core/status.hpp"

namespace sparecycles::proto {

inline constexpr std::uint32_t kMagic = 0x59435053;  // bytes "SPCY" read as a little-endian u32
inline constexpr std::uint16_t kProtocolVersion = 2;
inline constexpr std::size_t kHeaderSize = 8;
// ZMQ_MAXMSGSIZE on every network socket; a larger frame never reaches the decoder.
inline constexpr std::int64_t kMaxFrameBytes = 80ll << 20;
// Field limits (checked by Validate() after a bounded decode).
inline constexpr std::size_t kMaxIdBytes = 128;
inline constexpr std::size_t kMaxNameBytes = 256;
inline constexpr std::size_t kMaxTextBytes = 4096;
inline constexpr std::size_t kMaxTasks = 256;
inline constexpr std::size_t kMaxParams = 256;
inline constexpr std::size_t kMaxParamBytes = 4096;
inline constexpr std::size_t kMaxInputBytes = 64ull << 20;
inline constexpr std::size_t kMaxUnitBytes = 64ull << 20;
inline constexpr std::size_t kMaxResultBytes = 64ull << 20;
inline constexpr std::size_t kMaxCheckpointBytes = 16ull << 20;  // one unit's saved state
inline constexpr std::size_t kMaxLeasesPerMessage = 4096;
inline constexpr std::size_t kMaxListEntries = 100000;
inline constexpr std::size_t kHashBytes = 32;
inline constexpr std::size_t kMaxPackageChunkBytes = 1ull << 20;  // one PackagePut/PackageChunk
inline constexpr std::size_t kMaxPublishers = 1024;               // keys announced in Welcome
inline constexpr std::size_t kMaxPackagesListed = 10000;
/// A job names a task package as "pkg:" + the package id in 64 lower-case hex digits.
inline constexpr std::string_view kPackageTaskPrefix = "pkg:";
// Job and peer limits (Validate() of JobSpecWire, Hello and Capacity); the options of the CLI, the
// worker and the coordinator take the same bounds from here.
inline constexpr std::uint32_t kMaxCores = 4096;              // a peer's cores and slots
inline constexpr std::uint32_t kMaxUnitsPerJob = 10'000'000;  // JobSpecWire.units
inline constexpr double kMaxUnitSeconds = 86400;              // JobSpecWire.unit_seconds
inline constexpr std::uint32_t kMaxReplicas = 16;             // replicas and quorum
inline constexpr std::uint32_t kMaxReplicasCeiling = 64;      // max_replicas and max_errors

enum class MsgType : std::uint16_t {
  // peer (worker) <-> coordinator, on the coordinator's peer endpoint
  kHello = 1,
  kWelcome = 2,
  kCapacity = 3,
  kRequestWork = 4,
  kAssign = 5,
  kResult = 6,
  kAck = 7,
  kHeartbeat = 8,
  kCancelLeases = 9,
  kBye = 10,
  kReject = 11,
  kCheckpoint = 12,
  kResults = 13,  // several Results in one frame
  kPackageGet = 14,
  kPackageChunk = 15,
  kPackageRefused = 16,
  // SDK client <-> coordinator, on the coordinator's client endpoint
  kSubmit = 32,
  kSubmitReply = 33,
  kStatusRequest = 34,
  kJobStatus = 35,
  kWatch = 36,
  kProgress = 37,
  kFetchResult = 38,
  kJobResult = 39,
  kCancelJob = 40,
  kListJobs = 41,
  kJobList = 42,
  kListPeers = 43,
  kPeerList = 44,
  kErrorReply = 45,
  kPackagePut = 46,
  kPackagePutReply = 47,
  kListPackages = 48,
  kPackageList = 49,
};

/// Which endpoint a message type belongs to, and who sends it.
enum class Endpoint : std::uint8_t { kPeer, kClient };
enum class Sender : std::uint8_t { kPeer, kCoordinator, kClient };
struct MsgTypeInfo {
  MsgType type;
  std::string_view name;
  Endpoint endpoint;
  Sender sender;
};
/// Every message type of this protocol version: the one list the header check, the names in
/// logs and docs/protocol.md §2.1 agree with.
const MsgTypeInfo* FindMsgType(std::uint16_t type);
std::string_view MsgTypeName(MsgType t);

// ---------------------------------------------------------------- peer messages
struct TaskInfo {
  std::string name;
  std::uint32_t version = 0;
  double work_per_second = 0;  // task-defined work units per second on one core (calibrated)
  template <class A>
  void serialize(A& a) {
    a(name, version, work_per_second);
  }
};

struct Hello {
  static constexpr MsgType kType = MsgType::kHello;
  std::string peer_id;  // stable across restarts of the worker
  std::uint16_t protocol = kProtocolVersion;
  std::string hostname;
  std::string account;      // volunteer's account name, may be empty
  std::string software;     // e.g. "sparecycles-worker 0.1.0"
  std::uint32_t cores = 0;  // cores donated
  std::uint64_t memory_bytes = 0;
  std::vector<TaskInfo> tasks;
  std::vector<std::uint64_t> running_leases;  // leases still running here (after a reconnect)
  template <class A>
  void serialize(A& a) {
    a(peer_id, protocol, hostname, account, software, cores, memory_bytes, tasks, running_leases);
  }
  Status Validate() const;
};

struct Welcome {
  static constexpr MsgType kType = MsgType::kWelcome;
  std::string session;                // coordinator instance id
  std::uint32_t heartbeat_ms = 0;     // how often the peer should send a Heartbeat
  std::uint32_t peer_timeout_ms = 0;  // silence after which the peer is declared lost
  /// Ed25519 public keys (32 bytes each) of the package publishers this coordinator accepts; a
  /// worker may pin them as the publishers it trusts (docs/packages.md, "Trust model").
  std::vector<std::string> publishers;
  template <class A>
  void serialize(A& a) {
    a(session, heartbeat_ms, peer_timeout_ms, publishers);
  }
  Status Validate() const;
};

enum class PeerState : std::uint8_t { kRunning = 0, kThrottled = 1, kPaused = 2 };

struct Capacity {
  static constexpr MsgType kType = MsgType::kCapacity;
  std::uint32_t slots = 0;       // cores donated right now
  std::uint32_t idle_slots = 0;  // slots with no unit running
  std::uint64_t memory_available = 0;
  PeerState state = PeerState::kRunning;
  std::string reason;
  template <class A>
  void serialize(A& a) {
    a(slots, idle_slots, memory_available, state, reason);
  }
  Status Validate() const;
};

struct RequestWork {
  static constexpr MsgType kType = MsgType::kRequestWork;
  std::uint32_t count = 0;  // units wanted: idle slots plus prefetch
  template <class A>
  void serialize(A& a) {
    a(count);
  }
  Status Validate() const;
};

struct Lease {
  std::uint64_t lease_id = 0;
  std::uint64_t job_id = 0;
  std::uint64_t unit_index = 0;
  std::string task;
  std::uint32_t task_version = 0;
  std::string unit;               // task-defined unit description (opaque to the coordinator)
  std::uint32_t deadline_ms = 0;  // from receipt; after it the unit may be given to someone else
  std::string checkpoint;         // the unit's last uploaded state (Checkpoint), empty = start at 0
  template <class A>
  void serialize(A& a) {
    a(lease_id, job_id, unit_index, task, task_version, unit, deadline_ms, checkpoint);
  }
};

struct Assign {
  static constexpr MsgType kType = MsgType::kAssign;
  std::vector<Lease> leases;
  template <class A>
  void serialize(A& a) {
    a(leases);
  }
  Status Validate() const;
};

enum class UnitOutcome : std::uint8_t { kOk = 0, kFailed = 1, kCancelled = 2 };

struct ResultMsg {
  static constexpr MsgType kType = MsgType::kResult;
  std::uint64_t lease_id = 0;
  std::uint64_t job_id = 0;
  std::uint64_t unit_index = 0;
  UnitOutcome outcome = UnitOutcome::kOk;
  std::string hash;     // BLAKE2b-256 of the canonicalized result (32 bytes when ok)
  std::string payload;  // the result bytes
  std::string error;    // why it failed
  double cpu_seconds = 0;
  double wall_seconds = 0;
  template <class A>
  void serialize(A& a) {
    a(lease_id, job_id, unit_index, outcome, hash, payload, error, cpu_seconds, wall_seconds);
  }
  Status Validate() const;
};

// Several results in one frame: a worker sends what finished since its last loop turn together,
// so short units cost one frame per batch, not one per unit (docs/protocol.md §6.3).
struct Results {
  static constexpr MsgType kType = MsgType::kResults;
  std::vector<ResultMsg> results;
  template <class A>
  void serialize(A& a) {
    a(results);
  }
  Status Validate() const;
};
/// A worker batches results up to this many payload bytes per Results frame (one larger result
/// travels alone).
inline constexpr std::size_t kResultsBatchBytes = 4ull << 20;

struct Ack {
  static constexpr MsgType kType = MsgType::kAck;
  std::vector<std::uint64_t> lease_ids;  // results the coordinator has stored
  template <class A>
  void serialize(A& a) {
    a(lease_ids);
  }
  Status Validate() const;
};

struct LeaseProgress {
  std::uint64_t lease_id = 0;
  float fraction = 0;
  template <class A>
  void serialize(A& a) {
    a(lease_id, fraction);
  }
};

struct Heartbeat {
  static constexpr MsgType kType = MsgType::kHeartbeat;
  std::vector<LeaseProgress> running;
  template <class A>
  void serialize(A& a) {
    a(running);
  }
  Status Validate() const;
};

struct CancelLeases {
  static constexpr MsgType kType = MsgType::kCancelLeases;
  std::vector<std::uint64_t> lease_ids;
  std::string reason;
  template <class A>
  void serialize(A& a) {
    a(lease_ids, reason);
  }
  Status Validate() const;
};

struct Bye {
  static constexpr MsgType kType = MsgType::kBye;
  std::vector<std::uint64_t> returned_leases;  // leases handed back unfinished
  template <class A>
  void serialize(A& a) {
    a(returned_leases);
  }
  Status Validate() const;
};

// A running unit's saved state, so that another peer can continue it if this one goes away.
struct Checkpoint {
  static constexpr MsgType kType = MsgType::kCheckpoint;
  std::uint64_t lease_id = 0;
  std::uint64_t job_id = 0;
  std::uint64_t unit_index = 0;
  float fraction = 0;  // progress of the unit at this checkpoint, 0..1
  std::string state;   // task-defined bytes (UnitContext::Checkpoint), at most kMaxCheckpointBytes
  template <class A>
  void serialize(A& a) {
    a(lease_id, job_id, unit_index, fraction, state);
  }
  Status Validate() const;
};

enum class RejectCode : std::uint16_t {
  kHelloFirst = 1,
  kBadVersion = 2,
  kBadMessage = 3,
  kShuttingDown = 4,
  kRefused = 5  // a Hello refused by the enrollment rules (docs/cross-checking.md, "Sybils")
};

struct Reject {
  static constexpr MsgType kType = MsgType::kReject;
  RejectCode code = RejectCode::kBadMessage;
  std::string message;
  template <class A>
  void serialize(A& a) {
    a(code, message);
  }
  Status Validate() const;
};

// A worker fetching a task package it was leased a unit of (docs/protocol.md §6.7).
struct PackageGet {
  static constexpr MsgType kType = MsgType::kPackageGet;
  std::string package_id;  // 32 bytes
  std::uint64_t offset = 0;
  template <class A>
  void serialize(A& a) {
    a(package_id, offset);
  }
  Status Validate() const;
};

struct PackageChunk {
  static constexpr MsgType kType = MsgType::kPackageChunk;
  std::string package_id;
  std::uint16_t code = 0;  // StatusCode: 0 = ok; UNAVAILABLE = busy, ask again after retry_ms
  std::string message;
  std::uint64_t total_size = 0;
  std::uint64_t offset = 0;  // where `bytes` start
  std::string bytes;         // at most kMaxPackageChunkBytes
  std::uint32_t retry_ms = 0;
  template <class A>
  void serialize(A& a) {
    a(package_id, code, message, total_size, offset, bytes, retry_ms);
  }
  Status Validate() const;
};

// A worker that will not run a package (refused by its trust, platform or owner's choice, or a
// required program is missing): its leases of that package are handed back without penalty and
// the coordinator offers it no more units of that package.
struct PackageRefused {
  static constexpr MsgType kType = MsgType::kPackageRefused;
  std::string package_id;
  std::vector<std::uint64_t> lease_ids;
  std::string reason;  // e.g. "unknown signer: ..."
  template <class A>
  void serialize(A& a) {
    a(package_id, lease_ids, reason);
  }
  Status Validate() const;
};

// ---------------------------------------------------------------- client messages
struct JobSpecWire {
  std::string task;
  std::uint32_t task_version = 0;  // 0 = the newest the coordinator knows
  std::string name;                // free text shown in listings
  std::map<std::string, std::string> params;
  std::string input;               // input bytes for data tasks
  std::int32_t priority = 0;       // higher runs first
  double unit_seconds = 0;         // target seconds per unit; 0 = coordinator default
  std::uint64_t units = 0;         // exact unit count; 0 = chosen from size and peer speed
  std::uint32_t replicas = 0;      // 0 = coordinator default
  std::uint32_t quorum = 0;        // 0 = coordinator default
  std::uint32_t max_replicas = 0;  // 0 = coordinator default
  std::uint32_t max_errors = 0;    // 0 = coordinator default
  std::string client_token;  // idempotency: a retried submit with the same token is the same job
  std::uint8_t adaptive =
      0;  // credibility-based acceptance: 0 = coordinator default, 1 = off, 2 = on
  double target_error = 0;  // with adaptive: bound on a wrong accepted unit; 0 = default
  template <class A>
  void serialize(A& a) {
    a(task, task_version, name, params, input, priority, unit_seconds, units, replicas, quorum,
      max_replicas, max_errors, client_token, adaptive, target_error);
  }
  Status Validate() const;
};

struct Submit {
  static constexpr MsgType kType = MsgType::kSubmit;
  std::uint64_t request_id = 0;
  JobSpecWire spec;
  bool watch = true;  // push Progress messages for this job to the submitter
  template <class A>
  void serialize(A& a) {
    a(request_id, spec, watch);
  }
  Status Validate() const { return spec.Validate(); }
};

enum class JobState : std::uint8_t {
  kQueued = 0,
  kRunning = 1,
  kDone = 2,
  kFailed = 3,
  kCancelled = 4
};
std::string_view JobStateName(JobState s);
inline bool IsFinal(JobState s) {
  return s == JobState::kDone || s == JobState::kFailed || s == JobState::kCancelled;
}

struct JobInfo {
  std::uint64_t job_id = 0;
  std::string task;
  std::string name;
  JobState state = JobState::kQueued;
  std::int32_t priority = 0;
  std::uint64_t units_total = 0;
  std::uint64_t units_done = 0;
  std::uint64_t units_failed = 0;
  std::uint64_t units_running = 0;
  double submitted_at = 0;  // wall-clock seconds since the epoch
  double finished_at = 0;
  double cpu_seconds = 0;
  std::string error;
  std::string waiting;  // why queued units cannot go anywhere now; empty while they can
  template <class A>
  void serialize(A& a) {
    a(job_id, task, name, state, priority, units_total, units_done, units_failed, units_running,
      submitted_at, finished_at, cpu_seconds, error, waiting);
  }
};

struct SubmitReply {
  static constexpr MsgType kType = MsgType::kSubmitReply;
  std::uint64_t request_id = 0;
  std::uint16_t code = 0;  // StatusCode
  std::string message;
  JobInfo info;
  template <class A>
  void serialize(A& a) {
    a(request_id, code, message, info);
  }
  Status Validate() const { return OkStatus(); }
};

struct JobRequest {  // shared body of StatusRequest, Watch, FetchResult, CancelJob
  std::uint64_t request_id = 0;
  std::uint64_t job_id = 0;
  template <class A>
  void serialize(A& a) {
    a(request_id, job_id);
  }
  Status Validate() const { return OkStatus(); }
};
struct StatusRequest : JobRequest {
  static constexpr MsgType kType = MsgType::kStatusRequest;
};
struct Watch : JobRequest {
  static constexpr MsgType kType = MsgType::kWatch;
};
struct FetchResult : JobRequest {
  static constexpr MsgType kType = MsgType::kFetchResult;
};
struct CancelJob : JobRequest {
  static constexpr MsgType kType = MsgType::kCancelJob;
};

struct JobStatus {
  static constexpr MsgType kType = MsgType::kJobStatus;
  std::uint64_t request_id = 0;
  std::uint16_t code = 0;
  std::string message;
  JobInfo info;
  template <class A>
  void serialize(A& a) {
    a(request_id, code, message, info);
  }
  Status Validate() const { return OkStatus(); }
};

struct Progress {
  static constexpr MsgType kType = MsgType::kProgress;
  JobInfo info;
  template <class A>
  void serialize(A& a) {
    a(info);
  }
  Status Validate() const { return OkStatus(); }
};

struct UnitFailure {
  std::uint64_t unit_index = 0;
  std::string reason;
  template <class A>
  void serialize(A& a) {
    a(unit_index, reason);
  }
};

struct JobResult {
  static constexpr MsgType kType = MsgType::kJobResult;
  std::uint64_t request_id = 0;
  std::uint16_t code = 0;
  std::string message;
  JobInfo info;
  std::string result;      // merged result bytes (task-defined)
  std::string summary;     // human-readable one-line answer, e.g. "50847534"
  std::string json;        // the answer as a JSON value, e.g. {"count":50847534}
  std::string media_type;  // e.g. "image/png", "application/octet-stream"
  std::vector<UnitFailure> failures;
  template <class A>
  void serialize(A& a) {
    a(request_id, code, message, info, result, summary, json, media_type, failures);
  }
  Status Validate() const { return OkStatus(); }
};

struct ListJobs {
  static constexpr MsgType kType = MsgType::kListJobs;
  std::uint64_t request_id = 0;
  template <class A>
  void serialize(A& a) {
    a(request_id);
  }
  Status Validate() const { return OkStatus(); }
};

struct JobList {
  static constexpr MsgType kType = MsgType::kJobList;
  std::uint64_t request_id = 0;
  std::vector<JobInfo> jobs;
  template <class A>
  void serialize(A& a) {
    a(request_id, jobs);
  }
  Status Validate() const { return OkStatus(); }
};

struct ListPeers {
  static constexpr MsgType kType = MsgType::kListPeers;
  std::uint64_t request_id = 0;
  template <class A>
  void serialize(A& a) {
    a(request_id);
  }
  Status Validate() const { return OkStatus(); }
};

struct PeerInfo {
  std::string peer_id;
  std::string hostname;
  std::uint32_t cores = 0;
  std::uint32_t slots = 0;
  std::uint32_t idle_slots = 0;
  PeerState state = PeerState::kRunning;
  std::string reason;
  std::uint64_t running = 0;
  std::uint64_t units_done = 0;
  double cpu_seconds = 0;
  double connected_seconds = 0;
  double silent_seconds = 0;
  std::uint64_t units_invalid = 0;  // results that lost a vote or failed a spot-check
  double credibility = 0;           // 0..1 (docs/cross-checking.md); 0 = blacklisted
  template <class A>
  void serialize(A& a) {
    a(peer_id, hostname, cores, slots, idle_slots, state, reason, running, units_done, cpu_seconds,
      connected_seconds, silent_seconds, units_invalid, credibility);
  }
};

struct PeerList {
  static constexpr MsgType kType = MsgType::kPeerList;
  std::uint64_t request_id = 0;
  std::vector<PeerInfo> peers;
  template <class A>
  void serialize(A& a) {
    a(request_id, peers);
  }
  Status Validate() const { return OkStatus(); }
};

struct ErrorReply {
  static constexpr MsgType kType = MsgType::kErrorReply;
  std::uint64_t request_id = 0;
  std::uint16_t code = 0;
  std::string message;
  template <class A>
  void serialize(A& a) {
    a(request_id, code, message);
  }
  Status Validate() const { return OkStatus(); }
};

// Uploads a task package in chunks, resumable (docs/protocol.md §7.1). A Put with no bytes asks
// where to continue; the reply's next_offset == total_size and complete = the package is held.
struct PackagePut {
  static constexpr MsgType kType = MsgType::kPackagePut;
  std::uint64_t request_id = 0;
  std::string package_id;  // 32 bytes: BLAKE2b-256 of the whole package
  std::uint64_t total_size = 0;
  std::uint64_t offset = 0;
  std::string bytes;  // at most kMaxPackageChunkBytes
  template <class A>
  void serialize(A& a) {
    a(request_id, package_id, total_size, offset, bytes);
  }
  Status Validate() const;
};

struct PackagePutReply {
  static constexpr MsgType kType = MsgType::kPackagePutReply;
  std::uint64_t request_id = 0;
  std::uint16_t code = 0;
  std::string message;
  std::uint64_t next_offset = 0;
  bool complete = false;  // the package is stored and verified
  template <class A>
  void serialize(A& a) {
    a(request_id, code, message, next_offset, complete);
  }
  Status Validate() const { return OkStatus(); }
};

struct ListPackages {
  static constexpr MsgType kType = MsgType::kListPackages;
  std::uint64_t request_id = 0;
  template <class A>
  void serialize(A& a) {
    a(request_id);
  }
  Status Validate() const { return OkStatus(); }
};

struct PackageInfo {
  std::string package_id;  // 32 bytes
  std::string name;
  std::string version;
  std::string kind;  // "native" or "command"
  std::uint64_t size = 0;
  std::string signer;  // hex public key; empty = unsigned (embedded local mode only)
  template <class A>
  void serialize(A& a) {
    a(package_id, name, version, kind, size, signer);
  }
};

struct PackageList {
  static constexpr MsgType kType = MsgType::kPackageList;
  std::uint64_t request_id = 0;
  std::vector<PackageInfo> packages;
  template <class A>
  void serialize(A& a) {
    a(request_id, packages);
  }
  Status Validate() const { return OkStatus(); }
};

/// The `code` of SubmitReply, JobStatus, JobResult and ErrorReply is StatusCode's number
/// (docs/protocol.md). The one pair of conversions: a code this build does not know reads back as
/// kInternal, with the message kept.
inline std::uint16_t ToWireCode(StatusCode code) { return static_cast<std::uint16_t>(code); }
inline Status StatusFromWire(std::uint16_t code, std::string message) {
  const auto known = static_cast<std::uint16_t>(kLastStatusCode);
  return Status(code <= known ? static_cast<StatusCode>(code) : StatusCode::kInternal,
                std::move(message));
}

// ---------------------------------------------------------------- framing
struct Header {
  std::uint32_t magic = kMagic;
  std::uint16_t version = kProtocolVersion;
  MsgType type = MsgType::kHello;
};

/// Writes the 8-byte header for `type` followed by the body of `msg`.
template <class M>
std::string Encode(const M& msg) {
  std::string out;
  out.reserve(64);
  const std::uint32_t magic = kMagic;
  const std::uint16_t version = kProtocolVersion;
  const auto type = static_cast<std::uint16_t>(M::kType);
  out.append(reinterpret_cast<const char*>(&magic), 4);
  out.append(reinterpret_cast<const char*>(&version), 2);
  out.append(reinterpret_cast<const char*>(&type), 2);
  EncodeValue(msg, out);
  return out;
}

/// Reads and checks the header (magic, version, known type). Returns the type; `body` gets the
/// rest.
Result<MsgType> ParseHeader(std::string_view frame, std::string_view& body);

/// Decodes a body of type M (bounded) and validates its field limits.
template <class M>
Status Decode(std::string_view body, M& msg) {
  DecodeLimits limits;
  limits.max_elements = body.size();
  SC_RETURN_IF_ERROR(DecodeValue(body, msg, limits));
  return msg.Validate();
}

}  // namespace sparecycles::proto
