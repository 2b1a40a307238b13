// Tests of the hashsearch task against a brute-force search with the core BLAKE2b, plus
// validation of untrusted unit and result bytes (including forged hits).
#include <doctest/doctest.h>

#include <bit>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "sparecycles/core/codec.hpp"
#include "sparecycles/core/hash.hpp"
#include "sparecycles/tasks/task.hpp"
#include "task_runner.hpp"
#include "wire_bytes.hpp"

using namespace sparecycles;
using namespace sparecycles::tasks;

namespace {

const Task& HashSearch() { return testing::BuiltInTask("hashsearch"); }

JobParams Params(const std::string& prefix, std::uint64_t from, std::uint64_t to, int bits) {
  JobParams p;
  p.values["prefix"] = prefix;
  p.values["from"] = std::to_string(from);
  p.values["to"] = std::to_string(to);
  p.values["bits"] = std::to_string(bits);
  return p;
}

std::string MergedJson(const JobParams& params, std::uint64_t units) {
  return HashSearch().ToJson(testing::RunJob(HashSearch(), params, units));
}

// Reference: hash every nonce with the core BLAKE2b and list those with `bits` zero bits, in the
// JSON form the task prints.
std::string BruteForce(const std::string& prefix, std::uint64_t from, std::uint64_t to, int bits) {
  std::string list;
  for (std::uint64_t n = from; n < to; ++n) {
    std::string input = prefix;
    for (int i = 0; i < 8; ++i) input += static_cast<char>(n >> (8 * i));
    const Hash256 h = Blake2b256(input);
    std::uint64_t head = 0;
    for (int i = 0; i < 8; ++i) head = head << 8 | h[i];
    if (std::countl_zero(head) >= bits) list += (list.empty() ? "" : ",") + std::to_string(n);
  }
  return "\"nonces\":[" + list + "]";
}

// The unit layout of hashsearch.cpp, to build units that Split() would never produce.
struct RawUnit {
  std::string prefix;
  std::uint64_t from = 0, to = 0;
  std::uint32_t bits = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(prefix, from, to, bits);
  }
};

}  // namespace

TEST_CASE("the registry knows hashsearch version 1") {
  CHECK(HashSearch().Name() == "hashsearch");
  CHECK(HashSearch().Version() == 1);
}

TEST_CASE("the nonces found equal a brute-force search with the core BLAKE2b") {
  InitCrypto();
  for (const auto& test : std::vector<std::pair<std::string, int>>{
           {"sparecycles", 8}, {"", 6}, {std::string(200, 'z'), 9}}) {
    // Named copies, not a structured binding: INFO captures them in a lambda (clang 14 cannot).
    const std::string& prefix = test.first;
    const int bits = test.second;
    const std::string json = MergedJson(Params(prefix, 1000, 31000, bits), 3);
    INFO(prefix.size() << " byte prefix, " << bits << " bits");
    CHECK(json.find(BruteForce(prefix, 1000, 31000, bits)) != std::string::npos);
  }
}

TEST_CASE("the answer does not depend on the unit count, and the best hit is reported") {
  const JobParams params = Params("abc", 0, 60'000, 10);
  auto plan = HashSearch().Plan(params);
  REQUIRE(plan.ok());
  REQUIRE(plan->max_units == 6);
  const std::string one = MergedJson(params, 1);
  for (std::uint64_t units = 2; units <= plan->max_units; ++units)
    CHECK(MergedJson(params, units) == one);
  CHECK(one.find("\"best\":{\"nonce\":") != std::string::npos);
  auto merged = HashSearch().Merge(params, testing::RunUnits(HashSearch(), params, 2));
  REQUIRE(merged.ok());
  CHECK(HashSearch().Summarize(*merged).find("with >= 10 leading zero bits in [0, 60000)") !=
        std::string::npos);
  CHECK_FALSE(HashSearch().Split(params, 7).ok());
  CHECK_FALSE(HashSearch().Split(params, 0).ok());
}

TEST_CASE("plan explains bad parameters") {
  auto rejects = [](const JobParams& p, const std::string& needle) {
    auto plan = HashSearch().Plan(p);
    REQUIRE_FALSE(plan.ok());
    CHECK(plan.status().code() == StatusCode::kInvalidArgument);
    CHECK_MESSAGE(plan.status().message().find(needle) != std::string::npos,
                  plan.status().message());
  };
  JobParams no_to;
  rejects(no_to, "'to' is required");
  rejects(Params("x", 10, 10, 20), "'to' must be greater than 'from'");
  rejects(Params("x", 0, 100, 0), "bits");
  rejects(Params("x", 0, 100, 65), "bits");
  rejects(Params(std::string(5000, 'p'), 0, 100, 20), "prefix");
  rejects(Params("x", 0, 100'000'000, 4), "raise 'bits'");
  CHECK(HashSearch().Plan(Params("x", 0, 100'000'000, 30)).ok());
}

TEST_CASE("a unit with too many hits fails with a clear error") {
  NullContext ctx;
  const std::string unit = EncodeValue(RawUnit{"x", 0, 2'200'000, 1});
  auto r = HashSearch().Execute(unit, ctx);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == StatusCode::kResourceExhausted);
  CHECK(r.status().message().find("raise 'bits'") != std::string::npos);
  CHECK_FALSE(HashSearch().Execute(EncodeValue(RawUnit{"x", 10, 5, 8}), ctx).ok());
  CHECK_FALSE(HashSearch().Execute(EncodeValue(RawUnit{"x", 0, 5, 0}), ctx).ok());
  CHECK_FALSE(HashSearch().Execute(EncodeValue(RawUnit{"x", 0, 5, 65}), ctx).ok());
  CHECK(HashSearch().Execute(EncodeValue(RawUnit{"x", 5, 5, 8}), ctx).ok());
}

TEST_CASE("execute rejects garbage, truncated and padded unit bytes") {
  auto units = HashSearch().Split(Params("prefix", 0, 50'000, 12), 2);
  REQUIRE(units.ok());
  NullContext ctx;
  const std::string& unit = (*units)[0];
  for (std::size_t len = 0; len < unit.size(); ++len)
    CHECK_FALSE(HashSearch().Execute(unit.substr(0, len), ctx).ok());
  CHECK_FALSE(HashSearch().Execute(unit + '\0', ctx).ok());
  std::mt19937_64 rng(11);
  for (int i = 0; i < 500; ++i) {
    std::string junk(rng() % 48, '\0');
    for (char& c : junk) c = static_cast<char>(rng());
    CHECK_FALSE(HashSearch().Execute(junk, ctx).ok());
  }
}

TEST_CASE("merge rejects forged hits and missing, reordered or garbage results") {
  const JobParams params = Params("sc", 0, 40'000, 9);
  const std::vector<std::string> results = testing::RunUnits(HashSearch(), params, 4);
  REQUIRE(HashSearch().Merge(params, results).ok());
  // Results of the same ranges at 3 bits list nonces that do not reach 9 bits.
  const std::vector<std::string> weak =
      testing::RunUnits(HashSearch(), Params("sc", 0, 40'000, 3), 4);
  auto forged = HashSearch().Merge(params, weak);
  REQUIRE_FALSE(forged.ok());
  CHECK(forged.status().message().find("does not match") != std::string::npos);
  CHECK_FALSE(HashSearch().Merge(params, {}).ok());
  CHECK_FALSE(HashSearch()
                  .Merge(params, std::vector<std::string>{results[0], results[1], results[3]})
                  .ok());
  CHECK_FALSE(
      HashSearch()
          .Merge(params, std::vector<std::string>{results[1], results[0], results[2], results[3]})
          .ok());
  CHECK_FALSE(HashSearch().Merge(Params("sd", 0, 40'000, 9), results).ok());
  std::vector<std::string> garbage = results;
  garbage[3] = "\x05";
  CHECK_FALSE(HashSearch().Merge(params, garbage).ok());
  CHECK(HashSearch().Summarize("\x05").find("not a merged result") != std::string::npos);
}

TEST_CASE("calibration measures a positive speed") {
  CHECK(HashSearch().Calibrate(0.05) > 1e4);
  CHECK(HashSearch().DefaultWorkPerSecond() > 0);
}

TEST_CASE("the unit, result and merged layouts are the ones docs/protocol.md gives") {
  using testing::WireReader;
  using testing::WireWriter;
  NullContext ctx;
  // Appendix A.4: the leading zero bits of BLAKE2b-256(prefix || nonce as 8 bytes LE), read from
  // the digest's first 8 bytes as a big-endian u64.
  auto zero_bits = [](const std::string& prefix, std::uint64_t n) {
    std::string input = prefix;
    for (int i = 0; i < 8; ++i) input += static_cast<char>(n >> (8 * i));
    const Hash256 h = Blake2b256(input);
    std::uint64_t head = 0;
    for (int i = 0; i < 8; ++i) head = head << 8 | h[i];
    return static_cast<std::uint32_t>(std::countl_zero(head));
  };
  const std::string prefix = "layout";
  // Unit = prefix bytes, from u64, to u64, bits u32.
  const std::string unit = WireWriter().Bytes(prefix).U64(1000).U64(21'000).U32(9).str();
  auto r = HashSearch().Execute(unit, ctx);
  REQUIRE_MESSAGE(r.ok(), r.status().ToString());
  // Result = from u64, to u64, nonces list<u64> (increasing).
  WireWriter expected;
  expected.U64(1000).U64(21'000);
  std::vector<std::uint64_t> hits;
  for (std::uint64_t n = 1000; n < 21'000; ++n)
    if (zero_bits(prefix, n) >= 9) hits.push_back(n);
  REQUIRE(hits.size() > 10);
  expected.U64(hits.size());
  for (std::uint64_t n : hits) expected.U64(n);
  CHECK(*r == expected.str());
  CHECK_FALSE(HashSearch().Execute(unit + '\0', ctx).ok());
  CHECK_FALSE(
      HashSearch().Execute(WireWriter().Bytes(prefix).U64(5).U64(1).U32(9).str(), ctx).ok());
  CHECK_FALSE(
      HashSearch().Execute(WireWriter().Bytes(prefix).U64(0).U64(1).U32(65).str(), ctx).ok());
  auto split = HashSearch().Split(Params(prefix, 1000, 21'000, 9), 2);
  REQUIRE(split.ok());
  CHECK((*split)[1] == WireWriter().Bytes(prefix).U64(11'000).U64(21'000).U32(9).str());
  // Merged = prefix, bits u32, from, to, nonces list<u64>, best_bits u32, best_nonce u64 (the
  // first nonce with the most zero bits).
  const std::string merged_bytes =
      testing::RunJob(HashSearch(), Params(prefix, 1000, 21'000, 9), 2);
  WireReader m(merged_bytes);
  CHECK(m.Bytes() == prefix);
  CHECK(m.U32() == 9);
  CHECK(m.U64() == 1000);
  CHECK(m.U64() == 21'000);
  REQUIRE(m.U64() == hits.size());
  std::uint32_t best_bits = 0;
  std::uint64_t best = 0;
  for (std::uint64_t n : hits) {
    CHECK(m.U64() == n);
    if (zero_bits(prefix, n) > best_bits) best_bits = zero_bits(prefix, n), best = n;
  }
  CHECK(m.U32() == best_bits);
  CHECK(m.U64() == best);
  CHECK(m.AtEnd());
}
