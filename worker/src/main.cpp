// sparecycles-worker: parses options and donates this machine's idle cores until SIGINT/SIGTERM;
// `sparecycles-worker status` shows what a running worker does (from its state directory).
#include <pwd.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "cluster_profile.hpp"
#include "executor_process.hpp"
#include "sparecycles/core/daemon.hpp"
#include "sparecycles/core/log.hpp"
#include "sparecycles/core/options.hpp"
#include "sparecycles/core/protocol.hpp"
#include "sparecycles/core/transport.hpp"
#include "sparecycles/worker/policy.hpp"
#include "sparecycles/worker/status.hpp"
#include "sparecycles/worker/worker.hpp"
#include "volunteer_page.hpp"  // the volunteer page (HTTP)

using namespace sparecycles;

namespace {
worker::Worker* g_worker = nullptr;
void OnSignal(int) {
  if (g_worker) g_worker->Stop();
}
int Fail(const Status& s) {
  std::fprintf(stderr, "sparecycles-worker: %s\n", s.ToString().c_str());
  return 2;
}
std::string DefaultStateDir() {
  if (const char* x = std::getenv("XDG_STATE_HOME"); x && *x)
    return std::string(x) + "/sparecycles-worker";
  if (const char* h = std::getenv("HOME"); h && *h)
    return std::string(h) + "/.local/state/sparecycles-worker";
  return "";
}

// Option values with the profile's defaults in place of the built-in ones (a flag, environment
// variable or config line still wins).
class Values {
 public:
  Values(const Options& opt, worker::Profile profile) : opt_(opt) {
    for (auto& [name, value] : worker::ProfileDefaults(profile))
      defaults_.emplace_back(name, value);
  }
  std::string Get(const std::string& name) const {
    if (!opt_.IsSet(name))
      for (const auto& [k, v] : defaults_)
        if (k == name) return v;
    return opt_.Get(name);
  }
  void Override(const std::string& name, std::string value) {
    defaults_.emplace_back(name, std::move(value));
  }

 private:
  const Options& opt_;
  std::vector<std::pair<std::string, std::string>> defaults_;
};

Result<Duration> Time(const Values& opt, const std::string& name) {
  SC_ASSIGN_OR_RETURN(double s, ParseOptionSeconds(name, opt.Get(name)));
  return FromSeconds(s);
}

// The status file of the worker using --state-dir; nullopt (with `rc` the exit code, after saying
// why) when there is none or it does not parse.
std::optional<worker::StatusSnapshot> StatusOf(const Options& opt, int& rc) {
  const std::string dir = opt.Get("state-dir");
  auto text = ReadFile(dir + "/status", 1 << 20);
  if (!text.ok()) {
    std::fprintf(stderr,
                 "sparecycles-worker: no status in %s (is a worker running with --state-dir %s?)\n",
                 dir.c_str(), dir.c_str());
    rc = 1;
    return std::nullopt;
  }
  auto s = worker::ParseStatusFile(*text);
  if (!s.ok()) {
    rc = Fail(s.status());
    return std::nullopt;
  }
  return std::move(*s);
}

// The coordinator key for queries of its client endpoint: --coordinator-key, else the pinned one.
std::string CoordinatorKeyFor(const Options& opt) {
  if (!opt.Get("coordinator-key").empty()) return opt.Get("coordinator-key");
  const std::string pin = opt.Get("state-dir") + "/coordinator.pub";
  std::error_code ec;
  return !opt.Get("state-dir").empty() && std::filesystem::exists(pin, ec) ? pin : std::string();
}

int ShowStatus(const Options& opt) {
  int rc = 0;
  auto s = StatusOf(opt, rc);
  if (!s) return rc;
  const bool alive = s->pid > 0 && ::kill(static_cast<pid_t>(s->pid), 0) == 0;
  const double validated =
      opt.Get("clients").empty()
          ? -1
          : worker::ValidatedCpuSeconds(opt.Get("clients"), s->peer_id, CoordinatorKeyFor(opt));
  std::cout << worker::RenderStatus(*s, WallSeconds(), alive, validated);
  return alive ? 0 : 3;
}

// `leave`: asks the worker using --state-dir to leave (SIGTERM: units handed back) and waits until
// it has exited, so a Kubernetes preStop hook or an ExecStop= returns only once the leave is done.
int Leave(const Options& opt) {
  int rc = 0;
  auto s = StatusOf(opt, rc);
  if (!s) return rc;
  auto grace = opt.GetSeconds("grace");
  if (!grace.ok()) return Fail(grace.status());
  const auto pid = static_cast<pid_t>(s->pid);
  // A stale status file may name a pid that now belongs to another program: signal only a worker.
  // (/proc files report size 0, so read them as a stream.)
  std::ifstream proc("/proc/" + std::to_string(s->pid) + "/cmdline", std::ios::binary);
  std::string cmdline(4096, '\0');
  proc.read(cmdline.data(), static_cast<std::streamsize>(cmdline.size()));
  cmdline.resize(static_cast<std::size_t>(proc.gcount()));
  const bool is_worker = cmdline.find("sparecycles-worker") != std::string::npos;
  if (pid <= 0 || !is_worker || ::kill(pid, SIGTERM) != 0) {
    std::printf("sparecycles-worker: the worker (pid %ld) is not running\n", s->pid);
    return 0;
  }
  // The running units' grace, then time to stop them, upload checkpoints and send the Bye.
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::duration<double>(*grace + 30);
  while (::kill(pid, 0) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      std::fprintf(stderr, "sparecycles-worker: pid %ld is still running after %.0f s\n", s->pid,
                   *grace + 30);
      return 4;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::printf("sparecycles-worker: pid %ld left\n", s->pid);
  return 0;
}

// --packages, --accept, --trust, --trust-only, --package-cache, --executor.
// `--sandbox-user NAME|UID`: the user (and its primary group) a root worker's executors switch
// to. A name is looked up in the user database; a number is taken as it is (group = the same
// number unless the database knows the user). Root (0) is refused: it would confine nothing.
Result<std::pair<std::uint32_t, std::uint32_t>> SandboxUser(const std::string& v) {
  if (v.empty()) return InvalidArgument("--sandbox-user: empty");
  std::uint32_t uid = 0, gid = 0;
  const bool numeric = v.find_first_not_of("0123456789") == std::string::npos;
  if (numeric) {
    if (v.size() > 10 || std::stoull(v) > UINT32_MAX - 1)
      return InvalidArgument("--sandbox-user: " + v + " is not a user id");
    uid = static_cast<std::uint32_t>(std::stoull(v));
    const passwd* pw = ::getpwuid(uid);
    gid = pw != nullptr ? pw->pw_gid : uid;
  } else {
    const passwd* pw = ::getpwnam(v.c_str());
    if (pw == nullptr) return InvalidArgument("--sandbox-user: no user named '" + v + "'");
    uid = pw->pw_uid;
    gid = pw->pw_gid;
  }
  if (uid == 0 || gid == 0)
    return InvalidArgument("--sandbox-user: " + v + " is root or in root's group");
  return std::make_pair(uid, gid);
}

Status PackageOptions(const Options& opt, worker::WorkerConfig& cfg) {
  const std::string packages = opt.Get("packages");
  if (packages != "on" && packages != "off")
    return InvalidArgument("--packages: expected on or off, not '" + packages + "'");
  cfg.packages = packages == "on";
  cfg.accept_native = cfg.accept_command = false;
  std::stringstream kinds(opt.Get("accept"));
  for (std::string k; std::getline(kinds, k, ',');) {
    if (k == "native")
      cfg.accept_native = true;
    else if (k == "command")
      cfg.accept_command = true;
    else if (!k.empty())
      return InvalidArgument("--accept: unknown kind '" + k + "' (native, command)");
  }
  std::stringstream keys(opt.Get("trust"));
  for (std::string k; std::getline(keys, k, ',');)
    if (!k.empty()) cfg.trust.push_back(k);
  cfg.trust_only = opt.Flag("trust-only");
  auto cache = opt.GetInt("package-cache", 1 << 20, 1ll << 42);
  if (!cache.ok()) return cache.status();
  cfg.package_cache_bytes = static_cast<std::uint64_t>(*cache);
  cfg.executor_path = opt.Get("executor");
  const std::string sandbox = opt.Get("sandbox");
  if (sandbox != "on" && sandbox != "off")
    return InvalidArgument("--sandbox: expected on or off, not '" + sandbox + "'");
  cfg.sandbox = sandbox == "on";
  auto user = SandboxUser(opt.Get("sandbox-user"));
  if (!user.ok()) return user.status();
  cfg.sandbox_uid = user->first;
  cfg.sandbox_gid = user->second;
  return OkStatus();
}

// `sandbox-check`: the executor applies every layer to itself in a scratch directory and prints
// one line per layer (the same probe a worker runs at start); exit 0 when all are active.
int SandboxCheck(const Options& opt) {
  std::string exe = opt.Get("executor");
  if (exe.empty()) exe = worker::DefaultExecutorPath();
  auto user = SandboxUser(opt.Get("sandbox-user"));
  if (!user.ok()) return Fail(user.status());
  const char* disable = std::getenv("SPARECYCLES_SANDBOX_CHECK_DISABLE_LAYER");
  const worker::SandboxProbe probe =
      worker::ProbeSandbox(exe, user->first, user->second, disable != nullptr ? disable : "");
  if (probe.report.empty()) return Fail(Unavailable(probe.missing));
  std::cout << "executor: " << exe << "\n" << probe.report;
  std::cout << (probe.ok ? "sandbox: every layer active\n"
                         : "sandbox: NOT every layer is active; package units would be refused "
                           "(or run with --sandbox off on a trusted cluster)\n");
  return probe.ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt(
      "sparecycles-worker [options] | sparecycles-worker status [--state-dir DIR] [--clients "
      "ENDPOINT]\n"
      "       | sparecycles-worker leave [--state-dir DIR] [--grace T]",
      "Donates this machine's idle CPU to a SpareCycles coordinator: connects, announces its "
      "cores\n"
      "and measured speed, runs the units it is leased and returns their results. It watches what\n"
      "the rest of the machine uses and shrinks, pauses or resumes within the owner's preferences\n"
      "below (see deploy/worker.conf). SIGTERM or Ctrl-C hands unfinished units back before "
      "exiting.\n"
      "'status' prints what the worker using --state-dir is doing; 'leave' stops it gracefully\n"
      "(SIGTERM) and waits until it has handed its units back and exited.",
      "SPARECYCLES_WORKER_");
  opt.Add("config", "", "Config file of 'name = value' lines (# comments); flags override it.");
  opt.Add(
      "profile", "volunteer",
      "volunteer = donate idle CPU only, with the defaults below; cluster = a dedicated or batch "
      "node: "
      "every allotted core (--cores from SLURM_CPUS_PER_TASK, SLURM_CPUS_ON_NODE, the cgroup CPU "
      "quota and the affinity mask, when not given), pause-above off, throttle off, priority "
      "normal, on-battery run, max-memory 100%, min-free-memory 0%. Options given still win.");
  opt.Add("coordinator", "tcp://127.0.0.1:7737", "The coordinator's peer endpoint.");
  opt.Add("cores", "0",
          "Most cores to donate: a count, a share such as 50%, or 0 = all of this machine's (" +
              std::to_string(worker::HardwareCores()) + ").");
  opt.Add("curve", "on",
          "on = CurveZMQ to the coordinator (encrypted, it must prove its key). off = PLAINTEXT,\n"
          "      only for a coordinator started with --curve off (benchmarks, closed networks).");
  opt.Add(
      "coordinator-key", "",
      "The coordinator's public key (Z85 or hex) or a file holding it; empty = the key pinned\n"
      "      in --state-dir, else the one a coordinator of this user on this machine published\n"
      "      (pinned at first use). A key other than the pinned one is refused.");
  opt.Add("state-dir", DefaultStateDir(),
          "Directory for the worker's own state (peer id, checkpoints, status).");
  opt.Add("account", "", "Your volunteer account name, shown by the coordinator.");
  opt.Add("prefetch", "1", "Units held beyond the idle cores so a core never waits for work.");
  opt.Add("calibrate", "20ms",
          "Time spent measuring each task's speed at start-up (0 = use defaults).");
  opt.Add("tasks", "", "Comma-separated tasks to offer; empty = all built-in tasks.");
  opt.Add(
      "pause-above", "50%",
      "Pause when other programs use more than this share of the machine's CPU ('off' = never).");
  opt.Add("resume-below", "25%",
          "Resume once other programs use less than this share for --idle-time.");
  opt.Add("idle-time", "30s",
          "How long the other load must stay low before resuming or taking cores back.");
  opt.Add("throttle", "on",
          "on = leave the cores other programs use (whole cores); off = only pause.");
  opt.Add("hours", "", "When to run, e.g. 'mon-fri 18:00-08:00, sat-sun all'; empty = always.");
  opt.Add("max-memory", "50%",
          "Pause while the worker's own memory exceeds this (a size like 2G, or a share).");
  opt.Add("min-free-memory", "5%",
          "Pause while less than this share of the machine's memory is available.");
  opt.Add("on-battery", "pause", "pause or run while the machine runs on battery.");
  opt.Add("priority", "idle",
          "idle = nice 19 and SCHED_IDLE compute threads; low = nice 19; normal = unchanged.");
  opt.Add("sample-interval", "1s", "How often the machine's load is measured.");
  opt.Add("pause-limit", "5m",
          "Hand running units back to the coordinator after a pause this long.");
  opt.Add("checkpoint-interval", "10s",
          "How often long units save their state (locally and at the coordinator).");
  opt.Add(
      "clients", "",
      "The coordinator's client endpoint, to show validated CPU-seconds (status, --http page).");
  opt.Add("grace", "0s",
          "On SIGTERM, let running units finish for up to this long, then hand the rest back.");
  opt.Add(
      "http", "",
      "127.0.0.1:PORT (loopback only) for the volunteer page: pause/resume, preferences saved to\n"
      "      --config, and /metrics; port 0 = any free one; empty = off.");
  opt.Add("endpoints-file", "",
          "With --http: write the page's address here once bound (for scripts and tests).");
  opt.Add("packages", "on",
          "on = run task packages (other people's code, in a separate executor process) signed\n"
          "      by a publisher this worker trusts; off = built-in tasks only.");
  opt.Add("accept", "native,command",
          "Kinds of task package to run: native (shared libraries), command (programs).");
  opt.Add(
      "trust", "",
      "Publisher keys to trust besides the coordinator's (pinned at first contact in\n"
      "      --state-dir/publishers.pinned): comma-separated directories of *.pub, key files or\n"
      "      64-hex-digit keys.");
  opt.AddFlag("trust-only", "Trust only the --trust keys, never the coordinator's publishers.");
  opt.Add("package-cache", "2G",
          "Bytes of fetched packages kept in --state-dir (least recently used go first).");
  opt.Add("executor", "",
          "The sparecycles-executor binary; empty = beside this program, else the installed one.");
  opt.Add("sandbox", "on",
          "on: every package unit runs confined (docs/sandbox.md); off: no confinement, for\n"
          "      trusted clusters only (logged loudly).");
  opt.Add("sandbox-user", "65534",
          "When the worker runs as root: the dedicated unprivileged user (name or uid) its\n"
          "      executors switch to before any package code; default 65534 (nobody).");
  opt.Add("log-level", "info", "debug, info, warn, error or off.");
  if (Status s = opt.Parse(argc, argv); !s.ok()) return Fail(s);
  if (opt.HelpRequested()) {
    std::cout << opt.Help();
    return 0;
  }
  if (!opt.Positional().empty()) {
    if (opt.Positional()[0] == "status" && opt.Positional().size() == 1) return ShowStatus(opt);
    if (opt.Positional()[0] == "leave" && opt.Positional().size() == 1) return Leave(opt);
    if (opt.Positional()[0] == "sandbox-check" && opt.Positional().size() == 1)
      return SandboxCheck(opt);
    return Fail(InvalidArgument("unknown command '" + opt.Positional()[0] +
                                "' (the commands are 'status', 'leave' and 'sandbox-check')"));
  }
  SetLogComponent("worker");
  LogLevel level;
  if (!ParseLogLevel(opt.Get("log-level"), level))
    return Fail(InvalidArgument("--log-level: unknown level"));
  SetLogLevel(level);

  auto profile = worker::ParseProfile(opt.Get("profile"));
  if (!profile.ok()) return Fail(InvalidArgument("--profile: " + profile.status().message()));
  Values val(opt, *profile);
  if (*profile == worker::Profile::kCluster) {
    if (!opt.IsSet("cores")) {
      const auto allotted = worker::ResolveAllottedCores(worker::ReadCoreSources());
      val.Override("cores", std::to_string(allotted.cores));
      SC_LOG(Info) << "cluster profile: " << allotted.cores << " cores (" << allotted.source << ")";
    } else {
      SC_LOG(Info) << "cluster profile: " << opt.Get("cores") << " cores (--cores)";
    }
  }

  worker::WorkerConfig cfg;
  cfg.coordinator = opt.Get("coordinator");
  worker::Preferences prefs;  // parsed as the volunteer page and the config file are
  for (const auto& name : worker::Preferences::OwnerNames())
    if (Status s = prefs.Set(name, val.Get(name)); !s.ok())
      return Fail(InvalidArgument("--" + s.message()));
  prefs.Reconcile();
  auto prefetch = opt.GetInt("prefetch", 0, 64);
  auto cal = opt.GetSeconds("calibrate");
  if (!prefetch.ok()) return Fail(prefetch.status());
  if (!cal.ok()) return Fail(cal.status());
  cfg.cores = prefs.max_cores;  // 0 = all or a share, resolved by the worker
  cfg.prefetch = static_cast<std::uint32_t>(*prefetch);
  cfg.calibrate_seconds = *cal;
  cfg.coordinator_key = opt.Get("coordinator-key");
  if (opt.Get("curve") != "on" && opt.Get("curve") != "off")
    return Fail(InvalidArgument("--curve must be on or off"));
  cfg.curve = opt.Get("curve") == "on";
  if (!cfg.curve)
    SC_LOG(Warn) << "CURVE OFF (--curve off): plaintext to the coordinator, which is not "
                    "authenticated; meant only for benchmarks and closed networks";
  cfg.state_dir = opt.Get("state-dir");
  cfg.account = opt.Get("account");
  std::stringstream list(opt.Get("tasks"));
  for (std::string t; std::getline(list, t, ',');)
    if (!t.empty()) cfg.only_tasks.push_back(t);
  if (Status s = PackageOptions(opt, cfg); !s.ok()) return Fail(s);

  auto priority = worker::ParsePriority(val.Get("priority"));
  auto sample = Time(val, "sample-interval");
  auto pause_limit = Time(val, "pause-limit");
  auto checkpoint = Time(val, "checkpoint-interval");
  for (const Status* s : {&sample.status(), &pause_limit.status(), &checkpoint.status()})
    if (!s->ok()) return Fail(*s);
  if (!priority.ok()) return Fail(InvalidArgument("--priority: " + priority.status().message()));
  prefs.priority = *priority;
  if (*sample < std::chrono::milliseconds(10))
    return Fail(InvalidArgument("--sample-interval: at least 10ms"));
  cfg.sample_interval = *sample;
  cfg.pause_limit = *pause_limit;
  cfg.checkpoint_interval = *checkpoint;
  cfg.preferences = std::move(prefs);

  auto grace = opt.GetDuration("grace");
  if (!grace.ok()) return Fail(grace.status());
  cfg.leave_grace = *grace;
  std::unique_ptr<worker::VolunteerPage> page;  // the volunteer page (HTTP side)
  if (!opt.Get("http").empty()) {
    worker::VolunteerPageConfig pc;
    pc.bind = opt.Get("http");
    pc.config_file = opt.Get("config");
    pc.clients_endpoint = opt.Get("clients");
    pc.coordinator_key = CoordinatorKeyFor(opt);
    pc.preferences = *cfg.preferences;
    for (const auto& name : worker::Preferences::OwnerNames()) pc.values[name] = opt.Get(name);
    cfg.control = std::make_shared<worker::OwnerControl>();
    page = std::make_unique<worker::VolunteerPage>(std::move(pc), cfg.control);
    if (Status s = page->Start(); !s.ok()) return Fail(s);
    if (!opt.Get("endpoints-file").empty())
      if (Status s = WriteFileAtomic(opt.Get("endpoints-file"), "http " + page->url() + "\n");
          !s.ok())
        return Fail(s);
  }
  worker::Worker w(cfg, tasks::Registry::BuiltIn());
  if (Status s = w.Start(); !s.ok()) return Fail(s);
  g_worker = &w;
  InstallStopHandler(OnSignal);
  w.Run();
  g_worker = nullptr;
  return 0;
}
