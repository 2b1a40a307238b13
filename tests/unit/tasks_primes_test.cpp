// Tests of the primes task against independent references: a plain sieve for small and
// medium ranges, a plain segmented odd-only sieve and Miller-Rabin for high ranges, and known
// values of pi(x).
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "sparecycles/tasks/task.hpp"
#include "task_runner.hpp"
#include "wire_bytes.hpp"

using namespace sparecycles;
using namespace sparecycles::tasks;

namespace {

const Task& Primes() { return testing::BuiltInTask("primes"); }

JobParams Range(std::uint64_t from, std::uint64_t to) {
  JobParams p;
  p.values["from"] = std::to_string(from);
  p.values["to"] = std::to_string(to);
  return p;
}

// The merged answer as text (Summarize), running the job in `units` units.
std::string Count(std::uint64_t from, std::uint64_t to, std::uint64_t units = 1) {
  return Primes().Summarize(testing::RunJob(Primes(), Range(from, to), units));
}

// Reference: a plain sieve of Eratosthenes over [0, n).
std::vector<bool> PlainSieve(std::uint64_t n) {
  std::vector<bool> prime(n, true);
  for (std::uint64_t i = 0; i < std::min<std::uint64_t>(n, 2); ++i) prime[i] = false;
  for (std::uint64_t i = 2; i * i < n; ++i) {
    if (!prime[i]) continue;
    for (std::uint64_t j = i * i; j < n; j += i) prime[j] = false;
  }
  return prime;
}

std::string RefCount(const std::vector<bool>& prime, std::uint64_t from, std::uint64_t to) {
  std::uint64_t c = 0;
  for (std::uint64_t i = from; i < to; ++i) c += prime[i] ? 1 : 0;
  return std::to_string(c);
}

// Reference for high ranges: an odd-only sieve of [from, to) by every prime up to sqrt(to).
std::uint64_t SegmentRef(std::uint64_t from, std::uint64_t to) {
  std::uint64_t root = 1;
  while ((root + 1) * (root + 1) < to) ++root;
  const std::vector<bool> small = PlainSieve(root + 1);
  std::vector<bool> composite(to - from, false);
  for (std::uint64_t p = 2; p <= root; ++p) {
    if (!small[p]) continue;
    std::uint64_t start = std::max(p * p, (from + p - 1) / p * p);
    for (std::uint64_t m = start; m < to; m += p) composite[m - from] = true;
  }
  std::uint64_t c = 0;
  for (std::uint64_t n = std::max<std::uint64_t>(from, 2); n < to; ++n)
    c += composite[n - from] ? 0 : 1;
  return c;
}

// Reference for isolated high numbers: deterministic Miller-Rabin (valid far beyond 2^64).
std::uint64_t MulMod(std::uint64_t a, std::uint64_t b, std::uint64_t m) {
  __extension__ typedef unsigned __int128 U128;
  return static_cast<std::uint64_t>(static_cast<U128>(a) * b % m);
}
std::uint64_t PowMod(std::uint64_t b, std::uint64_t e, std::uint64_t m) {
  std::uint64_t r = 1;
  for (b %= m; e > 0; e >>= 1, b = MulMod(b, b, m))
    if (e & 1) r = MulMod(r, b, m);
  return r;
}
bool IsPrimeMR(std::uint64_t n) {
  if (n < 2) return false;
  for (std::uint64_t p : {2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37}) {
    if (n % p == 0) return n == p;
  }
  std::uint64_t d = n - 1;
  int s = 0;
  while (d % 2 == 0) d /= 2, ++s;
  for (std::uint64_t a : {2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37}) {
    std::uint64_t x = PowMod(a, d, n);
    if (x == 1 || x == n - 1) continue;
    bool composite = true;
    for (int r = 1; r < s && composite; ++r) {
      x = MulMod(x, x, n);
      if (x == n - 1) composite = false;
    }
    if (composite) return false;
  }
  return true;
}

// Records progress reports; TBB threads may call it concurrently.
class CountingContext final : public UnitContext {
 public:
  void Progress(double f) override {
    std::lock_guard<std::mutex> lock(mu);
    if (f < 0 || f > 1) out_of_range = true;
    last = std::max(last, f);
    ++calls;
  }
  bool StopRequested() const override { return false; }
  std::mutex mu;
  bool out_of_range = false;
  double last = 0;
  int calls = 0;
};

class CancellingContext final : public UnitContext {
 public:
  void Progress(double) override { throw UnitCancelled{"test"}; }
  bool StopRequested() const override { return true; }
};

}  // namespace

TEST_CASE("the registry knows primes version 1") {
  CHECK(Primes().Name() == "primes");
  CHECK(Primes().Version() == 1);
  CHECK(Registry::BuiltIn().Find("primes") == &Primes());
}

TEST_CASE("every small range matches a plain sieve, including the edges 0, 1 and 2") {
  const std::vector<bool> prime = PlainSieve(200);
  // Every [from, to) inside [0, 130): covers 1, the wheel primes 2, 3, 5 and the pre-sieved
  // primes 7..43, and ranges that begin or end inside a 30-number byte.
  for (std::uint64_t from = 0; from < 130; ++from) {
    for (std::uint64_t to = from + 1; to <= 130; to += (to < from + 40 ? 1 : 7)) {
      INFO("[" << from << ", " << to << ")");
      REQUIRE(Count(from, to) == RefCount(prime, from, to));
    }
  }
}

TEST_CASE("random ranges below 7e7 match a plain sieve, including segment and chunk boundaries") {
  constexpr std::uint64_t kLimit = 70'000'000;
  const std::vector<bool> prime = PlainSieve(kLimit);
  std::mt19937_64 rng(12345);
  for (int i = 0; i < 200; ++i) {
    const std::uint64_t from = rng() % kLimit;
    const std::uint64_t to = from + 1 + rng() % std::min<std::uint64_t>(kLimit - from, 1'000'000);
    INFO("[" << from << ", " << to << ")");
    REQUIRE(Count(from, to) == RefCount(prime, from, to));
  }
  // A 64 KiB segment holds 1,966,080 numbers and a chunk 16 segments; the cases straddle those
  // boundaries (and a few other round sizes) by a little and by a lot.
  for (std::uint64_t edge :
       {983'040ull, 1'966'080ull, 3'932'160ull, 31'457'280ull, 62'914'560ull}) {
    for (std::uint64_t before : {1ull, 29ull, 30ull, 31ull, 5'000ull, 2'000'000ull}) {
      for (std::uint64_t after : {1ull, 30ull, 7'001ull, 2'500'000ull}) {
        if (before > edge) continue;
        const std::uint64_t from = edge - before, to = std::min(kLimit, edge + after);
        INFO("[" << from << ", " << to << ")");
        REQUIRE(Count(from, to) == RefCount(prime, from, to));
      }
    }
  }
  CHECK(Count(0, kLimit, 7) == RefCount(prime, 0, kLimit));
}

TEST_CASE("ranges above 1e12 match a plain segmented sieve and Miller-Rabin") {
  // 6e7 numbers: several segments and two chunks where primes up to 1e6 sit in buckets.
  const std::uint64_t lo = 1'000'000'000'000ull, hi = lo + 60'000'000;
  CHECK(Count(lo, hi, 3) == std::to_string(SegmentRef(lo, hi)));
  for (std::uint64_t base : {1'000'000'000'000ull, 9'999'999'900'000ull, 999'999'999'800'000ull}) {
    const std::uint64_t to = base + 100'000;
    std::uint64_t ref = 0;
    for (std::uint64_t n = base; n < to; ++n) ref += IsPrimeMR(n) ? 1 : 0;
    INFO("[" << base << ", " << to << ")");
    CHECK(Count(base, to) == std::to_string(ref));
  }
  CHECK(Count(999'999'999'999'000ull, 1'000'000'000'000'000ull) == std::to_string([] {
          std::uint64_t c = 0;
          for (std::uint64_t n = 999'999'999'999'000ull; n < 1'000'000'000'000'000ull; ++n)
            c += IsPrimeMR(n) ? 1 : 0;
          return c;
        }()));
}

TEST_CASE("pi(1e9), pi(2e9) and pi(1e10) come out right when split into units and merged") {
  CHECK(Count(0, 1'000'000'000, 7) == "50847534");
  CHECK(Count(0, 2'000'000'000, 3) == "98222287");
  CHECK(Count(0, 10'000'000'000ull, 4) == "455052511");
}

TEST_CASE("split covers the range exactly once for any unit count") {
  const std::vector<bool> prime = PlainSieve(3'000'000);
  const std::string expected = RefCount(prime, 123'457, 2'999'999);
  auto plan = Primes().Plan(Range(123'457, 2'999'999));
  REQUIRE(plan.ok());
  CHECK(plan->total_work == doctest::Approx(2'999'999.0 - 123'457));
  REQUIRE(plan->max_units == 28);
  for (std::uint64_t units = 1; units <= plan->max_units; ++units) {
    INFO(units << " units");
    CHECK(Count(123'457, 2'999'999, units) == expected);
  }
  CHECK_FALSE(Primes().Split(Range(123'457, 2'999'999), 0).ok());
  CHECK_FALSE(Primes().Split(Range(123'457, 2'999'999), plan->max_units + 1).ok());
}

TEST_CASE("plan explains bad parameters") {
  auto check = [](const JobParams& p, const std::string& needle) {
    auto plan = Primes().Plan(p);
    REQUIRE_FALSE(plan.ok());
    CHECK(plan.status().code() == StatusCode::kInvalidArgument);
    CHECK_MESSAGE(plan.status().message().find(needle) != std::string::npos,
                  plan.status().message());
  };
  JobParams none;
  check(none, "'to' is required");
  check(Range(10, 10), "primes: 'to' must be greater than 'from'");
  check(Range(10, 5), "'to' must be greater than 'from'");
  check(Range(0, 2'000'000'000'000'000ull), "at most 1e15");
  JobParams neg = Range(0, 10);
  neg.values["from"] = "-5";
  check(neg, "must not be negative");
  JobParams junk = Range(0, 10);
  junk.values["to"] = "lots";
  check(junk, "to");
  JobParams sci;
  sci.values["to"] = "1e9";
  REQUIRE(Primes().Plan(sci).ok());
  CHECK(Primes().Plan(sci)->max_units == 10'000);
}

TEST_CASE("execute rejects garbage, truncated and padded unit bytes") {
  auto units = Primes().Split(Range(1000, 2'000'000), 4);
  REQUIRE(units.ok());
  NullContext ctx;
  const std::string& unit = (*units)[1];
  for (std::size_t len = 0; len < unit.size(); ++len)
    CHECK_FALSE(Primes().Execute(unit.substr(0, len), ctx).ok());
  CHECK_FALSE(Primes().Execute(unit + '\0', ctx).ok());
  std::mt19937_64 rng(7);
  for (int i = 0; i < 500; ++i) {
    std::string junk(rng() % 40, '\0');
    for (char& c : junk) c = static_cast<char>(rng());
    CHECK_FALSE(Primes().Execute(junk, ctx).ok());
  }
}

TEST_CASE("merge rejects missing, reordered, foreign and garbage results") {
  const JobParams params = Range(0, 1'000'000);
  const std::vector<std::string> results = testing::RunUnits(Primes(), params, 4);
  REQUIRE(Primes().Merge(params, results).ok());
  auto without = [&](std::size_t skip) {
    std::vector<std::string> r;
    for (std::size_t i = 0; i < results.size(); ++i)
      if (i != skip) r.push_back(results[i]);
    return r;
  };
  CHECK_FALSE(Primes().Merge(params, {}).ok());
  CHECK_FALSE(Primes().Merge(params, without(0)).ok());
  CHECK_FALSE(Primes().Merge(params, without(2)).ok());
  CHECK_FALSE(Primes().Merge(params, without(3)).ok());
  std::vector<std::string> swapped = results;
  std::swap(swapped[1], swapped[2]);
  CHECK_FALSE(Primes().Merge(params, swapped).ok());
  std::vector<std::string> doubled = results;
  doubled.push_back(results[3]);
  CHECK_FALSE(Primes().Merge(params, doubled).ok());
  CHECK_FALSE(Primes().Merge(Range(0, 2'000'000), results).ok());
  std::vector<std::string> garbage = results;
  garbage[1] = "not a result";
  CHECK_FALSE(Primes().Merge(params, garbage).ok());
  garbage[1] = results[1].substr(0, results[1].size() - 1);
  CHECK_FALSE(Primes().Merge(params, garbage).ok());
}

TEST_CASE("the merged count is summarized and rendered as JSON") {
  const Task& task = Primes();
  const JobParams params = Range(0, 1'000'000);
  const std::string merged = testing::RunJob(task, params, 3);
  CHECK(task.Summarize(merged) == "78498");
  CHECK(task.ToJson(merged) == "{\"count\":78498,\"from\":0,\"to\":1000000}");
  CHECK(task.Summarize("junk").find("not a merged result") != std::string::npos);
  CHECK(task.ToJson("junk").rfind("{\"error\":", 0) == 0);
}

TEST_CASE("a unit reports progress and lets cancellation through") {
  auto units = Primes().Split(Range(0, 200'000'000), 1);
  REQUIRE(units.ok());
  CountingContext counting;
  REQUIRE(Primes().Execute(units->front(), counting).ok());
  CHECK(counting.calls >= 2);
  CHECK_FALSE(counting.out_of_range);
  CHECK(counting.last == doctest::Approx(1.0));
  CancellingContext cancel;
  CHECK_THROWS_AS((void)Primes().Execute(units->front(), cancel), UnitCancelled);
}

TEST_CASE("calibration measures a positive speed") {
  const double rate = Primes().Calibrate(0.05);
  CHECK(rate > 1e7);
  CHECK(Primes().DefaultWorkPerSecond() > 0);
}

TEST_CASE("the unit, result and merged layouts are the ones docs/protocol.md gives") {
  using testing::WireReader;
  using testing::WireWriter;
  NullContext ctx;
  // Appendix A.1: unit = from u64, to u64; result = from, to, count.
  const std::string unit = WireWriter().U64(0).U64(100).str();
  CHECK(unit == std::string("\0\0\0\0\0\0\0\0\x64\0\0\0\0\0\0\0", 16));  // the appendix's example
  auto r = Primes().Execute(unit, ctx);
  REQUIRE_MESSAGE(r.ok(), r.status().ToString());
  CHECK(*r == WireWriter().U64(0).U64(100).U64(25).str());
  CHECK_FALSE(Primes().Execute(unit + '\0', ctx).ok());
  CHECK_FALSE(Primes().Execute(WireWriter().U64(10).U64(5).str(), ctx).ok());  // from > to
  // Unit i of N covers [from + (to - from) i / N, from + (to - from) (i + 1) / N).
  auto split = Primes().Split(Range(1000, 1'001'000), 3);
  REQUIRE(split.ok());
  for (std::uint64_t i = 0; i < 3; ++i)
    CHECK((*split)[i] ==
          WireWriter().U64(1000 + 1'000'000 * i / 3).U64(1000 + 1'000'000 * (i + 1) / 3).str());
  // Merged = from, to, count of the job.
  const std::string merged_bytes = testing::RunJob(Primes(), Range(0, 1'000'000), 3);
  WireReader m(merged_bytes);
  CHECK(m.U64() == 0);
  CHECK(m.U64() == 1'000'000);
  CHECK(m.U64() == 78'498);
  CHECK(m.AtEnd());
}
