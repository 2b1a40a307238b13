#include "sparecycles/worker/capacity.hpp"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace sparecycles::worker {
namespace {

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string Trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
  return s;
}

}  // namespace

Result<CpuTimes> ParseProcStat(std::string_view text) {
  CpuTimes t;
  bool found = false;
  std::istringstream in{std::string(text)};
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("cpu", 0) != 0) continue;
    if (line.size() > 3 && line[3] != ' ') {
      ++t.cpus;
      continue;
    }
    std::istringstream fields(line.substr(3));
    std::uint64_t v[8] = {};
    int n = 0;
    while (n < 8 && fields >> v[n]) ++n;
    if (n < 4) return DataLoss("/proc/stat: the cpu line has fewer than 4 fields");
    for (int i = 0; i < n; ++i) t.total += v[i];  // guest time is already inside user/nice
    t.idle = v[3] + (n > 4 ? v[4] : 0);
    found = true;
  }
  if (!found) return DataLoss("/proc/stat: no cpu line");
  return t;
}

Result<std::uint64_t> ParseProcessCpuTicks(std::string_view text) {
  // "pid (comm) state ppid ..." — comm may hold spaces and parentheses: split after the last ')'.
  const auto close = text.rfind(')');
  if (close == std::string_view::npos) return DataLoss("stat: no command name");
  std::istringstream in{std::string(text.substr(close + 1))};
  std::string field;
  std::uint64_t utime = 0, stime = 0;
  // After ')': state is field 3; utime and stime are fields 14 and 15.
  for (int i = 3; i <= 15; ++i) {
    if (!(in >> field)) return DataLoss("stat: too few fields");
    if (i == 14) utime = std::strtoull(field.c_str(), nullptr, 10);
    if (i == 15) stime = std::strtoull(field.c_str(), nullptr, 10);
  }
  return utime + stime;
}

Result<MemInfo> ParseMeminfo(std::string_view text) {
  MemInfo m;
  std::istringstream in{std::string(text)};
  std::string key, unit;
  std::uint64_t kb = 0;
  bool have_avail = false;
  std::uint64_t free_kb = 0, cached_kb = 0, buffers_kb = 0;
  for (std::string line; std::getline(in, line);) {
    std::istringstream ls(line);
    if (!(ls >> key >> kb)) continue;
    if (key == "MemTotal:")
      m.total = kb * 1024;
    else if (key == "MemAvailable:")
      m.available = kb * 1024, have_avail = true;
    else if (key == "MemFree:")
      free_kb = kb;
    else if (key == "Cached:")
      cached_kb = kb;
    else if (key == "Buffers:")
      buffers_kb = kb;
  }
  if (m.total == 0) return DataLoss("/proc/meminfo: no MemTotal");
  if (!have_avail) m.available = (free_kb + cached_kb + buffers_kb) * 1024;  // kernels before 3.14
  return m;
}

SystemProbe::SystemProbe(std::string root) : root_(std::move(root)) { (void)Sample(); }

Readings SystemProbe::Sample() {
  Readings r;
  const unsigned hw = std::thread::hardware_concurrency();
  r.cores = hw == 0 ? 1 : hw;
  if (auto cpu = ParseProcStat(Slurp(root_ + "/proc/stat")); cpu.ok()) {
    if (cpu->cpus > 0) r.cores = cpu->cpus;
    auto own = ParseProcessCpuTicks(Slurp(root_ + "/proc/self/stat"));
    const std::uint64_t own_ticks = own.ok() ? *own : last_own_;
    if (have_last_ && cpu->total > last_total_) {
      const double total = static_cast<double>(cpu->total - last_total_);
      const double idle = static_cast<double>(cpu->idle >= last_idle_ ? cpu->idle - last_idle_ : 0);
      const double mine = static_cast<double>(own_ticks >= last_own_ ? own_ticks - last_own_ : 0);
      r.other_cpu = std::clamp((total - idle - mine) / total, 0.0, 1.0);
    }
    last_total_ = cpu->total;
    last_idle_ = cpu->idle;
    last_own_ = own_ticks;
    have_last_ = true;
  }
  if (auto mem = ParseMeminfo(Slurp(root_ + "/proc/meminfo")); mem.ok()) {
    r.memory_total = mem->total;
    r.memory_available = mem->available;
  }
  {
    std::istringstream statm(Slurp(root_ + "/proc/self/statm"));
    std::uint64_t size = 0, resident = 0;
    if (statm >> size >> resident)
      r.own_memory = resident * static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));
  }
  bool mains_online = false, discharging = false;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(root_ + "/sys/class/power_supply", ec)) {
    const std::string dir = e.path().string();
    const std::string type = Trimmed(Slurp(dir + "/type"));
    if (type == "Mains" || type == "USB") {
      if (Trimmed(Slurp(dir + "/online")) == "1") mains_online = true;
    } else if (type == "Battery") {
      if (Trimmed(Slurp(dir + "/status")) == "Discharging") discharging = true;
    }
  }
  r.on_battery = discharging && !mains_online;
  return r;
}

}  // namespace sparecycles::worker
