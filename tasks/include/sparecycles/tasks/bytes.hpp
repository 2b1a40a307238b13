// Bounded little-endian encoding for task authors: ByteWriter builds unit, result and
// checkpoint bytes; ByteReader reads them back from untrusted input, checking every length and
// count against a limit and the bytes that remain before allocating, so a hostile unit cannot
// make a kernel allocate gigabytes or read past its end. Header-only; per-call objects.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>

#include "sparecycles/core/status.hpp"

namespace sparecycles::tasks {

class ByteWriter {
 public:
  template <class T>
  ByteWriter& Put(T v) {
    static_assert(std::is_arithmetic_v<T>, "Put() takes numbers; use Str() for text");
    out_.append(reinterpret_cast<const char*>(&v), sizeof(v));
    return *this;
  }
  /// A string: u64 length, then its bytes.
  ByteWriter& Str(std::string_view s) {
    Put<std::uint64_t>(s.size());
    out_.append(s);
    return *this;
  }
  const std::string& bytes() const& { return out_; }
  std::string bytes() && { return std::move(out_); }

 private:
  std::string out_;
};

class ByteReader {
 public:
  explicit ByteReader(std::string_view in, std::string_view what = "input")
      : in_(in), what_(what) {}

  /// Reads a number; on failure sets the error (see status()) and returns 0.
  template <class T>
  T Get() {
    static_assert(std::is_arithmetic_v<T>, "Get() reads numbers; use Str() for text");
    T v{};
    if (!ok_ || in_.size() - pos_ < sizeof(T)) {
      Fail("truncated");
      return T{};
    }
    std::memcpy(&v, in_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  /// Reads a string of at most `max` bytes.
  std::string Str(std::uint64_t max) {
    const std::uint64_t n = Get<std::uint64_t>();
    if (!ok_) return {};
    if (n > max || n > in_.size() - pos_) {
      Fail(n > max ? "string longer than its limit" : "string runs past the end");
      return {};
    }
    std::string s(in_.substr(pos_, n));
    pos_ += n;
    return s;
  }
  /// Reads a count of records of at least `min_record_bytes` each, at most `max`.
  std::uint64_t Count(std::uint64_t max, std::uint64_t min_record_bytes = 1) {
    const std::uint64_t n = Get<std::uint64_t>();
    if (!ok_) return 0;
    if (n > max || (min_record_bytes > 0 && n > (in_.size() - pos_) / min_record_bytes)) {
      Fail("count exceeds its limit or the bytes that remain");
      return 0;
    }
    return n;
  }
  bool ok() const { return ok_; }
  bool AtEnd() const { return pos_ == in_.size(); }
  /// OK when everything read so far was well-formed and nothing is left over.
  Status Finish() const {
    if (!ok_) return DataLoss("malformed " + std::string(what_) + ": " + error_);
    if (!AtEnd()) return DataLoss("malformed " + std::string(what_) + ": trailing bytes");
    return OkStatus();
  }

 private:
  void Fail(const char* why) {
    if (ok_) error_ = std::string(why) + " at byte " + std::to_string(pos_);
    ok_ = false;
  }
  std::string_view in_;
  std::string_view what_;
  std::size_t pos_ = 0;
  bool ok_ = true;
  std::string error_;
};

}  // namespace sparecycles::tasks
