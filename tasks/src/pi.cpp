// pi: Monte Carlo estimate of pi from points in the unit square.
//
// Sample i of a job with seed s is the point (hi32, lo32) of SplitMix64(Mix(s) + (i+1) * gamma),
// i.e. a counter-based generator: every sample is a pure function of (seed, i), so a unit's result
// depends only on its sample range — not on the peer, the thread count or how the job was split.
// A point is a hit when x^2 + y^2 < 2^64 with x, y in [0, 2^32): integer-only and exact. The
// lattice bias (~2^-32) is far below the sampling error of any feasible job.
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "builtin.hpp"
#include "common.hpp"

namespace sparecycles::tasks {
namespace {

constexpr std::string_view kName = "pi";

constexpr std::uint64_t kMaxSamples = 1'000'000'000'000'000ull;  // 1e15
// Samples per TBB chunk: fixed, so the work split inside a unit never depends on the machine.
constexpr std::uint64_t kChunk = 1u << 20;
// The smallest unit worth sending to a peer.
constexpr std::uint64_t kMinUnitSamples = 1'000'000;
constexpr std::uint64_t kGamma = 0x9E3779B97F4A7C15ull;

// The SplitMix64 output function (Stafford's Mix13).
constexpr std::uint64_t Mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Hits among samples [first, first + count) of the stream with key Mix64(seed).
std::uint64_t CountHits(std::uint64_t key, std::uint64_t first, std::uint64_t count) {
  std::uint64_t hits = 0;
  std::uint64_t state = key + (first + 1) * kGamma;  // wraps mod 2^64 by design
  for (std::uint64_t i = 0; i < count; ++i, state += kGamma) {
    const std::uint64_t z = Mix64(state);
    const std::uint64_t x = z >> 32, y = z & 0xFFFFFFFFu;
    std::uint64_t sum;
    // x^2 and y^2 are each < 2^64; the point is inside iff their sum does not overflow.
    hits += __builtin_add_overflow(x * x, y * y, &sum) ? 0 : 1;
  }
  return hits;
}

struct Unit {
  std::uint64_t seed = 0, first = 0, count = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(seed, first, count);
  }
};

struct UnitResult {
  std::uint64_t first = 0, count = 0, hits = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(first, count, hits);
  }
};

struct Merged {
  std::uint64_t seed = 0, samples = 0, hits = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(seed, samples, hits);
  }
};

struct Config {
  std::uint64_t samples, seed;
};

Result<Config> ParseConfig(const JobParams& params) {
  SC_ASSIGN_OR_RETURN(std::int64_t samples,
                      internal::IntParam(kName, params, "samples", 100'000'000, 1,
                                         static_cast<std::int64_t>(kMaxSamples)));
  auto seed = params.Int("seed", 1);
  if (!seed.ok()) return InvalidArgument("pi: " + seed.status().message());
  // Any 64-bit pattern is a fine seed; negative values are taken modulo 2^64.
  return Config{static_cast<std::uint64_t>(samples), static_cast<std::uint64_t>(*seed)};
}

// Estimate and its standard error from a hit count.
void Estimate(const Merged& m, double& estimate, double& std_error) {
  const double n = static_cast<double>(m.samples);
  const double p = n > 0 ? static_cast<double>(m.hits) / n : 0;
  estimate = 4 * p;
  std_error = n > 0 ? 4 * std::sqrt(p * (1 - p) / n) : 0;
}

class PiTask final : public Task {
 public:
  std::string_view Name() const override { return kName; }
  std::uint32_t Version() const override { return 1; }
  std::string_view Summary() const override {
    return "estimate pi by Monte Carlo sampling (deterministic for a given seed)";
  }
  std::vector<ParamSpec> Params() const override {
    return {{"samples", "1e8", "number of random points (at most 1e15)"},
            {"seed", "1", "random seed; the same seed gives the same answer"}};
  }
  std::string_view WorkName() const override { return "samples"; }

  Result<JobPlan> Plan(const JobParams& params) const override {
    SC_ASSIGN_OR_RETURN(Config c, ParseConfig(params));
    JobPlan plan;
    plan.total_work = static_cast<double>(c.samples);
    plan.max_units = std::max<std::uint64_t>(1, c.samples / kMinUnitSamples);
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
      const std::uint64_t lo = internal::SplitPoint(0, c.samples, i, units);
      const std::uint64_t hi = internal::SplitPoint(0, c.samples, i + 1, units);
      out.push_back(EncodeValue(Unit{c.seed, lo, hi - lo}));
    }
    return out;
  }

  Result<std::string> Execute(std::string_view bytes, UnitContext& ctx) const override {
    Unit u;
    SC_RETURN_IF_ERROR(internal::DecodeOrError(kName, "unit", bytes, u));
    if (u.first > kMaxSamples || u.count > kMaxSamples - u.first)
      return InvalidArgument("pi: unit sample range is out of bounds");
    const std::uint64_t key = Mix64(u.seed);
    const std::uint64_t chunks = (u.count + kChunk - 1) / kChunk;
    // One running sum, not a count per chunk: a unit may have ~10^9 chunks (the sum of integers
    // does not depend on the order the chunks finish in).
    std::atomic<std::uint64_t> hits{0};
    internal::ProgressMeter meter(ctx, static_cast<double>(u.count));
    tbb::parallel_for(tbb::blocked_range<std::uint64_t>(0, chunks, 1),
                      [&](const tbb::blocked_range<std::uint64_t>& r) {
                        for (std::uint64_t c = r.begin(); c != r.end(); ++c) {
                          const std::uint64_t lo = c * kChunk;
                          const std::uint64_t n = std::min(kChunk, u.count - lo);
                          hits.fetch_add(CountHits(key, u.first + lo, n),
                                         std::memory_order_relaxed);
                          meter.Add(n);
                        }
                      });
    UnitResult result{u.first, u.count, hits.load()};
    return EncodeValue(result);
  }

  Result<std::string> Merge(const JobParams& params,
                            std::span<const std::string> results) const override {
    SC_ASSIGN_OR_RETURN(Config c, ParseConfig(params));
    Merged merged{c.seed, 0, 0};
    for (std::size_t i = 0; i < results.size(); ++i) {
      UnitResult u;
      SC_RETURN_IF_ERROR(internal::DecodeOrError(kName, "result", results[i], u));
      if (u.first != merged.samples || u.count == 0 || u.count > c.samples - merged.samples)
        return DataLoss("pi: result " + std::to_string(i) + " covers samples [" +
                        std::to_string(u.first) + ", +" + std::to_string(u.count) + ") but " +
                        std::to_string(merged.samples) + " was expected next");
      if (u.hits > u.count)
        return DataLoss("pi: result " + std::to_string(i) + " has more hits than samples");
      merged.samples += u.count;
      merged.hits += u.hits;
    }
    if (merged.samples != c.samples)
      return DataLoss("pi: the results hold " + std::to_string(merged.samples) + " samples, not " +
                      std::to_string(c.samples) + " (missing units?)");
    return EncodeValue(merged);
  }

  std::string Summarize(std::string_view bytes) const override {
    Merged m;
    Status s = DecodeValue(bytes, m);
    if (!s.ok()) return internal::BadMerged(kName, s);
    double estimate, err;
    Estimate(m, estimate, err);
    // Print as many decimals as the standard error justifies (plus one), at least 2, at most 12.
    int decimals = 2;
    if (err > 0) decimals = std::clamp(static_cast<int>(std::ceil(-std::log10(err))) + 1, 2, 12);
    char buf[96];
    std::snprintf(buf, sizeof(buf), "%.*f (±%.*f)", decimals, estimate, decimals, err);
    return buf;
  }

  std::string ToJson(std::string_view bytes) const override {
    Merged m;
    Status s = DecodeValue(bytes, m);
    if (!s.ok()) return internal::BadMergedJson(kName, s);
    double estimate, err;
    Estimate(m, estimate, err);
    return "{\"estimate\":" + internal::JsonDouble(estimate) +
           ",\"std_error\":" + internal::JsonDouble(err) +
           ",\"samples\":" + std::to_string(m.samples) + ",\"hits\":" + std::to_string(m.hits) +
           ",\"seed\":" + std::to_string(m.seed) + "}";
  }

  double Calibrate(double seconds) const override {
    std::uint64_t done = 0;
    std::uint64_t sink = 0;
    internal::Stopwatch watch;
    do {
      sink += CountHits(Mix64(1), done, kChunk);
      done += kChunk;
    } while (watch.Seconds() < seconds);
    // Keeps the loop from being optimised away; the hit rate is always below 1.
    if (sink > done) std::abort();
    return static_cast<double>(done) / watch.Seconds();
  }

  double DefaultWorkPerSecond() const override { return 5e8; }
};

}  // namespace

std::unique_ptr<Task> MakePiTask() { return std::make_unique<PiTask>(); }

}  // namespace sparecycles::tasks
