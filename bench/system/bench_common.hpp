// Shared plumbing of the whole-system benchmark tools: command-line flags, a cluster of real
// processes on 127.0.0.1 (tests/support/process.hpp), /proc readings, percentiles, ZeroMQ
// baselines, and the one output format: a JSON line per figure on stdout
//   {"figure": ..., "case": ..., "value": ..., "unit": ..., "baseline": ..., "baseline_name": ...,
//    "ratio": value/baseline, "goal": ..., "command": ...}
// plus a human-readable line on stderr. Single-threaded helpers unless stated.
#pragma once

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "process.hpp"
#include "sparecycles/sdk/client.hpp"

namespace sparecycles::bench {

using testing::Process;
using testing::TempDir;

inline double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

/// Flags every tool accepts: --quick (a tiny version for ctest), --NAME VALUE overrides.
struct Args {
  bool quick = false;
  std::map<std::string, std::string> values;
  std::string argv0;
  Args(int argc, char** argv) {
    argv0 = argv[0];
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      if (a == "--quick") {
        quick = true;
      } else if (a == "--help" || a == "-h") {
        values["help"] = "1";
      } else if (a.rfind("--", 0) == 0 && i + 1 < argc) {
        values[a.substr(2)] = argv[++i];
      }
    }
  }
  bool help() const { return values.count("help") > 0; }
  double Num(const std::string& name, double full, double quick_value) const {
    auto it = values.find(name);
    if (it != values.end()) return std::strtod(it->second.c_str(), nullptr);
    return quick ? quick_value : full;
  }
  std::string Str(const std::string& name, const std::string& def) const {
    auto it = values.find(name);
    return it == values.end() ? def : it->second;
  }
  /// The command line that reproduces this run (for the report).
  std::string Command() const {
    const char* slash = std::strrchr(argv0.c_str(), '/');
    std::string c = "build-bench/bench/";
    c.append(slash ? slash + 1 : argv0.c_str());
    if (quick) c += " --quick";
    for (auto& [k, v] : values)
      if (k != "help") c += " --" + k + " " + v;
    return c;
  }
};

inline std::string JsonEscape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\';
    if (c == '\n') {
      o += "\\n";
      continue;
    }
    o += c;
  }
  return o;
}

inline std::string Num(double v) {
  if (!std::isfinite(v)) return "null";
  std::ostringstream o;
  o.precision(6);
  o << v;
  return o.str();
}

struct Figure {
  std::string figure;     // e.g. "trivial_units_per_s"
  std::string case_name;  // e.g. "replicas=1, 2 workers"
  double value = NAN;
  std::string unit;  // e.g. "units/s"
  double baseline = NAN;
  std::string baseline_name;  // what the baseline is
  std::string goal;           // the goal, e.g. ">= 50000"
  bool higher_is_better = true;
  std::map<std::string, double> extra;
};

/// Prints one figure: JSON on stdout (for bench/run_all.sh), prose on stderr.
inline void Emit(const Figure& f, const Args& args) {
  const double ratio = f.value / f.baseline;
  std::ostringstream j;
  j << "{\"figure\":\"" << JsonEscape(f.figure) << "\",\"case\":\"" << JsonEscape(f.case_name)
    << "\",\"value\":" << Num(f.value) << ",\"unit\":\"" << JsonEscape(f.unit)
    << "\",\"baseline\":" << Num(f.baseline) << ",\"baseline_name\":\""
    << JsonEscape(f.baseline_name) << "\",\"ratio\":" << Num(ratio)
    << ",\"higher_is_better\":" << (f.higher_is_better ? "true" : "false") << ",\"goal\":\""
    << JsonEscape(f.goal) << "\",\"quick\":" << (args.quick ? "true" : "false");
  for (auto& [k, v] : f.extra) j << ",\"" << JsonEscape(k) << "\":" << Num(v);
  j << ",\"command\":\"" << JsonEscape(args.Command()) << "\"}";
  std::cout << j.str() << std::endl;
  std::cerr << "  " << f.figure << " [" << f.case_name << "]: " << Num(f.value) << " " << f.unit
            << "   baseline (" << f.baseline_name << "): " << Num(f.baseline) << "   ratio "
            << Num(ratio) << (f.goal.empty() ? "" : "   goal " + f.goal) << "\n";
}

/// A figure could not be measured. Thrown, so that every Process on the stack is killed and
/// reaped by its destructor; Guarded() turns it into exit code 1.
struct Failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};
[[noreturn]] inline void Die(const std::string& why) { throw Failure(why); }

/// Runs a tool's body; any failure is reported and becomes exit code 1.
template <class F>
int Guarded(F&& body) {
  try {
    return body();
  } catch (const std::exception& e) {
    std::cerr << "benchmark failed: " << e.what() << "\n";
    return 1;
  }
}

inline double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const double idx = p * static_cast<double>(v.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(idx));
  const auto hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (idx - static_cast<double>(lo));
}

/// True when `bin --help` mentions `flag` (the daemons grow options; the tools use what exists).
inline bool Supports(const std::string& bin, const std::string& flag) {
  static std::map<std::string, std::string> help;
  auto it = help.find(bin);
  if (it == help.end()) {
    TempDir dir;
    it =
        help.emplace(
                bin,
                testing::RunCommand({bin, "--help"}, dir / "help", std::chrono::seconds(10)).second)
            .first;
  }
  return it->second.find(flag + " ") != std::string::npos ||
         it->second.find(flag + "\n") != std::string::npos;
}

/// A coordinator and worker processes (1 core each) on 127.0.0.1 with OS-chosen ports, with
/// exactly the flags given here (not the test suite's). Workers run as dedicated cluster workers:
/// where the worker supports them, --pause-above off --throttle off --priority normal, so that
/// other load on a shared machine does not pause them. Destruction kills everything by pid.
class BenchCluster {
 public:
  BenchCluster(int workers, const std::vector<std::string>& coordinator_flags,
               const std::vector<std::string>& worker_flags = {})
      : worker_flags_(worker_flags) {
    const std::string ep = dir_ / "endpoints";
    std::vector<std::string> argv = {SPARECYCLES_COORDINATOR_BIN,
                                     "--peers",
                                     "tcp://127.0.0.1:*",
                                     "--clients",
                                     "tcp://127.0.0.1:*",
                                     "--endpoints-file",
                                     ep,
                                     "--log-level",
                                     "warn"};
    // A cluster of trusted machines: fixed replication exactly as each job asks (replicas 2 means
    // a quorum of 2), no adaptive credibility or spot-checks.
    if (Supports(SPARECYCLES_COORDINATOR_BIN, "--pool"))
      argv.insert(argv.end(), {"--pool", "cluster"});
    argv.insert(argv.end(), coordinator_flags.begin(), coordinator_flags.end());
    coordinator_ = std::make_unique<Process>(argv, dir_ / "coordinator");
    if (!testing::WaitForFile(ep, std::chrono::seconds(10)))
      Die("the coordinator did not start: " + coordinator_->Stderr());
    std::istringstream in(testing::ReadAll(ep));
    std::string key, value;
    while (in >> key >> value) {
      if (key == "peers")
        peer_ep_ = value;
      else if (key == "clients")
        client_ep_ = value;  // other lines (e.g. "http URL") are not ours
    }
    for (const char* f : {"--pause-above", "--throttle"})
      if (Supports(SPARECYCLES_WORKER_BIN, f)) dedicated_.insert(dedicated_.end(), {f, "off"});
    if (Supports(SPARECYCLES_WORKER_BIN, "--priority"))
      dedicated_.insert(dedicated_.end(), {"--priority", "normal"});
    for (int i = 0; i < workers; ++i) AddWorker();
  }
  Process& AddWorker() {
    const std::string name = "worker" + std::to_string(workers_.size());
    std::vector<std::string> argv = {SPARECYCLES_WORKER_BIN,
                                     "--coordinator",
                                     peer_ep_,
                                     "--cores",
                                     "1",
                                     "--state-dir",
                                     dir_ / name,
                                     "--calibrate",
                                     "5ms",
                                     "--log-level",
                                     "warn"};
    argv.insert(argv.end(), dedicated_.begin(), dedicated_.end());
    argv.insert(argv.end(), worker_flags_.begin(), worker_flags_.end());
    workers_.push_back(std::make_unique<Process>(argv, dir_ / name));
    return *workers_.back();
  }
  const std::string& client_endpoint() const { return client_ep_; }
  const std::string& peer_endpoint() const { return peer_ep_; }
  Process& coordinator() { return *coordinator_; }
  Process& worker(std::size_t i) { return *workers_.at(i); }
  std::string Logs() {
    std::string all = "--- coordinator\n" + coordinator_->Stderr();
    for (std::size_t i = 0; i < workers_.size(); ++i)
      all += "--- worker" + std::to_string(i) + "\n" + workers_[i]->Stderr();
    return all;
  }

 private:
  TempDir dir_;  // first: removed last
  std::vector<std::string> worker_flags_, dedicated_;
  std::unique_ptr<Process> coordinator_;
  std::vector<std::unique_ptr<Process>> workers_;
  std::string peer_ep_, client_ep_;
};

/// The daemons' flags for CURVE on (their default) or off (plaintext, to measure what it costs).
inline std::vector<std::string> CurveFlags(bool on) {
  return on ? std::vector<std::string>{} : std::vector<std::string>{"--curve", "off"};
}

inline std::unique_ptr<BenchCluster> StartCluster(int workers,
                                                  std::vector<std::string> coordinator_flags,
                                                  std::vector<std::string> worker_flags = {}) {
  return std::make_unique<BenchCluster>(workers, coordinator_flags, worker_flags);
}

/// Connects an SDK client and waits until `peers` peers are registered.
/// `curve` false: plaintext, for a cluster started with --curve off (CurveFlags(false)).
inline Client ConnectWhenReady(BenchCluster& cluster, std::size_t peers, double timeout_s = 30,
                               bool curve = true) {
  ClientOptions o;
  o.curve = curve;
  auto client = Client::Connect(cluster.client_endpoint(), o);
  if (!client.ok()) Die("connect: " + client.status().ToString());
  const double deadline = Now() + timeout_s;
  while (Now() < deadline) {
    auto p = client->Peers();
    if (p.ok() && p->size() >= peers) return std::move(*client);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  Die("peers did not register in time:\n" + cluster.Logs());
}

/// A spin job of `units` units of `ms` ms each (one slot per unit).
inline JobSpec SpinJob(std::uint64_t units, int ms, std::uint32_t replicas = 1) {
  JobSpec spec("spin");
  spec.Set("units", std::to_string(units)).Set("ms", std::to_string(ms));
  spec.units = units;
  spec.replication.replicas = replicas;
  spec.replication.quorum = replicas;
  spec.replication.max_replicas = std::max<std::uint32_t>(replicas, 1) + 2;
  return spec;
}

/// Submits and waits; returns seconds from submit to result, or dies.
inline double TimeJob(Client& client, const JobSpec& spec, JobResult* out = nullptr,
                      double timeout_s = 600) {
  const double t0 = Now();
  auto job = client.Submit(spec);
  if (!job.ok()) Die("submit: " + job.status().ToString());
  auto r = job->Wait(std::chrono::milliseconds(static_cast<long>(timeout_s * 1000)));
  const double t = Now() - t0;
  if (!r.ok()) Die("wait: " + r.status().ToString());
  if (r->info.state != JobState::kDone)
    Die("job ended " + std::string(JobStateName(r->info.state)) + ": " + r->info.error);
  if (out) *out = std::move(*r);
  return t;
}

// ---- /proc readings
struct ProcSample {
  double rss_mib = 0;
  double cpu_s = 0;  // utime + stime
  double at = 0;
};
inline ProcSample ReadProc(pid_t pid) {
  ProcSample s;
  s.at = Now();
  std::ifstream st("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(st, line))
    if (line.rfind("VmRSS:", 0) == 0) s.rss_mib = std::strtod(line.c_str() + 6, nullptr) / 1024.0;
  std::ifstream sf("/proc/" + std::to_string(pid) + "/stat");
  std::string all((std::istreambuf_iterator<char>(sf)), std::istreambuf_iterator<char>());
  auto rp = all.rfind(')');
  if (rp != std::string::npos) {
    std::istringstream in(all.substr(rp + 2));
    std::string f;
    std::vector<std::string> fields;
    while (in >> f) fields.push_back(f);
    // fields[0] is field 3 (state); utime = field 14, stime = field 15.
    if (fields.size() > 13)
      s.cpu_s =
          (std::strtod(fields[11].c_str(), nullptr) + std::strtod(fields[12].c_str(), nullptr)) /
          static_cast<double>(sysconf(_SC_CLK_TCK));
  }
  return s;
}

/// Raises the soft open-file limit to the hard limit (children inherit it).
inline rlim_t RaiseFdLimit() {
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  return rl.rlim_cur;
}

// ---- ZeroMQ baselines: what the transport alone does on this machine
/// Round trips per second through a ROUTER that echoes, from `clients` DEALERs that each keep
/// `window` requests in flight; frames of `bytes`. The ROUTER echoes on its own thread.
inline double ZmqEchoRate(int clients, int window, std::size_t bytes, double seconds) {
  zmq::context_t ctx;
  zmq::socket_t router(ctx, zmq::socket_type::router);
  router.bind("tcp://127.0.0.1:*");
  const std::string ep = router.get(zmq::sockopt::last_endpoint);
  std::atomic<bool> stop{false};
  std::thread echo([&] {
    zmq::pollitem_t item{router.handle(), 0, ZMQ_POLLIN, 0};
    while (!stop.load()) {
      zmq::poll(&item, 1, std::chrono::milliseconds(50));
      zmq::message_t id, body;
      while (router.recv(id, zmq::recv_flags::dontwait)) {
        (void)router.recv(body, zmq::recv_flags::none);
        router.send(id, zmq::send_flags::sndmore);
        router.send(body, zmq::send_flags::none);
      }
    }
  });
  std::vector<zmq::socket_t> dealers;
  for (int i = 0; i < clients; ++i) {
    dealers.emplace_back(ctx, zmq::socket_type::dealer);
    dealers.back().connect(ep);
  }
  const std::string payload(bytes, 'x');
  std::vector<zmq::pollitem_t> items;
  for (auto& d : dealers) {
    for (int w = 0; w < window; ++w) d.send(zmq::buffer(payload), zmq::send_flags::none);
    items.push_back({d.handle(), 0, ZMQ_POLLIN, 0});
  }
  std::uint64_t done = 0;
  const double t0 = Now();
  double t = t0;
  while ((t = Now()) - t0 < seconds) {
    zmq::poll(items, std::chrono::milliseconds(100));
    for (auto& d : dealers) {
      zmq::message_t m;
      while (d.recv(m, zmq::recv_flags::dontwait)) {
        ++done;
        d.send(zmq::buffer(payload), zmq::send_flags::none);
      }
    }
  }
  stop = true;
  echo.join();
  for (auto& d : dealers) d.set(zmq::sockopt::linger, 0);
  router.set(zmq::sockopt::linger, 0);
  return static_cast<double>(done) / (t - t0);
}

/// Round-trip times (seconds) of one DEALER ping-ponging through an echoing ROUTER.
inline std::vector<double> ZmqPingPong(int iterations, std::size_t bytes) {
  zmq::context_t ctx;
  zmq::socket_t router(ctx, zmq::socket_type::router);
  router.bind("tcp://127.0.0.1:*");
  const std::string ep = router.get(zmq::sockopt::last_endpoint);
  std::thread echo([&] {
    for (int i = 0; i < iterations + 10; ++i) {
      zmq::message_t id, body;
      if (!router.recv(id)) return;
      (void)router.recv(body);
      router.send(id, zmq::send_flags::sndmore);
      router.send(body, zmq::send_flags::none);
    }
  });
  zmq::socket_t dealer(ctx, zmq::socket_type::dealer);
  dealer.connect(ep);
  const std::string payload(bytes, 'x');
  std::vector<double> rtts;
  for (int i = 0; i < iterations + 10; ++i) {
    const double t0 = Now();
    dealer.send(zmq::buffer(payload), zmq::send_flags::none);
    zmq::message_t m;
    (void)dealer.recv(m);
    if (i >= 10) rtts.push_back(Now() - t0);  // the first ones include the connection
  }
  echo.join();
  dealer.set(zmq::sockopt::linger, 0);
  router.set(zmq::sockopt::linger, 0);
  return rtts;
}

}  // namespace sparecycles::bench
