#include "executor_wire.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>

#include "sparecycles/tasks/bytes.hpp"

namespace sparecycles::worker::wire {

namespace {

using tasks::ByteReader;
using tasks::ByteWriter;

void PutOptional(ByteWriter& w, const std::optional<std::string>& s) {
  w.Put<std::uint8_t>(s ? 1 : 0);
  if (s) w.Str(*s);
}

bool ValidFraction(float f) { return std::isfinite(f) && f >= 0 && f <= 1; }

struct Encoder {
  ByteWriter& w;
  void operator()(const Start& s) const {
    w.Put<std::uint8_t>(static_cast<std::uint8_t>(MsgType::kStart))
        .Put<std::uint8_t>(static_cast<std::uint8_t>(s.kind))
        .Str(s.package_dir)
        .Str(s.manifest)
        .Put<std::uint32_t>(s.checkpoint_interval_ms)
        .Put<std::uint32_t>(s.time_limit_ms)
        .Str(s.work_dir)
        .Put<std::uint8_t>(static_cast<std::uint8_t>(s.sandbox))
        .Put<std::uint64_t>(s.memory_limit_bytes)
        .Put<std::uint32_t>(s.cpu_limit_seconds)
        .Put<std::uint32_t>(s.sandbox_uid)
        .Put<std::uint32_t>(s.sandbox_gid)
        .Str(s.disable_layer_for_test);
  }
  void operator()(const Run& u) const {
    w.Put<std::uint8_t>(static_cast<std::uint8_t>(MsgType::kRun))
        .Put<std::uint64_t>(u.lease_id)
        .Put<std::uint64_t>(u.job_id)
        .Put<std::uint64_t>(u.unit_index)
        .Str(u.unit);
    PutOptional(w, u.resume);
    w.Put<std::uint32_t>(u.threads);
  }
  void operator()(const Cancel& c) const {
    w.Put<std::uint8_t>(static_cast<std::uint8_t>(MsgType::kCancel))
        .Put<std::uint64_t>(c.lease_id)
        .Str(c.reason);
  }
  void operator()(const Progress& p) const {
    w.Put<std::uint8_t>(static_cast<std::uint8_t>(MsgType::kProgress))
        .Put<std::uint64_t>(p.lease_id)
        .Put<float>(p.fraction);
  }
  void operator()(const Checkpoint& c) const {
    w.Put<std::uint8_t>(static_cast<std::uint8_t>(MsgType::kCheckpoint))
        .Put<std::uint64_t>(c.lease_id)
        .Put<float>(c.fraction)
        .Str(c.state);
  }
  void operator()(const Done& d) const {
    w.Put<std::uint8_t>(static_cast<std::uint8_t>(MsgType::kDone))
        .Put<std::uint64_t>(d.lease_id)
        .Put<std::uint8_t>(static_cast<std::uint8_t>(d.outcome))
        .Str(d.payload)
        .Str(d.hash)
        .Str(d.error)
        .Put<double>(d.cpu_seconds)
        .Put<std::uint8_t>(d.last ? 1 : 0);
  }
};

Status Malformed(const std::string& why) { return DataLoss("malformed executor message: " + why); }

Result<Message> DecodeStart(ByteReader& r) {
  Start s;
  const auto kind = r.Get<std::uint8_t>();
  s.package_dir = r.Str(kMaxPathBytes);
  s.manifest = r.Str(package::kMaxManifestBytes);
  s.checkpoint_interval_ms = r.Get<std::uint32_t>();
  s.time_limit_ms = r.Get<std::uint32_t>();
  s.work_dir = r.Str(kMaxPathBytes);
  const auto sandbox = r.Get<std::uint8_t>();
  s.memory_limit_bytes = r.Get<std::uint64_t>();
  s.cpu_limit_seconds = r.Get<std::uint32_t>();
  s.sandbox_uid = r.Get<std::uint32_t>();
  s.sandbox_gid = r.Get<std::uint32_t>();
  s.disable_layer_for_test = r.Str(kMaxLayerNameBytes);
  SC_RETURN_IF_ERROR(r.Finish());
  if (sandbox > static_cast<std::uint8_t>(SandboxMode::kOff))
    return Malformed("unknown sandbox mode " + std::to_string(sandbox));
  s.sandbox = static_cast<SandboxMode>(sandbox);
  if (kind != static_cast<std::uint8_t>(package::Kind::kNative) &&
      kind != static_cast<std::uint8_t>(package::Kind::kCommand))
    return Malformed("unknown package kind " + std::to_string(kind));
  s.kind = static_cast<package::Kind>(kind);
  if (s.package_dir.empty() || s.package_dir[0] != '/' || s.work_dir.empty() ||
      s.work_dir[0] != '/')
    return Malformed("package and work directories must be absolute");
  if (s.package_dir.find('\0') != std::string::npos || s.work_dir.find('\0') != std::string::npos)
    return Malformed("a directory name holds a NUL byte");
  return Message(std::move(s));
}

Result<Message> DecodeRun(ByteReader& r) {
  Run u;
  u.lease_id = r.Get<std::uint64_t>();
  u.job_id = r.Get<std::uint64_t>();
  u.unit_index = r.Get<std::uint64_t>();
  u.unit = r.Str(proto::kMaxUnitBytes);
  const auto has_resume = r.Get<std::uint8_t>();
  if (has_resume > 1) return Malformed("resume flag is not 0 or 1");
  if (has_resume == 1) u.resume = r.Str(proto::kMaxCheckpointBytes);
  u.threads = r.Get<std::uint32_t>();
  SC_RETURN_IF_ERROR(r.Finish());
  if (u.threads < 1 || u.threads > proto::kMaxCores) return Malformed("threads outside 1..4096");
  return Message(std::move(u));
}

}  // namespace

std::string EncodeBody(const Message& m) {
  ByteWriter w;
  std::visit(Encoder{w}, m);
  return std::move(w).bytes();
}

Result<Message> DecodeBody(std::string_view body) {
  ByteReader r(body, "executor message");
  const auto type = r.Get<std::uint8_t>();
  if (!r.ok()) return Malformed("empty");
  switch (static_cast<MsgType>(type)) {
    case MsgType::kStart:
      return DecodeStart(r);
    case MsgType::kRun:
      return DecodeRun(r);
    case MsgType::kCancel: {
      Cancel c;
      c.lease_id = r.Get<std::uint64_t>();
      c.reason = r.Str(kMaxReasonBytes);
      SC_RETURN_IF_ERROR(r.Finish());
      return Message(std::move(c));
    }
    case MsgType::kProgress: {
      Progress p;
      p.lease_id = r.Get<std::uint64_t>();
      p.fraction = r.Get<float>();
      SC_RETURN_IF_ERROR(r.Finish());
      if (!ValidFraction(p.fraction)) return Malformed("progress outside 0..1");
      return Message(p);
    }
    case MsgType::kCheckpoint: {
      Checkpoint c;
      c.lease_id = r.Get<std::uint64_t>();
      c.fraction = r.Get<float>();
      c.state = r.Str(proto::kMaxCheckpointBytes);
      SC_RETURN_IF_ERROR(r.Finish());
      if (!ValidFraction(c.fraction)) return Malformed("checkpoint progress outside 0..1");
      return Message(std::move(c));
    }
    case MsgType::kDone: {
      Done d;
      d.lease_id = r.Get<std::uint64_t>();
      const auto outcome = r.Get<std::uint8_t>();
      d.payload = r.Str(proto::kMaxResultBytes);
      d.hash = r.Str(64);
      d.error = r.Str(kMaxErrorBytes);
      d.cpu_seconds = r.Get<double>();
      const auto last = r.Get<std::uint8_t>();
      SC_RETURN_IF_ERROR(r.Finish());
      if (last > 1) return Malformed("last flag is not 0 or 1");
      d.last = last == 1;
      if (!std::isfinite(d.cpu_seconds) || d.cpu_seconds < 0)
        return Malformed("CPU seconds not a finite non-negative number");
      if (outcome > static_cast<std::uint8_t>(proto::UnitOutcome::kCancelled))
        return Malformed("unknown outcome " + std::to_string(outcome));
      d.outcome = static_cast<proto::UnitOutcome>(outcome);
      if (d.outcome == proto::UnitOutcome::kOk && d.hash.size() != 32)
        return Malformed("a result's hash is not 32 bytes");
      if (d.outcome != proto::UnitOutcome::kOk && !d.payload.empty())
        return Malformed("a unit that did not succeed has a payload");
      return Message(std::move(d));
    }
  }
  return Malformed("unknown message type " + std::to_string(type));
}

Result<std::string> EncodeFrame(const Message& m) {
  std::string body = EncodeBody(m);
  if (body.size() > kMaxFrameBytes)
    return ResourceExhausted("an executor message of " + std::to_string(body.size()) +
                             " bytes is above the frame limit of " +
                             std::to_string(kMaxFrameBytes));
  const auto n = static_cast<std::uint32_t>(body.size());
  std::string frame(4, '\0');
  for (int i = 0; i < 4; ++i) frame[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  frame += body;
  return frame;
}

Status WriteFrame(int fd, const Message& m) {
  auto frame = EncodeFrame(m);
  if (!frame.ok()) return frame.status();
  std::size_t off = 0;
  while (off < frame->size()) {
    ssize_t n = ::send(fd, frame->data() + off, frame->size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == ENOTSOCK) n = ::write(fd, frame->data() + off, frame->size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Unavailable(std::string("executor channel: ") + std::strerror(errno));
    off += static_cast<std::size_t>(n);
  }
  return OkStatus();
}

namespace {

// Reads exactly `len` bytes; false at EOF before any byte (when `eof_ok`) or on error.
Status ReadExactly(int fd, char* out, std::size_t len, bool* eof_at_start) {
  std::size_t off = 0;
  while (off < len) {
    const ssize_t n = ::read(fd, out + off, len - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Unavailable(std::string("executor channel: ") + std::strerror(errno));
    if (n == 0) {
      if (off == 0 && eof_at_start != nullptr) {
        *eof_at_start = true;
        return OkStatus();
      }
      return DataLoss("executor channel closed inside a frame");
    }
    off += static_cast<std::size_t>(n);
  }
  return OkStatus();
}

std::uint32_t LengthOf(const char* p) {
  std::uint32_t n = 0;
  for (int i = 0; i < 4; ++i)
    n |= static_cast<std::uint32_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return n;
}

Status CheckLength(std::uint32_t n) {
  if (n == 0) return Malformed("empty frame");
  if (n > kMaxFrameBytes)
    return Malformed("frame of " + std::to_string(n) + " bytes is above the limit of " +
                     std::to_string(kMaxFrameBytes));
  return OkStatus();
}

}  // namespace

Result<std::optional<Message>> ReadFrame(int fd) {
  char head[4];
  bool eof = false;
  SC_RETURN_IF_ERROR(ReadExactly(fd, head, sizeof(head), &eof));
  if (eof) return std::optional<Message>();
  const std::uint32_t n = LengthOf(head);
  SC_RETURN_IF_ERROR(CheckLength(n));
  std::string body(n, '\0');
  SC_RETURN_IF_ERROR(ReadExactly(fd, body.data(), n, nullptr));
  auto m = DecodeBody(body);
  if (!m.ok()) return m.status();
  return std::optional<Message>(std::move(m).value());
}

Result<std::optional<Message>> FrameReader::Next() {
  if (buf_.size() - pos_ < 4) return std::optional<Message>();
  const std::uint32_t n = LengthOf(buf_.data() + pos_);
  SC_RETURN_IF_ERROR(CheckLength(n));
  if (buf_.size() - pos_ - 4 < n) return std::optional<Message>();
  auto m = DecodeBody(std::string_view(buf_).substr(pos_ + 4, n));
  pos_ += 4 + static_cast<std::size_t>(n);
  // Drop consumed bytes once they are most of the buffer, so it never grows without bound.
  if (pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
  } else if (pos_ > (1u << 20) && pos_ > buf_.size() / 2) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  if (!m.ok()) return m.status();
  return std::optional<Message>(std::move(m).value());
}

}  // namespace sparecycles::worker::wire
