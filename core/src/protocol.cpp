#include "sparecycles/core/protocol.hpp"

#include <cstring>

namespace sparecycles::proto {
namespace {

Status CheckLen(std::string_view field, const std::string& s, std::size_t max) {
  if (s.size() > max)
    return InvalidArgument(std::string(field) + " is " + std::to_string(s.size()) +
                           " bytes; the limit is " + std::to_string(max));
  return OkStatus();
}
template <class V>
Status CheckCount(std::string_view field, const V& v, std::size_t max) {
  if (v.size() > max)
    return InvalidArgument(std::string(field) + " has " + std::to_string(v.size()) +
                           " entries; the limit is " + std::to_string(max));
  return OkStatus();
}

}  // namespace

std::string_view MsgTypeName(MsgType t) {
  switch (t) {
    case MsgType::kHello:
      return "Hello";
    case MsgType::kWelcome:
      return "Welcome";
    case MsgType::kCapacity:
      return "Capacity";
    case MsgType::kRequestWork:
      return "RequestWork";
    case MsgType::kAssign:
      return "Assign";
    case MsgType::kResult:
      return "Result";
    case MsgType::kAck:
      return "Ack";
    case MsgType::kResults:
      return "Results";
    case MsgType::kHeartbeat:
      return "Heartbeat";
    case MsgType::kCancelLeases:
      return "CancelLeases";
    case MsgType::kBye:
      return "Bye";
    case MsgType::kReject:
      return "Reject";
    case MsgType::kCheckpoint:
      return "Checkpoint";
    case MsgType::kSubmit:
      return "Submit";
    case MsgType::kSubmitReply:
      return "SubmitReply";
    case MsgType::kStatusRequest:
      return "StatusRequest";
    case MsgType::kJobStatus:
      return "JobStatus";
    case MsgType::kWatch:
      return "Watch";
    case MsgType::kProgress:
      return "Progress";
    case MsgType::kFetchResult:
      return "FetchResult";
    case MsgType::kJobResult:
      return "JobResult";
    case MsgType::kCancelJob:
      return "CancelJob";
    case MsgType::kListJobs:
      return "ListJobs";
    case MsgType::kJobList:
      return "JobList";
    case MsgType::kListPeers:
      return "ListPeers";
    case MsgType::kPeerList:
      return "PeerList";
    case MsgType::kErrorReply:
      return "ErrorReply";
  }
  return "Unknown";
}

std::string_view JobStateName(JobState s) {
  switch (s) {
    case JobState::kQueued:
      return "queued";
    case JobState::kRunning:
      return "running";
    case JobState::kDone:
      return "done";
    case JobState::kFailed:
      return "failed";
    case JobState::kCancelled:
      return "cancelled";
  }
  return "unknown";
}

Result<MsgType> ParseHeader(std::string_view frame, std::string_view& body) {
  if (frame.size() < kHeaderSize) return DataLoss("frame shorter than the 8-byte header");
  std::uint32_t magic;
  std::uint16_t version, type;
  std::memcpy(&magic, frame.data(), 4);
  std::memcpy(&version, frame.data() + 4, 2);
  std::memcpy(&type, frame.data() + 6, 2);
  if (magic != kMagic) return DataLoss("bad magic (not a SpareCycles frame)");
  if (version != kProtocolVersion)
    return FailedPrecondition("protocol version " + std::to_string(version) +
                              " is not supported (this side speaks " +
                              std::to_string(kProtocolVersion) + ")");
  const bool known = (type >= 1 && type <= 13) || (type >= 32 && type <= 45);
  if (!known) return DataLoss("unknown message type " + std::to_string(type));
  body = frame.substr(kHeaderSize);
  return static_cast<MsgType>(type);
}

Status Hello::Validate() const {
  SC_RETURN_IF_ERROR(CheckLen("peer_id", peer_id, kMaxIdBytes));
  if (peer_id.empty()) return InvalidArgument("peer_id is empty");
  SC_RETURN_IF_ERROR(CheckLen("hostname", hostname, kMaxNameBytes));
  SC_RETURN_IF_ERROR(CheckLen("account", account, kMaxNameBytes));
  SC_RETURN_IF_ERROR(CheckLen("software", software, kMaxNameBytes));
  SC_RETURN_IF_ERROR(CheckCount("tasks", tasks, kMaxTasks));
  SC_RETURN_IF_ERROR(CheckCount("running_leases", running_leases, kMaxLeasesPerMessage));
  if (cores == 0 || cores > kMaxCores) return InvalidArgument("cores must be 1..4096");
  for (const auto& t : tasks) {
    SC_RETURN_IF_ERROR(CheckLen("task name", t.name, kMaxNameBytes));
    if (!(t.work_per_second >= 0) || t.work_per_second > 1e18)
      return InvalidArgument("task speed out of range");
  }
  return OkStatus();
}

Status Capacity::Validate() const {
  if (slots > kMaxCores || idle_slots > slots) return InvalidArgument("bad slot counts");
  if (static_cast<std::uint8_t>(state) > 2) return InvalidArgument("unknown peer state");
  return CheckLen("reason", reason, kMaxTextBytes);
}

Status RequestWork::Validate() const {
  if (count > kMaxLeasesPerMessage) return InvalidArgument("RequestWork.count above the limit");
  return OkStatus();
}

Status Assign::Validate() const {
  SC_RETURN_IF_ERROR(CheckCount("leases", leases, kMaxLeasesPerMessage));
  for (const auto& l : leases) {
    SC_RETURN_IF_ERROR(CheckLen("task", l.task, kMaxNameBytes));
    SC_RETURN_IF_ERROR(CheckLen("unit", l.unit, kMaxUnitBytes));
    SC_RETURN_IF_ERROR(CheckLen("checkpoint", l.checkpoint, kMaxCheckpointBytes));
  }
  return OkStatus();
}

Status ResultMsg::Validate() const {
  if (static_cast<std::uint8_t>(outcome) > 2) return InvalidArgument("unknown unit outcome");
  if ((outcome == UnitOutcome::kOk && hash.size() != kHashBytes) || hash.size() > kHashBytes)
    return InvalidArgument("result hash must be 32 bytes");
  SC_RETURN_IF_ERROR(CheckLen("payload", payload, kMaxResultBytes));
  SC_RETURN_IF_ERROR(CheckLen("error", error, kMaxTextBytes));
  if (!(cpu_seconds >= 0 && cpu_seconds < 1e9) || !(wall_seconds >= 0 && wall_seconds < 1e9))
    return InvalidArgument("cpu/wall seconds out of range");
  return OkStatus();
}

Status Checkpoint::Validate() const {
  if (!(fraction >= 0.0f && fraction <= 1.0f))
    return InvalidArgument("checkpoint fraction out of 0..1");
  return CheckLen("state", state, kMaxCheckpointBytes);
}

Status Results::Validate() const {
  SC_RETURN_IF_ERROR(CheckCount("results", results, kMaxLeasesPerMessage));
  for (const auto& r : results) SC_RETURN_IF_ERROR(r.Validate());
  return OkStatus();
}

Status Ack::Validate() const { return CheckCount("lease_ids", lease_ids, kMaxLeasesPerMessage); }

Status Heartbeat::Validate() const {
  SC_RETURN_IF_ERROR(CheckCount("running", running, kMaxLeasesPerMessage));
  for (const auto& r : running)
    if (!(r.fraction >= 0.0f && r.fraction <= 1.0f)) return InvalidArgument("progress out of 0..1");
  return OkStatus();
}

Status CancelLeases::Validate() const {
  SC_RETURN_IF_ERROR(CheckCount("lease_ids", lease_ids, kMaxLeasesPerMessage));
  return CheckLen("reason", reason, kMaxTextBytes);
}

Status Bye::Validate() const {
  return CheckCount("returned_leases", returned_leases, kMaxLeasesPerMessage);
}

Status Reject::Validate() const {
  if (static_cast<std::uint16_t>(code) < 1 || static_cast<std::uint16_t>(code) > 4)
    return InvalidArgument("unknown reject code");
  return CheckLen("message", message, kMaxTextBytes);
}

Status JobSpecWire::Validate() const {
  SC_RETURN_IF_ERROR(CheckLen("task", task, kMaxNameBytes));
  if (task.empty()) return InvalidArgument("no task named");
  SC_RETURN_IF_ERROR(CheckLen("name", name, kMaxNameBytes));
  SC_RETURN_IF_ERROR(CheckCount("params", params, kMaxParams));
  for (const auto& [k, v] : params) {
    SC_RETURN_IF_ERROR(CheckLen("parameter name", k, kMaxNameBytes));
    SC_RETURN_IF_ERROR(CheckLen("parameter " + k, v, kMaxParamBytes));
  }
  SC_RETURN_IF_ERROR(CheckLen("input", input, kMaxInputBytes));
  SC_RETURN_IF_ERROR(CheckLen("client_token", client_token, kMaxIdBytes));
  if (!(unit_seconds >= 0 && unit_seconds <= kMaxUnitSeconds))
    return InvalidArgument("unit_seconds must be 0..86400");
  if (units > kMaxUnitsPerJob) return InvalidArgument("units above 10,000,000");
  if (replicas > kMaxReplicas || quorum > kMaxReplicas || max_replicas > kMaxReplicasCeiling ||
      max_errors > kMaxReplicasCeiling)
    return InvalidArgument("replication settings above their limits (replicas/quorum 16, max 64)");
  if (quorum != 0 && max_replicas != 0 && quorum > max_replicas)
    return InvalidArgument("quorum cannot exceed max_replicas");
  if (adaptive > 2) return InvalidArgument("adaptive must be 0 (default), 1 (off) or 2 (on)");
  if (!(target_error >= 0 && target_error < 0.5))
    return InvalidArgument("target_error must be in [0, 0.5)");
  if (replicas != 0 && max_replicas != 0 && replicas > max_replicas)
    return InvalidArgument("replicas cannot exceed max_replicas");
  return OkStatus();
}

}  // namespace sparecycles::proto
