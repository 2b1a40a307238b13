// Benchmark: time from a lease reaching ProcessExecutor::Start to the first instruction of the
// package's code, for a cold executor (process start, sandbox, dlopen), with the sandbox on and
// off in the same run (the baseline), interleaved. Prints the figures; asserts only that units
// ran. Usage: bench_sandbox_start [units per mode, default 40]
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <thread>
#include <vector>

#include "../worker/src/executor_process.hpp"
#include "process.hpp"
#include "sparecycles/package/package.hpp"
#include "sparecycles/tasks/bytes.hpp"
#include "sparecycles/tasks/task_abi.h"

using namespace sparecycles;
using namespace sparecycles::worker;
using namespace std::chrono_literals;

namespace {

std::int64_t MonotonicNs() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// One unit; returns lease-to-first-instruction in microseconds, or -1.
double RunOnce(ProcessExecutor& exec, const std::shared_ptr<const PackageRef>& pkg,
               std::uint64_t id) {
  UnitStart u;
  u.lease.lease_id = id;
  u.lease.job_id = 1;
  u.lease.unit_index = id;
  u.lease.task = "hostile";
  u.lease.unit = tasks::ByteWriter().Put<std::uint8_t>(16).Str("").bytes();
  u.package = pkg;
  const std::int64_t t0 = MonotonicNs();
  exec.Start(std::move(u));
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < deadline) {
    for (auto& f : exec.TakeFinished())
      if (f.result.lease_id == id && f.result.outcome == proto::UnitOutcome::kOk)
        return static_cast<double>(std::atoll(f.result.payload.c_str()) - t0) / 1000.0;
      else if (f.result.lease_id == id)
        return -1;
    std::this_thread::sleep_for(200us);
  }
  return -1;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::max(1, std::atoi(argv[1])) : 40;
  testing::TempDir tmp;
  ::chmod(tmp.path().c_str(), 0755);
  std::filesystem::create_directories(tmp / "work");
  package::Manifest m;
  m.name = "hostile";
  m.version = "1";
  m.kind = package::Kind::kNative;
  m.arch = std::string(package::HostArch());
  m.entry = "hostile.so";
  m.abi_version = SPARECYCLES_TASK_ABI_VERSION;
  m.resources.expected_seconds = 1;
  m.files = {package::FileEntry{"hostile.so"}};
  auto p = package::Package::Create(m, {testing::ReadAll(SC_HOSTILE_TEST_PLUGIN)});
  if (!p.ok() || !p->Extract(tmp / "pkg").ok()) {
    std::fprintf(stderr, "cannot make the package\n");
    return 1;
  }
  auto ref = std::make_shared<PackageRef>();
  ref->id = p->Id();
  ref->dir = tmp / "pkg";
  ref->manifest = p->manifest();
  auto make = [&](bool sandbox) {
    ProcessExecutorConfig c;
    c.executor_path = SC_EXECUTOR_BIN;
    c.work_root = tmp / "work";
    c.sandbox = sandbox;
    return std::make_unique<ProcessExecutor>(c, [] {});
  };
  auto on = make(true), off = make(false);
  std::vector<double> t_on, t_off;
  std::uint64_t id = 1;
  for (int i = 0; i < n; ++i) {
    // Alternating which goes first, so neither always follows the other's clean-up.
    double a = 0, b = 0;
    if (i % 2 == 0) {
      a = RunOnce(*off, ref, id++);
      b = RunOnce(*on, ref, id++);
    } else {
      b = RunOnce(*on, ref, id++);
      a = RunOnce(*off, ref, id++);
    }
    if (a < 0 || b < 0) {
      std::fprintf(stderr, "a unit failed\n");
      return 1;
    }
    t_off.push_back(a);
    t_on.push_back(b);
  }
  const double mo = Median(t_off), mn = Median(t_on);
  std::printf("lease to first instruction, cold executor, %d units each (median):\n", n);
  std::printf("  sandbox off: %8.0f us (baseline)\n", mo);
  std::printf("  sandbox on:  %8.0f us (%.2fx, %+.0f us)\n", mn, mo > 0 ? mn / mo : 0, mn - mo);
  return 0;
}
