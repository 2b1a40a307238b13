// Worker profiles and the cores a batch scheduler or container runtime allots to this process.
// `--profile cluster` swaps the volunteer defaults (pause on load, throttle, nice 19) for those of
// a dedicated node and takes the core count from Slurm's environment, the cgroup CPU quota or the
// CPU affinity mask. ResolveAllottedCores is pure (tests feed it values); ReadCoreSources reads
// the real environment and /proc, /sys under a root prefix. Stateless; safe from any thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sparecycles/core/status.hpp"

namespace sparecycles::worker {

enum class Profile {
  kVolunteer,  // a machine someone uses: donate idle CPU only (the option defaults)
  kCluster,    // a dedicated or batch-allocated node: every allotted core, no idle policy
};
Result<Profile> ParseProfile(std::string_view text);

/// The option defaults a profile puts in place of the built-in ones, as {name, value}. Flags,
/// SPARECYCLES_WORKER_* variables and --config lines still win over them. The volunteer profile
/// changes nothing. (The cluster profile's --cores comes from ResolveAllottedCores instead.)
std::vector<std::pair<std::string, std::string>> ProfileDefaults(Profile p);

/// What the environment says about this process's CPUs; empty / nullopt / 0 = not known.
struct CoreSources {
  std::string slurm_cpus_per_task;    // $SLURM_CPUS_PER_TASK (set with sbatch/srun -c)
  std::string slurm_cpus_on_node;     // $SLURM_CPUS_ON_NODE (CPUs of the job on this node)
  std::optional<double> cgroup_cpus;  // CPU quota of the cgroup (cpu.max or cfs quota/period)
  unsigned affinity_cpus = 0;         // CPUs in sched_getaffinity's mask
  unsigned hardware_cores = 1;        // logical CPUs of the machine
};

struct AllottedCores {
  unsigned cores = 1;  // at least 1
  std::string source;  // how it was found, e.g. "SLURM_CPUS_ON_NODE=4, capped by cgroup quota 2.5"
};

/// The cores to use: Slurm's per-task figure, else its per-node figure, else the machine's cores;
/// then capped by the cgroup quota (rounded down, so CFS throttling never stalls the network loop;
/// at least 1) and by the affinity mask. A Slurm value that is not a positive integer is ignored.
AllottedCores ResolveAllottedCores(const CoreSources& s);

/// "200000 100000" -> 2.0; "max 100000" (no limit) or anything malformed -> nullopt.
std::optional<double> ParseCgroupV2CpuMax(std::string_view text);
/// cpu.cfs_quota_us and cpu.cfs_period_us contents: "-1" (no limit) or malformed -> nullopt.
std::optional<double> ParseCgroupV1Quota(std::string_view quota, std::string_view period);

/// The tightest CPU quota of this process's cgroup and its ancestors, v2 (cpu.max) or v1
/// (cpu.cfs_quota_us), found through <root>/proc/self/cgroup and <root>/proc/self/mountinfo.
/// `root` = "" reads the real machine; tests point it at a fake tree. nullopt = no limit found.
std::optional<double> ReadCgroupCpuLimit(const std::string& root = "");

/// Reads every source of the real process (environment, cgroups, affinity, hardware).
CoreSources ReadCoreSources();

}  // namespace sparecycles::worker
