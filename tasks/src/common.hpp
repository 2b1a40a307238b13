// Small helpers shared by the built-in task kernels: decoding untrusted bytes with a task-named
// message, even range splitting, progress metering across TBB threads, timing and JSON output.
// Internal to the tasks library. Everything here is stateless or per-call; ProgressMeter is
// thread-safe (it may be fed from any TBB thread).
#pragma once

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "sparecycles/core/codec.hpp"
#include "sparecycles/core/status.hpp"
#include "sparecycles/tasks/task.hpp"

namespace sparecycles::tasks::internal {

/// Decodes untrusted bytes into `out`; the error names the task and what was being decoded.
template <class T>
Status DecodeOrError(std::string_view task, std::string_view what, std::string_view bytes, T& out) {
  Status s = DecodeValue(bytes, out);
  if (!s.ok()) {
    return Status(s.code(),
                  std::string(task) + ": malformed " + std::string(what) + ": " + s.message());
  }
  return OkStatus();
}

// GCC/Clang 128-bit integer; __extension__ keeps -Wpedantic quiet about it.
__extension__ typedef unsigned __int128 Uint128;

/// The i-th of n boundaries that cut [lo, hi) into n nearly equal contiguous pieces
/// (i = 0 gives lo, i = n gives hi). 128-bit arithmetic so huge ranges cannot overflow.
inline std::uint64_t SplitPoint(std::uint64_t lo, std::uint64_t hi, std::uint64_t i,
                                std::uint64_t n) {
  const Uint128 span = hi - lo;
  return lo + static_cast<std::uint64_t>(span * i / n);
}

/// The standard check of Split()'s unit count.
inline Status CheckUnitCount(std::string_view task, std::uint64_t units, std::uint64_t max_units) {
  if (units < 1 || units > max_units) {
    return InvalidArgument(std::string(task) + ": cannot split into " + std::to_string(units) +
                           " units (must be between 1 and " + std::to_string(max_units) + ")");
  }
  return OkStatus();
}

/// Reads an integer parameter and checks it lies in [min, max].
inline Result<std::int64_t> IntParam(std::string_view task, const JobParams& params,
                                     const std::string& name, std::int64_t def, std::int64_t min,
                                     std::int64_t max) {
  auto v = params.Int(name, def);
  if (!v.ok()) return InvalidArgument(std::string(task) + ": " + v.status().message());
  if (*v < min || *v > max) {
    return InvalidArgument(std::string(task) + ": '" + name + "' must be between " +
                           std::to_string(min) + " and " + std::to_string(max) + " (got " +
                           std::to_string(*v) + ")");
  }
  return v;
}

/// Sums work done by many threads and reports the fraction to the unit's context. Add() may throw
/// UnitCancelled (from UnitContext::Progress); callers let it propagate.
class ProgressMeter {
 public:
  ProgressMeter(UnitContext& ctx, double total) : ctx_(ctx), total_(total > 0 ? total : 1) {}
  void Add(std::uint64_t done) {
    const std::uint64_t now = done_.fetch_add(done, std::memory_order_relaxed) + done;
    ctx_.Progress(std::min(1.0, static_cast<double>(now) / total_));
  }

 private:
  UnitContext& ctx_;
  const double total_;
  std::atomic<std::uint64_t> done_{0};
};

/// Seconds elapsed since construction (steady clock; only used for calibration and spinning).
class Stopwatch {
 public:
  double Seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

/// A JSON string literal (quotes included); bytes >= 0x80 are passed through, control characters
/// are escaped.
inline std::string JsonString(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          static constexpr char kHex[] = "0123456789abcdef";
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 15];
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
  return out;
}

/// Shortest round-trip decimal for a finite double ("null" otherwise, which JSON accepts).
inline std::string JsonDouble(double v) {
  if (!(v == v) || v > 1.7976931348623157e308 || v < -1.7976931348623157e308) return "null";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, r.ptr);
}

/// What Summarize()/ToJson() print for bytes that do not decode as a merged result.
inline std::string BadMerged(std::string_view task, const Status& s) {
  return std::string(task) + ": not a merged result (" + s.message() + ")";
}
inline std::string BadMergedJson(std::string_view task, const Status& s) {
  return "{\"error\":" + JsonString(BadMerged(task, s)) + "}";
}

}  // namespace sparecycles::tasks::internal
