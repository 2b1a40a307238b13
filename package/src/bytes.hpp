// Little-endian byte writer and bounded reader for the package format (docs/packages.md).
// The reader never trusts a length: every string and count is checked against a caller-given
// limit and against the bytes that remain before anything is allocated. Per-call objects;
// not shared between threads.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "sparecycles/core/status.hpp"

namespace sparecycles::package::internal {

class Writer {
 public:
  void U8(std::uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void U32(std::uint32_t v) { Raw(&v, 4); }
  void U64(std::uint64_t v) { Raw(&v, 8); }
  void I64(std::int64_t v) { Raw(&v, 8); }
  // A string: u32 byte length, then the bytes (no terminator).
  void Str(std::string_view s) {
    U32(static_cast<std::uint32_t>(s.size()));
    out_.append(s);
  }
  void Bytes(const void* p, std::size_t n) { out_.append(static_cast<const char*>(p), n); }
  std::string& out() { return out_; }

 private:
  // The format is little-endian; the build refuses big-endian hosts (core/codec.hpp asserts it).
  void Raw(const void* p, std::size_t n) { out_.append(static_cast<const char*>(p), n); }
  std::string out_;
};

// Reads fields in order; the first failure sticks (later reads return zero values) so a decoder
// can read a whole record and check ok() once, or check after each field for a precise message.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  std::size_t remaining() const { return in_.size() - pos_; }
  std::size_t position() const { return pos_; }
  void Fail(std::string what) {
    if (status_.ok())
      status_ = DataLoss(std::move(what) + " (at byte " + std::to_string(pos_) + ")");
  }

  std::uint8_t U8(const char* what) {
    std::uint8_t v = 0;
    Raw(&v, 1, what);
    return v;
  }
  std::uint32_t U32(const char* what) {
    std::uint32_t v = 0;
    Raw(&v, 4, what);
    return v;
  }
  std::uint64_t U64(const char* what) {
    std::uint64_t v = 0;
    Raw(&v, 8, what);
    return v;
  }
  std::int64_t I64(const char* what) {
    std::int64_t v = 0;
    Raw(&v, 8, what);
    return v;
  }
  // A count of records that follow: refused above `max`, before any allocation.
  std::uint32_t Count(const char* what, std::size_t max) {
    const std::uint32_t n = U32(what);
    if (ok() && n > max)
      Fail(std::string(what) + ": count " + std::to_string(n) + " exceeds the limit of " +
           std::to_string(max));
    return ok() ? n : 0;
  }
  std::string Str(const char* what, std::size_t max) {
    const std::uint32_t n = U32(what);
    if (!ok()) return {};
    if (n > max) {
      Fail(std::string(what) + ": length " + std::to_string(n) + " exceeds the limit of " +
           std::to_string(max));
      return {};
    }
    if (n > remaining()) {
      Fail(std::string(what) + ": length runs past the end");
      return {};
    }
    std::string s(in_.substr(pos_, n));
    pos_ += n;
    return s;
  }
  std::string_view View(std::size_t n, const char* what) {
    if (!ok()) return {};
    if (n > remaining()) {
      Fail(std::string(what) + ": runs past the end");
      return {};
    }
    std::string_view v = in_.substr(pos_, n);
    pos_ += n;
    return v;
  }
  void Raw(void* out, std::size_t n, const char* what) {
    if (!ok()) return;
    if (n > remaining()) {
      Fail(std::string("truncated: ") + what + " runs past the end");
      return;
    }
    std::memcpy(out, in_.data() + pos_, n);
    pos_ += n;
  }

 private:
  std::string_view in_;
  std::size_t pos_ = 0;
  Status status_;
};

}  // namespace sparecycles::package::internal
