// The Prometheus text exposition format (version 0.0.4), written by hand: fixed-bucket histograms
// whose Observe() is a few plain increments (owned by one thread, copied into snapshots), and a
// writer that renders families with HELP/TYPE lines and escaped label values. No locks; a
// Histogram is thread-compatible, the writer is a local object. Spec:
// prometheus.io/docs/instrumenting/exposition_formats
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sparecycles::metrics {

/// A histogram with fixed upper bounds (seconds or any base unit); +Inf is implicit.
class Histogram {
 public:
  Histogram() = default;
  explicit Histogram(std::vector<double> upper_bounds);
  /// 100 µs .. 10 s, for latencies of loop turns and commits.
  static Histogram Latency();
  /// 1 ms .. 1 h, for unit run times.
  static Histogram RunTime();
  void Observe(double v);
  const std::vector<double>& bounds() const { return bounds_; }
  const std::vector<std::uint64_t>& counts() const {
    return counts_;
  }  // per bucket, not cumulative; last = +Inf
  std::uint64_t count() const { return count_; }
  double sum() const { return sum_; }

 private:
  std::vector<double> bounds_;
  std::vector<std::uint64_t> counts_;
  std::uint64_t count_ = 0;
  double sum_ = 0;
};

using Labels = std::vector<std::pair<std::string, std::string>>;

/// Escapes a label value: backslash, double quote and newline.
std::string EscapeLabelValue(std::string_view v);
/// Escapes HELP text: backslash and newline.
std::string EscapeHelp(std::string_view v);
/// A sample value: integers without a fraction, +Inf/-Inf/NaN spelled as Prometheus wants.
std::string FormatValue(double v);

class Writer {
 public:
  /// Starts a family. `type`: counter, gauge, histogram or untyped. Each name once per exposition.
  void Family(std::string_view name, std::string_view type, std::string_view help);
  /// One sample of the current family (or a suffixed series of it, e.g. name_bucket).
  void Sample(std::string_view name, const Labels& labels, double value);
  void Sample(std::string_view name, double value) { Sample(name, {}, value); }
  /// A whole histogram series: _bucket (cumulative, with le), _sum and _count.
  void HistogramSeries(std::string_view name, const Labels& labels, const Histogram& h);
  /// A family of one sample, for the common case.
  void Gauge(std::string_view name, std::string_view help, double v);
  void Counter(std::string_view name, std::string_view help, double v);
  const std::string& text() const { return out_; }

 private:
  std::string out_;
};

/// Content-Type of the text format.
inline constexpr const char* kContentType = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace sparecycles::metrics
