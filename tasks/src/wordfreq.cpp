// wordfreq: word frequencies of a text file (the data task: each unit carries its chunk of the
// input to the peer).
//
// A word is a maximal run of ASCII letters and digits, lower-cased; every other byte (spaces,
// punctuation, apostrophes, any byte >= 0x80 such as UTF-8) separates words. A word longer than
// 256 bytes is counted as its first 256 bytes. Split() cuts only between a separator and its
// neighbour, so no word is ever divided between units. A unit's result is its (word, count) list
// sorted by word, which is canonical: replicas that agree on the counts agree bitwise.
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "builtin.hpp"
#include "common.hpp"

namespace sparecycles::tasks {
namespace {

constexpr std::string_view kName = "wordfreq";

constexpr std::uint64_t kMaxInput = 64ull << 20;  // 64 MiB
constexpr std::size_t kMaxWord = 256;
// The smallest unit worth sending to a peer, in bytes.
constexpr std::uint64_t kMinUnitBytes = 4096;
// Bytes per TBB sub-chunk inside a unit (and per progress report).
constexpr std::uint64_t kSubChunk = 1 << 20;

using WordCounts = std::vector<std::pair<std::string, std::uint64_t>>;

struct Unit {
  std::uint64_t offset = 0, total = 0;  // where the chunk sits in the whole input
  std::string text;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(offset, total, text);
  }
};

struct UnitResult {
  std::uint64_t offset = 0, length = 0, total = 0;
  WordCounts words;  // sorted by word, unique
  template <class Archive>
  void serialize(Archive& ar) {
    ar(offset, length, total, words);
  }
};

struct Merged {
  std::uint64_t bytes = 0, total_words = 0;
  std::uint32_t top = 0;
  WordCounts words;  // by count (descending), then word
  template <class Archive>
  void serialize(Archive& ar) {
    ar(bytes, total_words, top, words);
  }
};

constexpr bool IsWordByte(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// True when [0, pos) and [pos, end) of `text` share no word.
bool IsCut(std::string_view text, std::size_t pos) {
  return pos == 0 || pos >= text.size() || !IsWordByte(static_cast<unsigned char>(text[pos - 1])) ||
         !IsWordByte(static_cast<unsigned char>(text[pos]));
}

// n + 1 cut positions (first 0, last text.size()) dividing text into n pieces of about equal
// size, each moved forward to the next place that does not divide a word.
std::vector<std::size_t> CutPoints(std::string_view text, std::uint64_t n) {
  std::vector<std::size_t> cuts{0};
  for (std::uint64_t i = 1; i < n; ++i) {
    std::size_t c = std::max<std::size_t>(cuts.back(), internal::SplitPoint(0, text.size(), i, n));
    while (!IsCut(text, c)) ++c;
    cuts.push_back(c);
  }
  cuts.push_back(text.size());
  return cuts;
}

void CountWords(std::string_view text, std::unordered_map<std::string, std::uint64_t>& counts) {
  std::string word;
  word.reserve(kMaxWord);
  std::size_t run = 0;  // length of the current word, including bytes past kMaxWord
  auto flush = [&] {
    if (run == 0) return;
    auto it = counts.find(word);
    if (it == counts.end()) {
      counts.emplace(word, 1);
    } else {
      ++it->second;
    }
    word.clear();
    run = 0;
  };
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (IsWordByte(c)) {
      if (run++ < kMaxWord) word.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c));
    } else {
      flush();
    }
  }
  flush();
}

Result<std::uint32_t> ParseTop(const JobParams& params) {
  SC_ASSIGN_OR_RETURN(std::int64_t top, internal::IntParam(kName, params, "top", 20, 1, 100'000));
  return static_cast<std::uint32_t>(top);
}

Status CheckInput(const JobParams& params) {
  if (params.input.empty()) return InvalidArgument("wordfreq: no input; give it a text file");
  if (params.input.size() > kMaxInput)
    return InvalidArgument("wordfreq: the input is " + std::to_string(params.input.size()) +
                           " bytes; the limit is 64 MiB");
  return OkStatus();
}

// Checks one unit's word list: canonical order, valid words, and no more words than bytes.
Status CheckWords(std::size_t index, const UnitResult& r) {
  std::uint64_t sum = 0;
  for (std::size_t k = 0; k < r.words.size(); ++k) {
    const auto& [word, count] = r.words[k];
    bool valid = !word.empty() && word.size() <= kMaxWord && count >= 1 &&
                 (k == 0 || r.words[k - 1].first < word);
    for (char c : word)
      valid = valid && IsWordByte(static_cast<unsigned char>(c)) && !(c >= 'A' && c <= 'Z');
    sum += count;  // the check below stops at the first excess, so this cannot overflow
    if (!valid || count > r.length || sum > r.length)
      return DataLoss("wordfreq: result " + std::to_string(index) + " has an invalid word list");
  }
  return OkStatus();
}

class WordFreqTask final : public Task {
 public:
  std::string_view Name() const override { return kName; }
  std::uint32_t Version() const override { return 1; }
  std::string_view Summary() const override {
    return "count word frequencies in a text file (lower-cased ASCII letter/digit runs)";
  }
  std::vector<ParamSpec> Params() const override {
    return {{"top", "20", "how many of the most frequent words to report (1..100000)"}};
  }
  std::string_view WorkName() const override { return "input bytes"; }

  Result<JobPlan> Plan(const JobParams& params) const override {
    SC_RETURN_IF_ERROR(CheckInput(params));
    SC_RETURN_IF_ERROR(ParseTop(params).status());
    JobPlan plan;
    plan.total_work = static_cast<double>(params.input.size());
    plan.max_units = std::max<std::uint64_t>(1, params.input.size() / kMinUnitBytes);
    return plan;
  }

  Result<std::vector<std::string>> Split(const JobParams& params,
                                         std::uint64_t units) const override {
    SC_ASSIGN_OR_RETURN(JobPlan plan, Plan(params));
    SC_RETURN_IF_ERROR(internal::CheckUnitCount(kName, units, plan.max_units));
    const std::string_view text = params.input;
    const std::vector<std::size_t> cuts = CutPoints(text, units);
    std::vector<std::string> out;
    out.reserve(units);
    for (std::uint64_t i = 0; i < units; ++i) {
      // A unit may be empty when one word is longer than a whole share of the input.
      out.push_back(EncodeValue(
          Unit{cuts[i], text.size(), std::string(text.substr(cuts[i], cuts[i + 1] - cuts[i]))}));
    }
    return out;
  }

  Result<std::string> Execute(std::string_view bytes, UnitContext& ctx) const override {
    Unit u;
    SC_RETURN_IF_ERROR(internal::DecodeOrError(kName, "unit", bytes, u));
    if (u.total > kMaxInput || u.offset > u.total || u.text.size() > u.total - u.offset)
      return InvalidArgument("wordfreq: unit chunk lies outside the input");
    const std::string_view text = u.text;
    const std::uint64_t pieces = std::max<std::uint64_t>(1, text.size() / kSubChunk);
    const std::vector<std::size_t> cuts = CutPoints(text, pieces);
    std::vector<std::unordered_map<std::string, std::uint64_t>> partial(pieces);
    internal::ProgressMeter meter(ctx, static_cast<double>(text.size()));
    tbb::parallel_for(tbb::blocked_range<std::uint64_t>(0, pieces, 1),
                      [&](const tbb::blocked_range<std::uint64_t>& r) {
                        for (std::uint64_t p = r.begin(); p != r.end(); ++p) {
                          CountWords(text.substr(cuts[p], cuts[p + 1] - cuts[p]), partial[p]);
                          meter.Add(cuts[p + 1] - cuts[p]);
                        }
                      });
    for (std::uint64_t p = 1; p < pieces; ++p) {
      for (auto& [word, count] : partial[p]) partial[0][word] += count;
      partial[p].clear();
    }
    UnitResult result{u.offset, u.text.size(), u.total, {}};
    result.words.assign(partial[0].begin(), partial[0].end());
    std::sort(result.words.begin(), result.words.end());
    return EncodeValue(result);
  }

  Result<std::string> Merge(const JobParams& params,
                            std::span<const std::string> results) const override {
    // params.input is usually gone by now (the chunks travelled in the units), so coverage is
    // checked against the input size each unit carries.
    SC_ASSIGN_OR_RETURN(std::uint32_t top, ParseTop(params));
    std::unordered_map<std::string, std::uint64_t> counts;
    Merged m;
    m.top = top;
    std::uint64_t next = 0;
    for (std::size_t i = 0; i < results.size(); ++i) {
      UnitResult r;
      SC_RETURN_IF_ERROR(internal::DecodeOrError(kName, "result", results[i], r));
      if (i == 0) m.bytes = r.total;
      if (r.total != m.bytes || r.total > kMaxInput || r.offset != next ||
          r.length > r.total - r.offset)
        return DataLoss("wordfreq: result " + std::to_string(i) + " covers bytes [" +
                        std::to_string(r.offset) + ", +" + std::to_string(r.length) + ") but " +
                        std::to_string(next) + " was expected next");
      SC_RETURN_IF_ERROR(CheckWords(i, r));
      for (auto& [word, count] : r.words) {
        counts[std::move(word)] += count;
        m.total_words += count;
      }
      next = r.offset + r.length;
    }
    if (results.empty() || next != m.bytes)
      return DataLoss("wordfreq: the results stop at byte " + std::to_string(next) + " of " +
                      std::to_string(m.bytes) + " (missing units?)");
    m.words.assign(counts.begin(), counts.end());
    std::sort(m.words.begin(), m.words.end(), [](const auto& a, const auto& b) {
      return a.second != b.second ? a.second > b.second : a.first < b.first;
    });
    return EncodeValue(m);
  }

  std::string Summarize(std::string_view bytes) const override {
    Merged m;
    Status s = DecodeValue(bytes, m);
    if (!s.ok()) return internal::BadMerged(kName, s);
    std::string out =
        std::to_string(m.total_words) + " words, " + std::to_string(m.words.size()) + " distinct";
    const std::size_t shown = std::min<std::size_t>({m.words.size(), m.top, 5});
    for (std::size_t i = 0; i < shown; ++i) {
      out += i == 0 ? "; top: " : ", ";
      out += m.words[i].first + " (" + std::to_string(m.words[i].second) + ")";
    }
    return out;
  }

  std::string ToJson(std::string_view bytes) const override {
    Merged m;
    Status s = DecodeValue(bytes, m);
    if (!s.ok()) return internal::BadMergedJson(kName, s);
    std::string out = "{\"bytes\":" + std::to_string(m.bytes) +
                      ",\"total_words\":" + std::to_string(m.total_words) +
                      ",\"distinct_words\":" + std::to_string(m.words.size()) + ",\"top\":[";
    const std::size_t shown = std::min<std::size_t>(m.words.size(), m.top);
    for (std::size_t i = 0; i < shown; ++i) {
      if (i > 0) out += ',';
      out += "{\"word\":" + internal::JsonString(m.words[i].first) +
             ",\"count\":" + std::to_string(m.words[i].second) + "}";
    }
    return out + "]}";
  }

  double Calibrate(double seconds) const override {
    // Pseudo-random text with a Zipf-like vocabulary: a few very common words, a long tail.
    std::string text;
    std::uint64_t x = 88172645463325252ull;
    while (text.size() < (1u << 20)) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      const std::uint64_t rank = (x % 1000) * (x % 1000) / 100;  // 0..9980, skewed to small
      text += "w" + std::to_string(rank) + ((x >> 40) % 8 == 0 ? ".\n" : " ");
    }
    std::uint64_t done = 0;
    internal::Stopwatch watch;
    do {
      std::unordered_map<std::string, std::uint64_t> counts;
      CountWords(text, counts);
      done += text.size();
    } while (watch.Seconds() < seconds);
    return static_cast<double>(done) / watch.Seconds();
  }

  double DefaultWorkPerSecond() const override { return 1e8; }
};

}  // namespace

std::unique_ptr<Task> MakeWordFreqTask() { return std::make_unique<WordFreqTask>(); }

}  // namespace sparecycles::tasks
