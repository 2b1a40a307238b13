// Benchmark: time from a lease reaching ProcessExecutor::Start to the first instruction of the
// package's code, for a cold executor (process start, sandbox, dlopen; idle time 0, so every
// unit gets a fresh process) and for a reused one, with the sandbox on and off in the same run
// (the baseline), interleaved; then trivial units per second through one reused executor
// process (short units, batched), sandbox on and off. Prints the figures; asserts only that
// units ran. Usage: bench_sandbox_start [units per mode, default 40] [trivial units, 20000]
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
      else if (f.result.lease_id == id) {
        std::fprintf(stderr, "unit %llu: %s\n", static_cast<unsigned long long>(id),
                     f.result.error.c_str());
        return -1;
      }
    std::this_thread::sleep_for(200us);
  }
  return -1;
}

// `n` trivial units started at once (short units: batched); units per second, or -1.
double Throughput(ProcessExecutor& exec, const std::shared_ptr<const PackageRef>& pkg,
                  std::uint64_t* id, int n) {
  exec.SetShortUnits(true);
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) {
    UnitStart u;
    u.lease.lease_id = (*id)++;
    u.lease.job_id = 2;
    u.lease.unit_index = u.lease.lease_id;
    u.lease.task = "hostile";
    u.lease.unit = tasks::ByteWriter().Put<std::uint8_t>(16).Str("").bytes();
    u.package = pkg;
    exec.Start(std::move(u));
  }
  int done = 0;
  const auto deadline = t0 + 120s;
  while (done < n && std::chrono::steady_clock::now() < deadline) {
    for (auto& f : exec.TakeFinished()) {
      if (f.result.outcome != proto::UnitOutcome::kOk) return -1;
      ++done;
    }
    std::this_thread::sleep_for(200us);
  }
  if (done < n) return -1;
  return n / std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::max(1, std::atoi(argv[1])) : 40;
  const int trivial = argc > 2 ? std::max(1, std::atoi(argv[2])) : 20000;
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
  auto make = [&](bool sandbox, bool cold) {
    ProcessExecutorConfig c;
    c.executor_path = SC_EXECUTOR_BIN;
    c.work_root = tmp / "work";
    c.sandbox = sandbox;
    if (cold) c.idle_timeout = Duration::zero();
    return std::make_unique<ProcessExecutor>(c, [] {});
  };
  auto on = make(true, true), off = make(false, true);
  auto warm_on = make(true, false), warm_off = make(false, false);
  std::vector<double> t_on, t_off, w_on, w_off;
  std::uint64_t id = 1;
  for (int i = 0; i < n; ++i) {
    const double a = RunOnce(*warm_off, ref, id++);
    const double b = RunOnce(*warm_on, ref, id++);
    if (a < 0 || b < 0) {
      std::fprintf(stderr, "a unit failed\n");
      return 1;
    }
    if (i > 0) {  // the first started the process
      w_off.push_back(a);
      w_on.push_back(b);
    }
  }
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
  std::printf("  processes started: %llu (on), %llu (off)\n",
              static_cast<unsigned long long>(on->processes_started()),
              static_cast<unsigned long long>(off->processes_started()));
  const double wo = Median(w_off), wn = Median(w_on);
  std::printf("lease to first instruction, reused executor, %d units each (median):\n", n - 1);
  std::printf("  sandbox off: %8.0f us (baseline)\n", wo);
  std::printf("  sandbox on:  %8.0f us\n", wn);
  std::printf("  processes started: %llu (on), %llu (off)\n",
              static_cast<unsigned long long>(warm_on->processes_started()),
              static_cast<unsigned long long>(warm_off->processes_started()));
  const double r_off = Throughput(*warm_off, ref, &id, trivial);
  const double r_on = Throughput(*warm_on, ref, &id, trivial);
  if (r_off < 0 || r_on < 0) {
    std::fprintf(stderr, "a trivial unit failed\n");
    return 1;
  }
  std::printf("trivial units through one reused executor process, %d units (short, batched):\n",
              trivial);
  std::printf("  sandbox off: %8.0f units/s (baseline)\n", r_off);
  std::printf("  sandbox on:  %8.0f units/s (%.2fx)\n", r_on, r_off > 0 ? r_on / r_off : 0);
  std::printf("  processes started: %llu (on), %llu (off)\n",
              static_cast<unsigned long long>(warm_on->processes_started()),
              static_cast<unsigned long long>(warm_off->processes_started()));
  return 0;
}
