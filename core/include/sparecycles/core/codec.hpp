// Bounded cereal archives: the only way SpareCycles turns bytes into structs and back.
// The output archive appends cereal's binary layout (little-endian, u64 sizes) to a string.
// The input archive reads that layout from untrusted bytes: every size tag is checked against the
// bytes that remain and a per-archive element limit *before* cereal allocates, so a hostile 8-byte
// frame cannot make us allocate a gigabyte. Failures throw inside the archive and are turned into a
// Status by DecodeValue(); nothing escapes past it. Wire layout: docs/protocol.md.
#pragma once

#include <algorithm>
#include <bit>
#include <cereal/cereal.hpp>
#include <cereal/types/map.hpp>
#include <cereal/types/optional.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/utility.hpp>
#include <cereal/types/vector.hpp>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "sparecycles/core/status.hpp"

static_assert(std::endian::native == std::endian::little,
              "the wire format is little-endian; big-endian hosts need byte swapping here");

namespace sparecycles {

/// Limits applied while decoding untrusted bytes.
struct DecodeLimits {
  // Largest element count accepted for any one string / vector / map. Default: 64 Mi.
  std::uint64_t max_elements = 64ull << 20;
};

class BufferOutputArchive
    : public cereal::OutputArchive<BufferOutputArchive, cereal::AllowEmptyClassElision> {
 public:
  explicit BufferOutputArchive(std::string& out)
      : cereal::OutputArchive<BufferOutputArchive, cereal::AllowEmptyClassElision>(this),
        out_(out) {}
  void saveBinary(const void* data, std::size_t size) {
    out_.append(static_cast<const char*>(data), size);
  }

 private:
  std::string& out_;
};

class BoundedInputArchive
    : public cereal::InputArchive<BoundedInputArchive, cereal::AllowEmptyClassElision> {
 public:
  BoundedInputArchive(std::string_view in, DecodeLimits limits)
      : cereal::InputArchive<BoundedInputArchive, cereal::AllowEmptyClassElision>(this),
        in_(in),
        limits_(limits) {}

  void loadBinary(void* data, std::size_t size) {
    if (size > in_.size() - pos_) throw cereal::Exception("truncated: field runs past the end");
    std::memcpy(data, in_.data() + pos_, size);
    pos_ += size;
  }
  // Called for every container size before cereal resizes anything. Each element of every type
  // we put on the wire takes at least one byte, so a count above the remaining bytes is a lie.
  void CheckSize(std::uint64_t size) const {
    if (size > in_.size() - pos_) throw cereal::Exception("length exceeds the bytes that remain");
    if (size > limits_.max_elements) throw cereal::Exception("length exceeds the field limit");
  }
  std::size_t remaining() const { return in_.size() - pos_; }

 private:
  std::string_view in_;
  std::size_t pos_ = 0;
  DecodeLimits limits_;
};

// --- cereal plumbing for the two archives -------------------------------------------------------
template <class T>
inline std::enable_if_t<std::is_arithmetic_v<T>> CEREAL_SAVE_FUNCTION_NAME(BufferOutputArchive& ar,
                                                                           const T& t) {
  ar.saveBinary(std::addressof(t), sizeof(t));
}
template <class T>
inline std::enable_if_t<std::is_arithmetic_v<T>> CEREAL_LOAD_FUNCTION_NAME(BoundedInputArchive& ar,
                                                                           T& t) {
  if constexpr (std::is_same_v<T, bool>) {
    std::uint8_t b = 0;
    ar.loadBinary(&b, 1);
    if (b > 1) throw cereal::Exception("bool byte is neither 0 nor 1");
    t = b != 0;
  } else {
    ar.loadBinary(std::addressof(t), sizeof(t));
  }
}
template <class T>
inline void CEREAL_SERIALIZE_FUNCTION_NAME(BufferOutputArchive& ar, cereal::NameValuePair<T>& t) {
  ar(t.value);
}
template <class T>
inline void CEREAL_SERIALIZE_FUNCTION_NAME(BoundedInputArchive& ar, cereal::NameValuePair<T>& t) {
  ar(t.value);
}
template <class T>
inline void CEREAL_SERIALIZE_FUNCTION_NAME(BufferOutputArchive& ar, cereal::SizeTag<T>& t) {
  std::uint64_t size = static_cast<std::uint64_t>(t.size);
  ar.saveBinary(&size, sizeof(size));
}
template <class T>
inline void CEREAL_SERIALIZE_FUNCTION_NAME(BoundedInputArchive& ar, cereal::SizeTag<T>& t) {
  std::uint64_t size = 0;
  ar.loadBinary(&size, sizeof(size));
  ar.CheckSize(size);
  t.size = static_cast<std::remove_reference_t<T>>(size);
}
template <class T>
inline void CEREAL_SAVE_FUNCTION_NAME(BufferOutputArchive& ar, const cereal::BinaryData<T>& bd) {
  ar.saveBinary(bd.data, static_cast<std::size_t>(bd.size));
}
template <class T>
inline void CEREAL_LOAD_FUNCTION_NAME(BoundedInputArchive& ar, cereal::BinaryData<T>& bd) {
  ar.loadBinary(bd.data, static_cast<std::size_t>(bd.size));
}

// Vectors are decoded one element at a time instead of cereal's resize-then-fill, so memory grows
// only with elements really present in the frame (each takes at least one byte on the wire), never
// with the count a hostile sender claims times sizeof(T).
template <class T, class A>
inline void CEREAL_LOAD_FUNCTION_NAME(BoundedInputArchive& ar, std::vector<T, A>& v) {
  cereal::size_type size = 0;
  ar(cereal::make_size_tag(size));
  v.clear();
  v.reserve(static_cast<std::size_t>(std::min<cereal::size_type>(size, 1024)));
  for (cereal::size_type i = 0; i < size; ++i) {
    if constexpr (std::is_same_v<T, bool>) {
      bool b = false;
      ar(b);
      v.push_back(b);
    } else {
      T item{};
      ar(item);
      v.push_back(std::move(item));
    }
  }
}

/// Serializes `value` with cereal's binary layout, appending to `out`.
template <class T>
void EncodeValue(const T& value, std::string& out) {
  BufferOutputArchive ar(out);
  ar(value);
}
template <class T>
std::string EncodeValue(const T& value) {
  std::string out;
  EncodeValue(value, out);
  return out;
}

/// Parses untrusted bytes into `out`. Every byte must be consumed. Never throws.
template <class T>
Status DecodeValue(std::string_view bytes, T& out, DecodeLimits limits = {}) {
  try {
    BoundedInputArchive ar(bytes, limits);
    ar(out);
    if (ar.remaining() != 0) return DataLoss("trailing bytes after the message body");
  } catch (const cereal::Exception& e) {
    return DataLoss(e.what());
  } catch (const std::bad_alloc&) {
    return ResourceExhausted("allocation failed while decoding");
  } catch (const std::length_error& e) {
    return DataLoss(e.what());
  }
  return OkStatus();
}

}  // namespace sparecycles

CEREAL_REGISTER_ARCHIVE(sparecycles::BufferOutputArchive)
CEREAL_REGISTER_ARCHIVE(sparecycles::BoundedInputArchive)
CEREAL_SETUP_ARCHIVE_TRAITS(sparecycles::BoundedInputArchive, sparecycles::BufferOutputArchive)
