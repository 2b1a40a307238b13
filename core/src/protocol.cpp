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

namespace {
constexpr MsgTypeInfo kMsgTypes[] = {
    {MsgType::kHello, "Hello", Endpoint::kPeer, Sender::kPeer},
    {MsgType::kWelcome, "Welcome", Endpoint::kPeer, Sender::kCoordinator},
    {MsgType::kCapacity, "Capacity", Endpoint::kPeer, Sender::kPeer},
    {MsgType::kRequestWork, "RequestWork", Endpoint::kPeer, Sender::kPeer},
    {MsgType::kAssign, "Assign", Endpoint::kPeer, Sender::kCoordinator},
    {MsgType::kResult, "Result", Endpoint::kPeer, Sender::kPeer},
    {MsgType::kAck, "Ack", Endpoint::kPeer, Sender::kCoordinator},
    {MsgType::kHeartbeat, "Heartbeat", Endpoint::kPeer, Sender::kPeer},
    {MsgType::kCancelLeases, "CancelLeases", Endpoint::kPeer, Sender::kCoordinator},
    {MsgType::kBye, "Bye", Endpoint::kPeer, Sender::kPeer},
    {MsgType::kReject, "Reject", Endpoint::kPeer, Sender::kCoordinator},
    {MsgType::kCheckpoint, "Checkpoint", Endpoint::kPeer, Sender::kPeer},
    {MsgType::kResults, "Results", Endpoint::kPeer, Sender::kPeer},
    {MsgType::kPackageGet, "PackageGet", Endpoint::kPeer, Sender::kPeer},
    {MsgType::kPackageChunk, "PackageChunk", Endpoint::kPeer, Sender::kCoordinator},
    {MsgType::kPackageRefused, "PackageRefused", Endpoint::kPeer, Sender::kPeer},
    {MsgType::kSubmit, "Submit", Endpoint::kClient, Sender::kClient},
    {MsgType::kSubmitReply, "SubmitReply", Endpoint::kClient, Sender::kCoordinator},
    {MsgType::kStatusRequest, "StatusRequest", Endpoint::kClient, Sender::kClient},
    {MsgType::kJobStatus, "JobStatus", Endpoint::kClient, Sender::kCoordinator},
    {MsgType::kWatch, "Watch", Endpoint::kClient, Sender::kClient},
    {MsgType::kProgress, "Progress", Endpoint::kClient, Sender::kCoordinator},
    {MsgType::kFetchResult, "FetchResult", Endpoint::kClient, Sender::kClient},
    {MsgType::kJobResult, "JobResult", Endpoint::kClient, Sender::kCoordinator},
    {MsgType::kCancelJob, "CancelJob", Endpoint::kClient, Sender::kClient},
    {MsgType::kListJobs, "ListJobs", Endpoint::kClient, Sender::kClient},
    {MsgType::kJobList, "JobList", Endpoint::kClient, Sender::kCoordinator},
    {MsgType::kListPeers, "ListPeers", Endpoint::kClient, Sender::kClient},
    {MsgType::kPeerList, "PeerList", Endpoint::kClient, Sender::kCoordinator},
    {MsgType::kErrorReply, "ErrorReply", Endpoint::kClient, Sender::kCoordinator},
    {MsgType::kPackagePut, "PackagePut", Endpoint::kClient, Sender::kClient},
    {MsgType::kPackagePutReply, "PackagePutReply", Endpoint::kClient, Sender::kCoordinator},
    {MsgType::kListPackages, "ListPackages", Endpoint::kClient, Sender::kClient},
    {MsgType::kPackageList, "PackageList", Endpoint::kClient, Sender::kCoordinator},
};
}  // namespace

const MsgTypeInfo* FindMsgType(std::uint16_t type) {
  for (const auto& info : kMsgTypes)
    if (static_cast<std::uint16_t>(info.type) == type) return &info;
  return nullptr;
}

std::string_view MsgTypeName(MsgType t) {
  const MsgTypeInfo* info = FindMsgType(static_cast<std::uint16_t>(t));
  return info == nullptr ? "Unknown" : info->name;
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
  if (FindMsgType(type) == nullptr) return DataLoss("unknown message type " + std::to_string(type));
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
  if (static_cast<std::uint16_t>(code) < 1 || static_cast<std::uint16_t>(code) > 5)
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

Status Welcome::Validate() const {
  SC_RETURN_IF_ERROR(CheckCount("publishers", publishers, kMaxPublishers));
  for (const auto& k : publishers)
    if (k.size() != 32) return InvalidArgument("a publisher key is not 32 bytes");
  return OkStatus();
}

namespace {
Status CheckPackageId(const std::string& id) {
  if (id.size() != kHashBytes) return InvalidArgument("package_id is not 32 bytes");
  return OkStatus();
}
}  // namespace

Status PackageGet::Validate() const { return CheckPackageId(package_id); }

Status PackageChunk::Validate() const {
  SC_RETURN_IF_ERROR(CheckPackageId(package_id));
  SC_RETURN_IF_ERROR(CheckLen("message", message, kMaxTextBytes));
  SC_RETURN_IF_ERROR(CheckLen("bytes", bytes, kMaxPackageChunkBytes));
  if (offset > total_size || bytes.size() > total_size - offset)
    return InvalidArgument("chunk lies outside the package");
  return OkStatus();
}

Status PackageRefused::Validate() const {
  SC_RETURN_IF_ERROR(CheckPackageId(package_id));
  SC_RETURN_IF_ERROR(CheckCount("lease_ids", lease_ids, kMaxLeasesPerMessage));
  return CheckLen("reason", reason, kMaxTextBytes);
}

Status PackagePut::Validate() const {
  SC_RETURN_IF_ERROR(CheckPackageId(package_id));
  SC_RETURN_IF_ERROR(CheckLen("bytes", bytes, kMaxPackageChunkBytes));
  if (offset > total_size || bytes.size() > total_size - offset)
    return InvalidArgument("chunk lies outside the package");
  return OkStatus();
}

}  // namespace sparecycles::proto
