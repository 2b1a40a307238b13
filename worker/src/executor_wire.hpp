// The messages between the worker and a `sparecycles-executor` process over their socketpair:
// Start (worker -> executor, once: the package and the confinement), Run and Cancel (worker ->
// executor, per unit), Progress, Checkpoint and Done (executor -> worker, per unit). One process
// runs many units of one package one after another; several frames may travel in one write (a
// batch). A frame is a u32 little-endian body length, then the body; bodies are tasks::ByteWriter
// layouts (docs/architecture.md, "Executor process"). Decoding is bounded both ways and never
// throws. Free functions; a FrameReader belongs to one thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "sparecycles/core/protocol.hpp"
#include "sparecycles/core/status.hpp"
#include "sparecycles/package/manifest.hpp"

namespace sparecycles::worker::wire {

inline constexpr std::uint32_t kMaxFrameBytes = 80u << 20;  // one frame's body, checked first
inline constexpr std::size_t kMaxPathBytes = 4096;          // package and work directory
inline constexpr std::size_t kMaxErrorBytes = 16u << 10;    // Done's error text
inline constexpr std::size_t kMaxReasonBytes = 4096;        // Cancel's reason

enum class MsgType : std::uint8_t {
  kStart = 1,
  kCancel = 2,
  kProgress = 3,
  kCheckpoint = 4,
  kDone = 5,
  kRun = 6,
};

enum class SandboxMode : std::uint8_t { kRequired = 0, kOff = 1 };
inline constexpr std::size_t kMaxLayerNameBytes = 64;

/// The package and the confinement of this process; the first frame the worker sends, once.
struct Start {
  package::Kind kind = package::Kind::kNative;
  std::string package_dir;                   // the extracted package, absolute
  std::string manifest;                      // package::EncodeManifest bytes
  std::uint32_t checkpoint_interval_ms = 0;  // 0 = never due
  std::uint32_t time_limit_ms = 0;           // per unit; enforced by the worker; informative here
  /// This process's directory, absolute: the only place it may write. Each unit runs in the
  /// directory kUnitDirName beneath it, empty when the unit starts (emptied, or made anew).
  std::string work_dir;
  // Confinement (docs/sandbox.md). kRequired: every layer or the unit fails; kOff: none.
  SandboxMode sandbox = SandboxMode::kRequired;
  std::uint64_t memory_limit_bytes = 256ull << 20;         // RLIMIT_AS (plus a margin)
  std::uint32_t cpu_limit_seconds = 600;                   // RLIMIT_CPU of the process
  std::uint32_t sandbox_uid = 65534, sandbox_gid = 65534;  // taken only by a root executor
  std::string disable_layer_for_test;  // a layer reported unavailable; tests only
  bool operator==(const Start&) const = default;
};

/// The unit's directory beneath the process's directory: empty when each unit starts.
inline constexpr std::string_view kUnitDirName = "unit";

/// One unit to run after those sent before it (units run one at a time, in order).
struct Run {
  std::uint64_t lease_id = 0, job_id = 0, unit_index = 0;
  std::string unit;  // the lease's unit bytes
  std::optional<std::string> resume;
  std::uint32_t threads = 1;  // TBB threads of a native unit (its share of the donated cores)
  bool operator==(const Run&) const = default;
};

/// Stops the unit `lease_id` (running: at its next Progress; waiting: at once).
struct Cancel {
  std::uint64_t lease_id = 0;
  std::string reason;
  bool operator==(const Cancel&) const = default;
};

struct Progress {
  std::uint64_t lease_id = 0;
  float fraction = 0;  // 0..1
  bool operator==(const Progress&) const = default;
};

struct Checkpoint {
  std::uint64_t lease_id = 0;
  float fraction = 0;
  std::string state;  // at most proto::kMaxCheckpointBytes
  bool operator==(const Checkpoint&) const = default;
};

struct Done {
  std::uint64_t lease_id = 0;
  proto::UnitOutcome outcome = proto::UnitOutcome::kOk;
  std::string payload;     // ok: the canonical result, at most proto::kMaxResultBytes
  std::string hash;        // ok: BLAKE2b-256 of the canonical result (32 bytes); else empty
  std::string error;       // failed or cancelled: why
  double cpu_seconds = 0;  // CPU time of the process during the unit, as it measured it
  /// The executor exits after this frame (the unit left processes behind): units sent after
  /// this one never ran and go to a fresh process.
  bool last = false;
  bool operator==(const Done&) const = default;
};

using Message = std::variant<Start, Cancel, Progress, Checkpoint, Done, Run>;

/// The body of a frame (no length prefix).
std::string EncodeBody(const Message& m);
/// Decodes one body from untrusted bytes: every length is checked against its limit and the bytes
/// that remain; unknown types, bad values and trailing bytes are errors.
Result<Message> DecodeBody(std::string_view body);
/// Length prefix + body. Fails when the body is above kMaxFrameBytes.
Result<std::string> EncodeFrame(const Message& m);

/// Writes a whole frame to `fd` (blocking, retried on EINTR, no SIGPIPE on a socket).
Status WriteFrame(int fd, const Message& m);
/// Reads one frame from a blocking `fd`. nullopt = the other side closed at a frame boundary.
Result<std::optional<Message>> ReadFrame(int fd);

/// Splits a byte stream into frames as bytes arrive (for a non-blocking reader).
class FrameReader {
 public:
  /// Adds bytes read from the stream.
  void Append(std::string_view bytes) { buf_.append(bytes); }
  /// The next complete message, nullopt when more bytes are needed, an error when the stream is
  /// malformed (after which the stream is useless).
  Result<std::optional<Message>> Next();
  /// True when bytes of an incomplete frame are waiting.
  bool partial() const { return buf_.size() > pos_; }

 private:
  std::string buf_;
  std::size_t pos_ = 0;
};

}  // namespace sparecycles::worker::wire
