// libFuzzer harness: frames on the client endpoint, in both directions (requests the coordinator
// reads from SDK clients and replies a client reads): the header check, then the body decoder and
// field limits of every client message type (docs/protocol.md).
#include "frame_fuzz.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace sparecycles;
  const std::string_view frame(reinterpret_cast<const char*>(data), size);
  std::string_view body;
  auto type = proto::ParseHeader(frame, body);
  if (!type.ok()) return 0;
  switch (*type) {
    // Submit carries a map of parameters: duplicate keys collapse, so only stability is checked.
    case proto::MsgType::kSubmit:
      fuzz::DecodeAs<proto::Submit>(frame, body, false);
      break;
    case proto::MsgType::kSubmitReply:
      fuzz::DecodeAs<proto::SubmitReply>(frame, body);
      break;
    case proto::MsgType::kStatusRequest:
      fuzz::DecodeAs<proto::StatusRequest>(frame, body);
      break;
    case proto::MsgType::kJobStatus:
      fuzz::DecodeAs<proto::JobStatus>(frame, body);
      break;
    case proto::MsgType::kWatch:
      fuzz::DecodeAs<proto::Watch>(frame, body);
      break;
    case proto::MsgType::kProgress:
      fuzz::DecodeAs<proto::Progress>(frame, body);
      break;
    case proto::MsgType::kFetchResult:
      fuzz::DecodeAs<proto::FetchResult>(frame, body);
      break;
    case proto::MsgType::kJobResult:
      fuzz::DecodeAs<proto::JobResult>(frame, body);
      break;
    case proto::MsgType::kCancelJob:
      fuzz::DecodeAs<proto::CancelJob>(frame, body);
      break;
    case proto::MsgType::kListJobs:
      fuzz::DecodeAs<proto::ListJobs>(frame, body);
      break;
    case proto::MsgType::kJobList:
      fuzz::DecodeAs<proto::JobList>(frame, body);
      break;
    case proto::MsgType::kListPeers:
      fuzz::DecodeAs<proto::ListPeers>(frame, body);
      break;
    case proto::MsgType::kPeerList:
      fuzz::DecodeAs<proto::PeerList>(frame, body);
      break;
    case proto::MsgType::kErrorReply:
      fuzz::DecodeAs<proto::ErrorReply>(frame, body);
      break;
    default:
      break;  // peer endpoint types: peer_frame_fuzz
  }
  return 0;
}
