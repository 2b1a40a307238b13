// nemesis: a seeded random schedule of faults against real coordinator and worker processes, and
// a checker of what must still hold once the faults stop (docs/reliability.md, "Nemesis").
//   nemesis [--seed S] [--faults N] [--jobs M] [--policies cluster,fixed,adaptive]
// Owned by tests/nemesis. The main thread runs the schedule; one thread submits jobs and one
// watches them; they share only the job table, under its mutex. Every process is ended by its pid.
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sodium.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "process.hpp"
#include "reference.hpp"
#include "sparecycles/core/options.hpp"
#include "sparecycles/sdk/client.hpp"
#include "sparecycles/tasks/task.hpp"

using namespace std::chrono_literals;
using sparecycles::testing::Process;
using sparecycles::testing::ReadAll;
using sparecycles::testing::WaitForFile;

namespace sparecycles::nemesis {
namespace {

using Clock = std::chrono::steady_clock;

std::atomic<bool> g_interrupted{false};
void OnSignal(int) { g_interrupted = true; }

double Since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// ------------------------------------------------------------------ deterministic randomness

/// SplitMix64: the same seed gives the same schedule on every machine and standard library.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : s_(seed) {}
  std::uint64_t Next() {
    std::uint64_t z = (s_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double Real() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }  // [0, 1)
  double Real(double lo, double hi) { return lo + (hi - lo) * Real(); }
  std::uint64_t Int(std::uint64_t lo, std::uint64_t hi) {
    return lo + Next() % (hi - lo + 1);
  }  // [lo, hi]
  bool Chance(double p) { return Real() < p; }

 private:
  std::uint64_t s_;
};

// ------------------------------------------------------------------ shell and network namespaces

bool Sh(const std::string& cmd, bool verbose = false) {
  const int rc = std::system((cmd + (verbose ? "" : " >/dev/null 2>&1")).c_str());
  return rc == 0;
}

std::string FindIp() {
  for (const char* p : {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"})
    if (access(p, X_OK) == 0) return p;
  return "";
}

/// A hub namespace (where this process, the coordinator and the SDK clients live) and one
/// namespace per worker slot, joined to the hub by a veth pair. Every address lives inside these
/// namespaces; the host's network is never touched. Links are cut or slowed with tc netem.
class Network {
 public:
  ~Network() { Teardown(); }

  /// Creates the namespaces and moves this process into the hub. Call before any thread starts.
  bool Setup(int slots, std::string* why) {
    ip_ = FindIp();
    if (ip_.empty()) return *why = "iproute2 ('ip') is not installed", false;
    if (geteuid() != 0) return *why = "network namespaces need root", false;
    RemoveStale();
    prefix_ = "scnem" + std::to_string(getpid());
    hub_ = prefix_ + "-hub";
    if (!Sh(ip_ + " netns add " + hub_))
      return *why = "'ip netns add' failed (no netns support here)", false;
    created_.push_back(hub_);
    const int fd = open(("/var/run/netns/" + hub_).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) {
      if (fd >= 0) close(fd);
      return *why = "cannot enter the hub namespace (setns)", false;
    }
    close(fd);
    if (!Sh(ip_ + " link set lo up") || !Sh(ip_ + " addr add 10.77.0.1/32 dev lo"))
      return *why = "cannot configure the hub namespace", false;
    for (int k = 0; k < slots; ++k) {
      const std::string ns = Ns(k), net = "10.77." + std::to_string(k + 1);
      if (!Sh(ip_ + " netns add " + ns))
        return *why = "'ip netns add' failed for a worker namespace", false;
      created_.push_back(ns);
      const std::string in = ip_ + " netns exec " + ns + " ";
      if (!Sh(ip_ + " link add " + Hub(k) + " type veth peer name " + Wk(k) + " netns " + ns) ||
          !Sh(ip_ + " addr add " + net + ".1/30 dev " + Hub(k)) ||
          !Sh(ip_ + " link set " + Hub(k) + " up") ||
          !Sh(in + ip_ + " addr add " + net + ".2/30 dev " + Wk(k)) ||
          !Sh(in + ip_ + " link set " + Wk(k) + " up") || !Sh(in + ip_ + " link set lo up") ||
          !Sh(in + ip_ + " route add default via " + net + ".1"))
        return *why = "cannot create a veth pair between namespaces", false;
    }
    // Slow links: netem (delay, jitter, loss) where the kernel has it, else a token bucket (tbf).
    for (const char* q : {"netem delay 1ms", "tbf rate 1mbit burst 32kbit latency 100ms"}) {
      if (Sh("tc qdisc add dev " + Hub(0) + " root " + q) &&
          Sh("tc qdisc del dev " + Hub(0) + " root")) {
        slow_ = std::string(q).substr(0, 4);
        break;
      }
    }
    if (slow_.empty())
      *why = "tc has neither netem nor tbf here: no slow links";
    else if (slow_ == "tbf ")
      *why = "tc netem is unavailable (no sch_netem module): slow links are tbf rate limits";
    ok_ = true;
    return true;
  }
  bool ok() const { return ok_; }
  /// "netem", "tbf " or "" (no slow links).
  const std::string& slow() const { return slow_; }
  std::string CoordinatorHost() const { return ok_ ? "10.77.0.1" : "127.0.0.1"; }
  std::vector<std::string> Prefix(int slot) const {
    return ok_ ? std::vector<std::string>{ip_, "netns", "exec", Ns(slot)}
               : std::vector<std::string>{};
  }
  /// "cut" takes the link down (a partition); "up" brings it back; "slow QDISC" installs a qdisc
  /// on both ends; "fast" removes it.
  bool SetLink(int slot, const std::string& what) {
    if (!ok_) return false;
    const std::string in = ip_ + " netns exec " + Ns(slot) + " ";
    if (what == "cut") return Sh(ip_ + " link set " + Hub(slot) + " down");
    if (what == "up") return Sh(ip_ + " link set " + Hub(slot) + " up");
    if (what == "fast") {
      Sh("tc qdisc del dev " + Hub(slot) + " root");
      Sh(in + "tc qdisc del dev " + Wk(slot) + " root");
      return true;
    }
    const std::string qdisc = what.substr(5);
    return Sh("tc qdisc replace dev " + Hub(slot) + " root " + qdisc) &&
           Sh(in + "tc qdisc replace dev " + Wk(slot) + " root " + qdisc);
  }
  /// Deletes the namespaces a nemesis run left behind when it was killed (its pid is gone).
  void RemoveStale() {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator("/var/run/netns", ec)) {
      const std::string name = e.path().filename();
      unsigned long pid = 0;
      char rest[64];
      if (std::sscanf(name.c_str(), "scnem%lu-%63s", &pid, rest) != 2 || pid == 0) continue;
      if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) Sh(ip_ + " netns del " + name);
    }
  }
  void Teardown() {
    for (auto it = created_.rbegin(); it != created_.rend(); ++it) Sh(ip_ + " netns del " + *it);
    created_.clear();
  }

 private:
  std::string Ns(int k) const { return prefix_ + "-w" + std::to_string(k); }
  static std::string Hub(int k) { return "nh" + std::to_string(k); }
  static std::string Wk(int k) { return "nw" + std::to_string(k); }
  std::string ip_, prefix_, hub_;
  std::vector<std::string> created_;
  std::string slow_;
  bool ok_ = false;
};

// ------------------------------------------------------------------ policies and jobs

struct Policy {
  std::string name;
  std::vector<std::string> flags;
  int honest = 4, saboteurs = 0;
  int credits_per_unit =
      1;  // credits per validated unit: exact (cluster, fixed 2/2) or at most (adaptive)
};

std::vector<Policy> AllPolicies() {
  return {
      {"cluster", {"--pool", "cluster"}, 4, 0, 1},
      {"fixed", {"--replicas", "2", "--quorum", "2", "--adaptive", "off"}, 4, 0, 2},
      // Five honest peers: the credibility bound needs about five agreeing fresh peers before
      // spot-checks can start (docs/cross-checking.md, "Bootstrapping").
      // Credits per unit: at most max-replicas (8 for adaptive jobs).
      {"adaptive", {"--pool", "volunteer", "--spot-check-rate", "0.3"}, 5, 2, 8},
      // The coordinator's defaults (volunteer pool, adaptive) with a pool too small for the
      // credibility bound: units are accepted by an undisputed quorum, and which peers may still
      // take a unit is what matters after a crash.
      {"small", {}, 2, 0, 8},
  };
}

struct JobPlanned {
  int index = 0;
  JobSpec spec;
  std::string describe;
};

std::string Num(double v) {
  char b[32];
  std::snprintf(b, sizeof(b), "%.4g", v);
  return b;
}

/// A random job of one of the built-in tasks, small enough to check cheaply.
JobPlanned MakeJob(Rng& rng, int index, const std::string& token_prefix) {
  JobPlanned j;
  j.index = index;
  // Sizes: a few seconds of work per job on one core, and a reference that costs a fraction of it.
  const int kind = static_cast<int>(rng.Int(0, 5));
  const std::uint64_t units = rng.Int(3, 10);
  if (kind == 5) {
    // spin keeps jobs in flight across the faults at no checking cost: its merge checks that
    // every unit's index arrived once, in order, and the answer is the unit count.
    j.spec = JobSpec("spin");
    j.spec.Set("units", std::to_string(units)).Set("ms", std::to_string(rng.Int(300, 3000)));
  } else if (kind == 0) {
    const std::uint64_t from = rng.Int(0, 2'000'000'000), len = rng.Int(20'000'000, 120'000'000);
    j.spec = JobSpec("primes");
    j.spec.Set("from", std::to_string(from)).Set("to", std::to_string(from + len));
  } else if (kind == 1) {
    j.spec = JobSpec("pi");
    j.spec.Set("samples", std::to_string(rng.Int(5'000'000, 40'000'000)))
        .Set("seed", std::to_string(rng.Int(1, 1000)));
  } else if (kind == 2) {
    const std::uint64_t from = rng.Int(0, 1'000'000'000), len = rng.Int(100'000, 500'000);
    j.spec = JobSpec("hashsearch");
    j.spec.Set("prefix", "nemesis" + std::to_string(rng.Int(0, 99)))
        .Set("from", std::to_string(from))
        .Set("to", std::to_string(from + len))
        .Set("bits", std::to_string(rng.Int(8, 13)));
  } else if (kind == 3) {
    const double cx = rng.Real(-1.5, 0.3), cy = rng.Real(-0.8, 0.8), w = rng.Real(0.05, 2.5);
    j.spec = JobSpec("mandelbrot");
    j.spec.Set("width", std::to_string(rng.Int(160, 400)))
        .Set("height", std::to_string(rng.Int(120, 300)))
        .Set("max_iter", std::to_string(rng.Int(200, 3000)))
        .Set("x0", Num(cx - w / 2))
        .Set("x1", Num(cx + w / 2))
        .Set("y0", Num(cy - w * 0.375))
        .Set("y1", Num(cy + w * 0.375));
  } else {
    static const char* kWords[] = {
        "alpha", "Beta",    "gamma", "delta", "epsilon", "zeta",    "ETA", "theta", "iota",
        "kappa", "lambda",  "mu",    "nu",    "xi",      "omicron", "pi",  "rho",   "sigma",
        "tau",   "upsilon", "phi",   "chi",   "psi",     "omega",   "x1",  "2024",  "a"};
    static const char* kSeps[] = {" ", "  ", "\n", ", ", ". ", "'", "-", "\t", "\xc3\xa9", "; "};
    const std::uint64_t bytes = rng.Int(32'768, 400'000);
    std::string text;
    while (text.size() < bytes) {
      // A skewed vocabulary, so the top of the list is well defined.
      const std::uint64_t w = std::min<std::uint64_t>(rng.Int(0, 26), rng.Int(0, 26));
      text += kWords[w];
      if (rng.Chance(0.05)) text += std::to_string(rng.Int(0, 50));
      text += kSeps[rng.Int(0, 9)];
    }
    j.spec = JobSpec("wordfreq");
    j.spec.input = text;
    j.spec.Set("top", std::to_string(rng.Int(3, 15)));
  }
  j.spec.units = kind == 4 ? std::min<std::uint64_t>(units, j.spec.input.size() / 4096) : units;
  j.spec.client_token = token_prefix + "-" + std::to_string(index);
  j.spec.name = "nemesis job " + std::to_string(index);
  j.describe = j.spec.task;
  for (const auto& [k, v] : j.spec.params) j.describe += " " + k + "=" + v;
  if (!j.spec.input.empty()) j.describe += " input=" + std::to_string(j.spec.input.size()) + "B";
  j.describe += " split=" + std::to_string(j.spec.units);
  return j;
}

// The number after "key": in a JSON text (first occurrence).
std::optional<std::uint64_t> JsonU64(const std::string& json, const std::string& key) {
  const std::size_t at = json.find("\"" + key + "\":");
  if (at == std::string::npos) return std::nullopt;
  return std::strtoull(json.c_str() + at + key.size() + 3, nullptr, 10);
}

/// Checks a done job's answer against an independent reference; returns "" when right.
std::string CheckAnswer(const JobSpec& spec, const JobResult& r) {
  auto param = [&](const char* k) { return spec.params.at(k); };
  auto u64 = [&](const char* k) { return std::strtoull(param(k).c_str(), nullptr, 10); };
  if (spec.task == "primes") {
    const std::uint64_t want = CountPrimes(u64("from"), u64("to"));
    auto got = JsonU64(r.json, "count");
    if (!got || *got != want)
      return "primes count " + (got ? std::to_string(*got) : "?") + ", sieve says " +
             std::to_string(want);
  } else if (spec.task == "hashsearch") {
    auto want =
        HashSearch(param("prefix"), u64("from"), u64("to"), static_cast<unsigned>(u64("bits")));
    std::string list;
    for (std::size_t i = 0; i < want.size(); ++i) list += (i ? "," : "") + std::to_string(want[i]);
    if (r.json.find("\"nonces\":[" + list + "]") == std::string::npos)
      return "hashsearch nonces differ from libsodium's (" + std::to_string(want.size()) +
             " expected): " + r.json.substr(0, 200);
  } else if (spec.task == "mandelbrot") {
    const std::uint64_t want = MandelbrotInSet(
        static_cast<unsigned>(u64("width")), static_cast<unsigned>(u64("height")),
        static_cast<unsigned>(u64("max_iter")), std::strtod(param("x0").c_str(), nullptr),
        std::strtod(param("x1").c_str(), nullptr), std::strtod(param("y0").c_str(), nullptr),
        std::strtod(param("y1").c_str(), nullptr));
    auto got = JsonU64(r.json, "in_set");
    if (!got || *got != want)
      return "mandelbrot in_set " + (got ? std::to_string(*got) : "?") + ", naive loop says " +
             std::to_string(want);
  } else if (spec.task == "wordfreq") {
    std::uint64_t total = 0;
    auto counts = WordCounts(spec.input, &total);
    if (JsonU64(r.json, "total_words") != total)
      return "wordfreq total_words differs (want " + std::to_string(total) + ")";
    if (JsonU64(r.json, "distinct_words") != counts.size())
      return "wordfreq distinct_words differs";
    std::vector<std::uint64_t> sorted;
    sorted.reserve(counts.size());
    for (const auto& [w, c] : counts) sorted.push_back(c);
    std::sort(sorted.rbegin(), sorted.rend());
    const std::regex entry(R"re(\{"word":"([^"]*)","count":(\d+)\})re");
    std::size_t i = 0;
    for (auto it = std::sregex_iterator(r.json.begin(), r.json.end(), entry);
         it != std::sregex_iterator(); ++it, ++i) {
      const std::string word = (*it)[1];
      const std::uint64_t c = std::stoull((*it)[2]);
      if (!counts.contains(word) || counts[word] != c)
        return "wordfreq count of '" + word + "' differs";
      if (i >= sorted.size() || sorted[i] != c)
        return "wordfreq top list is not the most frequent words";
    }
    if (i != std::min<std::size_t>(u64("top"), counts.size()))
      return "wordfreq top list has " + std::to_string(i) + " entries";
  } else if (spec.task == "spin") {
    const std::string want = "{\"completed\":" + param("units") +
                             ",\"units\":" + std::to_string(r.info.units_total) +
                             ",\"ms\":" + param("ms") + "}";
    if (r.json != want) return "spin " + r.json + ", expected " + want;
  } else if (spec.task == "pi") {
    // The Monte Carlo answer is a pure function of (seed, samples): the reference is the same job
    // run in this process, through the task's own code, with no faults.
    const tasks::Task* t = tasks::Registry::BuiltIn().Find("pi");
    tasks::JobParams p;
    p.values = spec.params;
    auto split = t->Split(p, r.info.units_total);  // the count the coordinator split it into
    if (!split.ok()) return "pi reference: " + split.status().ToString();
    std::vector<std::string> results;
    tasks::NullContext ctx;
    for (const auto& u : *split) {
      auto out = t->Execute(u, ctx);
      if (!out.ok()) return "pi reference: " + out.status().ToString();
      results.push_back(std::move(*out));
    }
    auto merged = t->Merge(p, results);
    if (!merged.ok()) return "pi reference: " + merged.status().ToString();
    const std::string want = t->ToJson(*merged);
    if (r.json != want) return "pi " + r.json + ", fault-free in-process run says " + want;
  }
  return "";
}

// ------------------------------------------------------------------ the schedule

enum class Kind {
  kSubmit,
  kKillCoordinator,
  kStartCoordinator,
  kKillWorker,
  kStartWorker,
  kStop,
  kCont,
  kPartition,
  kHeal,
  kSlow,
  kFast,
  kLeave,
  kJoin
};
const char* KindName(Kind k) {
  static const char* kNames[] = {"submit",          "kill -9 coordinator", "restart coordinator",
                                 "kill -9 worker",  "restart worker",      "SIGSTOP worker",
                                 "SIGCONT worker",  "partition worker",    "heal worker",
                                 "slow link",       "restore link",        "worker leaves",
                                 "new worker joins"};
  return kNames[static_cast<int>(k)];
}
bool IsFault(Kind k) {
  return k == Kind::kKillCoordinator || k == Kind::kKillWorker || k == Kind::kStop ||
         k == Kind::kPartition || k == Kind::kSlow || k == Kind::kLeave;
}

struct Event {
  double at = 0;
  Kind kind = Kind::kSubmit;
  int slot = -1;    // worker slot, or job index for kSubmit
  std::string arg;  // netem arguments for kSlow
};

struct Schedule {
  std::vector<Event> events;
  double fault_end = 0;
  std::string Print() const {
    std::ostringstream out;
    for (const auto& e : events) {
      char b[64];
      std::snprintf(b, sizeof(b), "  t=%7.2fs ", e.at);
      out << b << KindName(e.kind);
      if (e.kind == Kind::kSubmit)
        out << " job " << e.slot;
      else if (e.slot >= 0)
        out << " " << e.slot;
      if (!e.arg.empty()) out << " (" << e.arg << ")";
      out << "\n";
    }
    return out.str();
  }
};

/// Faults at random moments, each with its undo after a random duration; a slot carries one
/// process fault and one link fault at a time, and they overlap freely (any order).
Schedule MakeSchedule(Rng& rng, int slots, int faults, int jobs, double gap, bool net,
                      const std::string& slow) {
  Schedule s;
  std::vector<double> proc_busy(slots, 0), link_busy(slots, 0);
  double coord_busy = 0;
  double t = 1.0;
  int made = 0;
  for (int attempts = 0; made < faults && attempts < faults * 20; ++attempts) {
    t += rng.Real(0.2, 1.8) * gap;
    std::vector<std::pair<Kind, double>> kinds = {
        {Kind::kKillWorker, 3}, {Kind::kStop, 2}, {Kind::kLeave, 1}, {Kind::kKillCoordinator, 1.2}};
    if (net) kinds.push_back({Kind::kPartition, 2});
    if (net && !slow.empty()) kinds.push_back({Kind::kSlow, 2});
    double total = 0;
    for (auto& k : kinds) total += k.second;
    double pick = rng.Real(0, total);
    Kind kind = kinds.back().first;
    for (auto& k : kinds)
      if ((pick -= k.second) < 0) {
        kind = k.first;
        break;
      }
    const int slot = static_cast<int>(rng.Int(0, slots - 1));
    const double d = rng.Real(0.3, 4.0);
    if (kind == Kind::kKillCoordinator) {
      if (coord_busy > t) continue;
      const double down = rng.Real(0.1, 2.0);
      s.events.push_back({t, kind});
      s.events.push_back({t + down, Kind::kStartCoordinator});
      coord_busy = t + down + 0.5;
    } else if (kind == Kind::kPartition || kind == Kind::kSlow) {
      if (link_busy[slot] > t) continue;
      std::string arg;
      if (kind == Kind::kSlow && slow == "netem")
        arg = "netem delay " + std::to_string(rng.Int(20, 300)) + "ms " +
              std::to_string(rng.Int(0, 50)) + "ms loss " + std::to_string(rng.Int(0, 5)) + "%";
      else if (kind == Kind::kSlow)
        arg = "tbf rate " + std::to_string(rng.Int(32, 512)) + "kbit burst 8kbit latency " +
              std::to_string(rng.Int(100, 800)) + "ms";
      s.events.push_back({t, kind, slot, arg});
      s.events.push_back({t + d, kind == Kind::kPartition ? Kind::kHeal : Kind::kFast, slot});
      link_busy[slot] = t + d + 0.2;
    } else {
      if (proc_busy[slot] > t) continue;
      // At most half the slots down at once, so the jobs keep moving between faults.
      int busy = 0;
      for (double b : proc_busy) busy += b > t ? 1 : 0;
      if (busy >= slots / 2) continue;
      const Kind undo = kind == Kind::kKillWorker ? Kind::kStartWorker
                        : kind == Kind::kStop     ? Kind::kCont
                                                  : Kind::kJoin;
      s.events.push_back({t, kind, slot});
      s.events.push_back({t + d, undo, slot});
      proc_busy[slot] = t + d + 0.3;
    }
    ++made;
  }
  s.fault_end = t;
  for (int j = 0; j < jobs; ++j)
    s.events.push_back({rng.Real(0.2, std::max(1.0, t * 0.8)), Kind::kSubmit, j});
  std::stable_sort(s.events.begin(), s.events.end(),
                   [](const Event& a, const Event& b) { return a.at < b.at; });
  for (const auto& e : s.events) s.fault_end = std::max(s.fault_end, e.at);
  return s;
}

// ------------------------------------------------------------------ the store, read between lives

struct Snapshot {
  std::string label;
  std::map<std::uint64_t, std::pair<int, std::string>> jobs;  // id -> (state, hash of result)
  std::set<std::pair<std::uint64_t, std::uint64_t>> units;    // validated units of open jobs
  std::map<std::string, std::uint64_t> credits;               // peer -> units_done
  std::string error;
};

std::string HashHex(const void* data, int n) {
  unsigned char out[16];
  crypto_generichash(out, sizeof(out), static_cast<const unsigned char*>(data),
                     static_cast<std::size_t>(n), nullptr, 0);
  char hex[33];
  for (int i = 0; i < 16; ++i) std::snprintf(hex + 2 * i, 3, "%02x", out[i]);
  return hex;
}

/// Reads the coordinator's store while no coordinator runs, from a copy (database and WAL), so
/// that the next coordinator recovers the very files the killed one left.
Snapshot ReadStore(const std::string& original, const std::string& label) {
  Snapshot snap;
  snap.label = label;
  const std::string path = original + ".nemesis-copy";
  std::error_code ec;
  for (const char* suffix : {"", "-wal", "-shm"}) {
    std::filesystem::remove(path + suffix, ec);
    if (std::filesystem::exists(original + suffix, ec))
      std::filesystem::copy_file(original + suffix, path + suffix, ec);
    if (ec) snap.error += "cannot copy " + original + suffix + ": " + ec.message() + "; ";
  }
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
    snap.error = "cannot open " + path;
    sqlite3_close(db);
    return snap;
  }
  auto query = [&](const char* sql, const std::function<void(sqlite3_stmt*)>& row) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db, sql, -1, &st, nullptr) != SQLITE_OK) {
      snap.error += std::string(sqlite3_errmsg(db)) + "; ";
      return;
    }
    while (sqlite3_step(st) == SQLITE_ROW) row(st);
    sqlite3_finalize(st);
  };
  query("SELECT id, state, result FROM jobs", [&](sqlite3_stmt* st) {
    snap.jobs[static_cast<std::uint64_t>(sqlite3_column_int64(st, 0))] = {
        sqlite3_column_int(st, 1),
        HashHex(sqlite3_column_blob(st, 2), sqlite3_column_bytes(st, 2))};
  });
  query("SELECT job, idx FROM units", [&](sqlite3_stmt* st) {
    snap.units.insert({static_cast<std::uint64_t>(sqlite3_column_int64(st, 0)),
                       static_cast<std::uint64_t>(sqlite3_column_int64(st, 1))});
  });
  query("SELECT peer, units_done FROM peers", [&](sqlite3_stmt* st) {
    snap.credits[reinterpret_cast<const char*>(sqlite3_column_text(st, 0))] =
        static_cast<std::uint64_t>(sqlite3_column_int64(st, 1));
  });
  query("PRAGMA integrity_check", [&](sqlite3_stmt* st) {
    const std::string v = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    if (v != "ok") snap.error += "integrity_check: " + v + "; ";
  });
  sqlite3_close(db);
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix, ec);
  return snap;
}

constexpr int kStateDone = 2;

// ------------------------------------------------------------------ one policy's run

struct Figures {
  std::map<std::string, int> faults;  // by kind
  int jobs = 0, acked = 0, done = 0, failed = 0, wrong = 0, sabotaged = 0, stuck = 0, lost = 0,
      credit = 0, crashes = 0;
  int violations = 0, findings = 0;
  int unit_runs = 0, extra_runs = 0;  // by honest workers
};

struct JobTrack {
  JobPlanned plan;
  bool acked = false;
  std::uint64_t id = 0;
  JobInfo last;
  bool final_seen = false;
  std::uint64_t max_done = 0;
};

struct Config {
  std::uint64_t seed = 1;
  int faults = 30, jobs = 12;
  double gap = 0.5, settle = 90;
  bool keep = false, verbose = false, strict = false;
};

class Run {
 public:
  Run(const Policy& policy, const Config& cfg, Network& net, std::uint64_t seed, int faults,
      int jobs)
      : policy_(policy), cfg_(cfg), net_(net), seed_(seed), faults_(faults), jobs_(jobs) {
    char tmpl[] = "/tmp/sparecycles-nemesis-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  ~Run() {
    EndAll();
    std::error_code ec;
    if (!cfg_.keep && violations_.empty()) std::filesystem::remove_all(dir_, ec);
  }

  Figures Execute() {
    Rng rng(seed_);
    const int slots = policy_.honest + policy_.saboteurs;
    schedule_ = MakeSchedule(rng, slots, faults_, jobs_, cfg_.gap, net_.ok(), net_.slow());
    for (int j = 0; j < jobs_; ++j) {
      JobTrack t;
      t.plan = MakeJob(rng, j, "nemesis-" + std::to_string(seed_) + "-" + policy_.name);
      tracks_.push_back(std::move(t));
    }
    figures_.jobs = jobs_;
    std::printf(
        "[%s] seed %" PRIu64 ": %d workers (%d saboteurs), %d faults, %d jobs, logs in %s\n",
        policy_.name.c_str(), seed_, slots, policy_.saboteurs, faults_, jobs_, dir_.c_str());
    std::fflush(stdout);
    Body();
    EndAll();
    figures_.violations = static_cast<int>(violations_.size());
    if (!violations_.empty()) {
      std::printf("[%s] FAILED, seed %" PRIu64 " (replay: nemesis --seed %" PRIu64
                  " --policies %s --faults %d --jobs %d"
                  " --gap %g --settle %g), %zu violation(s):\n",
                  policy_.name.c_str(), cfg_.seed, cfg_.seed, policy_.name.c_str(), faults_, jobs_,
                  cfg_.gap, cfg_.settle, violations_.size());
      for (const auto& v : violations_) std::printf("  VIOLATION %s\n", v.c_str());
      std::printf("  jobs:\n");
      for (const auto& t : tracks_)
        std::printf("    %d: %s -> id %" PRIu64 " %s %" PRIu64 "/%" PRIu64 " %s\n", t.plan.index,
                    t.plan.describe.c_str(), t.id,
                    t.acked ? std::string(JobStateName(t.last.state)).c_str() : "not acknowledged",
                    t.last.units_done, t.last.units_total, t.last.error.c_str());
      std::printf("  schedule:\n%s  logs kept in %s\n", schedule_.Print().c_str(), dir_.c_str());
    } else {
      std::printf("[%s] ok: %d/%d jobs done, %d failed with reasons\n", policy_.name.c_str(),
                  figures_.done, jobs_, figures_.failed);
    }
    for (const auto& f : findings_) std::printf("  finding: %s\n", f.c_str());
    std::fflush(stdout);
    return figures_;
  }

 private:
  struct Slot {
    bool saboteur = false;
    int generation = 0, starts = 0;
    std::unique_ptr<Process> proc;
    bool stopped = false, left = false;
    std::string link;           // "" healthy, "cut", or netem arguments
    std::set<std::string> ids;  // every peer id this slot has had
  };

  void Violation(const std::string& v) {
    std::lock_guard lock(mu_);
    ViolationLocked(v);
  }
  void ViolationLocked(const std::string& v) {
    if (std::find(violations_.begin(), violations_.end(), v) == violations_.end())
      violations_.push_back(v);
  }
  // Something wrong that is none of the checker's invariants (a report that goes back, credit
  // that a restart forgets): printed and counted; it fails the run only with --strict.
  void Finding(const std::string& v) {
    std::lock_guard lock(mu_);
    FindingLocked(v);
  }
  void FindingLocked(const std::string& v) {
    if (cfg_.strict)
      ViolationLocked(v);
    else if (findings_.insert(v).second)
      ++figures_.findings;
  }
  std::string StateDir(int k) const {
    return dir_ + "/slot" + std::to_string(k) + "-g" + std::to_string(slots_[k].generation);
  }

  bool StartCoordinator() {
    const std::string ep = dir_ + "/endpoints";
    for (int attempt = 0; attempt < 5; ++attempt) {
      std::error_code ec;
      std::filesystem::remove(ep, ec);
      std::vector<std::string> argv = {
          SPARECYCLES_COORDINATOR_BIN,
          "--peers",
          peer_ep_.empty() ? "tcp://" + net_.CoordinatorHost() + ":*" : peer_ep_,
          "--clients",
          client_ep_.empty() ? "tcp://127.0.0.1:*" : client_ep_,
          "--endpoints-file",
          ep,
          "--data",
          dir_ + "/data",
          "--heartbeat",
          "300ms",
          "--peer-timeout",
          "3s",
          "--lease-min",
          "4s",
          "--disconnect-grace",
          "300ms",
          "--log-level",
          "debug"};
      argv.insert(argv.end(), policy_.flags.begin(), policy_.flags.end());
      coordinator_ = std::make_unique<Process>(
          argv, dir_ + "/coordinator-" + std::to_string(++coordinator_starts_));
      if (WaitForFile(ep, 10s)) {
        std::istringstream in(ReadAll(ep));
        std::string key, value;
        while (in >> key >> value) {
          if (key == "peers") peer_ep_ = value;
          if (key == "clients") client_ep_ = value;
          if (key == "key") coordinator_key_ = value;  // the same each run (--data)
        }
        return true;
      }
      // The old port may still be held for a moment; try again.
      coordinator_->Signal(SIGKILL);
      coordinator_->Wait(5s);
      std::this_thread::sleep_for(500ms);
    }
    return false;
  }
  void KillCoordinator(const std::string& label) {
    if (!coordinator_) return;
    if (!coordinator_->running()) NoteCrash("coordinator", *coordinator_);
    coordinator_->Signal(SIGKILL);
    coordinator_->Wait(10s);
    coordinator_.reset();
    TakeSnapshot(label);
  }
  void NoteCrash(const std::string& what, Process& p) {
    auto code = p.Wait(0ms);
    ++figures_.crashes;
    Violation(what + " exited by itself (code " + (code ? std::to_string(*code) : "?") + "); see " +
              dir_);
  }

  void StartWorker(int k) {
    Slot& s = slots_[k];
    std::vector<std::string> argv = net_.Prefix(k);
    if (s.saboteur) {
      argv.insert(argv.end(),
                  {SPARECYCLES_SABOTEUR_BIN, "--coordinator", peer_ep_, "--rate", "1.0", "--seed",
                   "42", "--state-dir", StateDir(k), "--coordinator-key", coordinator_key_});
    } else {
      argv.insert(argv.end(), {SPARECYCLES_WORKER_BIN, "--coordinator", peer_ep_, "--cores", "1",
                               "--state-dir", StateDir(k), "--calibrate", "5ms", "--pause-above",
                               "off", "--throttle", "off", "--priority", "normal", "--log-level",
                               "debug", "--coordinator-key", coordinator_key_});
    }
    s.proc = std::make_unique<Process>(argv, StateDir(k) + "-run" + std::to_string(++s.starts));
    s.stopped = false;
    s.left = false;
  }
  void RecordPeerId(int k) {
    std::string id = ReadAll(StateDir(k) + "/peer-id");
    while (!id.empty() && id.back() == '\n') id.pop_back();
    if (!id.empty()) slots_[k].ids.insert(id);
  }
  void EndWorker(int k, int sig) {
    Slot& s = slots_[k];
    if (!s.proc) return;
    RecordPeerId(k);
    if (s.stopped) ::kill(s.proc->pid(), SIGCONT);
    s.stopped = false;
    s.proc->Signal(sig);
    if (!s.proc->Wait(sig == SIGKILL ? 10s : 5s)) {
      s.proc->Signal(SIGKILL);
      s.proc->Wait(10s);
    }
    s.proc.reset();
  }
  void EndAll() {
    for (std::size_t k = 0; k < slots_.size(); ++k) EndWorker(static_cast<int>(k), SIGKILL);
    if (coordinator_) {
      coordinator_->Signal(SIGKILL);
      coordinator_->Wait(10s);
      coordinator_.reset();
    }
    if (net_.ok())
      for (std::size_t k = 0; k < slots_.size(); ++k)
        if (!slots_[k].link.empty()) {
          net_.SetLink(static_cast<int>(k), slots_[k].link == "cut" ? "up" : "fast");
          slots_[k].link.clear();
        }
  }

  void TakeSnapshot(const std::string& label) {
    Snapshot snap = ReadStore(dir_ + "/data/coordinator.db", label);
    if (!snap.error.empty()) Violation("store at " + label + ": " + snap.error);
    for (const Snapshot& old : snapshots_) {
      // A job once done stays done with the same result.
      for (const auto& [id, st] : old.jobs) {
        auto it = snap.jobs.find(id);
        if (it == snap.jobs.end()) {
          ++figures_.lost;
          Violation("job " + std::to_string(id) + " in the store at " + old.label + " is gone at " +
                    label);
        } else if (st.first == kStateDone &&
                   (it->second.first != kStateDone || it->second.second != st.second)) {
          ++figures_.lost;
          Violation("job " + std::to_string(id) + " was done at " + old.label + " but at " + label +
                    " its state is " + std::to_string(it->second.first) +
                    (it->second.second != st.second ? " with another result" : ""));
        }
      }
    }
    if (!snapshots_.empty()) {
      const Snapshot& prev = snapshots_.back();
      // A committed validated unit stays validated until its job ends.
      for (const auto& u : prev.units) {
        auto job = snap.jobs.find(u.first);
        const bool ended = job != snap.jobs.end() && job->second.first >= kStateDone;
        if (!ended && !snap.units.contains(u)) {
          ++figures_.lost;
          Violation("unit " + std::to_string(u.first) + "/" + std::to_string(u.second) +
                    " was validated and committed at " + prev.label + " but is no longer at " +
                    label);
        }
      }
      // Committed credit is never taken back.
      for (const auto& [peer, n] : prev.credits) {
        auto it = snap.credits.find(peer);
        const std::uint64_t now = it == snap.credits.end() ? 0 : it->second;
        if (now < n)
          Finding("peer " + peer + "'s committed credit went down across a restart (" +
                  std::to_string(n) + " at " + prev.label + ", " + std::to_string(now) + " at " +
                  label + ")");
      }
    }
    for (std::size_t k = 0; k < slots_.size(); ++k)
      if (slots_[k].saboteur)
        for (const auto& id : slots_[k].ids)
          if (auto it = snap.credits.find(id); it != snap.credits.end() && it->second > 0) {
            ++figures_.sabotaged;
            Violation("saboteur " + id + " has " + std::to_string(it->second) +
                      " accepted units at " + label);
          }
    snapshots_.push_back(std::move(snap));
  }

  // Submits the jobs handed over by the schedule; a job counts once the coordinator acknowledged
  // it (SubmitReply code 0). Retries keep the job's client token, so a lost reply makes no twin.
  void Submitter(const std::string& endpoint, double stop_after) {
    ClientOptions o;
    o.request_timeout = 2s;
    auto client = Client::Connect(endpoint, o);
    if (!client.ok()) return Violation("submitter cannot connect: " + client.status().ToString());
    const auto t0 = Clock::now();
    while (!g_interrupted) {
      int next = -1;
      {
        std::unique_lock lock(mu_);
        if (submit_queue_.empty()) {
          if (submit_done_) return;
          lock.unlock();
          std::this_thread::sleep_for(20ms);
          continue;
        }
        next = submit_queue_.front();
      }
      auto job = client->Submit(tracks_[next].plan.spec);
      std::lock_guard lock(mu_);
      if (job.ok()) {
        tracks_[next].acked = true;
        tracks_[next].id = job->id();
        ++figures_.acked;
        submit_queue_.pop_front();
      } else if (job.status().code() == StatusCode::kInvalidArgument ||
                 job.status().code() == StatusCode::kNotFound) {
        ViolationLocked("job " + std::to_string(next) + " refused: " + job.status().ToString());
        submit_queue_.pop_front();
      } else if (Since(t0) > stop_after) {
        submit_queue_.pop_front();  // never acknowledged: not checked
      }
    }
  }

  // Watches every acknowledged job: done units never go back, never exceed the total, and a final
  // state is never left.
  void Observer(const std::string& endpoint) {
    ClientOptions o;
    o.request_timeout = 2s;
    auto client = Client::Connect(endpoint, o);
    if (!client.ok()) return;
    while (!observer_stop_ && !g_interrupted) {
      std::vector<std::pair<int, std::uint64_t>> ids;
      {
        std::lock_guard lock(mu_);
        for (const auto& t : tracks_)
          if (t.acked) ids.push_back({t.plan.index, t.id});
      }
      for (auto [index, id] : ids) {
        if (observer_stop_) break;
        auto st = client->Status(id);
        std::lock_guard lock(mu_);
        JobTrack& t = tracks_[index];
        if (!st.ok()) {
          if (st.status().code() == StatusCode::kNotFound) {
            ++figures_.lost;
            ViolationLocked("acknowledged job " + std::to_string(id) +
                            " unknown to the coordinator");
          }
          continue;
        }
        if (st->units_done < t.max_done)
          FindingLocked("job " + std::to_string(id) + " (" + std::string(JobStateName(st->state)) +
                        ") reports fewer units done than before (" +
                        std::to_string(st->units_done) + " after " + std::to_string(t.max_done) +
                        ")");
        if (st->units_done > st->units_total)
          ViolationLocked("job " + std::to_string(id) + " has " + std::to_string(st->units_done) +
                          " of " + std::to_string(st->units_total) +
                          " units done (a unit counted twice)");
        if (t.final_seen && !IsFinal(st->state))
          ViolationLocked("job " + std::to_string(id) + " left its final state");
        t.max_done = std::max(t.max_done, st->units_done);
        t.final_seen = t.final_seen || IsFinal(st->state);
        t.last = *st;
      }
      std::this_thread::sleep_for(300ms);
    }
  }

  void Apply(const Event& e) {
    if (IsFault(e.kind)) ++figures_.faults[KindName(e.kind)];
    if (cfg_.verbose)
      std::printf("  t=%.2f %s %d %s\n", e.at, KindName(e.kind), e.slot, e.arg.c_str());
    // A worker that exited by itself is a crash worth reporting; start it again.
    for (std::size_t k = 0; k < slots_.size(); ++k) {
      Slot& s = slots_[k];
      if (s.proc && !s.left && !s.proc->running()) {
        NoteCrash("worker " + std::to_string(k), *s.proc);
        s.proc.reset();
        StartWorker(static_cast<int>(k));
      }
    }
    Slot* s = e.slot >= 0 && e.kind != Kind::kSubmit ? &slots_[e.slot] : nullptr;
    switch (e.kind) {
      case Kind::kSubmit: {
        std::lock_guard lock(mu_);
        submit_queue_.push_back(e.slot);
        break;
      }
      case Kind::kKillCoordinator:
        KillCoordinator("kill " + std::to_string(++coordinator_kills_));
        break;
      case Kind::kStartCoordinator:
        if (!StartCoordinator()) Violation("the coordinator did not come back on its endpoints");
        break;
      case Kind::kKillWorker:
        EndWorker(e.slot, SIGKILL);
        break;
      case Kind::kStartWorker:
        if (!s->proc) StartWorker(e.slot);
        break;
      case Kind::kStop:
        if (s->proc) s->proc->Signal(SIGSTOP), s->stopped = true;
        break;
      case Kind::kCont:
        if (s->proc) ::kill(s->proc->pid(), SIGCONT), s->stopped = false;
        break;
      case Kind::kPartition:
        if (!net_.SetLink(e.slot, "cut")) Violation("cannot cut link " + std::to_string(e.slot));
        s->link = "cut";
        break;
      case Kind::kSlow:
        if (!net_.SetLink(e.slot, "slow " + e.arg))
          Violation("cannot slow link " + std::to_string(e.slot));
        s->link = e.arg;
        break;
      case Kind::kHeal:
      case Kind::kFast:
        net_.SetLink(e.slot, e.kind == Kind::kHeal ? "up" : "fast");
        s->link.clear();
        break;
      case Kind::kLeave:
        if (s->proc) {
          RecordPeerId(e.slot);
          s->proc->Signal(SIGTERM);  // a graceful stop: Bye and the leases handed back
          s->left = true;
        }
        break;
      case Kind::kJoin:
        if (s->proc) EndWorker(e.slot, SIGTERM);
        ++s->generation;  // a new peer with a new identity
        StartWorker(e.slot);
        break;
    }
  }

  void Body() {
    slots_.resize(policy_.honest + policy_.saboteurs);
    for (int k = policy_.honest; k < static_cast<int>(slots_.size()); ++k)
      slots_[k].saboteur = true;
    if (!StartCoordinator()) return Violation("the coordinator did not start");
    for (int k = 0; k < static_cast<int>(slots_.size()); ++k) StartWorker(k);
    {
      ClientOptions o;
      o.request_timeout = 2s;
      auto c = Client::Connect(client_ep_, o);
      const auto deadline = Clock::now() + 20s;
      while (c.ok() && Clock::now() < deadline) {
        auto p = c->Peers();
        if (p.ok() && p->size() == slots_.size()) break;
        std::this_thread::sleep_for(50ms);
      }
    }
    for (int k = 0; k < static_cast<int>(slots_.size()); ++k) RecordPeerId(k);

    std::thread submitter([this] { Submitter(client_ep_, schedule_.fault_end + 30); });
    std::thread observer([this] { Observer(client_ep_); });
    const auto t0 = Clock::now();
    for (const Event& e : schedule_.events) {
      while (!g_interrupted && Since(t0) < e.at) std::this_thread::sleep_for(5ms);
      if (g_interrupted) break;
      Apply(e);
    }
    // The faults stop: everything is healed and running.
    for (int k = 0; k < static_cast<int>(slots_.size()); ++k) {
      Slot& s = slots_[k];
      if (!s.link.empty()) net_.SetLink(k, s.link == "cut" ? "up" : "fast"), s.link.clear();
      if (s.proc && s.stopped) ::kill(s.proc->pid(), SIGCONT), s.stopped = false;
      if (s.left) EndWorker(k, SIGTERM), ++s.generation;
      if (!s.proc) StartWorker(k);
    }
    if (!coordinator_ && !StartCoordinator()) Violation("the coordinator did not come back");
    const double faults_stopped = Since(t0);
    {
      std::lock_guard lock(mu_);
      submit_done_ = true;
    }
    submitter.join();

    // Every acknowledged job ends within the bound.
    const auto settle_deadline =
        Clock::now() + std::chrono::milliseconds(static_cast<int>(cfg_.settle * 1000));
    for (;;) {
      bool all = true;
      {
        std::lock_guard lock(mu_);
        for (const auto& t : tracks_) all = all && (!t.acked || t.final_seen);
      }
      if (all || Clock::now() > settle_deadline || g_interrupted) break;
      std::this_thread::sleep_for(200ms);
    }
    observer_stop_ = true;
    observer.join();
    const double settled = Since(t0) - faults_stopped;
    std::printf("[%s] faults stopped at %.1f s; jobs settled %.1f s later\n", policy_.name.c_str(),
                faults_stopped, settled);

    // Results, answers, and then one last crash: what was done stays done.
    ClientOptions o;
    o.request_timeout = 5s;
    auto client = Client::Connect(client_ep_, o);
    std::map<std::uint64_t, std::string> result_bytes;
    for (auto& t : tracks_) {
      if (!t.acked || g_interrupted) continue;
      if (!t.final_seen) {
        ++figures_.stuck;
        Violation("job " + std::to_string(t.id) + " (" + t.plan.describe + ") did not end within " +
                  Num(cfg_.settle) +
                  " s after the faults stopped: " + std::string(JobStateName(t.last.state)) + " " +
                  std::to_string(t.last.units_done) + "/" + std::to_string(t.last.units_total) +
                  " done, " + std::to_string(t.last.units_running) + " running, " +
                  std::to_string(t.last.units_failed) + " failed");
        continue;
      }
      auto job = client->Attach(t.id);
      auto r = job.ok() ? job->Wait(20s) : Result<JobResult>(job.status());
      if (!r.ok()) {
        Violation("job " + std::to_string(t.id) +
                  ": cannot fetch its result: " + r.status().ToString());
        continue;
      }
      if (r->info.state == JobState::kDone) {
        ++figures_.done;
        result_bytes[t.id] = r->bytes;
        const std::string wrong = CheckAnswer(t.plan.spec, *r);
        if (!wrong.empty()) {
          ++figures_.wrong;
          Violation("job " + std::to_string(t.id) + " (" + t.plan.describe +
                    ") WRONG ANSWER: " + wrong);
        }
      } else if (r->info.state == JobState::kFailed) {
        ++figures_.failed;
        if (r->info.error.empty() && r->failures.empty())
          Violation("job " + std::to_string(t.id) + " failed without a reason");
        else
          std::printf("[%s] job %" PRIu64 " failed: %s\n", policy_.name.c_str(), t.id,
                      r->info.error.c_str());
      } else {
        Violation("job " + std::to_string(t.id) + " ended " +
                  std::string(JobStateName(r->info.state)));
      }
    }
    if (g_interrupted) Violation("interrupted");
    KillCoordinator("the final kill");
    if (!StartCoordinator())
      return Violation("the coordinator did not come back after the final kill");
    auto after = Client::Connect(client_ep_, o);
    for (const auto& [id, bytes] : result_bytes) {
      auto job = after->Attach(id);
      auto r = job.ok() ? job->Wait(20s) : Result<JobResult>(job.status());
      if (!r.ok() || r->info.state != JobState::kDone || r->bytes != bytes) {
        ++figures_.lost;
        Violation("job " + std::to_string(id) + " was done, but after a restart: " +
                  (r.ok() ? std::string(JobStateName(r->info.state)) +
                                (r->bytes != bytes ? " with other bytes" : "")
                          : r.status().ToString()));
      }
    }
    // Credits: each validated unit credits exactly `credits_per_unit` peers (cluster, fixed 2/2);
    // a saboteur is never credited (every policy).
    std::uint64_t validated = 0;
    {
      std::lock_guard lock(mu_);
      for (const auto& t : tracks_)
        if (t.acked) validated += t.last.state == JobState::kDone ? t.last.units_total : t.max_done;
    }
    for (int k = 0; k < static_cast<int>(slots_.size()); ++k) RecordPeerId(k);
    KillCoordinator("the end");
    const Snapshot& last = snapshots_.back();
    std::uint64_t credited = 0;
    for (const auto& [peer, n] : last.credits) credited += n;
    // What the faults cost: unit runs beyond the first, from the honest workers' logs.
    {
      std::map<std::string, int> runs;
      const std::regex finished(R"(finished unit (\d+/\d+) lease)");
      std::error_code ec;
      for (const auto& f : std::filesystem::directory_iterator(dir_, ec)) {
        if (f.path().extension() != ".err" || f.path().filename().string().rfind("slot", 0) != 0)
          continue;
        std::istringstream in(ReadAll(f.path()));
        for (std::string line; std::getline(in, line);) {
          std::smatch m;
          if (std::regex_search(line, m, finished)) ++runs[m[1]];
        }
      }
      for (const auto& [u, n] : runs) figures_.extra_runs += n - 1;
      figures_.unit_runs = 0;
      for (const auto& [u, n] : runs) figures_.unit_runs += n;
    }
    // The store's per-peer counters restart from zero with each coordinator life, so they can
    // only undercount: more credit than validated units allow is a unit credited twice.
    const std::uint64_t most = validated * static_cast<std::uint64_t>(policy_.credits_per_unit);
    if (credited > most) {
      ++figures_.credit;
      Violation("the store credits " + std::to_string(credited) + " units to peers for " +
                std::to_string(validated) + " validated units (at most " +
                std::to_string(policy_.credits_per_unit) + " per unit): credited twice");
    } else if (credited < most && (policy_.name == "cluster" || policy_.name == "fixed")) {
      Finding("the store credits " + std::to_string(credited) + " units to peers for " +
              std::to_string(validated) + " validated units, " +
              std::to_string(policy_.credits_per_unit) + " each: credit lost (" +
              std::to_string(coordinator_kills_) + " coordinator restarts)");
    }
  }

  const Policy& policy_;
  const Config& cfg_;
  Network& net_;
  std::uint64_t seed_;
  int faults_, jobs_;
  std::string dir_;
  Schedule schedule_;
  std::unique_ptr<Process> coordinator_;
  int coordinator_starts_ = 0, coordinator_kills_ = 0;
  std::string peer_ep_, client_ep_, coordinator_key_;
  std::vector<Slot> slots_;
  std::vector<Snapshot> snapshots_;

  std::mutex mu_;  // guards the fields below
  std::vector<JobTrack> tracks_;
  std::deque<int> submit_queue_;
  bool submit_done_ = false;
  std::vector<std::string> violations_;
  std::set<std::string> findings_;
  Figures figures_;
  std::atomic<bool> observer_stop_{false};
};

}  // namespace
}  // namespace sparecycles::nemesis

int main(int argc, char** argv) {
  using namespace sparecycles;
  using namespace sparecycles::nemesis;
  Options opt(
      "nemesis [options]",
      "Runs a seeded random schedule of crashes, pauses, partitions, slow links, joins and leaves "
      "against\n"
      "a real coordinator and workers under each replication policy, then checks that every job "
      "ended\n"
      "with the right answer (or failed with reasons), that nothing acknowledged was lost, that no "
      "unit\n"
      "was credited twice and that nothing was accepted from a saboteur. Needs root for the "
      "network\n"
      "faults (network namespaces it creates and removes); without, only process faults run.",
      "SPARECYCLES_NEMESIS_");
  opt.Add("seed", "",
          "Seed of the schedule and the jobs; empty = from the clock (printed, for replay).");
  opt.Add("faults", "30", "Faults injected in all (split between the policies).");
  opt.Add("jobs", "12", "Jobs submitted in all (split between the policies).");
  opt.Add("policies", "cluster,fixed,adaptive,small",
          "Policies to run: cluster, fixed (2/2), adaptive (5 honest + 2 saboteurs), small "
          "(defaults, 2 peers).");
  opt.Add("gap", "0.5", "Mean seconds between two faults.");
  opt.Add("settle", "90", "Seconds every job has to end once the faults stop.");
  opt.Add("network", "on",
          "on = network faults in namespaces when possible; off = process faults only.");
  opt.AddFlag(
      "strict",
      "Findings outside the invariants (reports going back, credit lost) fail the run too.");
  opt.AddFlag("keep", "Keep the logs and data directories even when the run passes.");
  opt.AddFlag("verbose", "Print every event as it is applied.");
  if (Status s = opt.Parse(argc, argv); !s.ok() || opt.HelpRequested()) {
    std::cout << (s.ok() ? opt.Help() : s.ToString() + "\n");
    return s.ok() ? 0 : 2;
  }
  Config cfg;
  auto faults = opt.GetInt("faults", 0, 1'000'000);
  auto jobs = opt.GetInt("jobs", 1, 100'000);
  auto gap = opt.GetDouble("gap", 0.01, 60);
  auto settle = opt.GetDouble("settle", 1, 3600);
  if (!faults.ok() || !jobs.ok() || !gap.ok() || !settle.ok()) {
    std::cerr << "nemesis: bad option (see --help)\n";
    return 2;
  }
  cfg.seed = opt.Get("seed").empty()
                 ? static_cast<std::uint64_t>(
                       std::chrono::system_clock::now().time_since_epoch().count()) %
                       1'000'000'007
                 : std::strtoull(opt.Get("seed").c_str(), nullptr, 10);
  cfg.faults = static_cast<int>(*faults);
  cfg.jobs = static_cast<int>(*jobs);
  cfg.gap = *gap;
  cfg.settle = *settle;
  cfg.keep = opt.Flag("keep");
  cfg.verbose = opt.Flag("verbose");
  cfg.strict = opt.Flag("strict");
  std::vector<Policy> policies;
  std::string wanted = "," + opt.Get("policies") + ",";
  for (const auto& p : AllPolicies())
    if (wanted.find("," + p.name + ",") != std::string::npos) policies.push_back(p);
  if (policies.empty()) {
    std::cerr << "nemesis: --policies names none of cluster, fixed, adaptive, small\n";
    return 2;
  }
  if (sodium_init() < 0) return 2;
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // lines reach a log file even if the run is killed
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);

  // Before any thread starts: this process moves into the hub namespace.
  Network net;
  int max_slots = 0;
  for (const auto& p : policies) max_slots = std::max(max_slots, p.honest + p.saboteurs);
  std::string why;
  if (opt.Get("network") != "on") {
    std::printf("network faults off (--network %s): process faults only\n",
                opt.Get("network").c_str());
  } else if (!net.Setup(max_slots, &why)) {
    net.Teardown();
    std::printf("network faults unavailable: %s; running process faults only\n", why.c_str());
  } else if (!why.empty()) {
    std::printf("%s\n", why.c_str());
  }
  std::printf("nemesis --seed %" PRIu64 " --faults %d --jobs %d --policies %s --gap %g%s\n",
              cfg.seed, cfg.faults, cfg.jobs, opt.Get("policies").c_str(), cfg.gap,
              net.ok() ? " (with network faults)" : "");
  std::fflush(stdout);

  Figures total;
  const auto t0 = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < policies.size(); ++i) {
    const int n = static_cast<int>(policies.size());
    const int f = cfg.faults / n + (static_cast<int>(i) < cfg.faults % n ? 1 : 0);
    const int j = std::max(1, cfg.jobs / n + (static_cast<int>(i) < cfg.jobs % n ? 1 : 0));
    // Each policy's schedule is derived from the seed and the policy's name alone.
    std::uint64_t seed = cfg.seed;
    for (char c : policies[i].name) seed = seed * 131 + static_cast<unsigned char>(c);
    Run run(policies[i], cfg, net, seed, f, j);
    Figures fig = run.Execute();
    for (const auto& [k, v] : fig.faults) total.faults[k] += v;
    total.jobs += fig.jobs;
    total.acked += fig.acked;
    total.done += fig.done;
    total.failed += fig.failed;
    total.wrong += fig.wrong;
    total.sabotaged += fig.sabotaged;
    total.stuck += fig.stuck;
    total.lost += fig.lost;
    total.credit += fig.credit;
    total.crashes += fig.crashes;
    total.violations += fig.violations;
    total.findings += fig.findings;
    total.unit_runs += fig.unit_runs;
    total.extra_runs += fig.extra_runs;
    if (g_interrupted) break;
  }
  int injected = 0;
  for (const auto& [k, v] : total.faults) injected += v;
  std::printf("\nnemesis figures (seed %" PRIu64 ", %.0f s):\n  faults injected: %d", cfg.seed,
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
              injected);
  for (const auto& [k, v] : total.faults) std::printf("; %s %d", k.c_str(), v);
  std::printf("\n  jobs: %d planned, %d acknowledged, %d done, %d failed with reasons\n",
              total.jobs, total.acked, total.done, total.failed);
  std::printf("  units accepted from saboteurs: %d\n", total.sabotaged);
  std::printf(
      "  wrong answers: %d; stuck jobs: %d; lost acknowledged results: %d; credit errors: %d; "
      "crashes: %d\n",
      total.wrong, total.stuck, total.lost, total.credit, total.crashes);
  std::printf("  unit runs by honest workers: %d, of which %d beyond a unit's first\n",
              total.unit_runs, total.extra_runs);
  std::printf("  violations: %d%s; other findings: %d\n", total.violations,
              total.violations ? "" : " (PASS)", total.findings);
  // One line for scripts/nemesis.sh to add up.
  std::printf("FIGURES seed=%" PRIu64 " faults=%d", cfg.seed, injected);
  for (const auto& [k, v] : total.faults) {
    std::string key = k;
    for (char& c : key) c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
    std::printf(" fault.%s=%d", key.c_str(), v);
  }
  std::printf(
      " jobs=%d acked=%d done=%d failed=%d wrong=%d sabotaged=%d stuck=%d lost=%d credit=%d "
      "crashes=%d violations=%d findings=%d unit_runs=%d extra_runs=%d\n",
      total.jobs, total.acked, total.done, total.failed, total.wrong, total.sabotaged, total.stuck,
      total.lost, total.credit, total.crashes, total.violations, total.findings, total.unit_runs,
      total.extra_runs);
  net.Teardown();
  return total.violations == 0 ? 0 : 1;
}
