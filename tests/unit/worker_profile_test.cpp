// The cluster profile: its option defaults, and the cores allotted by Slurm, the cgroup CPU quota
// (v2 and v1, through a fake /proc + /sys tree) and the affinity mask.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

#include "../../worker/src/cluster_profile.hpp"
#include "process.hpp"

using namespace sparecycles::worker;

namespace {

void Write(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path) << text;
}

CoreSources Machine(unsigned cores) {
  CoreSources s;
  s.hardware_cores = cores;
  return s;
}

}  // namespace

TEST_CASE(
    "the cluster profile turns the idle policy off and the volunteer profile changes nothing") {
  REQUIRE(ParseProfile("cluster").ok());
  CHECK(*ParseProfile("cluster") == Profile::kCluster);
  CHECK(*ParseProfile("volunteer") == Profile::kVolunteer);
  CHECK(!ParseProfile("Cluster").ok());
  CHECK(!ParseProfile("lab").ok());
  CHECK(ProfileDefaults(Profile::kVolunteer).empty());
  const auto d = ProfileDefaults(Profile::kCluster);
  auto value = [&](const std::string& name) {
    for (const auto& [k, v] : d)
      if (k == name) return v;
    return std::string("<unset>");
  };
  CHECK(value("pause-above") == "off");
  CHECK(value("throttle") == "off");
  CHECK(value("priority") == "normal");
  CHECK(value("on-battery") == "run");
  CHECK(value("max-memory") == "100%");
}

TEST_CASE("without a scheduler or quota the worker takes every core of the machine") {
  const auto a = ResolveAllottedCores(Machine(8));
  CHECK(a.cores == 8);
  CHECK(a.source == "the machine's 8 cores");
  CHECK(ResolveAllottedCores(Machine(0)).cores == 1);
}

TEST_CASE("Slurm's per-task CPUs win over its per-node CPUs, and malformed values are ignored") {
  CoreSources s = Machine(16);
  s.slurm_cpus_on_node = "6";
  CHECK(ResolveAllottedCores(s).cores == 6);
  CHECK(ResolveAllottedCores(s).source == "SLURM_CPUS_ON_NODE=6");
  s.slurm_cpus_per_task = "2";
  CHECK(ResolveAllottedCores(s).cores == 2);
  CHECK(ResolveAllottedCores(s).source == "SLURM_CPUS_PER_TASK=2");
  for (const char* bad : {"0", "-3", "2(x3)", "abc", "", " "}) {
    CAPTURE(bad);
    s.slurm_cpus_per_task = bad;
    CHECK(ResolveAllottedCores(s).cores == 6);
  }
  s.slurm_cpus_on_node = "many";
  CHECK(ResolveAllottedCores(s).cores == 16);
}

TEST_CASE("a cgroup quota and the affinity mask cap the count, rounded down to at least one core") {
  CoreSources s = Machine(16);
  s.cgroup_cpus = 2.5;
  auto a = ResolveAllottedCores(s);
  CHECK(a.cores == 2);
  CHECK(a.source.find("cgroup CPU quota 2.5") != std::string::npos);
  s.cgroup_cpus = 0.5;  // a Kubernetes limit of 500m
  CHECK(ResolveAllottedCores(s).cores == 1);
  s.cgroup_cpus = 32;  // a quota above the allotment does not raise it
  s.slurm_cpus_on_node = "4";
  CHECK(ResolveAllottedCores(s).cores == 4);
  s.affinity_cpus = 3;
  a = ResolveAllottedCores(s);
  CHECK(a.cores == 3);
  CHECK(a.source.find("affinity") != std::string::npos);
  s.affinity_cpus = 64;
  CHECK(ResolveAllottedCores(s).cores == 4);
}

TEST_CASE("cgroup quota files parse, and 'max' or -1 mean no limit") {
  CHECK(ParseCgroupV2CpuMax("200000 100000\n").value() == doctest::Approx(2.0));
  CHECK(ParseCgroupV2CpuMax("150000 100000").value() == doctest::Approx(1.5));
  CHECK(!ParseCgroupV2CpuMax("max 100000\n"));
  CHECK(!ParseCgroupV2CpuMax(""));
  CHECK(!ParseCgroupV2CpuMax("100000"));
  CHECK(!ParseCgroupV2CpuMax("1 2 3"));
  CHECK(ParseCgroupV1Quota("50000\n", "100000\n").value() == doctest::Approx(0.5));
  CHECK(!ParseCgroupV1Quota("-1\n", "100000\n"));
  CHECK(!ParseCgroupV1Quota("50000", "0"));
}

TEST_CASE("the cgroup v2 quota is the tightest of the process's cgroup and its parents") {
  sparecycles::testing::TempDir root;
  Write(root / "proc/self/cgroup", "0::/kubepods/pod1/ctr\n");
  Write(root / "proc/self/mountinfo",
        "22 1 0:21 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
        "23 1 0:22 / /proc rw - proc proc rw\n");
  Write(root / "sys/fs/cgroup/kubepods/cpu.max", "max 100000\n");
  Write(root / "sys/fs/cgroup/kubepods/pod1/cpu.max", "300000 100000\n");
  Write(root / "sys/fs/cgroup/kubepods/pod1/ctr/cpu.max", "max 100000\n");
  CHECK(ReadCgroupCpuLimit(root.path()).value() == doctest::Approx(3.0));
  Write(root / "sys/fs/cgroup/kubepods/pod1/ctr/cpu.max", "150000 100000\n");
  CHECK(ReadCgroupCpuLimit(root.path()).value() == doctest::Approx(1.5));
}

TEST_CASE("a cgroup v1 cpu hierarchy mounted beside others is found through mountinfo") {
  sparecycles::testing::TempDir root;
  Write(root / "proc/self/cgroup", "4:memory:/job\n2:cpu,cpuacct:/slurm/job7\n0::/\n");
  Write(root / "proc/self/mountinfo",
        "30 25 0:26 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n"
        "31 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
        "32 25 0:28 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n");
  Write(root / "sys/fs/cgroup/cpu,cpuacct/slurm/job7/cpu.cfs_quota_us", "200000\n");
  Write(root / "sys/fs/cgroup/cpu,cpuacct/slurm/job7/cpu.cfs_period_us", "100000\n");
  Write(root / "sys/fs/cgroup/cpu,cpuacct/slurm/cpu.cfs_quota_us", "-1\n");
  Write(root / "sys/fs/cgroup/cpu,cpuacct/slurm/cpu.cfs_period_us", "100000\n");
  CHECK(ReadCgroupCpuLimit(root.path()).value() == doctest::Approx(2.0));
}

TEST_CASE("no cgroup files, a garbled mountinfo or a cgroup outside the mount give no limit") {
  sparecycles::testing::TempDir root;
  CHECK(!ReadCgroupCpuLimit(root.path()));
  Write(root / "proc/self/cgroup", "0::/a\nnonsense\n::\n");
  Write(root / "proc/self/mountinfo",
        "garbage - \n1 2 3\n40 1 0:30 /other /sys/fs/cgroup rw - cgroup2 c rw\n");
  Write(root / "sys/fs/cgroup/a/cpu.max", "100000 100000\n");
  CHECK(!ReadCgroupCpuLimit(root.path()));
}

TEST_CASE("the real process has at least one allotted core") {
  const auto a = ResolveAllottedCores(ReadCoreSources());
  CHECK(a.cores >= 1);
  CHECK(!a.source.empty());
}
