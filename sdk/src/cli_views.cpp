#include "cli_views.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <thread>

namespace sparecycles::cli {

void RateMeter::Add(double t, std::uint64_t done) {
  if (!points_.empty() && done < points_.back().second) points_.clear();  // a restarted count
  points_.emplace_back(t, done);
  while (points_.size() > 2 && points_.back().first - points_[1].first >= window_)
    points_.pop_front();
}

double RateMeter::rate() const {
  if (points_.size() < 2) return 0;
  const double dt = points_.back().first - points_.front().first;
  if (dt < 0.2) return 0;  // too short to say
  return static_cast<double>(points_.back().second - points_.front().second) / dt;
}

double RateMeter::Eta(std::uint64_t total) const {
  const double r = rate();
  if (points_.empty() || r <= 0) return -1;
  const std::uint64_t done = points_.back().second;
  return done >= total ? 0 : static_cast<double>(total - done) / r;
}

std::string ShownTask(const JobInfo& info) {
  if (info.task.rfind("pkg:", 0) != 0) return info.task;
  if (!info.name.empty()) return info.name.substr(0, info.name.find(' '));
  return info.task.substr(0, 12);
}

std::string FormatDuration(double s) {
  char buf[32];
  if (s < 0) return "?";
  if (s < 90)
    std::snprintf(buf, sizeof(buf), "%.0f s", std::ceil(s));
  else if (s < 5400)
    std::snprintf(buf, sizeof(buf), "%.1f min", s / 60);
  else
    std::snprintf(buf, sizeof(buf), "%.1f h", s / 3600);
  return buf;
}

namespace {
std::string Thousands(std::uint64_t v) {
  std::string s = std::to_string(v);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3)
    s.insert(static_cast<std::size_t>(i), ",");
  return s;
}
std::string Rate(double r) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), r >= 100 ? "%.0f" : "%.1f", r);
  return buf;
}
}  // namespace

std::string ProgressText(const JobInfo& i, const RateMeter& meter, double elapsed) {
  char buf[160];
  std::snprintf(buf, sizeof(buf), "%s/%s units, %llu running  %s units/s  ETA %s  (%.1f s) ",
                Thousands(i.units_done).c_str(), Thousands(i.units_total).c_str(),
                static_cast<unsigned long long>(i.units_running), Rate(meter.rate()).c_str(),
                FormatDuration(meter.Eta(i.units_total)).c_str(), elapsed);
  return buf;
}

int Top(Client& client, const TopOptions& opt) {
  const bool tty = isatty(STDOUT_FILENO) && !opt.once;
  std::map<std::uint64_t, RateMeter> meters;
  std::map<std::string, RateMeter> peer_meters;
  const auto start = std::chrono::steady_clock::now();
  for (int frame = 0; opt.iterations <= 0 || frame < opt.iterations; ++frame) {
    auto jobs = client.Jobs();
    auto peers = client.Peers();
    if (!jobs.ok() || !peers.ok()) {
      std::fprintf(stderr, "sparecycles top: %s\n",
                   (!jobs.ok() ? jobs.status() : peers.status()).ToString().c_str());
      return 3;
    }
    const double t =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    for (const auto& j : *jobs) meters[j.id].Add(t, j.units_done);
    for (const auto& p : *peers) peer_meters[p.peer_id].Add(t, p.units_done);
    // Unfinished jobs first (newest first), then the latest finished ones.
    std::vector<JobInfo> list = *jobs;
    auto final = [](const JobInfo& j) {
      return j.state == JobState::kDone || j.state == JobState::kFailed ||
             j.state == JobState::kCancelled;
    };
    std::stable_sort(list.begin(), list.end(), [&](const JobInfo& a, const JobInfo& b) {
      if (final(a) != final(b)) return !final(a);
      return a.id > b.id;
    });
    std::uint64_t running = 0, cores = 0;
    double total_rate = 0;
    for (const auto& j : list) running += final(j) ? 0 : 1;
    for (const auto& p : *peers) {
      cores += p.state == "paused" ? 0 : p.slots;
      total_rate += peer_meters[p.peer_id].rate();
    }
    std::string out;
    if (tty) out += "\x1b[H\x1b[2J";
    char line[256];
    std::snprintf(line, sizeof(line),
                  "sparecycles top   jobs %llu running / %zu   peers %zu   active cores %llu   %s "
                  "units/s\n\n",
                  static_cast<unsigned long long>(running), list.size(), peers->size(),
                  static_cast<unsigned long long>(cores), Rate(total_rate).c_str());
    out += line;
    std::snprintf(line, sizeof(line), "%-6s %-11s %-10s %7s %21s %8s %10s %9s\n", "JOB", "TASK",
                  "STATE", "DONE", "UNITS", "RUNNING", "UNITS/S", "ETA");
    out += line;
    for (std::size_t k = 0; k < list.size() && k < opt.max_jobs; ++k) {
      const JobInfo& j = list[k];
      const double pct = j.units_total ? 100.0 * static_cast<double>(j.units_done) /
                                             static_cast<double>(j.units_total)
                                       : 0;
      const RateMeter& m = meters[j.id];
      double rate = m.rate();
      if (final(j) && j.finished_at > j.submitted_at)
        rate = static_cast<double>(j.units_done) / (j.finished_at - j.submitted_at);
      const std::string units = Thousands(j.units_done) + "/" + Thousands(j.units_total);
      std::snprintf(line, sizeof(line), "%-6llu %-11.11s %-10s %6.1f%% %21s %8llu %10s %9s\n",
                    static_cast<unsigned long long>(j.id), ShownTask(j).c_str(),
                    std::string(JobStateName(j.state)).c_str(), pct, units.c_str(),
                    static_cast<unsigned long long>(j.units_running), Rate(rate).c_str(),
                    final(j) ? "-" : FormatDuration(m.Eta(j.units_total)).c_str());
      out += line;
    }
    std::snprintf(line, sizeof(line), "\n%-24s %-14s %-10s %6s %8s %10s %9s %11s\n", "PEER", "HOST",
                  "STATE", "CORES", "RUNNING", "DONE", "UNITS/S", "CREDIBILITY");
    out += line;
    for (const auto& p : *peers) {
      const std::string slots = std::to_string(p.slots) + "/" + std::to_string(p.cores);
      std::snprintf(line, sizeof(line), "%-24.24s %-14.14s %-10s %6s %8llu %10s %9s %11.3f\n",
                    p.peer_id.c_str(), p.hostname.c_str(), p.state.c_str(), slots.c_str(),
                    static_cast<unsigned long long>(p.running), Thousands(p.units_done).c_str(),
                    Rate(peer_meters[p.peer_id].rate()).c_str(), p.credibility);
      out += line;
    }
    std::fwrite(out.data(), 1, out.size(), stdout);
    std::fflush(stdout);
    if (opt.once) break;
    if (opt.iterations > 0 && frame + 1 >= opt.iterations) break;
    std::this_thread::sleep_for(std::chrono::duration<double>(opt.interval_seconds));
  }
  return 0;
}

}  // namespace sparecycles::cli
