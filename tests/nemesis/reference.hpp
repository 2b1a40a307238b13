// Independent reference answers for the nemesis checker: a segmented sieve, libsodium's BLAKE2b,
// a naive escape-time loop and a word counter, written from the tasks' documented definitions
// without SpareCycles code. Owned by tests/nemesis; pure functions, thread-safe.
#pragma once

#include <sodium.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace sparecycles::nemesis {

/// Number of primes p with from <= p < to (segmented sieve of Eratosthenes).
inline std::uint64_t CountPrimes(std::uint64_t from, std::uint64_t to) {
  if (to <= 2 || from >= to) return 0;
  const std::uint64_t limit = static_cast<std::uint64_t>(std::sqrt(static_cast<double>(to))) + 2;
  std::vector<bool> small(limit + 1, true);
  std::vector<std::uint64_t> base;
  for (std::uint64_t i = 2; i <= limit; ++i) {
    if (!small[i]) continue;
    base.push_back(i);
    for (std::uint64_t j = i * i; j <= limit; j += i) small[j] = false;
  }
  std::uint64_t count = 0;
  const std::uint64_t kSegment = 1 << 22;
  std::vector<char> seg;
  for (std::uint64_t lo = std::max<std::uint64_t>(from, 2); lo < to; lo += kSegment) {
    const std::uint64_t hi = std::min(to, lo + kSegment);
    seg.assign(hi - lo, 1);
    for (std::uint64_t p : base) {
      if (p * p >= hi) break;
      std::uint64_t start = std::max(p * p, (lo + p - 1) / p * p);
      for (std::uint64_t j = start; j < hi; j += p) seg[j - lo] = 0;
    }
    for (char c : seg) count += c ? 1 : 0;
  }
  return count;
}

/// Nonces n in [from, to) whose BLAKE2b-256(prefix || n as 8 bytes little-endian) starts with at
/// least `bits` zero bits (most significant bit of the first byte first).
inline std::vector<std::uint64_t> HashSearch(const std::string& prefix, std::uint64_t from,
                                             std::uint64_t to, unsigned bits) {
  std::vector<std::uint64_t> hits;
  std::string msg = prefix + std::string(8, '\0');
  unsigned char out[32];
  for (std::uint64_t n = from; n < to; ++n) {
    for (int b = 0; b < 8; ++b) msg[prefix.size() + b] = static_cast<char>((n >> (8 * b)) & 0xff);
    crypto_generichash(out, sizeof(out), reinterpret_cast<const unsigned char*>(msg.data()),
                       msg.size(), nullptr, 0);
    unsigned zeros = 0;
    for (unsigned char byte : out) {
      if (byte == 0) {
        zeros += 8;
        continue;
      }
      for (int bit = 7; bit >= 0 && !(byte >> bit & 1); --bit) ++zeros;
      break;
    }
    if (zeros >= bits) hits.push_back(n);
  }
  return hits;
}

/// Pixels of a width x height view whose orbit of 0 stays within |z| <= 2 for max_iter steps;
/// pixel (px, py) samples c = (x0 + (px + 0.5) dx, y1 - (py + 0.5) dy).
inline std::uint64_t MandelbrotInSet(unsigned width, unsigned height, unsigned max_iter, double x0,
                                     double x1, double y0, double y1) {
  const double dx = (x1 - x0) / width, dy = (y1 - y0) / height;
  std::uint64_t in = 0;
  for (unsigned py = 0; py < height; ++py) {
    for (unsigned px = 0; px < width; ++px) {
      const double cr = x0 + (px + 0.5) * dx, ci = y1 - (py + 0.5) * dy;
      double zr = 0, zi = 0;
      unsigned n = 0;
      while (n < max_iter && zr * zr + zi * zi <= 4.0) {
        const double nr = zr * zr - zi * zi + cr;
        zi = 2 * zr * zi + ci;
        zr = nr;
        ++n;
      }
      if (n >= max_iter) ++in;
    }
  }
  return in;
}

/// Word counts: maximal runs of ASCII letters and digits, lower-cased, cut to 256 bytes.
inline std::map<std::string, std::uint64_t> WordCounts(const std::string& text,
                                                       std::uint64_t* total) {
  std::map<std::string, std::uint64_t> counts;
  *total = 0;
  std::string word;
  auto flush = [&] {
    if (word.empty()) return;
    if (word.size() > 256) word.resize(256);
    ++counts[word];
    ++*total;
    word.clear();
  };
  for (unsigned char c : text) {
    if (c < 0x80 && std::isalnum(c)) {
      word.push_back(static_cast<char>(std::tolower(c)));
    } else {
      flush();
    }
  }
  flush();
  return counts;
}

}  // namespace sparecycles::nemesis
