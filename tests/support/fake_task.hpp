// A tiny deterministic task for scheduler and protocol tests: unit i computes i*i, merge sums.
// Parameters: n (units, default 10), work (work units per unit, default 1).
#pragma once

#include <cstring>
#include <string>

#include "sparecycles/core/hash.hpp"
#include "sparecycles/tasks/task.hpp"

namespace sparecycles::testing {

inline std::string U64Bytes(std::uint64_t v) {
  return std::string(reinterpret_cast<const char*>(&v), 8);
}
inline std::uint64_t BytesU64(std::string_view s) {
  std::uint64_t v = 0;
  std::memcpy(&v, s.data(), std::min<std::size_t>(8, s.size()));
  return v;
}

class SquaresTask final : public tasks::Task {
 public:
  std::string_view Name() const override { return "squares"; }
  std::uint32_t Version() const override { return 1; }
  std::string_view Summary() const override { return "sum of i*i over units"; }
  std::vector<tasks::ParamSpec> Params() const override {
    return {{"n", "10", "units"}, {"work", "1", "work per unit"}};
  }
  std::string_view WorkName() const override { return "squares"; }
  Result<tasks::JobPlan> Plan(const tasks::JobParams& p) const override {
    auto n = p.Int("n", 10);
    auto w = p.Double("work", 1);
    if (!n.ok()) return n.status();
    if (*n < 1) return InvalidArgument("n must be >= 1");
    return tasks::JobPlan{static_cast<double>(*n) * *w, static_cast<std::uint64_t>(*n)};
  }
  Result<std::vector<std::string>> Split(const tasks::JobParams& p,
                                         std::uint64_t units) const override {
    auto n = p.Int("n", 10);
    std::vector<std::string> out;
    // Contiguous ranges [lo, hi) of 0..n-1, encoded as two u64.
    const std::uint64_t total = static_cast<std::uint64_t>(*n);
    for (std::uint64_t u = 0; u < units; ++u)
      out.push_back(U64Bytes(total * u / units) + U64Bytes(total * (u + 1) / units));
    return out;
  }
  Result<std::string> Execute(std::string_view unit, tasks::UnitContext&) const override {
    if (unit.size() != 16) return InvalidArgument("bad unit");
    std::uint64_t sum = 0;
    for (std::uint64_t i = BytesU64(unit.substr(0, 8)); i < BytesU64(unit.substr(8)); ++i)
      sum += i * i;
    return U64Bytes(sum);
  }
  Result<std::string> Merge(const tasks::JobParams&,
                            std::span<const std::string> results) const override {
    std::uint64_t sum = 0;
    for (const auto& r : results) {
      if (r.size() != 8) return DataLoss("bad result");
      sum += BytesU64(r);
    }
    return U64Bytes(sum);
  }
  std::string Summarize(std::string_view merged) const override {
    return std::to_string(BytesU64(merged));
  }
  std::string ToJson(std::string_view merged) const override {
    return "{\"sum\":" + Summarize(merged) + "}";
  }
  double Calibrate(double) const override { return 1.0; }
  double DefaultWorkPerSecond() const override { return 1.0; }
};

inline std::string HashOf(std::string_view payload) {
  const Hash256 h = Blake2b256(payload);
  return std::string(reinterpret_cast<const char*>(h.data()), h.size());
}

}  // namespace sparecycles::testing
