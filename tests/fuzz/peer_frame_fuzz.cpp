// libFuzzer harness: frames on the peer endpoint, in both directions (what the coordinator reads
// from workers and what a worker reads from the coordinator): the header check, then the body
// decoder and field limits of every peer message type (docs/protocol.md).
#include "frame_fuzz.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace sparecycles;
  const std::string_view frame(reinterpret_cast<const char*>(data), size);
  std::string_view body;
  auto type = proto::ParseHeader(frame, body);
  if (!type.ok()) return 0;
  switch (*type) {
    case proto::MsgType::kHello:
      fuzz::DecodeAs<proto::Hello>(frame, body);
      break;
    case proto::MsgType::kWelcome:
      fuzz::DecodeAs<proto::Welcome>(frame, body);
      break;
    case proto::MsgType::kCapacity:
      fuzz::DecodeAs<proto::Capacity>(frame, body);
      break;
    case proto::MsgType::kRequestWork:
      fuzz::DecodeAs<proto::RequestWork>(frame, body);
      break;
    case proto::MsgType::kAssign:
      fuzz::DecodeAs<proto::Assign>(frame, body);
      break;
    case proto::MsgType::kResult:
      fuzz::DecodeAs<proto::ResultMsg>(frame, body);
      break;
    case proto::MsgType::kAck:
      fuzz::DecodeAs<proto::Ack>(frame, body);
      break;
    case proto::MsgType::kHeartbeat:
      fuzz::DecodeAs<proto::Heartbeat>(frame, body);
      break;
    case proto::MsgType::kCancelLeases:
      fuzz::DecodeAs<proto::CancelLeases>(frame, body);
      break;
    case proto::MsgType::kBye:
      fuzz::DecodeAs<proto::Bye>(frame, body);
      break;
    case proto::MsgType::kReject:
      fuzz::DecodeAs<proto::Reject>(frame, body);
      break;
    case proto::MsgType::kCheckpoint:
      fuzz::DecodeAs<proto::Checkpoint>(frame, body);
      break;
    case proto::MsgType::kResults:
      fuzz::DecodeAs<proto::Results>(frame, body);
      break;
    default:
      break;  // client endpoint types: client_frame_fuzz
  }
  return 0;
}
