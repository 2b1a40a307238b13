// Hand-written little-endian byte builders and readers for tests that check a layout documented in
// docs/protocol.md byte by byte, without going through cereal (so the test cannot agree with the
// code merely because both use the same library). Test-only; plain values, thread-compatible.
#pragma once

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>

namespace sparecycles::testing {

/// Appends fields in wire order: integers and floats little-endian, `bytes` as a u64 length
/// followed by the raw bytes.
class WireWriter {
 public:
  WireWriter& U8(std::uint8_t v) { return Int(v, 1); }
  WireWriter& U16(std::uint16_t v) { return Int(v, 2); }
  WireWriter& U32(std::uint32_t v) { return Int(v, 4); }
  WireWriter& U64(std::uint64_t v) { return Int(v, 8); }
  WireWriter& F64(double v) {
    std::uint64_t bits = 0;
    std::memcpy(&bits, &v, 8);
    return Int(bits, 8);
  }
  WireWriter& Bytes(std::string_view b) {
    U64(b.size());
    out_.append(b);
    return *this;
  }
  const std::string& str() const { return out_; }

 private:
  WireWriter& Int(std::uint64_t v, int width) {
    for (int i = 0; i < width; ++i) out_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
    return *this;
  }
  std::string out_;
};

/// Reads fields in wire order; throws std::out_of_range when the bytes run out. Does not own the
/// bytes: they must outlive the reader (a temporary string is refused).
class WireReader {
 public:
  explicit WireReader(std::string_view in) : in_(in) {}
  explicit WireReader(std::string&&) = delete;
  std::uint8_t U8() { return static_cast<std::uint8_t>(Int(1)); }
  std::uint16_t U16() { return static_cast<std::uint16_t>(Int(2)); }
  std::uint32_t U32() { return static_cast<std::uint32_t>(Int(4)); }
  std::uint64_t U64() { return Int(8); }
  double F64() {
    const std::uint64_t bits = Int(8);
    double v = 0;
    std::memcpy(&v, &bits, 8);
    return v;
  }
  std::string Bytes() {
    const std::uint64_t n = U64();
    if (n > in_.size() - pos_) throw std::out_of_range("bytes run past the end");
    std::string s(in_.substr(pos_, n));
    pos_ += n;
    return s;
  }
  bool AtEnd() const { return pos_ == in_.size(); }
  std::size_t remaining() const { return in_.size() - pos_; }

 private:
  std::uint64_t Int(int width) {
    if (static_cast<std::size_t>(width) > in_.size() - pos_)
      throw std::out_of_range("field runs past the end");
    std::uint64_t v = 0;
    for (int i = 0; i < width; ++i)
      v |= std::uint64_t{static_cast<std::uint8_t>(in_[pos_ + i])} << (8 * i);
    pos_ += width;
    return v;
  }
  std::string_view in_;
  std::size_t pos_ = 0;
};

}  // namespace sparecycles::testing
