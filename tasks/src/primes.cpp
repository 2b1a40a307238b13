// primes: counts the primes in [from, to) with a segmented sieve of Eratosthenes.
//
// Layout (after primesieve): a sieve byte stands for 30 consecutive numbers and its 8 bits for the
// residues coprime to 30 {1,7,11,13,17,19,23,29}, so 2, 3 and 5 never cost anything and a byte
// holds 30 numbers instead of the 16 of an odd-only bit sieve. Multiples of 7..43 are removed by
// AND-ing precomputed periodic patterns ("pre-sieving"). Small primes are crossed off with eight
// strided loops (one per residue class of the multiplier, each with a fixed bit); larger primes
// hit a segment only a few times, so they wait in per-segment buckets and are touched only when
// they hit (bucket sieve). A unit is cut into chunks of whole segments that TBB
// sieves in parallel; each chunk keeps its own crossing-off state.
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "builtin.hpp"
#include "common.hpp"

namespace sparecycles::tasks {
namespace {

using internal::ProgressMeter;

constexpr std::string_view kName = "primes";

// Largest accepted 'to'. Sieving primes go up to sqrt(to) ~ 3.2e7 (8 MB of them per unit).
constexpr std::uint64_t kMaxTo = 1'000'000'000'000'000ull;  // 1e15
// The smallest unit worth sending to a peer, in numbers.
constexpr std::uint64_t kMinUnitNumbers = 100'000;

// Bytes per segment: 64 KiB = 1,966,080 numbers. Measured 32..512 KiB on an EPYC: 64-128 KiB
// were fastest (and fit any current L2); 32 KiB lost 30-60% to per-segment overheads.
constexpr std::uint32_t kSegmentBytes = 64 * 1024;
// Sieving primes at or above this go to the bucket sieve; below it the eight strided loops win
// (measured: a quarter of the segment is a little faster than the whole segment above 1e10).
constexpr std::uint32_t kBucketThreshold = kSegmentBytes / 4;
// Progress is reported once per this many segments (~31M numbers, a few ms).
constexpr std::uint64_t kSegmentsPerReport = 16;

constexpr std::array<std::uint32_t, 8> kResidues = {1, 7, 11, 13, 17, 19, 23, 29};
// Step of the multiplier from residue class w to w+1 (29 -> 31 wraps to class 0).
constexpr std::array<std::uint32_t, 8> kGap = {6, 4, 2, 4, 2, 4, 6, 2};
// Primes removed by wheel (2, 3, 5) or by pre-sieving (7..43); never crossed off explicitly.
constexpr std::array<std::uint32_t, 14> kPresievedPrimes = {2,  3,  5,  7,  11, 13, 17,
                                                            19, 23, 29, 31, 37, 41, 43};
constexpr std::uint32_t kFirstSievingPrime = 47;

constexpr int ResidueIndex(std::uint32_t r) {
  for (int i = 0; i < 8; ++i) {
    if (kResidues[i] == r) return i;
  }
  return -1;
}

// For a prime of residue class pc and a multiplier of class w: the AND mask that clears the
// multiple's bit, and how many bytes the byte index moves beyond q*kGap[w] (p = 30q + residue)
// when the multiplier steps to the next class.
struct WheelTables {
  std::uint8_t mask[8][8];
  std::uint8_t carry[8][8];
};

constexpr WheelTables MakeWheelTables() {
  WheelTables t{};
  for (int pc = 0; pc < 8; ++pc) {
    for (int w = 0; w < 8; ++w) {
      const std::uint32_t pr = kResidues[pc], r = kResidues[w];
      const std::uint32_t r_next = w == 7 ? 31 : kResidues[w + 1];
      t.mask[pc][w] = static_cast<std::uint8_t>(~(1u << ResidueIndex(pr * r % 30)));
      t.carry[pc][w] = static_cast<std::uint8_t>(pr * r_next / 30 - pr * r / 30);
    }
  }
  return t;
}
constexpr WheelTables kWheel = MakeWheelTables();

// A periodic byte pattern with the multiples of some small primes cleared; the period is the
// product of the primes (a multiple of p moves p bytes when its multiplier grows by 30).
struct Pattern {
  std::vector<std::uint8_t> bytes;

  explicit Pattern(std::initializer_list<std::uint32_t> primes) {
    std::uint32_t period = 1;
    for (std::uint32_t p : primes) period *= p;
    bytes.assign(period, 0xFF);
    for (std::uint32_t p : primes) {
      const int pc = ResidueIndex(p % 30);
      for (int w = 0; w < 8; ++w) {
        const std::uint64_t n = std::uint64_t{p} * kResidues[w];  // includes p itself (w = 0)
        for (std::uint64_t i = n / 30; i < period; i += p) bytes[i] &= kWheel.mask[pc][w];
      }
    }
  }

  // Combines the pattern into seg[0, len) for a segment starting at absolute byte `first`.
  template <bool kCopy>
  void Apply(std::uint8_t* seg, std::size_t len, std::uint64_t first) const {
    const std::size_t period = bytes.size();
    std::size_t pos = static_cast<std::size_t>(first % period);
    while (len > 0) {
      const std::size_t n = std::min(len, period - pos);
      if constexpr (kCopy) {
        std::memcpy(seg, bytes.data() + pos, n);
      } else {
        // Eight bytes at a time: -O2 does not vectorize a byte loop whose length is unknown.
        const std::uint8_t* src = bytes.data() + pos;
        std::size_t i = 0;
        for (; i + 8 <= n; i += 8) {
          std::uint64_t a, b;
          std::memcpy(&a, seg + i, 8);
          std::memcpy(&b, src + i, 8);
          a &= b;
          std::memcpy(seg + i, &a, 8);
        }
        for (; i < n; ++i) seg[i] &= src[i];
      }
      seg += n;
      len -= n;
      pos = 0;
    }
  }
};

const Pattern& Presieve1() {
  static const Pattern p({7, 11, 13, 17, 19});  // 323,323 bytes
  return p;
}
const Pattern& Presieve2() {
  static const Pattern p({23, 29, 31});  // 20,677 bytes
  return p;
}
const Pattern& Presieve3() {
  static const Pattern p({37, 41, 43});  // 65,231 bytes
  return p;
}

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
// Baseline x86-64 has no POPCNT instruction; pick it at load time where the CPU has it.
__attribute__((target_clones("popcnt", "default")))
#endif
std::uint64_t
CountBits(const std::uint8_t* p, std::size_t len) {
  std::uint64_t total = 0;
  std::size_t i = 0;
  for (; i + 8 <= len; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, p + i, 8);
    total += static_cast<std::uint64_t>(std::popcount(w));
  }
  for (; i < len; ++i) total += static_cast<std::uint64_t>(std::popcount(p[i]));
  return total;
}

// floor(sqrt(n)) exactly.
std::uint64_t ISqrt(std::uint64_t n) {
  auto r = static_cast<std::uint64_t>(std::sqrt(static_cast<double>(n)));
  while (r > 0 && static_cast<internal::Uint128>(r) * r > n) --r;
  while (static_cast<internal::Uint128>(r + 1) * (r + 1) <= n) ++r;
  return r;
}

// The primes in [kFirstSievingPrime, limit], by a plain odd-only sieve (limit <= ~3.2e7).
std::vector<std::uint32_t> SievingPrimes(std::uint64_t limit) {
  std::vector<std::uint32_t> primes;
  if (limit < kFirstSievingPrime) return primes;
  // composite[i] <=> 2i+1 is composite.
  std::vector<std::uint8_t> composite(limit / 2 + 1, 0);
  for (std::uint64_t i = 3; i * i <= limit; i += 2) {
    if (composite[i / 2]) continue;
    for (std::uint64_t j = i * i; j <= limit; j += 2 * i) composite[j / 2] = 1;
  }
  primes.reserve(static_cast<std::size_t>(1.3 * static_cast<double>(limit) /
                                          std::log(static_cast<double>(limit))));
  for (std::uint64_t n = kFirstSievingPrime; n <= limit; n += 2) {
    if (!composite[n / 2]) primes.push_back(static_cast<std::uint32_t>(n));
  }
  return primes;
}

// A sieving prime below the bucket threshold: the offsets (from the current segment's start) of
// its next multiple in each of the 8 multiplier classes.
struct SmallPrime {
  std::uint32_t prime;
  std::uint32_t pc;  // residue class of the prime
  std::uint32_t off[8];
};

// A bucket entry: the prime's next multiple in one future segment. meta = q << 6 | pc << 3 | w
// with p = 30q + kResidues[pc] and w the class of the multiplier of the multiple.
struct BucketEntry {
  std::uint32_t off;
  std::uint32_t meta;
};

// Buckets are chains of fixed-size blocks recycled through a free list: entries move between
// buckets constantly, and growing vectors for that costs more than the crossing off itself.
struct BucketBlock {
  static constexpr std::uint32_t kCapacity = 1022;  // 8 KiB blocks
  BucketBlock* next;
  std::uint32_t size;
  BucketEntry entries[kCapacity];
};

// Sieves whole segments of the absolute byte range [first_byte, end_byte) and counts the
// surviving bits that stand for numbers in [from, to).
class ChunkSieve {
 public:
  ChunkSieve(const std::vector<std::uint32_t>& primes, std::uint64_t first_byte,
             std::uint64_t end_byte, std::uint64_t from, std::uint64_t to)
      : first_byte_(first_byte), end_byte_(end_byte), from_(from), to_(to) {
    const std::uint64_t chunk_bytes = end_byte - first_byte;
    const std::uint64_t chunk_lo = first_byte * 30;
    const std::uint64_t chunk_hi = end_byte * 30;  // exclusive
    segments_ = (chunk_bytes + kSegmentBytes - 1) / kSegmentBytes;
    buckets_.assign(segments_, nullptr);
    for (std::uint32_t p : primes) {
      if (std::uint64_t{p} * p >= chunk_hi) break;
      // First multiple worth crossing off: at or after both p*p and the chunk's start.
      const std::uint64_t start = std::max<std::uint64_t>(std::uint64_t{p} * p, chunk_lo);
      const std::uint64_t m0 = (start + p - 1) / p;
      const std::uint32_t pc = static_cast<std::uint32_t>(ResidueIndex(p % 30));
      if (p < kBucketThreshold) {
        SmallPrime sp{p, pc, {}};
        for (int w = 0; w < 8; ++w) {
          const std::uint64_t m = m0 + (kResidues[w] + 30 - m0 % 30) % 30;
          const std::uint64_t off = m * p / 30 - first_byte;
          // Offsets past the chunk simply never hit; cap them so they fit in 32 bits.
          sp.off[w] =
              static_cast<std::uint32_t>(std::min<std::uint64_t>(off, chunk_bytes + kSegmentBytes));
        }
        small_.push_back(sp);
      } else {
        std::uint64_t a = m0 / 30;
        const std::uint32_t rem = static_cast<std::uint32_t>(m0 % 30);
        std::uint32_t w = 0;
        while (kResidues[w] < rem) ++w;  // kResidues[7] = 29 >= any remainder
        const std::uint64_t off = (p * (30 * a + kResidues[w])) / 30 - first_byte;
        if (off >= chunk_bytes) continue;
        const std::uint32_t q = p / 30;
        Push(off / kSegmentBytes,
             {static_cast<std::uint32_t>(off % kSegmentBytes), q << 6 | pc << 3 | w});
      }
    }
  }

  // Sieves every segment; reports progress through `meter` (may throw UnitCancelled) except for
  // the last few segments, whose byte count goes to `unreported_out` (reported by the caller once
  // the chunk's count is safe in the checkpoint state).
  std::uint64_t Run(ProgressMeter& meter, std::uint64_t& unreported_out) {
    std::vector<std::uint8_t> seg(kSegmentBytes);
    std::uint64_t count = 0, unreported = 0;
    for (std::uint64_t s = 0; s < segments_; ++s) {
      const std::uint64_t seg_first = first_byte_ + s * kSegmentBytes;
      const std::uint32_t len =
          static_cast<std::uint32_t>(std::min<std::uint64_t>(kSegmentBytes, end_byte_ - seg_first));
      std::uint8_t* const b = seg.data();
      Presieve1().Apply<true>(b, len, seg_first);
      Presieve2().Apply<false>(b, len, seg_first);
      Presieve3().Apply<false>(b, len, seg_first);
      SieveSmall(b, len);
      SieveBuckets(b, s);
      MaskRangeEnds(b, len, seg_first);
      count += CountBits(b, len);
      unreported += len;
      if ((s + 1) % kSegmentsPerReport == 0 && s + 1 != segments_) {
        meter.Add(unreported);
        unreported = 0;
      }
    }
    unreported_out = unreported;
    return count;
  }

 private:
  // Eight strided loops per prime, fused while all eight fit in the segment. Offsets are
  // relative to the segment start and are rebased for the next segment on the way out.
  void SieveSmall(std::uint8_t* seg, std::uint32_t len) {
    for (SmallPrime& sp : small_) {
      const std::uint32_t p = sp.prime;
      const std::uint8_t* m = kWheel.mask[sp.pc];
      std::uint32_t o0 = sp.off[0], o1 = sp.off[1], o2 = sp.off[2], o3 = sp.off[3];
      std::uint32_t o4 = sp.off[4], o5 = sp.off[5], o6 = sp.off[6], o7 = sp.off[7];
      std::uint32_t hi = std::max({o0, o1, o2, o3, o4, o5, o6, o7});
      // clang-format off
      for (; hi < len; hi += p) {
        seg[o0] &= m[0]; seg[o1] &= m[1]; seg[o2] &= m[2]; seg[o3] &= m[3];
        seg[o4] &= m[4]; seg[o5] &= m[5]; seg[o6] &= m[6]; seg[o7] &= m[7];
        o0 += p; o1 += p; o2 += p; o3 += p; o4 += p; o5 += p; o6 += p; o7 += p;
      }
      // clang-format on
      std::uint32_t o[8] = {o0, o1, o2, o3, o4, o5, o6, o7};
      for (int w = 0; w < 8; ++w) {
        std::uint32_t x = o[w];
        for (; x < len; x += p) seg[x] &= m[w];
        // The last segment of a chunk may be short; nothing follows it, so rebasing by the full
        // segment size keeps the arithmetic uniform.
        sp.off[w] = x - kSegmentBytes > x ? 0 : x - kSegmentBytes;
      }
    }
  }

  void SieveBuckets(std::uint8_t* seg, std::uint64_t s) {
    BucketBlock* block = buckets_[s];
    buckets_[s] = nullptr;
    while (block != nullptr) {
      for (std::uint32_t i = 0; i < block->size; ++i) {
        const BucketEntry e = block->entries[i];
        std::uint32_t off = e.off;
        const std::uint32_t q = e.meta >> 6;
        const std::uint32_t pc = (e.meta >> 3) & 7;
        std::uint32_t w = e.meta & 7;
        do {
          seg[off] &= kWheel.mask[pc][w];
          off += q * kGap[w] + kWheel.carry[pc][w];
          w = (w + 1) & 7;
        } while (off < kSegmentBytes);
        const std::uint64_t next = s + off / kSegmentBytes;
        if (next < segments_) Push(next, {off % kSegmentBytes, q << 6 | pc << 3 | w});
      }
      BucketBlock* done = block;
      block = block->next;
      done->next = free_;
      free_ = done;
    }
  }

  void Push(std::uint64_t segment, BucketEntry e) {
    BucketBlock* b = buckets_[segment];
    if (b == nullptr || b->size == BucketBlock::kCapacity) {
      BucketBlock* fresh = free_;
      if (fresh != nullptr) {
        free_ = fresh->next;
      } else {
        blocks_.push_back(std::make_unique<BucketBlock>());
        fresh = blocks_.back().get();
      }
      fresh->next = b;
      fresh->size = 0;
      buckets_[segment] = b = fresh;
    }
    b->entries[b->size++] = e;
  }

  // Clears the bits of numbers outside [from, to) in the unit's first and last byte.
  void MaskRangeEnds(std::uint8_t* seg, std::uint32_t len, std::uint64_t seg_first) const {
    for (std::uint64_t byte : {from_ / 30, (to_ - 1) / 30}) {
      if (byte < seg_first || byte >= seg_first + len) continue;
      for (int k = 0; k < 8; ++k) {
        const std::uint64_t n = byte * 30 + kResidues[k];
        if (n < from_ || n >= to_) seg[byte - seg_first] &= static_cast<std::uint8_t>(~(1u << k));
      }
    }
  }

  const std::uint64_t first_byte_, end_byte_, from_, to_;
  std::uint64_t segments_ = 0;
  std::vector<SmallPrime> small_;
  std::vector<BucketBlock*> buckets_;  // one chain per segment of the chunk (null = empty)
  BucketBlock* free_ = nullptr;        // recycled blocks
  std::vector<std::unique_ptr<BucketBlock>> blocks_;  // owns every block
};

// Counts the primes in [from, to) (to <= kMaxTo). Uses TBB over chunks of segments; the chunks
// done so far (with their counts) are the unit's checkpoint, so a resumed unit sieves only the
// chunks that are missing.
std::uint64_t CountPrimes(std::uint64_t from, std::uint64_t to, UnitContext& ctx) {
  if (from >= to) return 0;
  std::uint64_t count = 0;
  for (std::uint32_t p : kPresievedPrimes) count += (p >= from && p < to) ? 1 : 0;
  if (from <= 1 && to > 1) --count;  // 1 survives the sieve: it has no prime factor

  const std::vector<std::uint32_t> primes = SievingPrimes(ISqrt(to - 1));
  const std::uint64_t first_byte = from / 30, end_byte = (to - 1) / 30 + 1;
  const std::uint64_t total_bytes = end_byte - first_byte;
  // A chunk pays one initialisation per sieving prime, so it should be long compared with the
  // number of primes; but short enough that a unit still splits across threads.
  const std::uint64_t chunk_segments =
      std::max<std::uint64_t>(16, (16 * primes.size()) / kSegmentBytes + 1);
  const std::uint64_t chunk_bytes = chunk_segments * kSegmentBytes;
  const std::uint64_t chunks = (total_bytes + chunk_bytes - 1) / chunk_bytes;

  std::string key(24, '\0');
  std::memcpy(key.data(), &from, 8);
  std::memcpy(key.data() + 8, &to, 8);
  std::memcpy(key.data() + 16, &chunk_bytes, 8);
  internal::DoneChunks<std::uint64_t> done(internal::Fingerprint(key, 0x7072696d6573ull), chunks,
                                           [](std::uint64_t& a, std::uint64_t&& b) { a += b; });
  ProgressMeter meter(ctx, static_cast<double>(total_bytes));
  if (auto state = ctx.ResumeState(); state && done.Load(*state) && done.done() > 0) {
    // Resumed: report the work already done (the last chunk may be short; close enough).
    meter.Preset(std::min(total_bytes, done.done() * chunk_bytes));
    meter.Add(0);
  }
  internal::RunChunks<std::uint64_t>(
      ctx, done,
      [&](std::uint64_t c) {
        const std::uint64_t lo = first_byte + c * chunk_bytes;
        const std::uint64_t hi = std::min(end_byte, lo + chunk_bytes);
        ChunkSieve sieve(primes, lo, hi, from, to);
        std::uint64_t unreported = 0;
        return sieve.Run(meter, unreported);
      },
      [&](std::uint64_t c) {
        // What Run() left unreported: the bytes after its last report (every kSegmentsPerReport
        // segments, never after the final one).
        const std::uint64_t lo = first_byte + c * chunk_bytes;
        const std::uint64_t len = std::min(end_byte, lo + chunk_bytes) - lo;
        const std::uint64_t segments = (len + kSegmentBytes - 1) / kSegmentBytes;
        const std::uint64_t reported =
            (segments - 1) / kSegmentsPerReport * kSegmentsPerReport * kSegmentBytes;
        meter.Add(len - reported);
      });
  return count + done.Total();
}

struct Unit {
  std::uint64_t from = 0, to = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(from, to);
  }
};

// A unit's result echoes its range so Merge can check the results tile the job.
struct UnitResult {
  std::uint64_t from = 0, to = 0, count = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(from, to, count);
  }
};
using Merged = UnitResult;

struct Range {
  std::uint64_t from, to;
};

Result<Range> ParseRange(const JobParams& params) {
  auto from = params.Int("from", 0);
  if (!from.ok()) return InvalidArgument("primes: " + from.status().message());
  if (params.values.count("to") == 0) return InvalidArgument("primes: 'to' is required");
  auto to = params.Int("to", 0);
  if (!to.ok()) return InvalidArgument("primes: " + to.status().message());
  if (*from < 0) return InvalidArgument("primes: 'from' must not be negative");
  if (*to <= *from) return InvalidArgument("primes: 'to' must be greater than 'from'");
  if (static_cast<std::uint64_t>(*to) > kMaxTo)
    return InvalidArgument("primes: 'to' must be at most 1e15");
  return Range{static_cast<std::uint64_t>(*from), static_cast<std::uint64_t>(*to)};
}

class PrimesTask final : public Task {
 public:
  std::string_view Name() const override { return kName; }
  std::uint32_t Version() const override { return 1; }
  std::string_view Summary() const override {
    return "count the primes in [from, to) with a segmented sieve of Eratosthenes";
  }
  std::vector<ParamSpec> Params() const override {
    return {{"from", "0", "first number of the range (inclusive)"},
            {"to", "", "end of the range (exclusive), at most 1e15"}};
  }
  std::string_view WorkName() const override { return "numbers sieved"; }

  Result<JobPlan> Plan(const JobParams& params) const override {
    SC_ASSIGN_OR_RETURN(Range r, ParseRange(params));
    JobPlan plan;
    plan.total_work = static_cast<double>(r.to - r.from);
    plan.max_units = std::max<std::uint64_t>(1, (r.to - r.from) / kMinUnitNumbers);
    return plan;
  }

  Result<std::vector<std::string>> Split(const JobParams& params,
                                         std::uint64_t units) const override {
    SC_ASSIGN_OR_RETURN(JobPlan plan, Plan(params));
    SC_RETURN_IF_ERROR(internal::CheckUnitCount(kName, units, plan.max_units));
    SC_ASSIGN_OR_RETURN(Range r, ParseRange(params));
    std::vector<std::string> out;
    out.reserve(units);
    for (std::uint64_t i = 0; i < units; ++i) {
      out.push_back(EncodeValue(Unit{internal::SplitPoint(r.from, r.to, i, units),
                                     internal::SplitPoint(r.from, r.to, i + 1, units)}));
    }
    return out;
  }

  Result<std::string> Execute(std::string_view bytes, UnitContext& ctx) const override {
    Unit u;
    SC_RETURN_IF_ERROR(internal::DecodeOrError(kName, "unit", bytes, u));
    if (u.from > u.to || u.to > kMaxTo)
      return InvalidArgument("primes: unit range [" + std::to_string(u.from) + ", " +
                             std::to_string(u.to) + ") is invalid");
    return EncodeValue(UnitResult{u.from, u.to, CountPrimes(u.from, u.to, ctx)});
  }

  Result<std::string> Merge(const JobParams& params,
                            std::span<const std::string> results) const override {
    SC_ASSIGN_OR_RETURN(Range r, ParseRange(params));
    Merged merged{r.from, r.to, 0};
    std::uint64_t next = r.from;
    for (std::size_t i = 0; i < results.size(); ++i) {
      UnitResult u;
      SC_RETURN_IF_ERROR(internal::DecodeOrError(kName, "result", results[i], u));
      if (u.from != next || u.to <= u.from || u.to > r.to)
        return DataLoss("primes: result " + std::to_string(i) + " covers [" +
                        std::to_string(u.from) + ", " + std::to_string(u.to) + ") but [" +
                        std::to_string(next) + ", ...) was expected");
      if (u.count > u.to - u.from)
        return DataLoss("primes: result " + std::to_string(i) + " claims more primes than numbers");
      merged.count += u.count;
      next = u.to;
    }
    if (next != r.to)
      return DataLoss("primes: the results stop at " + std::to_string(next) + ", not at " +
                      std::to_string(r.to) + " (missing units?)");
    return EncodeValue(merged);
  }

  std::string Summarize(std::string_view bytes) const override {
    Merged m;
    Status s = DecodeValue(bytes, m);
    if (!s.ok()) return internal::BadMerged(kName, s);
    return std::to_string(m.count);
  }

  std::string ToJson(std::string_view bytes) const override {
    Merged m;
    Status s = DecodeValue(bytes, m);
    if (!s.ok()) return internal::BadMergedJson(kName, s);
    return "{\"count\":" + std::to_string(m.count) + ",\"from\":" + std::to_string(m.from) +
           ",\"to\":" + std::to_string(m.to) + "}";
  }

  double Calibrate(double seconds) const override {
    // Sieve consecutive 30M-number blocks from 1e10 (sqrt ~ 1e5, so both sieving paths run)
    // on one thread.
    tbb::task_arena arena(1);
    NullContext ctx;
    constexpr std::uint64_t kBlock = 30'000'000, kStart = 10'000'000'000ull;
    std::uint64_t done = 0;
    internal::Stopwatch watch;
    arena.execute([&] {
      do {
        (void)CountPrimes(kStart + done, kStart + done + kBlock, ctx);
        done += kBlock;
      } while (watch.Seconds() < seconds);
    });
    return static_cast<double>(done) / watch.Seconds();
  }

  double DefaultWorkPerSecond() const override { return 4e9; }
};

}  // namespace

std::unique_ptr<Task> MakePrimesTask() { return std::make_unique<PrimesTask>(); }

}  // namespace sparecycles::tasks
