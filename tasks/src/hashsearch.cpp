// hashsearch: finds every nonce in [from, to) whose BLAKE2b-256(prefix || nonce) starts with at
// least `bits` zero bits (a toy proof-of-work search).
//
// The nonce is appended as 8 bytes little-endian; "leading zero bits" counts from the most
// significant bit of the digest's first byte. The hash state after the prefix is computed once
// per unit and copied for every nonce. Merge re-hashes every reported nonce, so a peer cannot
// invent hits (it could still hide some: replication is what catches that).
#include <sodium.h>
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "builtin.hpp"
#include "common.hpp"
#include "sparecycles/core/hash.hpp"

namespace sparecycles::tasks {
namespace {

constexpr std::string_view kName = "hashsearch";

constexpr std::size_t kMaxPrefix = 4096;
// Most nonces one unit (and the whole job) may report; Plan() refuses jobs expected to come near.
constexpr std::uint64_t kMaxHits = 1'000'000;
// Nonces per TBB chunk and per progress report (a few ms of hashing).
constexpr std::uint64_t kChunk = 16'384;
// The smallest unit worth sending to a peer.
constexpr std::uint64_t kMinUnitNonces = 10'000;

struct Unit {
  std::string prefix;
  std::uint64_t from = 0, to = 0;
  std::uint32_t bits = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(prefix, from, to, bits);
  }
};

struct UnitResult {
  std::uint64_t from = 0, to = 0;
  std::vector<std::uint64_t> nonces;  // strictly increasing
  template <class Archive>
  void serialize(Archive& ar) {
    ar(from, to, nonces);
  }
};

struct Merged {
  std::string prefix;
  std::uint32_t bits = 0;
  std::uint64_t from = 0, to = 0;
  std::vector<std::uint64_t> nonces;
  std::uint32_t best_bits = 0;  // leading zero bits of the best nonce (0 when none)
  std::uint64_t best_nonce = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(prefix, bits, from, to, nonces, best_bits, best_nonce);
  }
};

// Hashes prefix || nonce with the prefix already absorbed into `base`.
class NonceHasher {
 public:
  explicit NonceHasher(std::string_view prefix) {
    InitCrypto();  // selects libsodium's fastest BLAKE2b for this CPU
    crypto_generichash_init(&base_, nullptr, 0, 32);
    crypto_generichash_update(&base_, reinterpret_cast<const unsigned char*>(prefix.data()),
                              prefix.size());
  }
  // Leading zero bits of the digest for `nonce` (0..64; 64 means "at least 64").
  std::uint32_t ZeroBits(std::uint64_t nonce) const {
    crypto_generichash_state s;
    std::memcpy(&s, &base_, sizeof(s));
    unsigned char le[8];
    for (int i = 0; i < 8; ++i) le[i] = static_cast<unsigned char>(nonce >> (8 * i));
    crypto_generichash_update(&s, le, sizeof(le));
    unsigned char digest[32];
    crypto_generichash_final(&s, digest, sizeof(digest));
    std::uint64_t head = 0;
    for (int i = 0; i < 8; ++i) head = head << 8 | digest[i];
    return static_cast<std::uint32_t>(std::countl_zero(head));
  }

 private:
  crypto_generichash_state base_;
};

struct Config {
  std::string prefix;
  std::uint64_t from, to;
  std::uint32_t bits;
};

Result<Config> ParseConfig(const JobParams& params) {
  Config c;
  c.prefix = params.Text("prefix", "sparecycles");
  if (c.prefix.size() > kMaxPrefix)
    return InvalidArgument("hashsearch: 'prefix' must be at most " + std::to_string(kMaxPrefix) +
                           " bytes");
  SC_ASSIGN_OR_RETURN(std::int64_t from,
                      internal::IntParam(kName, params, "from", 0, 0, INT64_MAX));
  if (params.values.count("to") == 0) return InvalidArgument("hashsearch: 'to' is required");
  SC_ASSIGN_OR_RETURN(std::int64_t to, internal::IntParam(kName, params, "to", 0, 0, INT64_MAX));
  if (to <= from) return InvalidArgument("hashsearch: 'to' must be greater than 'from'");
  SC_ASSIGN_OR_RETURN(std::int64_t bits, internal::IntParam(kName, params, "bits", 20, 1, 64));
  c.from = static_cast<std::uint64_t>(from);
  c.to = static_cast<std::uint64_t>(to);
  c.bits = static_cast<std::uint32_t>(bits);
  return c;
}

Status CheckUnit(const Unit& u) {
  if (u.prefix.size() > kMaxPrefix) return InvalidArgument("hashsearch: unit prefix is too long");
  if (u.bits < 1 || u.bits > 64) return InvalidArgument("hashsearch: unit bits out of range");
  if (u.from > u.to) return InvalidArgument("hashsearch: unit range is reversed");
  return OkStatus();
}

class HashSearchTask final : public Task {
 public:
  std::string_view Name() const override { return kName; }
  std::uint32_t Version() const override { return 1; }
  std::string_view Summary() const override {
    return "find nonces whose BLAKE2b-256(prefix || nonce) has 'bits' leading zero bits";
  }
  std::vector<ParamSpec> Params() const override {
    return {{"prefix", "sparecycles", "bytes hashed before the nonce (at most 4096)"},
            {"from", "0", "first nonce (inclusive)"},
            {"to", "", "last nonce (exclusive)"},
            {"bits", "20", "leading zero bits required, 1..64"}};
  }
  std::string_view WorkName() const override { return "nonces hashed"; }

  Result<JobPlan> Plan(const JobParams& params) const override {
    SC_ASSIGN_OR_RETURN(Config c, ParseConfig(params));
    const double expected =
        static_cast<double>(c.to - c.from) / std::ldexp(1.0, static_cast<int>(c.bits));
    if (expected > static_cast<double>(kMaxHits) / 2)
      return InvalidArgument("hashsearch: about " +
                             std::to_string(static_cast<std::uint64_t>(expected)) +
                             " nonces would match; raise 'bits' or shrink the range (limit " +
                             std::to_string(kMaxHits / 2) + ")");
    JobPlan plan;
    plan.total_work = static_cast<double>(c.to - c.from);
    plan.max_units = std::max<std::uint64_t>(1, (c.to - c.from) / kMinUnitNonces);
    return plan;
  }

  Result<std::vector<std::string>> Split(const JobParams& params,
                                         std::uint64_t units) const override {
    SC_ASSIGN_OR_RETURN(JobPlan plan, Plan(params));
    SC_RETURN_IF_ERROR(internal::CheckUnitCount(kName, units, plan.max_units));
    SC_ASSIGN_OR_RETURN(Config c, ParseConfig(params));
    std::vector<std::string> out;
    out.reserve(units);
    for (std::uint64_t i = 0; i < units; ++i) {
      out.push_back(EncodeValue(Unit{c.prefix, internal::SplitPoint(c.from, c.to, i, units),
                                     internal::SplitPoint(c.from, c.to, i + 1, units), c.bits}));
    }
    return out;
  }

  Result<std::string> Execute(std::string_view bytes, UnitContext& ctx) const override {
    Unit u;
    SC_RETURN_IF_ERROR(internal::DecodeOrError(kName, "unit", bytes, u));
    SC_RETURN_IF_ERROR(CheckUnit(u));
    const NonceHasher hasher(u.prefix);
    const std::uint64_t span = u.to - u.from;
    const std::uint64_t chunks = span / kChunk + (span % kChunk != 0 ? 1 : 0);
    // The chunks done so far with their nonces are the unit's checkpoint.
    internal::DoneChunks<std::vector<std::uint64_t>> done(
        internal::Fingerprint(bytes, 0x68617368ull), chunks,
        [](std::vector<std::uint64_t>& a, std::vector<std::uint64_t>&& b) {
          a.insert(a.end(), b.begin(), b.end());
        });
    std::atomic<std::uint64_t> total{0};
    std::atomic<bool> too_many{false};
    internal::ProgressMeter meter(ctx, static_cast<double>(span));
    if (auto state = ctx.ResumeState(); state && done.Load(*state) && done.done() > 0) {
      meter.Preset(std::min(span, done.done() * kChunk));
      meter.Add(0);
    }
    internal::RunChunks<std::vector<std::uint64_t>>(
        ctx, done,
        [&](std::uint64_t c) {
          std::vector<std::uint64_t> found;
          if (too_many.load(std::memory_order_relaxed)) return found;
          const std::uint64_t lo = u.from + c * kChunk;
          const std::uint64_t hi = lo + std::min(kChunk, u.to - lo);
          for (std::uint64_t n = lo; n < hi; ++n) {
            if (hasher.ZeroBits(n) >= u.bits) found.push_back(n);
          }
          if (total.fetch_add(found.size()) + found.size() > kMaxHits) too_many = true;
          return found;
        },
        [&](std::uint64_t c) {
          if (too_many.load(std::memory_order_relaxed)) return;
          const std::uint64_t lo = u.from + c * kChunk;
          meter.Add(std::min(kChunk, u.to - lo));
        });
    UnitResult result{u.from, u.to, done.Total()};
    if (too_many || result.nonces.size() > kMaxHits)
      return ResourceExhausted("hashsearch: more than " + std::to_string(kMaxHits) +
                               " matching nonces in one unit; raise 'bits'");
    return EncodeValue(result);
  }

  Result<std::string> Merge(const JobParams& params,
                            std::span<const std::string> results) const override {
    SC_ASSIGN_OR_RETURN(Config c, ParseConfig(params));
    const NonceHasher hasher(c.prefix);
    Merged m;
    m.prefix = c.prefix;
    m.bits = c.bits;
    m.from = c.from;
    m.to = c.to;
    std::uint64_t next = c.from;
    for (std::size_t i = 0; i < results.size(); ++i) {
      UnitResult r;
      SC_RETURN_IF_ERROR(internal::DecodeOrError(kName, "result", results[i], r));
      if (r.from != next || r.to <= r.from || r.to > c.to)
        return DataLoss("hashsearch: result " + std::to_string(i) + " covers [" +
                        std::to_string(r.from) + ", " + std::to_string(r.to) + ") but [" +
                        std::to_string(next) + ", ...) was expected");
      if (m.nonces.size() + r.nonces.size() > kMaxHits)
        return ResourceExhausted("hashsearch: more than " + std::to_string(kMaxHits) + " nonces");
      std::uint64_t prev = 0;
      for (std::size_t k = 0; k < r.nonces.size(); ++k) {
        const std::uint64_t n = r.nonces[k];
        if (n < r.from || n >= r.to || (k > 0 && n <= prev))
          return DataLoss("hashsearch: result " + std::to_string(i) +
                          " lists nonces out of range or out of order");
        const std::uint32_t z = hasher.ZeroBits(n);
        if (z < c.bits)
          return DataLoss("hashsearch: result " + std::to_string(i) + " reports nonce " +
                          std::to_string(n) + ", which does not match");
        if (z > m.best_bits) {
          m.best_bits = z;
          m.best_nonce = n;
        }
        m.nonces.push_back(n);
        prev = n;
      }
      next = r.to;
    }
    if (next != c.to)
      return DataLoss("hashsearch: the results stop at " + std::to_string(next) + ", not at " +
                      std::to_string(c.to) + " (missing units?)");
    return EncodeValue(m);
  }

  std::string Summarize(std::string_view bytes) const override {
    Merged m;
    Status s = DecodeValue(bytes, m);
    if (!s.ok()) return internal::BadMerged(kName, s);
    std::string out = std::to_string(m.nonces.size()) + " nonce" +
                      (m.nonces.size() == 1 ? "" : "s") + " with >= " + std::to_string(m.bits) +
                      " leading zero bits in [" + std::to_string(m.from) + ", " +
                      std::to_string(m.to) + ")";
    if (!m.nonces.empty())
      out +=
          "; best: " + std::to_string(m.best_nonce) + " (" + std::to_string(m.best_bits) + " bits)";
    return out;
  }

  std::string ToJson(std::string_view bytes) const override {
    Merged m;
    Status s = DecodeValue(bytes, m);
    if (!s.ok()) return internal::BadMergedJson(kName, s);
    std::string out = "{\"prefix\":" + internal::JsonString(m.prefix) +
                      ",\"bits\":" + std::to_string(m.bits) +
                      ",\"from\":" + std::to_string(m.from) + ",\"to\":" + std::to_string(m.to) +
                      ",\"count\":" + std::to_string(m.nonces.size()) + ",\"nonces\":[";
    for (std::size_t i = 0; i < m.nonces.size(); ++i) {
      if (i > 0) out += ',';
      out += std::to_string(m.nonces[i]);
    }
    out += "]";
    if (!m.nonces.empty()) {
      std::string input = m.prefix;
      for (int i = 0; i < 8; ++i) input += static_cast<char>(m.best_nonce >> (8 * i));
      out += ",\"best\":{\"nonce\":" + std::to_string(m.best_nonce) +
             ",\"zero_bits\":" + std::to_string(m.best_bits) +
             ",\"hash\":" + internal::JsonString(ToHex(Blake2b256(input))) + "}";
    }
    return out + "}";
  }

  double Calibrate(double seconds) const override {
    const NonceHasher hasher("sparecycles");
    std::uint64_t n = 0, sink = 0;
    internal::Stopwatch watch;
    do {
      for (std::uint64_t end = n + 4096; n < end; ++n) sink += hasher.ZeroBits(n);
    } while (watch.Seconds() < seconds);
    if (sink > 64 * n) std::abort();  // keeps the hashing from being optimised away
    return static_cast<double>(n) / watch.Seconds();
  }

  double DefaultWorkPerSecond() const override { return 3e6; }
};

}  // namespace

std::unique_ptr<Task> MakeHashSearchTask() { return std::make_unique<HashSearchTask>(); }

}  // namespace sparecycles::tasks
