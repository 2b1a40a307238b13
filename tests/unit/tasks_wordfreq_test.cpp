// Tests of the wordfreq task against a std::map reference count of generated text, splitting at
// every unit count, and validation of untrusted unit and result bytes.
#include <doctest/doctest.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "sparecycles/tasks/task.hpp"
#include "task_runner.hpp"
#include "wire_bytes.hpp"

using namespace sparecycles;
using namespace sparecycles::tasks;

namespace {

const Task& WordFreq() { return testing::BuiltInTask("wordfreq"); }

JobParams Params(std::string input, int top) {
  JobParams p;
  p.input = std::move(input);
  p.values["top"] = std::to_string(top);
  return p;
}

// Runs the job like the coordinator does: the input is dropped after Split().
std::string MergedJson(const JobParams& params, std::uint64_t units) {
  return WordFreq().ToJson(testing::RunJob(WordFreq(), params, units));
}

// Text with mixed case, digits, punctuation, apostrophes, UTF-8, newlines and a few words longer
// than 256 bytes; a skewed vocabulary so counts differ.
std::string GenerateText(std::size_t bytes, std::uint32_t seed) {
  std::mt19937 rng(seed);
  const std::vector<std::string> vocab = {
      "the",   "The",  "THE", "of", "and", "don't",  "it's", "x1",   "42",     "Zebra",
      "naïve", "café", "a",   "to", "in",  "e-mail", "C++",  "R2D2", "o'clock"};
  const std::vector<std::string> separators = {" ",  " ",  " ",  "\n",  ", ",          ". ",
                                               "\t", "--", "  ", "!\n", "\xe2\x80\x94"};
  std::string text;
  while (text.size() < bytes) {
    const std::uint32_t r = rng() % 1000;
    if (r < 600) {
      // Mostly the first four words, sometimes any of them.
      text += vocab[rng() % 3 == 0 ? rng() % vocab.size() : rng() % 4];
    } else if (r < 995) {
      std::string w;
      const int len = 1 + static_cast<int>(rng() % 9);
      for (int i = 0; i < len; ++i) w += "abcdefghijKLMNOP0123"[rng() % 20];
      text += w;
    } else {
      text += std::string(250 + rng() % 20, 'q') + std::to_string(rng() % 3);  // long words
    }
    text += separators[rng() % separators.size()];
  }
  return text;
}

// Reference tokenizer, written independently: lower-cased ASCII alphanumeric runs, truncated to
// 256 bytes.
std::map<std::string, std::uint64_t> ReferenceCounts(const std::string& text) {
  std::map<std::string, std::uint64_t> counts;
  std::string word;
  std::size_t length = 0;
  for (std::size_t i = 0; i <= text.size(); ++i) {
    const unsigned char c = i < text.size() ? static_cast<unsigned char>(text[i]) : ' ';
    if (c < 128 && std::isalnum(c)) {
      if (length++ < 256) word += static_cast<char>(std::tolower(c));
    } else if (length > 0) {
      ++counts[word];
      word.clear();
      length = 0;
    }
  }
  return counts;
}

// The JSON the task should print for `counts`, listing the `top` most frequent words.
std::string ReferenceJson(const std::string& text,
                          const std::map<std::string, std::uint64_t>& counts,
                          std::size_t top_n = 100'000) {
  std::vector<std::pair<std::string, std::uint64_t>> sorted(counts.begin(), counts.end());
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  std::uint64_t total = 0;
  std::string top;
  for (const auto& [w, c] : sorted) {
    total += c;
    if (top_n == 0) continue;
    --top_n;
    top += (top.empty() ? "" : ",") + std::string("{\"word\":\"") + w +
           "\",\"count\":" + std::to_string(c) + "}";
  }
  return "{\"bytes\":" + std::to_string(text.size()) + ",\"total_words\":" + std::to_string(total) +
         ",\"distinct_words\":" + std::to_string(counts.size()) + ",\"top\":[" + top + "]}";
}

}  // namespace

TEST_CASE("the registry knows wordfreq version 1") {
  CHECK(WordFreq().Name() == "wordfreq");
  CHECK(WordFreq().Version() == 1);
}

TEST_CASE("counts equal a std::map reference over generated text") {
  const std::string text = GenerateText(300'000, 1);
  const auto counts = ReferenceCounts(text);
  REQUIRE(counts.size() > 1000);
  REQUIRE(counts.size() < 100'000);
  CHECK(MergedJson(Params(text, 100'000), 5) == ReferenceJson(text, counts));
}

TEST_CASE("a unit larger than a few MiB is counted in parallel pieces with the same answer") {
  const std::string text = GenerateText(3'500'000, 7);
  CHECK(MergedJson(Params(text, 1000), 1) == ReferenceJson(text, ReferenceCounts(text), 1000));
}

TEST_CASE("splitting at every unit count covers every word exactly once") {
  const std::string text = GenerateText(150'000, 2);
  const JobParams params = Params(text, 100'000);
  auto plan = WordFreq().Plan(params);
  REQUIRE(plan.ok());
  REQUIRE(plan->max_units == text.size() / 4096);
  const std::string expected = ReferenceJson(text, ReferenceCounts(text));
  for (std::uint64_t units = 1; units <= plan->max_units; ++units) {
    INFO(units << " units");
    auto split = WordFreq().Split(params, units);
    REQUIRE(split.ok());
    std::size_t carried = 0;
    for (const std::string& u : *split) carried += u.size();
    CHECK(carried >= text.size());  // the chunks travel inside the units
    CHECK(MergedJson(params, units) == expected);
  }
  CHECK_FALSE(WordFreq().Split(params, 0).ok());
  CHECK_FALSE(WordFreq().Split(params, plan->max_units + 1).ok());
}

TEST_CASE("one long word is never cut, even when units outnumber the places to cut") {
  const std::string text = std::string(40'000, 'w') + " tail";
  const JobParams params = Params(text, 10);
  auto plan = WordFreq().Plan(params);
  REQUIRE(plan.ok());
  for (std::uint64_t units = 1; units <= plan->max_units; ++units)
    CHECK(MergedJson(params, units) == ReferenceJson(text, ReferenceCounts(text)));
}

TEST_CASE("the summary shows totals and the most frequent words; JSON honours top") {
  const std::string text = "b a b c b a\nB! a's";
  auto merged =
      WordFreq().Merge(Params(text, 2), testing::RunUnits(WordFreq(), Params(text, 2), 1));
  REQUIRE(merged.ok());
  CHECK(WordFreq().Summarize(*merged) == "9 words, 4 distinct; top: b (4), a (3)");
  CHECK(WordFreq().ToJson(*merged) ==
        "{\"bytes\":18,\"total_words\":9,\"distinct_words\":4,\"top\":["
        "{\"word\":\"b\",\"count\":4},{\"word\":\"a\",\"count\":3}]}");
  CHECK(WordFreq().Summarize("nope").find("not a merged result") != std::string::npos);
}

TEST_CASE("a unit's result is canonical: the same chunk gives the same bytes") {
  const std::string text = GenerateText(20'000, 3);
  auto units = WordFreq().Split(Params(text, 5), 3);
  REQUIRE(units.ok());
  NullContext ctx;
  auto a = WordFreq().Execute((*units)[1], ctx);
  auto b = WordFreq().Execute((*units)[1], ctx);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(*a == *b);
  CHECK(WordFreq().Canonicalize(*a) == *a);
}

TEST_CASE("plan explains bad input and parameters") {
  auto empty = WordFreq().Plan(Params("", 10));
  REQUIRE_FALSE(empty.ok());
  CHECK(empty.status().message().find("no input") != std::string::npos);
  auto huge = WordFreq().Plan(Params(std::string((64u << 20) + 1, 'a'), 10));
  REQUIRE_FALSE(huge.ok());
  CHECK(huge.status().message().find("64 MiB") != std::string::npos);
  auto top = WordFreq().Plan(Params("text", 0));
  REQUIRE_FALSE(top.ok());
  CHECK(top.status().message().find("top") != std::string::npos);
}

TEST_CASE("execute rejects garbage, truncated and padded unit bytes") {
  auto units = WordFreq().Split(Params(GenerateText(10'000, 4), 5), 2);
  REQUIRE(units.ok());
  NullContext ctx;
  const std::string& unit = (*units)[1];
  for (std::size_t len = 0; len < unit.size(); len += (len < 64 ? 1 : 97))
    CHECK_FALSE(WordFreq().Execute(unit.substr(0, len), ctx).ok());
  CHECK_FALSE(WordFreq().Execute(unit + ' ', ctx).ok());
  std::mt19937_64 rng(9);
  for (int i = 0; i < 500; ++i) {
    std::string junk(rng() % 64, '\0');
    for (char& c : junk) c = static_cast<char>(rng());
    CHECK_FALSE(WordFreq().Execute(junk, ctx).ok());
  }
}

TEST_CASE("merge rejects missing, reordered, foreign and garbage results") {
  const std::string text = GenerateText(40'000, 5);
  const JobParams params = Params(text, 5);
  const std::vector<std::string> results = testing::RunUnits(WordFreq(), params, 3);
  REQUIRE(WordFreq().Merge(params, results).ok());
  CHECK_FALSE(WordFreq().Merge(params, {}).ok());
  CHECK_FALSE(WordFreq().Merge(params, std::vector<std::string>{results[0], results[1]}).ok());
  CHECK_FALSE(WordFreq().Merge(params, std::vector<std::string>{results[1], results[2]}).ok());
  CHECK_FALSE(
      WordFreq().Merge(params, std::vector<std::string>{results[0], results[2], results[1]}).ok());
  const std::vector<std::string> other =
      testing::RunUnits(WordFreq(), Params(GenerateText(50'000, 6), 5), 3);
  CHECK_FALSE(
      WordFreq().Merge(params, std::vector<std::string>{results[0], results[1], other[2]}).ok());
  std::vector<std::string> garbage = results;
  garbage[0] = garbage[0].substr(0, garbage[0].size() / 2);
  CHECK_FALSE(WordFreq().Merge(params, garbage).ok());
}

TEST_CASE("calibration measures a positive speed") {
  CHECK(WordFreq().Calibrate(0.05) > 1e5);
  CHECK(WordFreq().DefaultWorkPerSecond() > 0);
}

TEST_CASE("the unit, result and merged layouts are the ones docs/protocol.md gives") {
  using testing::WireReader;
  using testing::WireWriter;
  NullContext ctx;
  const std::string text = "b a b c b a\nB! a's";
  // Appendix A.5: unit = offset u64, total u64, text bytes.
  const std::string unit = WireWriter().U64(100).U64(1000).Bytes(text).str();
  auto r = WordFreq().Execute(unit, ctx);
  REQUIRE_MESSAGE(r.ok(), r.status().ToString());
  // Result = offset, length, total, words list<(bytes, u64)> sorted by word.
  CHECK(*r == WireWriter()
                  .U64(100)
                  .U64(text.size())
                  .U64(1000)
                  .U64(4)
                  .Bytes("a")
                  .U64(3)
                  .Bytes("b")
                  .U64(4)
                  .Bytes("c")
                  .U64(1)
                  .Bytes("s")
                  .U64(1)
                  .str());
  CHECK_FALSE(WordFreq().Execute(unit + '\0', ctx).ok());
  CHECK_FALSE(WordFreq().Execute(WireWriter().U64(995).U64(1000).Bytes(text).str(), ctx).ok());
  auto split = WordFreq().Split(Params(text, 2), 1);
  REQUIRE(split.ok());
  CHECK(split->front() == WireWriter().U64(0).U64(text.size()).Bytes(text).str());
  // Merged = bytes u64, total_words u64, top u32, words by count (descending), then word.
  CHECK(testing::RunJob(WordFreq(), Params(text, 2), 1) == WireWriter()
                                                               .U64(text.size())
                                                               .U64(9)
                                                               .U32(2)
                                                               .U64(4)
                                                               .Bytes("b")
                                                               .U64(4)
                                                               .Bytes("a")
                                                               .U64(3)
                                                               .Bytes("c")
                                                               .U64(1)
                                                               .Bytes("s")
                                                               .U64(1)
                                                               .str());
}
