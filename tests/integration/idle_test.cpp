// Donating only what is idle, with real processes on 127.0.0.1: a CPU hog on every core pauses the
// worker within seconds (and the hog gets its CPU back), the worker resumes when the hog ends and
// the job still completes correctly; a worker killed mid-unit resumes from its local checkpoint
// when restarted; a lost worker's unit continues on another worker from the uploaded checkpoint.
// Figures are printed (MESSAGE) so a run documents them. Every wait is bounded. When the machine
// stays too busy for the hog case to mean anything, that case prints "SKIP: <reason>" and ctest
// reports it skipped (it runs as its own ctest entry, tests/integration/CMakeLists.txt).
#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <iostream>
#include <map>
#include <regex>
#include <thread>

#include "process.hpp"
#include "sparecycles/sdk/client.hpp"

using namespace sparecycles;
using namespace sparecycles::testing;
using namespace std::chrono_literals;
using Steady = std::chrono::steady_clock;

namespace {

constexpr std::uint64_t kPrimesBelow1e11 = 4118054813ull;

unsigned Cores() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : n;
}

double Since(Steady::time_point t) {
  return std::chrono::duration<double>(Steady::now() - t).count();
}

// CPU seconds (user + system) a process has used so far, from /proc/<pid>/stat; < 0 when gone.
double ProcessCpu(pid_t pid) {
  const std::string text = ReadAll("/proc/" + std::to_string(pid) + "/stat");
  const auto close = text.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream in(text.substr(close + 1));
  std::string f;
  unsigned long long ut = 0, st = 0;
  for (int i = 3; i <= 15 && in >> f; ++i) {
    if (i == 14) ut = std::stoull(f);
    if (i == 15) st = std::stoull(f);
  }
  return static_cast<double>(ut + st) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// Busy and total ticks of the whole machine (/proc/stat).
std::pair<double, double> MachineTicks() {
  std::istringstream in(ReadAll("/proc/stat"));
  std::string cpu;
  double v[8] = {}, total = 0;
  in >> cpu;
  for (double& x : v) in >> x, total += x;
  return {total - v[3] - v[4], total};
}

// The share of the machine busy over `window`, minus what the listed processes used.
double OtherLoad(std::chrono::milliseconds window, const std::vector<pid_t>& exclude = {}) {
  double own0 = 0, own1 = 0;
  for (pid_t p : exclude) own0 += std::max(0.0, ProcessCpu(p));
  const auto [b0, t0] = MachineTicks();
  std::this_thread::sleep_for(window);
  const auto [b1, t1] = MachineTicks();
  for (pid_t p : exclude) own1 += std::max(0.0, ProcessCpu(p));
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  return std::max(0.0, (b1 - b0) - (own1 - own0) * ticks) / std::max(1.0, t1 - t0);
}

// The worker's status file (<state-dir>/status, "key=value" lines; see worker/status.hpp).
struct WorkerStatus {
  std::map<std::string, std::string> kv;
  std::vector<double> unit_progress;
  bool ok = false;
  std::string Get(const std::string& k) const {
    auto it = kv.find(k);
    return it == kv.end() ? "" : it->second;
  }
};
WorkerStatus ReadStatus(const std::string& dir) {
  WorkerStatus s;
  std::istringstream in(ReadAll(dir + "/status"));
  for (std::string line; std::getline(in, line);) {
    const auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    const std::string k = line.substr(0, eq), v = line.substr(eq + 1);
    if (k == "unit") {
      std::istringstream u(v);
      double job, unit, progress;
      if (u >> job >> unit >> progress) s.unit_progress.push_back(progress);
    } else {
      s.kv[k] = v;
    }
  }
  s.ok = s.Get("version") == "1";
  return s;
}

// Polls `pred` every 50 ms until it holds or `timeout` passes.
template <class Pred>
bool WaitFor(Pred pred, std::chrono::milliseconds timeout) {
  const auto deadline = Steady::now() + timeout;
  while (Steady::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return pred();
}

// N child processes that spin on the CPU until `seconds` have passed, then exit on their own.
class CpuHog {
 public:
  CpuHog(unsigned n, double seconds) {
    for (unsigned i = 0; i < n; ++i) {
      const pid_t pid = fork();
      if (pid == 0) {
        timespec start{}, now{};
        clock_gettime(CLOCK_MONOTONIC, &start);
        volatile unsigned long long x = 0;
        do {
          for (int k = 0; k < 100000; ++k) x = x + 1;
          clock_gettime(CLOCK_MONOTONIC, &now);
        } while (static_cast<double>(now.tv_sec - start.tv_sec) +
                     1e-9 * static_cast<double>(now.tv_nsec - start.tv_nsec) <
                 seconds);
        _exit(0);
      }
      if (pid > 0) pids_.push_back(pid);
    }
  }
  ~CpuHog() {
    for (pid_t p : pids_) {
      ::kill(p, SIGKILL);
      ::waitpid(p, nullptr, 0);
    }
  }
  double Cpu() const {
    double s = 0;
    for (pid_t p : pids_) s += std::max(0.0, ProcessCpu(p));
    return s;
  }
  /// Waits (bounded) for every child to exit by itself.
  bool Join(std::chrono::milliseconds timeout) {
    return WaitFor(
        [&] {
          for (pid_t& p : pids_) {
            if (p > 0 && ::waitpid(p, nullptr, WNOHANG) == p) p = -p;
          }
          return std::all_of(pids_.begin(), pids_.end(), [](pid_t p) { return p < 0; });
        },
        timeout);
  }
  const std::vector<pid_t>& pids() const { return pids_; }

 private:
  std::vector<pid_t> pids_;
};

Client Connect(Cluster& c) {
  auto client = Client::Connect(c.client_endpoint());
  REQUIRE(client.ok());
  return std::move(*client);
}

Job SubmitPrimes(Client& client, std::uint64_t units) {
  JobSpec spec("primes");
  spec.Set("from", "0").Set("to", "100000000000");
  spec.units = units;
  auto job = client.Submit(spec);
  REQUIRE_MESSAGE(job.ok(), job.status().ToString());
  return std::move(*job);
}

void ExpectPrimesDone(Job& job, Cluster& c) {
  auto r = job.Wait(300s);
  REQUIRE_MESSAGE(r.ok(), (r.status().ToString() + "\n" + c.Logs()));
  REQUIRE_MESSAGE(r->info.state == JobState::kDone, (r->info.error + "\n" + c.Logs()));
  CHECK(r->summary == std::to_string(kPrimesBelow1e11));
}

// The integer N in "... <prefix>N%" in a log.
int PercentAfter(const std::string& log, const std::string& prefix) {
  std::smatch m;
  if (!std::regex_search(log, m, std::regex(prefix + "([0-9]+)%"))) return -1;
  return std::stoi(m[1]);
}

}  // namespace

TEST_CASE(
    "a CPU hog on every core pauses the worker within seconds, gets its CPU back, and the job "
    "still completes") {
  const unsigned cores = Cores();
  // Other programs on this machine (parallel builds, other tests) would pause the worker before
  // the hog does; wait (bounded) for a calm moment.
  double background = 1;
  const auto calm_deadline = Steady::now() + 120s;
  while (Steady::now() < calm_deadline && (background = OtherLoad(1000ms)) > 0.25) {
  }
  MESSAGE("background load before the test: " << static_cast<int>(background * 100) << "% of "
                                              << cores << " cores");
  if (background > 0.25) {
    // Not a pass: ctest's SKIP_REGULAR_EXPRESSION turns this line into a skip.
    std::cout << "\nSKIP: the machine stayed " << static_cast<int>(background * 100)
              << "% busy for 120 s; a worker's reaction to a hog cannot be measured" << std::endl;
    return;
  }

  Cluster c(0);
  REQUIRE(c.ok());
  // Thresholds well above the background admitted above, so only the hog pauses the worker.
  Process& w = c.AddWorker(cores, {"--pause-above", "80%", "--resume-below", "50%", "--idle-time",
                                   "1s", "--throttle", "on", "--sample-interval", "250ms",
                                   "--priority", "normal", "--checkpoint-interval", "500ms"});
  const std::string dir = c.dir() / "worker0";
  Client client = Connect(c);
  Job job = SubmitPrimes(client, 24);
  REQUIRE_MESSAGE(WaitFor([&] { return ReadStatus(dir).unit_progress.size() >= 1; }, 60s),
                  c.Logs());
  // A burst of background load may have paused it already: start from a running worker.
  REQUIRE_MESSAGE(WaitFor([&] { return ReadStatus(dir).Get("state") == "running"; }, 60s),
                  c.Logs());
  // The worker's CPU use while it runs.
  const double wcpu0 = ProcessCpu(w.pid());
  std::this_thread::sleep_for(1000ms);
  const double worker_running = ProcessCpu(w.pid()) - wcpu0;
  MESSAGE("worker before the hog: " << worker_running << " cores busy");

  const double hog_seconds = 6;
  const auto hog_start = Steady::now();
  CpuHog hog(cores, hog_seconds);
  REQUIRE(hog.pids().size() == cores);
  // Hog share in 250 ms windows until the worker reports a pause.
  double paused_after = -1;
  std::vector<std::pair<double, double>>
      shares;  // (seconds since hog start, hog share of the machine)
  double last_hog = hog.Cpu();
  auto last_t = Steady::now();
  while (Since(hog_start) < 5.0) {
    std::this_thread::sleep_for(250ms);
    const double h = hog.Cpu();
    const double dt = Since(last_t);
    last_t = Steady::now();
    shares.emplace_back(Since(hog_start), (h - last_hog) / (dt * cores));
    last_hog = h;
    if (paused_after < 0 && ReadStatus(dir).Get("state") == "paused")
      paused_after = Since(hog_start);
    if (paused_after >= 0 && Since(hog_start) > paused_after + 1.0) break;
  }
  std::string series;
  for (auto [t, s] : shares)
    series += " " + std::to_string(static_cast<int>(t * 1000)) +
              "ms:" + std::to_string(static_cast<int>(s * 100)) + "%";
  MESSAGE("hog share of the machine per 250 ms window:" << series);
  REQUIRE_MESSAGE(paused_after >= 0,
                  ("the worker did not pause within 5 s of the hog\n" + c.Logs()));
  MESSAGE("the worker paused " << paused_after
                               << " s after the hog started: " << ReadStatus(dir).Get("reason"));
  CHECK(paused_after < 5.0);

  // While paused: the worker uses (almost) no CPU and the hog has the machine.
  const double w0 = ProcessCpu(w.pid()), h0 = hog.Cpu();
  const auto [busy0, total0] = MachineTicks();
  const auto t0 = Steady::now();
  std::this_thread::sleep_for(1000ms);
  const double window = Since(t0);
  const auto [busy1, total1] = MachineTicks();
  const double worker_paused = (ProcessCpu(w.pid()) - w0) / window;
  const double hog_paused = (hog.Cpu() - h0) / (window * cores);
  const double hog_first = shares.empty() ? 0 : shares.front().second;
  // What neither the hog nor the worker used: other programs that started meanwhile.
  const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double others =
      std::max(0.0, (busy1 - busy0) - (hog.Cpu() - h0 + ProcessCpu(w.pid()) - w0) * tick) /
      std::max(1.0, total1 - total0);
  MESSAGE("while paused: worker " << worker_paused << " cores, hog "
                                  << static_cast<int>(hog_paused * 100)
                                  << "% of the machine (first window after the hog started: "
                                  << static_cast<int>(hog_first * 100) << "%), other programs "
                                  << static_cast<int>(others * 100) << "%");
  if (others > 0.3) {
    // The hog's share then measures the other programs, not what the worker gave back. Decided
    // before any check of this window, since a skip would hide a failed one.
    std::cout << "\nSKIP: other programs took " << static_cast<int>(others * 100)
              << "% of the machine while the worker was paused; the hog's share cannot be measured"
              << std::endl;
    return;
  }
  CHECK_MESSAGE(worker_paused < 0.15, w.Stderr());
  CHECK(hog_paused > 0.6);
  // The coordinator knows: no units go to a paused peer.
  auto peers = client.Peers();
  REQUIRE(peers.ok());
  REQUIRE(peers->size() == 1);
  CHECK((*peers)[0].state == "paused");
  CHECK((*peers)[0].slots == 0);

  // The hog ends by itself; the worker resumes after 1 s of calm and the job completes.
  REQUIRE(hog.Join(std::chrono::milliseconds(static_cast<int>(hog_seconds * 1000) + 10000)));
  const auto hog_end = Steady::now();
  REQUIRE_MESSAGE(WaitFor([&] { return ReadStatus(dir).Get("state") != "paused"; }, 30s), c.Logs());
  MESSAGE("the worker resumed " << Since(hog_end) << " s after the hog ended (idle time 1 s)");
  // On a shared machine other programs may pause the worker again; then a dedicated worker
  // joins so the job's correctness is still checked (the pause/resume above already was).
  auto early = job.Wait(120s);
  if (!early.ok() || !IsFinal(early->info.state)) {
    MESSAGE("other load kept the worker paused (" << ReadStatus(dir).Get("reason")
                                                  << "); a dedicated worker joins");
    c.AddWorker(cores);
  }
  ExpectPrimesDone(job, c);
  // Paused by the load rule, or by throttling down to no idle core: the hog's doing either way.
  CHECK_MESSAGE((w.Stderr().find("paused: other programs use") != std::string::npos ||
                 w.Stderr().find("paused: no idle core: other programs use") != std::string::npos),
                w.Stderr());
}

TEST_CASE(
    "a worker killed mid-unit and restarted with the same state directory resumes from its local "
    "checkpoint") {
  Cluster c(0);
  REQUIRE(c.ok());
  const std::vector<std::string> flags = {"--checkpoint-interval", "200ms"};
  Process& first = c.AddWorker(2, flags);
  const std::string dir = c.dir() / "worker0";
  Client client = Connect(c);
  Job job = SubmitPrimes(client, 1);
  double at_kill = 0;
  REQUIRE_MESSAGE(WaitFor(
                      [&] {
                        auto s = ReadStatus(dir);
                        at_kill = s.unit_progress.empty() ? 0 : s.unit_progress[0];
                        return at_kill >= 0.4;
                      },
                      120s),
                  c.Logs());
  first.Signal(SIGKILL);
  REQUIRE(first.Wait(10s).has_value());

  std::vector<std::string> again = flags;
  again.insert(again.end(), {"--state-dir", dir});
  Process& second = c.AddWorker(2, again);
  ExpectPrimesDone(job, c);
  const std::string log = second.Stderr();
  const int resumed = PercentAfter(log, "resumes from a local checkpoint at ");
  MESSAGE("killed at " << static_cast<int>(at_kill * 100)
                       << "% (by the status file); the restarted worker resumed at " << resumed
                       << "%, so it recomputed " << 100 - resumed
                       << "% of the unit instead of 100%");
  CHECK(resumed >= 25);  // checkpoints every 200 ms; the status file lags up to 1 s
  CHECK(log.find("done after resuming at") != std::string::npos);
  const auto st = ReadStatus(dir);
  CHECK(st.Get("units_resumed") == "1");
}

TEST_CASE("a lost worker's unit continues on another worker from the checkpoint it uploaded") {
  Cluster c(0);  // peer timeout 2 s
  REQUIRE(c.ok());
  Process& lost = c.AddWorker(2, {"--checkpoint-interval", "200ms"});
  const std::string dir = c.dir() / "worker0";
  Client client = Connect(c);
  Job job = SubmitPrimes(client, 1);
  double at_kill = 0;
  REQUIRE_MESSAGE(WaitFor(
                      [&] {
                        auto s = ReadStatus(dir);
                        at_kill = s.unit_progress.empty() ? 0 : s.unit_progress[0];
                        return at_kill >= 0.4;
                      },
                      120s),
                  c.Logs());
  lost.Signal(SIGKILL);
  REQUIRE(lost.Wait(10s).has_value());
  Process& other =
      c.AddWorker(2, {"--checkpoint-interval", "200ms"});  // a new peer, its own state dir
  ExpectPrimesDone(job, c);
  const std::string log = other.Stderr();
  CHECK(log.find("resumes from a checkpoint uploaded to the coordinator") != std::string::npos);
  const int resumed = PercentAfter(log, "done after resuming at ");
  MESSAGE("lost at " << static_cast<int>(at_kill * 100) << "%; the other worker resumed at "
                     << resumed << "%, so it computed " << 100 - resumed
                     << "% of the unit instead of 100%");
  CHECK(resumed >= 25);
}
