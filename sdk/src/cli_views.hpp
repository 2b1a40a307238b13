// Terminal views of the `sparecycles` CLI: the rate and ETA shown by `submit`/`run` progress, and
// `sparecycles top` (jobs and peers, refreshed in place on a terminal, or printed once for
// `watch`). Plain functions over the public SDK; RateMeter is not thread-safe (one caller).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <string>
#include <utility>

#include "sparecycles/sdk/client.hpp"

namespace sparecycles::cli {

/// Units per second over a sliding window, and the time left at that rate.
class RateMeter {
 public:
  explicit RateMeter(double window_seconds = 10) : window_(window_seconds) {}
  void Add(double t_seconds, std::uint64_t done);
  double rate() const;  // units/s; 0 until two samples span some time
  /// Seconds to finish `total`; < 0 when unknown.
  double Eta(std::uint64_t total) const;

 private:
  double window_;
  std::deque<std::pair<double, std::uint64_t>> points_;
};

/// "12 s", "3.5 min", "2.1 h"; "?" when unknown (< 0).
std::string FormatDuration(double seconds);
/// The task column of job listings: a built-in task's name, or for a package job the package's
/// name (the job's name, which the client sets to "NAME VERSION") else "pkg:" + 8 hex digits.
std::string ShownTask(const JobInfo& info);
/// "1,234/10,000 units  123.4 units/s  ETA 1.2 min" (the part after the bar).
std::string ProgressText(const JobInfo& info, const RateMeter& meter, double elapsed_seconds);

struct TopOptions {
  double interval_seconds = 1;
  int iterations = 0;  // 0 = until interrupted
  bool once = false;   // print one frame without clearing the screen (for `watch`)
  std::size_t max_jobs = 20;
};
/// Runs `sparecycles top` against a connected client. Returns the process exit code.
int Top(Client& client, const TopOptions& options);

}  // namespace sparecycles::cli
