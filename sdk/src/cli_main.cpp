// sparecycles: the command-line client. `run` executes a job on an embedded coordinator + worker;
// the other commands talk to a coordinator's client endpoint. Exit codes: 0 success, 1 the job
// failed or was cancelled, 2 bad usage, 3 the coordinator could not be reached.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <sstream>

#include "cli_package.hpp"
#include "cli_views.hpp"  // terminal views: progress rate/ETA, top
#include "sparecycles/core/curve_keys.hpp"
#include "sparecycles/core/json.hpp"
#include "sparecycles/core/options.hpp"
#include "sparecycles/core/protocol.hpp"
#include "sparecycles/sdk/client.hpp"
#include "sparecycles/tasks/task.hpp"

using namespace sparecycles;

namespace {

constexpr const char* kUsage =
    "Usage: sparecycles COMMAND [options]\n\n"
    "Commands:\n"
    "  run TASK [--PARAM VALUE ...]     run a job here, on an embedded coordinator and worker\n"
    "  run --package PKG [...]          run a task package's job here (no keys needed)\n"
    "  submit TASK [--PARAM VALUE ...]  submit a job to a coordinator and wait for its result\n"
    "  submit --package PKG [...]       upload a task package if needed and submit a job of it\n"
    "  status JOB                       show a job's progress\n"
    "  wait JOB [--package PKG]         wait for a job and print (merge) its result\n"
    "  cancel JOB                       cancel a job (its running units stop on the peers)\n"
    "  jobs                             list the coordinator's jobs\n"
    "  peers                            list the connected peers\n"
    "  packages                         list the task packages the coordinator holds\n"
    "  top                              jobs and peers, live (--once for watch)\n"
    "  tasks [TASK]                     list the built-in tasks, or one task's parameters\n"
    "  key new [--client]               create a publisher key for signing task packages, or\n"
    "                                   your client key (made on first use anyway)\n"
    "  key show [--client]              print a key's public half (for a coordinator's lists)\n"
    "  package build|sign|verify|inspect|test  make, check and try task packages (.scpkg)\n\n"
    "Run `sparecycles COMMAND --help` for a command's options, `sparecycles run TASK --help`\n"
    "for a task's parameters. Example:\n"
    "  sparecycles run primes --from 0 --to 1000000000 --json\n"
    "  sparecycles submit --package mytask.scpkg --n 1000 -o result.bin\n";

std::string InfoJson(const JobInfo& i) {
  std::ostringstream o;
  o << "{\"job\":" << i.id << ",\"task\":" << JsonString(i.task)
    << ",\"name\":" << JsonString(i.name) << ",\"state\":" << JsonString(JobStateName(i.state))
    << ",\"priority\":" << i.priority << ",\"units_total\":" << i.units_total
    << ",\"units_done\":" << i.units_done << ",\"units_failed\":" << i.units_failed
    << ",\"units_running\":" << i.units_running << ",\"cpu_seconds\":" << i.cpu_seconds
    << ",\"error\":" << JsonString(i.error) << ",\"waiting\":" << JsonString(i.waiting) << "}";
  return o.str();
}

int Usage(const std::string& msg) {
  std::fprintf(stderr, "sparecycles: %s\n", msg.c_str());
  return 2;
}

int Report(const Status& s) {
  std::fprintf(stderr, "sparecycles: %s\n", s.ToString().c_str());
  return s.code() == StatusCode::kUnavailable || s.code() == StatusCode::kDeadlineExceeded ? 3 : 2;
}

// Where the coordinator is, whose key it holds, who we are, how long to wait.
void AddEndpointOptions(Options& o) {
  o.Add("coordinator", "tcp://127.0.0.1:7738", "The coordinator's client endpoint.");
  o.Add("coordinator-key", "",
        "The coordinator's public key (Z85/hex) or its file. Empty = $XDG_CONFIG_HOME/\n"
        "      sparecycles/coordinator.pub when it exists, else the key a coordinator of yours on\n"
        "      this machine published for --coordinator.");
  o.Add("key", "",
        "Your client key pair (a CURVE secret key file, mode 0600). Empty = $XDG_CONFIG_HOME/\n"
        "      sparecycles/client.key (~/.config/...), created on first use.");
  o.Add("timeout", "10s", "How long to wait for the coordinator to answer a request.");
}

void AddConnectionOptions(Options& o) {
  AddEndpointOptions(o);
  o.AddFlag("json", "Print JSON for scripts instead of text.");
}

// "-o X" is accepted as "--output X" (Options knows long names only).
std::vector<std::string> NormalizeArgs(std::vector<std::string> args) {
  for (auto& a : args)
    if (a == "-o") a = "--output";
  return args;
}

void AddJobOptions(Options& o, bool embedded) {
  o.Add("package", "",
        std::string("A task package (.scpkg) to run instead of a built-in TASK "
                    "(docs/packages.md): this\n"
                    "      client verifies it, cuts the job (a native package's Plan and Split "
                    "run here),\n") +
            (embedded ? "      runs it on the embedded coordinator and worker (no keys needed),\n"
                      : "      uploads it in 1 MiB chunks if the coordinator lacks it (it must "
                        "be signed by a\n"
                        "      key in the coordinator's --publishers),\n") +
            "      and merges the result here. --PARAM VALUE are the package's parameters;\n"
            "      --units and --unit-seconds shape a native package's split.");
  o.Add("input", "",
        "Input file: for data tasks (wordfreq), or for a command package that splits by lines.");
  o.Add("input-dir", "",
        "Input directory for a command package that makes one unit per file (split = files).");
  o.Add("output", "",
        "Where to write the result (-o): a file for the merged bytes (default for images:\n"
        "      TASK-JOB.png); for a command package, a new directory receiving each unit's\n"
        "      outputs as unit-NNNNNN/NAME (default: JOB-outputs).");
  o.Add("name", "", "A name for the job, shown by `jobs`.");
  o.Add("units", "0",
        "Exact number of units; 0 = chosen from the job's size and the peers' speed.");
  o.Add("unit-seconds", "0", "Target seconds per unit; 0 = the coordinator's default (1 s).");
  o.Add("priority", "0", "Higher-priority jobs get peers first.");
  o.Add("replicas", "0", "Copies of each unit issued at first; 0 = coordinator default.");
  o.Add("quorum", "0", "Matching results needed to accept a unit; 0 = coordinator default.");
  o.Add("max-replicas", "0", "Most copies of one unit; 0 = coordinator default.");
  o.Add("max-errors", "0", "Failed runs after which a unit fails; 0 = coordinator default.");
  o.Add("adaptive", "default",
        "on = accept units by peers' credibility (spot-checks), off = fixed quorum, default = the "
        "coordinator's choice.");
  o.Add("target-error", "0",
        "With --adaptive on: the bound on the chance an accepted unit is wrong; 0 = coordinator "
        "default (1e-3).");
  o.Add("wait-timeout", "0", "Give up waiting after this long (e.g. 10m); 0 = wait forever.");
  o.AddFlag("json", "Print JSON for scripts instead of text.");
  o.AddFlag("no-progress", "Do not draw the progress bar.");
  if (embedded) {
    o.Add("cores", "0", "Cores for the embedded worker; 0 = all.");
    o.AddFlag("verbose", "Show the embedded coordinator's and worker's logs.");
  } else {
    AddEndpointOptions(o);
    o.AddFlag("no-wait", "Print the job id and return at once.");
  }
}

std::string TaskHelp(const tasks::Task& t) {
  std::ostringstream o;
  o << t.Name() << " (v" << t.Version() << "): " << t.Summary() << "\nParameters:\n";
  for (const auto& p : t.Params())
    o << "  --" << p.name << " VALUE\n      " << p.help
      << "\n      Default: " << (p.default_value.empty() ? "(required)" : p.default_value) << "\n";
  return o.str();
}

Result<std::chrono::milliseconds> TimeoutOf(const Options& o, const char* name) {
  auto s = o.GetSeconds(name);
  if (!s.ok()) return s.status();
  return std::chrono::milliseconds(static_cast<std::int64_t>(*s * 1000));
}

std::string ConfigPath(const std::string& name) { return cli::ClientConfigPath(name); }

// The user's client key: --key, else the config directory's client.key, created on first use so
// that later commands are the same client (they see and may cancel the jobs it submitted).
// Without a config directory: empty, a fresh key for this command.
Result<std::string> ClientKeyFile(const Options& o) {
  if (!o.Get("key").empty()) return o.Get("key");
  const std::string path = ConfigPath("client.key");
  if (path.empty()) return std::string();
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) return path;
  auto made = curve::LoadOrCreateKeyPair(path, "client");
  if (!made.ok()) {
    if (std::filesystem::exists(path, ec)) return path;  // another command made it meanwhile
    return Status(made.status().code(), "cannot create your client key: " +
                                            made.status().message() + " (give --key FILE)");
  }
  std::fprintf(stderr,
               "created your client key %s; coordinators know you by its public key %s "
               "(`sparecycles key show --client`)\n",
               path.c_str(), made->public_key.Z85().c_str());
  return path;
}

Result<Client> ConnectFrom(const Options& o) {
  auto t = TimeoutOf(o, "timeout");
  if (!t.ok()) return t.status();
  ClientOptions co;
  co.request_timeout = t->count() > 0 ? *t : std::chrono::milliseconds(10000);
  // Keys: the flags, else the user's config directory (docs/security.md, "Keys and their files").
  std::error_code ec;
  co.coordinator_key = o.Get("coordinator-key");
  if (co.coordinator_key.empty() && std::filesystem::exists(ConfigPath("coordinator.pub"), ec))
    co.coordinator_key = ConfigPath("coordinator.pub");
  auto key_file = ClientKeyFile(o);
  if (!key_file.ok()) return key_file.status();
  co.key_file = *key_file;
  return Client::Connect(o.Get("coordinator"), co);
}

// Says on stderr, once each time it changes, why the job's units cannot go anywhere now, so a
// job that waits (for peers that may never come) never waits silently.
class WaitingNotice {
 public:
  void Update(const JobInfo& i) {
    std::lock_guard lock(mu_);
    if (i.waiting == last_) return;
    last_ = i.waiting;
    if (last_.empty()) return;
    std::fprintf(stderr, "%swaiting: %s\n", isatty(STDERR_FILENO) ? "\n" : "", last_.c_str());
  }

 private:
  std::mutex mu_;
  std::string last_;
};

// Draws "[#####.....]  45/100 units  12.3 s" on stderr when it is a terminal.
class ProgressBar {
 public:
  explicit ProgressBar(bool enabled) : enabled_(enabled && isatty(STDERR_FILENO)) {}
  void Update(const JobInfo& i) {
    if (!enabled_) return;
    std::lock_guard lock(mu_);
    const double frac =
        i.units_total ? static_cast<double>(i.units_done) / static_cast<double>(i.units_total) : 0;
    const int width = 30, filled = static_cast<int>(frac * width);
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    meter_.Add(secs, i.units_done);  // terminal views: rate and ETA (cli_views.hpp)
    std::fprintf(stderr, "\r[%s%s] %s", std::string(filled, '#').c_str(),
                 std::string(width - filled, '.').c_str(),
                 cli::ProgressText(i, meter_, secs).c_str());
    drawn_ = true;
  }
  void Finish() {
    std::lock_guard lock(mu_);
    if (drawn_) std::fprintf(stderr, "\n");
    drawn_ = false;
    enabled_ = false;
  }

 private:
  bool enabled_;
  bool drawn_ = false;
  std::mutex mu_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  cli::RateMeter meter_;
};

// Draws "uploading 12.0/50.0 MiB" on stderr for packages over a few MiB, when it is a terminal.
class UploadMeter {
 public:
  void Update(std::uint64_t done, std::uint64_t total) {
    if (total < kShowAbove || !isatty(STDERR_FILENO)) return;
    std::fprintf(stderr, "\ruploading the package: %.1f/%.1f MiB", Mib(done), Mib(total));
    drawn_ = true;
  }
  void Finish() {
    if (drawn_) std::fprintf(stderr, "\n");
    drawn_ = false;
  }

 private:
  static constexpr std::uint64_t kShowAbove = 4ull << 20;
  static double Mib(std::uint64_t n) { return static_cast<double>(n) / (1 << 20); }
  bool drawn_ = false;
};

// A command package's outputs go to a new (or empty) directory.
Status WriteOutputDir(const JobResult& r, const std::string& dir) {
  std::error_code ec;
  if (std::filesystem::exists(dir, ec) && !std::filesystem::is_empty(dir, ec))
    return FailedPrecondition(dir + " exists and is not empty; name a new directory with -o");
  return r.WriteFiles(dir);
}

int PrintResult(const Options& o, const JobResult& r, double seconds) {
  std::string output = o.Get("output");
  const bool outputs_dir = r.media_type == "inode/directory";
  if (outputs_dir && r.info.state == JobState::kDone) {
    if (output.empty()) output = std::to_string(r.info.id) + "-outputs";
    if (Status s = WriteOutputDir(r, output); !s.ok()) return Report(s);
  }
  const bool image = r.media_type.rfind("image/", 0) == 0;
  if (output.empty() && image && r.info.state == JobState::kDone)
    output = r.info.task + "-" + std::to_string(r.info.id) +
             (r.media_type == "image/png" ? ".png" : ".pgm");
  if (!outputs_dir && !output.empty() && r.info.state == JobState::kDone) {
    if (Status s = r.WriteTo(output); !s.ok()) return Report(s);
  }
  if (o.Flag("json")) {
    std::ostringstream j;
    j << "{\"job\":" << r.info.id << ",\"task\":" << JsonString(r.info.task)
      << ",\"state\":" << JsonString(JobStateName(r.info.state))
      << ",\"units\":" << r.info.units_total << ",\"seconds\":" << seconds
      << ",\"cpu_seconds\":" << r.info.cpu_seconds
      << ",\"result\":" << (r.json.empty() ? "null" : r.json)
      << ",\"summary\":" << JsonString(r.summary);
    if (!output.empty()) j << ",\"output\":" << JsonString(output);
    if (!r.info.error.empty()) j << ",\"error\":" << JsonString(r.info.error);
    j << ",\"failures\":[";
    for (std::size_t i = 0; i < r.failures.size(); ++i)
      j << (i ? "," : "") << "{\"unit\":" << r.failures[i].unit
        << ",\"reason\":" << JsonString(r.failures[i].reason) << "}";
    j << "]}";
    std::cout << j.str() << std::endl;
  } else if (r.info.state == JobState::kDone) {
    std::cout << r.summary << std::endl;
    if (outputs_dir)
      std::cerr << "wrote " << r.files.size() << " files to " << output << "/\n";
    else if (!output.empty())
      std::cerr << "wrote " << output << " (" << r.bytes.size() << " bytes)\n";
    std::cerr << "job " << r.info.id << ": " << r.info.units_total << " units in " << seconds
              << " s\n";
  } else {
    std::cerr << "job " << r.info.id << " " << JobStateName(r.info.state) << ": " << r.info.error
              << "\n";
    for (const auto& f : r.failures) std::cerr << "  unit " << f.unit << ": " << f.reason << "\n";
  }
  return r.info.state == JobState::kDone ? 0 : 1;
}

int RunJob(const std::vector<std::string>& args, bool embedded) {
  Options o(embedded ? "sparecycles run TASK|--package PKG [--PARAM VALUE ...] [options]"
                     : "sparecycles submit TASK|--package PKG [--PARAM VALUE ...] [options]",
            embedded
                ? "Runs a job on a coordinator and worker embedded in this process (no set-up)."
                : "Submits a job to a coordinator and waits for its result (unless --no-wait).",
            "SPARECYCLES_");
  AddJobOptions(o, embedded);
  o.AllowExtra(true);
  if (Status s = o.Parse(NormalizeArgs(args)); !s.ok()) return Usage(s.message());
  const tasks::Task* task =
      o.Positional().empty() ? nullptr : tasks::Registry::BuiltIn().Find(o.Positional()[0]);
  if (o.HelpRequested()) {
    std::cout << o.Help();
    if (task) std::cout << "\n" << TaskHelp(*task);
    return 0;
  }
  const bool is_package = !o.Get("package").empty();
  if (is_package && !o.Positional().empty())
    return Usage("name either a task or --package, not both");
  if (!is_package && o.Positional().size() != 1)
    return Usage("name one task (see `sparecycles tasks`) or a task package with --package");
  if (!is_package && !o.Get("input-dir").empty())
    return Usage("--input-dir is for command packages (--package)");
  const std::string task_name = is_package ? std::string() : o.Positional()[0];
  JobSpec spec(task_name);
  spec.package = o.Get("package");
  spec.input_dir = o.Get("input-dir");
  if (task != nullptr) {
    for (const auto& [k, v] : o.Extra()) {
      bool known = false;
      for (const auto& p : task->Params()) known |= p.name == k;
      if (known) continue;
      std::string msg = "task " + task_name;
      msg.append(" has no parameter --").append(k).append(" (see `sparecycles run ");
      msg.append(task_name).append(" --help`)");
      return Usage(msg);
    }
  }
  spec.params = o.Extra();
  // A task parameter that shares its name with a job option (spin's --units) gets the value too.
  if (task != nullptr)
    for (const auto& p : task->Params())
      if (p.name == "units" && o.IsSet("units")) spec.params["units"] = o.Get("units");
  spec.name = o.Get("name");
  if (!o.Get("input").empty())
    if (Status s = spec.LoadInput(o.Get("input")); !s.ok()) return Report(s);
  auto units = o.GetInt("units", 0, proto::kMaxUnitsPerJob);
  auto us = o.GetDouble("unit-seconds", 0, proto::kMaxUnitSeconds);
  auto pri = o.GetInt("priority", -1000000, 1000000);
  auto rep = o.GetInt("replicas", 0, proto::kMaxReplicas);
  auto quo = o.GetInt("quorum", 0, proto::kMaxReplicas);
  auto mr = o.GetInt("max-replicas", 0, proto::kMaxReplicasCeiling);
  auto me = o.GetInt("max-errors", 0, proto::kMaxReplicasCeiling);
  auto wt = TimeoutOf(o, "wait-timeout");
  for (const Status* s : {&units.status(), &us.status(), &pri.status(), &rep.status(),
                          &quo.status(), &mr.status(), &me.status(), &wt.status()})
    if (!s->ok()) return Usage(s->message());
  spec.units = static_cast<std::uint64_t>(*units);
  spec.unit_seconds = *us;
  spec.priority = static_cast<int>(*pri);
  spec.replication.replicas = static_cast<std::uint32_t>(*rep);
  spec.replication.quorum = static_cast<std::uint32_t>(*quo);
  spec.replication.max_replicas = static_cast<std::uint32_t>(*mr);
  spec.replication.max_errors = static_cast<std::uint32_t>(*me);
  const std::string adaptive = o.Get("adaptive");
  if (adaptive != "default" && adaptive != "on" && adaptive != "off")
    return Usage("--adaptive must be on, off or default");
  spec.replication.adaptive = adaptive == "default" ? 0 : adaptive == "off" ? 1 : 2;
  auto te = o.GetDouble("target-error", 0, 0.49);
  if (!te.ok()) return Usage(te.status().message());
  spec.replication.target_error = *te;

  const auto start = std::chrono::steady_clock::now();
  Result<Client> client = Unavailable("unset");
  if (embedded) {
    auto cores = o.GetInt("cores", 0, proto::kMaxCores);
    if (!cores.ok()) return Usage(cores.status().message());
    LocalOptions lo;
    lo.cores = static_cast<unsigned>(*cores);
    // A package job needs no built-in task: a name no built-in has keeps the worker from
    // calibrating them all (it announces the package kinds anyway).
    lo.tasks = {is_package ? std::string("@packages-only") : task_name};
    lo.verbose = o.Flag("verbose");
    client = Client::Local(lo);
  } else {
    client = ConnectFrom(o);
  }
  if (!client.ok()) return Report(client.status());
  UploadMeter upload;
  if (is_package && !o.Flag("json") && !o.Flag("no-progress"))
    spec.on_upload = [&upload](std::uint64_t done, std::uint64_t total) {
      upload.Update(done, total);
    };
  auto job = client->Submit(spec);
  upload.Finish();
  if (!job.ok()) return Report(job.status());
  if (!embedded && o.Flag("no-wait")) {
    if (o.Flag("json"))
      std::cout << InfoJson(job->Info()) << std::endl;
    else
      std::cout << job->id() << std::endl;
    return 0;
  }
  ProgressBar bar(!o.Flag("json") && !o.Flag("no-progress"));
  WaitingNotice waiting;
  job->OnProgress([&bar, &waiting](const JobInfo& i) {
    waiting.Update(i);
    bar.Update(i);
  });
  auto result = job->Wait(wt->count() > 0 ? *wt : std::chrono::hours(24 * 365));
  bar.Finish();
  if (!result.ok()) return Report(result.status());
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return PrintResult(o, *result, seconds);
}

int Simple(const std::string& cmd, const std::vector<std::string>& args) {
  const bool listing = cmd == "jobs" || cmd == "peers" || cmd == "packages";
  Options o("sparecycles " + cmd + (listing ? "" : " JOB") +
                (cmd == "wait" ? " [--package PKG [--PARAM VALUE ...]]" : "") + " [options]",
            cmd == "jobs"       ? "Lists the coordinator's jobs."
            : cmd == "peers"    ? "Lists the peers connected to the coordinator."
            : cmd == "packages" ? "Lists the task packages the coordinator holds: id, name, "
                                  "version, kind, size\nand the publisher key that signed it."
            : cmd == "status"   ? "Shows a job's progress."
            : cmd == "wait"     ? "Waits for a job to end and prints its result."
                                : "Cancels a job; its running units stop on the peers.",
            "SPARECYCLES_");
  AddConnectionOptions(o);
  if (cmd == "wait") {
    o.Add("output", "",
          "Where to write the result (-o): a file for the merged bytes; for a command package\n"
          "      a new directory receiving the outputs as unit-NNNNNN/NAME (default: "
          "JOB-outputs).");
    o.Add(
        "package", "",
        "The job's task package (.scpkg), which merges its result here; --PARAM VALUE give the\n"
        "      job's parameters again if its Merge needs them. Without it a package job's result\n"
        "      is the raw list of unit results.");
    o.AllowExtra(true);
  }
  if (Status s = o.Parse(NormalizeArgs(args)); !s.ok()) return Usage(s.message());
  if (o.HelpRequested()) {
    std::cout << o.Help();
    return 0;
  }
  const bool needs_job = !listing;
  if (o.Positional().size() != (needs_job ? 1u : 0u))
    return Usage(needs_job ? "name one job id" : "no arguments expected");
  std::uint64_t job_id = 0;
  if (needs_job) {
    auto id = ParseInt(o.Positional()[0]);
    if (!id.ok() || *id <= 0) return Usage("'" + o.Positional()[0] + "' is not a job id");
    job_id = static_cast<std::uint64_t>(*id);
  }
  auto client = ConnectFrom(o);
  if (!client.ok()) return Report(client.status());
  const bool json = o.Flag("json");
  if (cmd == "jobs") {
    auto jobs = client->Jobs();
    if (!jobs.ok()) return Report(jobs.status());
    if (json) {
      std::cout << "[";
      for (std::size_t i = 0; i < jobs->size(); ++i)
        std::cout << (i ? "," : "") << InfoJson((*jobs)[i]);
      std::cout << "]" << std::endl;
    } else {
      std::printf("%-6s %-11s %-10s %-9s %s\n", "JOB", "TASK", "STATE", "PRIORITY",
                  "UNITS DONE/TOTAL (FAILED)");
      for (const auto& j : *jobs)
        std::printf("%-6llu %-11s %-10s %-9d %llu/%llu (%llu)\n",
                    static_cast<unsigned long long>(j.id), cli::ShownTask(j).c_str(),
                    std::string(JobStateName(j.state)).c_str(), j.priority,
                    static_cast<unsigned long long>(j.units_done),
                    static_cast<unsigned long long>(j.units_total),
                    static_cast<unsigned long long>(j.units_failed));
    }
    return 0;
  }
  if (cmd == "peers") {
    auto peers = client->Peers();
    if (!peers.ok()) return Report(peers.status());
    if (json) {
      std::cout << "[";
      for (std::size_t i = 0; i < peers->size(); ++i) {
        const auto& p = (*peers)[i];
        std::cout << (i ? "," : "") << "{\"peer\":" << JsonString(p.peer_id)
                  << ",\"host\":" << JsonString(p.hostname) << ",\"cores\":" << p.cores
                  << ",\"slots\":" << p.slots << ",\"idle_slots\":" << p.idle_slots
                  << ",\"state\":" << JsonString(p.state) << ",\"running\":" << p.running
                  << ",\"units_done\":" << p.units_done << ",\"cpu_seconds\":" << p.cpu_seconds
                  << ",\"silent_seconds\":" << p.silent_seconds
                  << ",\"units_invalid\":" << p.units_invalid
                  << ",\"credibility\":" << p.credibility << "}";
      }
      std::cout << "]" << std::endl;
    } else {
      std::printf("%-24s %-16s %-6s %-10s %-8s %-10s %-8s %-12s %s\n", "PEER", "HOST", "CORES",
                  "STATE", "RUNNING", "VALIDATED", "INVALID", "CREDIBILITY", "CPU-S CREDITED");
      for (const auto& p : *peers)
        std::printf("%-24s %-16s %-6u %-10s %-8llu %-10llu %-8llu %-12.4f %.1f\n",
                    p.peer_id.c_str(), p.hostname.c_str(), p.cores, p.state.c_str(),
                    static_cast<unsigned long long>(p.running),
                    static_cast<unsigned long long>(p.units_done),
                    static_cast<unsigned long long>(p.units_invalid), p.credibility, p.cpu_seconds);
    }
    return 0;
  }
  if (cmd == "packages") {
    auto pkgs = client->Packages();
    if (!pkgs.ok()) return Report(pkgs.status());
    if (json) {
      std::cout << "[";
      for (std::size_t i = 0; i < pkgs->size(); ++i) {
        const auto& p = (*pkgs)[i];
        std::cout << (i ? "," : "") << "{\"id\":" << JsonString(p.id)
                  << ",\"name\":" << JsonString(p.name) << ",\"version\":" << JsonString(p.version)
                  << ",\"kind\":" << JsonString(p.kind) << ",\"size\":" << p.size
                  << ",\"signer\":" << JsonString(p.signer) << "}";
      }
      std::cout << "]" << std::endl;
    } else {
      std::printf("%-64s  %-20s %-10s %-8s %12s  %s\n", "ID", "NAME", "VERSION", "KIND", "BYTES",
                  "SIGNER");
      for (const auto& p : *pkgs)
        std::printf("%-64s  %-20s %-10s %-8s %12llu  %s\n", p.id.c_str(), p.name.c_str(),
                    p.version.c_str(), p.kind.c_str(), static_cast<unsigned long long>(p.size),
                    p.signer.empty() ? "(unsigned)" : p.signer.c_str());
    }
    return 0;
  }
  if (cmd == "status") {
    auto info = client->Status(job_id);
    if (!info.ok()) return Report(info.status());
    if (json)
      std::cout << InfoJson(*info) << std::endl;
    else
      std::printf("job %llu (%s): %s, %llu/%llu units done, %llu running, %llu failed%s%s\n",
                  static_cast<unsigned long long>(info->id), info->task.c_str(),
                  std::string(JobStateName(info->state)).c_str(),
                  static_cast<unsigned long long>(info->units_done),
                  static_cast<unsigned long long>(info->units_total),
                  static_cast<unsigned long long>(info->units_running),
                  static_cast<unsigned long long>(info->units_failed),
                  info->error.empty() ? "" : ": ", info->error.c_str());
    if (!json && !info->waiting.empty()) std::printf("waiting: %s\n", info->waiting.c_str());
    return 0;
  }
  if (cmd == "cancel") {
    if (Status s = client->Cancel(job_id); !s.ok()) return Report(s);
    if (!json)
      std::printf("job %llu cancelled\n", static_cast<unsigned long long>(job_id));
    else
      std::cout << "{\"job\":" << job_id << ",\"state\":\"cancelled\"}" << std::endl;
    return 0;
  }
  // wait
  const auto start = std::chrono::steady_clock::now();
  if (o.Get("package").empty() && !o.Extra().empty())
    return Usage("--" + o.Extra().begin()->first + ": job parameters go with --package");
  auto job = client->Attach(job_id, o.Get("package"), o.Extra());
  if (!job.ok()) return Report(job.status());
  auto result = job->Wait();
  if (!result.ok()) return Report(result.status());
  return PrintResult(
      o, *result, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
}

int Tasks(const std::vector<std::string>& args) {
  const auto& reg = tasks::Registry::BuiltIn();
  if (!args.empty() && args[0] != "--help") {
    const tasks::Task* t = reg.Find(args[0]);
    if (!t) return Usage("no task named " + args[0]);
    std::cout << TaskHelp(*t);
    return 0;
  }
  for (const auto* t : reg.All())
    std::printf("%-12s v%-3u %s\n", std::string(t->Name()).c_str(), t->Version(),
                std::string(t->Summary()).c_str());
  return 0;
}

}  // namespace

// `sparecycles top`: options here, the view in cli_views.cpp.
static int TopCommand(const std::vector<std::string>& args) {
  Options o(
      "sparecycles top [options]",
      "Shows the coordinator's jobs (progress, units/s, ETA) and peers (state, cores, units/s,\n"
      "credibility), refreshed in place. --once prints one frame, for `watch sparecycles top "
      "--once`.",
      "SPARECYCLES_");
  AddConnectionOptions(o);
  o.Add("interval", "1s", "Time between refreshes.");
  o.Add("iterations", "0", "Stop after this many refreshes; 0 = until Ctrl-C.");
  o.AddFlag("once", "Print one frame and exit (rates need two frames: shown as 0).");
  if (Status s = o.Parse(args); !s.ok()) return Usage(s.message());
  if (o.HelpRequested()) {
    std::cout << o.Help();
    return 0;
  }
  auto interval = o.GetSeconds("interval");
  auto iterations = o.GetInt("iterations", 0, 1000000);
  if (!interval.ok() || *interval < 0.05) return Usage("--interval: at least 50ms");
  if (!iterations.ok()) return Usage(iterations.status().message());
  auto client = ConnectFrom(o);
  if (!client.ok()) return Report(client.status());
  cli::TopOptions t;
  t.interval_seconds = *interval;
  t.iterations = static_cast<int>(*iterations);
  t.once = o.Flag("once");
  return cli::Top(*client, t);
}

namespace {
int Main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h" ||
      std::string(argv[1]) == "help") {
    std::cout << kUsage;
    return argc < 2 ? 2 : 0;
  }
  const std::string cmd = argv[1];
  std::vector<std::string> args(argv + 2, argv + argc);
  if (cmd == "run") return RunJob(args, true);
  if (cmd == "submit") return RunJob(args, false);
  if (cmd == "tasks") return Tasks(args);
  if (cmd == "key") return cli::KeyCommand(args);
  if (cmd == "package") return cli::PackageCommand(args);
  if (cmd == "top") return TopCommand(args);  // terminal views
  if (cmd == "status" || cmd == "wait" || cmd == "cancel" || cmd == "jobs" || cmd == "peers" ||
      cmd == "packages")
    return Simple(cmd, args);
  return Usage("unknown command '" + cmd + "'\n\n" + kUsage);
}
}  // namespace

int main(int argc, char** argv) {
  try {
    return Main(argc, argv);
  } catch (const std::exception& e) {  // a bug or out of memory: say so rather than abort
    return Report(Internal(std::string("unexpected exception: ") + e.what()));
  } catch (...) {
    return Report(Internal("unexpected exception"));
  }
}
