#include "cluster_profile.hpp"

#include <sched.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "sparecycles/worker/worker.hpp"

namespace sparecycles::worker {
namespace {

// Every file read here is a few bytes (cgroup knobs) or a few KiB (mountinfo); cap what is read
// so a strange /proc cannot make the worker allocate without bound.
constexpr std::size_t kMaxRead = 1 << 20;

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::string out(kMaxRead, '\0');
  in.read(out.data(), static_cast<std::streamsize>(out.size()));
  out.resize(static_cast<std::size_t>(in.gcount()));
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\n'))
    s.remove_prefix(1);
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\n' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

// A positive decimal integer with nothing else around it (whitespace aside).
std::optional<long long> PositiveInt(std::string_view text) {
  text = Trim(text);
  long long v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || v <= 0)
    return std::nullopt;
  return v;
}

std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  while (true) {
    const auto p = s.find(sep);
    out.push_back(s.substr(0, p));
    if (p == std::string_view::npos) return out;
    s.remove_prefix(p + 1);
  }
}

bool HasToken(std::string_view list, std::string_view token) {
  for (auto t : Split(list, ','))
    if (t == token) return true;
  return false;
}

struct Mount {
  std::string root, point, fstype, super_options;
};

// /proc/self/mountinfo: "ID PARENT MAJ:MIN ROOT POINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPER".
std::vector<Mount> ParseMountinfo(std::string_view text) {
  std::vector<Mount> out;
  for (auto line : Split(text, '\n')) {
    std::vector<std::string_view> f;
    for (auto w : Split(line, ' '))
      if (!w.empty()) f.push_back(w);
    const auto dash = std::find(f.begin(), f.end(), std::string_view("-"));
    if (f.size() < 6 || dash == f.end() || f.end() - dash < 4) continue;
    out.push_back(
        {std::string(f[3]), std::string(f[4]), std::string(dash[1]), std::string(dash[3])});
  }
  return out;
}

// The directory of cgroup `path` (as /proc/self/cgroup names it) under mount `m`, or "".
std::string CgroupDir(const Mount& m, std::string_view path) {
  if (m.root == "/") return m.point + (path == "/" ? "" : std::string(path));
  if (path.substr(0, m.root.size()) == m.root)
    return m.point + std::string(path.substr(m.root.size()));
  return {};
}

// min(limit) over `dir` and its parents up to and including `top`.
template <typename ReadLimit>
std::optional<double> Tightest(std::string dir, const std::string& top, ReadLimit read) {
  std::optional<double> best;
  for (int depth = 0; depth < 64; ++depth) {
    if (auto v = read(dir); v && (!best || *v < *best)) best = v;
    if (dir.size() <= top.size()) break;
    const auto slash = dir.find_last_of('/');
    if (slash == std::string::npos || slash < top.size())
      dir = top;
    else
      dir.resize(slash);
  }
  return best;
}

}  // namespace

Result<Profile> ParseProfile(std::string_view text) {
  if (text == "volunteer" || text.empty()) return Profile::kVolunteer;
  if (text == "cluster") return Profile::kCluster;
  return InvalidArgument("expected volunteer or cluster (got '" + std::string(text) + "')");
}

std::vector<std::pair<std::string, std::string>> ProfileDefaults(Profile p) {
  if (p == Profile::kVolunteer) return {};
  // The node is the job's: never pause or shrink for other load, never for memory the batch
  // system already accounts for, never for a battery; run at the priority the scheduler gave.
  return {{"pause-above", "off"}, {"throttle", "off"},    {"priority", "normal"},
          {"on-battery", "run"},  {"max-memory", "100%"}, {"min-free-memory", "0%"}};
}

AllottedCores ResolveAllottedCores(const CoreSources& s) {
  AllottedCores a;
  long long cores = 0;
  if (auto v = PositiveInt(s.slurm_cpus_per_task)) {
    cores = *v;
    a.source = "SLURM_CPUS_PER_TASK=" + std::to_string(*v);
  } else if (auto n = PositiveInt(s.slurm_cpus_on_node)) {
    cores = *n;
    a.source = "SLURM_CPUS_ON_NODE=" + std::to_string(*n);
  } else {
    cores = std::max(1u, s.hardware_cores);
    a.source = "the machine's " + std::to_string(cores) + " cores";
  }
  if (s.cgroup_cpus && *s.cgroup_cpus > 0) {
    const auto q = std::max(1LL, static_cast<long long>(std::floor(*s.cgroup_cpus + 1e-9)));
    if (q < cores) {
      cores = q;
      std::ostringstream ss;
      ss << ", capped by the cgroup CPU quota " << *s.cgroup_cpus;
      a.source += ss.str();
    }
  }
  if (s.affinity_cpus > 0 && s.affinity_cpus < cores) {
    cores = s.affinity_cpus;
    a.source += ", capped by the CPU affinity mask (" + std::to_string(s.affinity_cpus) + " CPUs)";
  }
  // Far more threads than any machine has is a misconfiguration, not an allotment.
  a.cores = static_cast<unsigned>(std::clamp(cores, 1LL, static_cast<long long>(proto::kMaxCores)));
  return a;
}

std::optional<double> ParseCgroupV2CpuMax(std::string_view text) {
  const auto f = Split(Trim(text), ' ');
  if (f.size() != 2) return std::nullopt;
  const auto quota = PositiveInt(f[0]);
  const auto period = PositiveInt(f[1]);
  if (!quota || !period) return std::nullopt;  // "max" = no limit
  return static_cast<double>(*quota) / static_cast<double>(*period);
}

std::optional<double> ParseCgroupV1Quota(std::string_view quota, std::string_view period) {
  const auto q = PositiveInt(quota);  // -1 = no limit
  const auto p = PositiveInt(period);
  if (!q || !p) return std::nullopt;
  return static_cast<double>(*q) / static_cast<double>(*p);
}

std::optional<double> ReadCgroupCpuLimit(const std::string& root) {
  const auto mounts = ParseMountinfo(Slurp(root + "/proc/self/mountinfo"));
  std::optional<double> best;
  auto keep = [&](std::optional<double> v) {
    if (v && (!best || *v < *best)) best = v;
  };
  // "HIERARCHY:CONTROLLERS:PATH"; v2 is "0::PATH".
  // The text outlives the views Split() returns into it (a temporary would die before the loop).
  const std::string cgroups = Slurp(root + "/proc/self/cgroup");
  for (auto line : Split(cgroups, '\n')) {
    const auto first = line.find(':');
    const auto second = first == std::string_view::npos ? first : line.find(':', first + 1);
    if (second == std::string_view::npos) continue;
    const auto controllers = line.substr(first + 1, second - first - 1);
    const auto path = Trim(line.substr(second + 1));
    if (path.empty() || path.front() != '/') continue;
    for (const auto& m : mounts) {
      const bool v2 = controllers.empty() && m.fstype == "cgroup2";
      const bool v1 = !controllers.empty() && HasToken(controllers, "cpu") &&
                      m.fstype == "cgroup" && HasToken(m.super_options, "cpu");
      if (!v1 && !v2) continue;
      const std::string dir = CgroupDir(m, path);
      if (dir.empty()) continue;
      const std::string top = root + m.point;
      if (v2)
        keep(Tightest(root + dir, top, [](const std::string& d) {
          return ParseCgroupV2CpuMax(Slurp(d + "/cpu.max"));
        }));
      else
        keep(Tightest(root + dir, top, [](const std::string& d) {
          return ParseCgroupV1Quota(Slurp(d + "/cpu.cfs_quota_us"),
                                    Slurp(d + "/cpu.cfs_period_us"));
        }));
    }
  }
  return best;
}

CoreSources ReadCoreSources() {
  CoreSources s;
  if (const char* v = std::getenv("SLURM_CPUS_PER_TASK")) s.slurm_cpus_per_task = v;
  if (const char* v = std::getenv("SLURM_CPUS_ON_NODE")) s.slurm_cpus_on_node = v;
  s.cgroup_cpus = ReadCgroupCpuLimit();
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof(set), &set) == 0)
    s.affinity_cpus = static_cast<unsigned>(CPU_COUNT(&set));
  s.hardware_cores = HardwareCores();
  return s;
}

}  // namespace sparecycles::worker
