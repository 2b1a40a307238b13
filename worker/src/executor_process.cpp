#include "executor_process.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "executor_wire.hpp"
#include "sparecycles/core/log.hpp"
#include "sparecycles/package/manifest.hpp"

extern char** environ;

namespace sparecycles::worker {

namespace fs = std::filesystem;

// One unit, from Start until TakeFinished() hands it back. Every field is guarded by the
// executor's mutex; `lease`, `package`, `resume` and `seq` never change after Start().
struct ProcessExecutor::Unit {
  proto::Lease lease;
  std::shared_ptr<const PackageRef> package;
  std::optional<std::string> resume;
  float resumed_from = -1;
  unsigned threads = 1;  // TBB threads of a native unit: its share of the slots when it was queued
  std::uint64_t seq = 0;

  Phase phase = Phase::kQueued;
  pid_t pid = -1;
  int wake_fd = -1;     // eventfd the supervisor polls; written when a request changes
  bool paused = false;  // wanted stopped (SIGSTOP) by the slot budget
  bool cancel = false;  // Cancel() was called
  bool hand_back = false;
  bool kill_now = false;  // shutdown: SIGKILL without grace
  std::string cancel_reason;

  float progress = 0, first_progress = -1;
  std::optional<proto::Checkpoint> upload;
  std::uint64_t saved = 0;
  std::optional<proto::ResultMsg> result;  // set when phase == kDone
  std::thread thread;

  void Wake() const {
    if (wake_fd >= 0) {
      const std::uint64_t one = 1;
      (void)!::write(wake_fd, &one, sizeof(one));
    }
  }
  float ResumedFrom() const {
    if (!resume) return -1;
    if (resumed_from >= 0) return resumed_from;
    return std::max(0.0f, first_progress);
  }
};

namespace {

constexpr std::size_t kStderrTail = 4096;
constexpr auto kTick = std::chrono::milliseconds(50);

// The processes `pid`'s threads started (/proc/PID/task/TID/children).
std::vector<pid_t> ChildrenOf(pid_t pid) {
  std::vector<pid_t> out;
  const std::string task_dir = "/proc/" + std::to_string(pid) + "/task";
  DIR* d = ::opendir(task_dir.c_str());
  if (d == nullptr) return out;
  while (const dirent* e = ::readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    std::ifstream in(task_dir + "/" + e->d_name + "/children");
    long c = 0;
    while (in >> c)
      if (c > 0) out.push_back(static_cast<pid_t>(c));
  }
  ::closedir(d);
  return out;
}

// Signals the executor's process group, and the groups of the programs it started (a command
// unit's program leads a group of its own). Only called by the unit's supervisor before it has
// reaped the executor, so `pid` (and its group id) cannot belong to anyone else.
void SignalUnit(pid_t pid, int sig) {
  // For SIGKILL, freeze the executor first so it starts nothing new while its children are found.
  if (sig == SIGKILL || sig == SIGSTOP) (void)::kill(-pid, SIGSTOP);
  for (pid_t c : ChildrenOf(pid))
    if (::kill(-c, sig) != 0) (void)::kill(c, sig);
  (void)::kill(-pid, sig);
}

std::string SignalText(int sig) {
  const char* abbrev = ::sigabbrev_np(sig);
  std::string name = abbrev != nullptr ? std::string("SIG") + abbrev : "signal";
  return name + " (signal " + std::to_string(sig) + ")";
}

// `head`, then as much of the end of stderr as fits in the protocol's text limit.
std::string WithStderr(std::string head, const std::string& tail) {
  if (head.size() > proto::kMaxTextBytes) head.resize(proto::kMaxTextBytes);
  std::string t = tail;
  while (!t.empty() && (t.back() == '\n' || t.back() == '\r')) t.pop_back();
  if (t.empty()) return head;
  const std::string sep = "; stderr: ";
  if (head.size() + sep.size() >= proto::kMaxTextBytes) return head;
  const std::size_t budget = proto::kMaxTextBytes - head.size() - sep.size();
  if (t.size() > budget) t = t.substr(t.size() - budget);
  return head + sep + t;
}

int DupHigh(int fd) {
  const int high = ::fcntl(fd, F_DUPFD_CLOEXEC, 10);
  ::close(fd);
  return high;
}

std::vector<std::string> ChildEnvironment(const std::string& dir) {
  std::vector<std::string> env = {"PATH=/usr/bin:/bin", "LC_ALL=C", "HOME=" + dir, "TMPDIR=" + dir};
  // Sanitizer settings reach an instrumented executor; nothing else of the worker's environment
  // (which may hold secrets) does.
  for (const char* name : {"UBSAN_OPTIONS", "LSAN_OPTIONS", "TSAN_OPTIONS"})
    if (const char* v = std::getenv(name)) env.push_back(std::string(name) + "=" + v);
  // AddressSanitizer's own handlers would turn a crash of user code into exit status 1; leave
  // fatal signals to the kernel so the unit fails with the signal's name. (No effect on an
  // uninstrumented executor.)
  const char* asan = std::getenv("ASAN_OPTIONS");
  env.push_back(std::string("ASAN_OPTIONS=") + (asan != nullptr ? std::string(asan) + ":" : "") +
                "handle_segv=0:handle_sigbus=0:handle_sigfpe=0:handle_sigill=0:handle_abort=0:"
                // ...and a huge allocation fails as it does uninstrumented (the memory limit), not
                // by aborting the executor.
                "allocator_may_return_null=1");
  return env;
}

}  // namespace

std::string DefaultExecutorPath() {
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const fs::path beside = self.parent_path() / "sparecycles-executor";
    if (::access(beside.c_str(), X_OK) == 0) return beside.string();
  }
#ifdef SPARECYCLES_EXECUTOR_INSTALLED
  return SPARECYCLES_EXECUTOR_INSTALLED;
#else
  return "/usr/libexec/sparecycles/sparecycles-executor";
#endif
}

ProcessExecutor::ProcessExecutor(ProcessExecutorConfig config, std::function<void()> on_finished)
    : config_(std::move(config)), on_finished_(std::move(on_finished)), allowed_(config_.slots) {}

ProcessExecutor::~ProcessExecutor() {
  std::vector<std::thread> threads;
  {
    std::unique_lock lock(mu_);
    shutting_down_ = true;
    for (auto& [id, u] : units_) {
      if (u->phase == Phase::kStarting || u->phase == Phase::kRunning) {
        u->kill_now = true;
        u->Wake();
      }
    }
    idle_cv_.wait(lock, [&] { return AliveLocked() == 0; });
    threads.swap(exited_threads_);
  }
  for (auto& t : threads) t.join();
}

void ProcessExecutor::Start(UnitStart unit) {
  auto u = std::make_shared<Unit>();
  u->lease = std::move(unit.lease);
  u->package = std::move(unit.package);
  u->resume = std::move(unit.resume);
  u->resumed_from = unit.resumed_from;
  bool notify = false;
  {
    std::lock_guard lock(mu_);
    u->seq = next_seq_++;
    const std::uint64_t id = u->lease.lease_id;
    if (units_.count(id) != 0) {
      SC_LOG(Warn) << "lease " << id << " started twice; the second start is ignored";
      return;
    }
    units_.emplace(id, u);
    // Units that run side by side share the slots, as built-in units share the worker's arena.
    const auto sharing =
        static_cast<unsigned>(std::clamp<std::size_t>(units_.size(), 1, config_.slots));
    u->threads = std::max(1u, config_.slots / std::max(1u, sharing));
    if (u->package == nullptr) {
      proto::ResultMsg r;
      r.outcome = proto::UnitOutcome::kFailed;
      r.error = "task " + u->lease.task + " is not a package: it runs in-process";
      FinishLocked(*u, std::move(r));
      notify = notify_pending_;
    }
    notify = ScheduleLocked() || notify;
    if (notify) notify_pending_ = false;
  }
  if (notify) on_finished_();
}

void ProcessExecutor::Cancel(std::uint64_t lease_id, const std::string& why, bool hand_back) {
  bool notify = false;
  {
    std::lock_guard lock(mu_);
    auto it = units_.find(lease_id);
    if (it == units_.end()) return;
    Unit& u = *it->second;
    if (u.phase == Phase::kDone || u.cancel) return;
    u.cancel = true;
    u.hand_back = hand_back;
    u.cancel_reason = why.empty() ? "cancelled" : why;
    if (u.phase == Phase::kQueued) {
      proto::ResultMsg r;
      r.outcome = proto::UnitOutcome::kCancelled;
      r.error = u.cancel_reason;
      FinishLocked(u, std::move(r));
    } else {
      u.Wake();
    }
    notify = ScheduleLocked() || notify_pending_;
    if (notify) notify_pending_ = false;
  }
  if (notify) on_finished_();
}

void ProcessExecutor::CancelAll(const std::string& why, bool hand_back) {
  std::vector<std::uint64_t> ids;
  {
    std::lock_guard lock(mu_);
    for (const auto& [id, u] : units_) ids.push_back(id);
  }
  for (std::uint64_t id : ids) Cancel(id, why, hand_back);
}

void ProcessExecutor::SetSlots(unsigned slots) {
  bool notify = false;
  {
    std::lock_guard lock(mu_);
    allowed_ = std::min(slots, config_.slots);
    notify = ScheduleLocked();
    if (notify) notify_pending_ = false;
  }
  if (notify) on_finished_();
}

std::size_t ProcessExecutor::running() const {
  std::lock_guard lock(mu_);
  return units_.size();
}

std::vector<UnitView> ProcessExecutor::Units() const {
  std::lock_guard lock(mu_);
  std::vector<UnitView> out;
  out.reserve(units_.size());
  for (const auto& [id, u] : units_) {
    UnitView v;
    v.lease_id = id;
    v.job_id = u->lease.job_id;
    v.unit_index = u->lease.unit_index;
    v.task = u->lease.task;
    v.progress = u->progress;
    v.resumed_from = u->ResumedFrom();
    v.started = u->phase != Phase::kQueued;
    v.waiting = u->paused && u->phase != Phase::kDone;
    out.push_back(std::move(v));
  }
  return out;
}

std::vector<proto::Checkpoint> ProcessExecutor::TakeCheckpoints(std::uint64_t* saved) {
  std::lock_guard lock(mu_);
  std::vector<proto::Checkpoint> out;
  for (auto& [id, u] : units_) {
    if (u->upload) out.push_back(std::move(*u->upload));
    u->upload.reset();
    *saved += std::exchange(u->saved, 0);
  }
  return out;
}

std::vector<FinishedUnit> ProcessExecutor::TakeFinished() {
  std::vector<FinishedUnit> out;
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(mu_);
    for (std::uint64_t id : finished_) {
      auto it = units_.find(id);
      if (it == units_.end()) continue;
      Unit& u = *it->second;
      FinishedUnit f;
      f.handed_back = u.cancel && u.hand_back;
      f.stopped_by_us = u.cancel && !u.hand_back;
      f.resumed = u.resume.has_value();
      f.resumed_from = u.ResumedFrom();
      f.checkpoint = std::move(u.upload);
      f.checkpoints_saved = u.saved;
      f.lease = std::move(u.lease);
      f.result = std::move(*u.result);
      out.push_back(std::move(f));
      units_.erase(it);
    }
    finished_.clear();
    notify_pending_ = false;
    threads.swap(exited_threads_);
  }
  for (auto& t : threads) t.join();
  return out;
}

void ProcessExecutor::WaitIdle() {
  std::vector<std::thread> threads;
  {
    std::unique_lock lock(mu_);
    idle_cv_.wait(lock, [&] {
      return std::none_of(units_.begin(), units_.end(),
                          [](const auto& kv) { return kv.second->phase != Phase::kDone; });
    });
    threads.swap(exited_threads_);
  }
  for (auto& t : threads) t.join();
}

std::vector<pid_t> ProcessExecutor::Pids() const {
  std::lock_guard lock(mu_);
  std::vector<pid_t> out;
  for (const auto& [id, u] : units_)
    if (u->phase == Phase::kRunning && u->pid > 0) out.push_back(u->pid);
  return out;
}

unsigned ProcessExecutor::AliveLocked() const {
  unsigned n = 0;
  for (const auto& [id, u] : units_)
    if (u->phase == Phase::kStarting || u->phase == Phase::kRunning) ++n;
  return n;
}

unsigned ProcessExecutor::LiveLocked() const {
  unsigned n = 0;
  for (const auto& [id, u] : units_)
    if ((u->phase == Phase::kStarting || u->phase == Phase::kRunning) && !u->paused) ++n;
  return n;
}

// Applies the slot budget: pauses the newest running units while more run than allowed,
// continues the oldest paused ones while fewer do, then starts queued units in order, never more
// processes than the configured size. Returns whether a finished unit still needs announcing.
bool ProcessExecutor::ScheduleLocked() {
  if (shutting_down_) return notify_pending_;
  unsigned live = LiveLocked();
  unsigned alive = AliveLocked();
  auto alive_unit = [](const Unit& u) {
    return (u.phase == Phase::kStarting || u.phase == Phase::kRunning) && !u.cancel;
  };
  while (live > allowed_) {
    Unit* newest = nullptr;
    for (auto& [id, u] : units_)
      if (alive_unit(*u) && !u->paused && (newest == nullptr || u->seq > newest->seq))
        newest = u.get();
    if (newest == nullptr) break;  // only cancelled units are left; they end on their own
    newest->paused = true;
    newest->Wake();
    --live;
  }
  while (live < allowed_) {
    Unit* oldest = nullptr;
    for (auto& [id, u] : units_)
      if (alive_unit(*u) && u->paused && (oldest == nullptr || u->seq < oldest->seq))
        oldest = u.get();
    if (oldest == nullptr) break;
    oldest->paused = false;
    oldest->Wake();
    ++live;
  }
  while (live < allowed_ && alive < config_.slots) {
    std::shared_ptr<Unit> next;
    for (auto& [id, u] : units_)
      if (u->phase == Phase::kQueued && (next == nullptr || u->seq < next->seq)) next = u;
    if (next == nullptr) break;
    next->phase = Phase::kStarting;
    next->wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    next->thread = std::thread([this, next] { Supervise(next); });
    ++live;
    ++alive;
  }
  return notify_pending_;
}

void ProcessExecutor::FinishLocked(Unit& u, proto::ResultMsg r) {
  r.lease_id = u.lease.lease_id;
  r.job_id = u.lease.job_id;
  r.unit_index = u.lease.unit_index;
  if (r.error.size() > proto::kMaxTextBytes) r.error.resize(proto::kMaxTextBytes);
  u.result = std::move(r);
  u.phase = Phase::kDone;
  if (u.wake_fd >= 0) {
    ::close(u.wake_fd);
    u.wake_fd = -1;
  }
  if (finished_.empty()) notify_pending_ = true;
  finished_.push_back(u.lease.lease_id);
  idle_cv_.notify_all();
}

// A supervisor thread: spawns the unit's executor process, serves it until it has exited, and
// reports the unit. The thread that spawns a process must outlive it (PR_SET_PDEATHSIG fires when
// the spawning *thread* ends), which is why the supervisor, not the loop thread, spawns it.
void ProcessExecutor::Supervise(const std::shared_ptr<Unit>& unit) {
  Unit& u = *unit;
  proto::ResultMsg r;
  const std::string dir = config_.work_root + "/unit-" + std::to_string(u.lease.lease_id);
  std::error_code ec;
  fs::remove_all(dir, ec);
  int sv[2] = {-1, -1};
  int errp[2] = {-1, -1};
  pid_t pid = -1;
  std::string spawn_error;
  const std::string exe =
      config_.executor_path.empty() ? DefaultExecutorPath() : config_.executor_path;
  if (!fs::create_directory(dir, ec) || ec) {
    spawn_error = "cannot create the unit's directory " + dir + ": " + ec.message();
  } else if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0 ||
             ::pipe2(errp, O_CLOEXEC) != 0) {
    spawn_error = std::string("cannot make the executor's channel: ") + std::strerror(errno);
  } else {
    fs::permissions(dir, fs::perms::owner_all, ec);
    if (std::string e = ShareWithSandboxUser(dir, u.package->dir); !e.empty()) spawn_error = e;
  }
  if (spawn_error.empty()) {
    // Above 3, so the dup2s below never overwrite one another.
    sv[1] = DupHigh(sv[1]);
    errp[1] = DupHigh(errp[1]);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, errp[1], 2);
    posix_spawn_file_actions_adddup2(&fa, sv[1], 3);
    posix_spawn_file_actions_addclosefrom_np(&fa, 4);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    // It leads its own process group from its first instruction, so a stop or kill by group
    // never misses it.
    posix_spawnattr_setflags(
        &attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setpgroup(&attr, 0);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    std::vector<std::string> args = {exe, "--fd", "3"};
    std::vector<std::string> env = ChildEnvironment(dir);
    env.push_back("SPARECYCLES_UNIT_THREADS=" + std::to_string(u.threads));
    std::vector<char*> cargv, cenv;
    for (auto& a : args) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    for (auto& e : env) cenv.push_back(e.data());
    cenv.push_back(nullptr);
    const int rc = ::posix_spawn(&pid, exe.c_str(), &fa, &attr, cargv.data(), cenv.data());
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) {
      pid = -1;
      spawn_error = "cannot start " + exe + ": " + std::strerror(rc);
    }
  }
  for (int* fd : {&sv[1], &errp[1]})
    if (*fd >= 0) ::close(std::exchange(*fd, -1));

  if (pid > 0) {
    {
      std::lock_guard lock(mu_);
      u.pid = pid;
      u.phase = Phase::kRunning;
    }
    Serve(u, sv[0], errp[0], r);
  } else {
    r.outcome = proto::UnitOutcome::kFailed;
    r.error = spawn_error;
    SC_LOG(Warn) << "unit " << u.lease.job_id << "/" << u.lease.unit_index << ": " << spawn_error;
  }
  for (int fd : {sv[0], errp[0]})
    if (fd >= 0) ::close(fd);
  fs::remove_all(dir, ec);

  bool notify = false;
  {
    std::lock_guard lock(mu_);
    FinishLocked(u, std::move(r));
    exited_threads_.push_back(std::move(u.thread));
    notify = ScheduleLocked();
    if (notify) notify_pending_ = false;
  }
  if (notify) on_finished_();
}

std::string ProcessExecutor::ShareWithSandboxUser(const std::string& unit_dir,
                                                  const std::string& package_dir) {
  if (!config_.sandbox || ::geteuid() != 0) return "";
  if (::chown(unit_dir.c_str(), config_.sandbox_uid, config_.sandbox_gid) != 0)
    return "cannot give the unit's directory to the sandbox user: " +
           std::string(std::strerror(errno));
  {
    std::lock_guard lock(mu_);
    if (shared_packages_.count(package_dir) != 0) return "";
  }
  // The package's files: group = the sandbox group, group may read (and enter, and run what is
  // executable); never write. Its ancestors: others may pass through (not list).
  std::error_code ec;
  auto share = [&](const fs::path& p) {
    if (::lchown(p.c_str(), static_cast<uid_t>(-1), config_.sandbox_gid) != 0) return false;
    const fs::file_status st = fs::symlink_status(p, ec);
    if (fs::is_symlink(st)) return true;
    fs::perms add = fs::perms::group_read;
    if (fs::is_directory(st) || (st.permissions() & fs::perms::owner_exec) != fs::perms::none)
      add |= fs::perms::group_exec;
    fs::permissions(p, add, fs::perm_options::add, ec);
    return !ec;
  };
  if (!share(package_dir)) return "cannot share the package with the sandbox user";
  for (auto it = fs::recursive_directory_iterator(package_dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
    if (!share(it->path())) return "cannot share the package with the sandbox user";
  for (fs::path p = fs::path(package_dir).parent_path(); p.has_relative_path(); p = p.parent_path())
    fs::permissions(p, fs::perms::others_exec, fs::perm_options::add, ec);
  for (fs::path p = fs::path(unit_dir).parent_path(); p.has_relative_path(); p = p.parent_path())
    fs::permissions(p, fs::perms::others_exec, fs::perm_options::add, ec);
  std::lock_guard lock(mu_);
  shared_packages_.insert(package_dir);
  return "";
}

// Talks to a running executor until it has exited, then reaps it and fills in `r`.
void ProcessExecutor::Serve(Unit& u, int sock, int err_fd, proto::ResultMsg& r) {
  const Clock& clock = *config_.clock;
  const TimePoint t0 = clock.Now();
  const pid_t pid = u.pid;
  const package::Manifest& m = u.package->manifest;
  const double limit_s =
      config_.time_limit_factor * std::max<double>(1, m.resources.expected_seconds);
  const Duration limit = FromSeconds(limit_s);

  wire::Start start;
  start.lease_id = u.lease.lease_id;
  start.job_id = u.lease.job_id;
  start.unit_index = u.lease.unit_index;
  start.kind = m.kind;
  start.package_dir = u.package->dir;
  start.manifest = package::EncodeManifest(m);
  start.unit = u.lease.unit;
  start.resume = u.resume;
  start.checkpoint_interval_ms = static_cast<std::uint32_t>(
      std::clamp<std::int64_t>(ToMillis(config_.checkpoint_interval), 0, UINT32_MAX));
  start.time_limit_ms =
      static_cast<std::uint32_t>(std::clamp<double>(limit_s * 1000, 0, UINT32_MAX));
  start.work_dir = config_.work_root + "/unit-" + std::to_string(u.lease.lease_id);
  start.sandbox = config_.sandbox ? wire::SandboxMode::kRequired : wire::SandboxMode::kOff;
  start.memory_limit_bytes = m.resources.memory_bytes;
  if (config_.memory_cap_bytes != 0)
    start.memory_limit_bytes = std::min(start.memory_limit_bytes, config_.memory_cap_bytes);
  const double cpu_factor =
      config_.cpu_limit_factor > 0
          ? config_.cpu_limit_factor
          : config_.time_limit_factor * std::max(1u, std::thread::hardware_concurrency());
  start.cpu_limit_seconds = static_cast<std::uint32_t>(std::clamp<double>(
      std::ceil(cpu_factor * std::max<double>(1, m.resources.expected_seconds)), 1, UINT32_MAX));
  start.sandbox_uid = config_.sandbox_uid;
  start.sandbox_gid = config_.sandbox_gid;
  start.disable_layer_for_test = config_.disable_layer_for_test;
  std::string malformed, start_error;
  // A unit too large to send fails; an unavailable channel means the executor died (its exit
  // status says why).
  if (Status s = wire::WriteFrame(sock, start); !s.ok() && s.code() != StatusCode::kUnavailable)
    start_error = s.ToString();

  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  wire::FrameReader frames;
  std::string tail;
  std::optional<wire::Done> done;
  bool sock_open = true, err_open = true, exited = false;
  bool stopped = false;  // SIGSTOP sent and not yet continued
  bool killed = false, time_killed = false, cancel_sent = false;
  TimePoint cancel_at{}, stopped_since{}, done_at{};
  Duration stopped_total{};
  char buf[64 * 1024];

  auto kill_unit = [&] {
    if (!killed) SignalUnit(pid, SIGKILL);
    killed = true;
  };
  auto handle = [&](wire::Message& msg) {
    if (auto* p = std::get_if<wire::Progress>(&msg)) {
      std::lock_guard lock(mu_);
      u.progress = p->fraction;
      if (u.first_progress < 0) u.first_progress = p->fraction;
    } else if (auto* c = std::get_if<wire::Checkpoint>(&msg)) {
      if (config_.store != nullptr) config_.store->Save(u.lease, c->fraction, c->state);
      std::lock_guard lock(mu_);
      u.upload = proto::Checkpoint{u.lease.lease_id, u.lease.job_id, u.lease.unit_index,
                                   c->fraction, std::move(c->state)};
      ++u.saved;
    } else if (auto* d = std::get_if<wire::Done>(&msg)) {
      if (done) malformed = "a second Done message";
      done = std::move(*d);
      done_at = clock.Now();
    } else {
      malformed = "a message only the worker sends";
    }
  };
  if (!start_error.empty()) kill_unit();

  while (!exited) {
    bool want_stop = false, cancel = false, kill_now = false;
    std::string reason;
    {
      std::lock_guard lock(mu_);
      want_stop = u.paused;
      cancel = u.cancel;
      kill_now = u.kill_now;
      reason = u.cancel_reason;
    }
    const TimePoint now = clock.Now();
    if (!killed && want_stop != stopped) {
      SignalUnit(pid, want_stop ? SIGSTOP : SIGCONT);
      if (want_stop) {
        stopped_since = now;
      } else {
        stopped_total += now - stopped_since;
      }
      stopped = want_stop;
    }
    if (kill_now) kill_unit();
    if (cancel && !killed) {
      // A paused unit uses no CPU and cannot read the Cancel: it ends at once; a running one
      // gets the grace to stop at its next Progress().
      const bool grace_over = cancel_sent && now - cancel_at >= config_.kill_grace;
      if (stopped || grace_over) {
        kill_unit();
      } else if (!cancel_sent) {
        cancel_sent = true;
        cancel_at = now;
        if (auto f = wire::EncodeFrame(wire::Cancel{reason}); f.ok())
          (void)::send(sock, f->data(), f->size(), MSG_DONTWAIT | MSG_NOSIGNAL);
      }
    }
    // An executor exits right after Done; one that lingers is ended after the grace.
    if (done && !killed && now - done_at >= config_.kill_grace) kill_unit();
    const Duration ran = now - t0 - stopped_total - (stopped ? now - stopped_since : Duration{});
    if (!killed && ran > limit) {
      time_killed = true;
      kill_unit();
    }

    pollfd pfd[4];
    int n = 0;
    const int sock_i = sock_open ? n : -1;
    if (sock_open) pfd[n++] = {sock, POLLIN, 0};
    const int err_i = err_open ? n : -1;
    if (err_open) pfd[n++] = {err_fd, POLLIN, 0};
    const int pid_i = pidfd >= 0 ? n : -1;
    if (pidfd >= 0) pfd[n++] = {pidfd, POLLIN, 0};
    int wake_fd = -1;
    {
      std::lock_guard lock(mu_);
      wake_fd = u.wake_fd;
    }
    const int wake_i = n;
    pfd[n++] = {wake_fd, POLLIN, 0};
    const int pr = ::poll(pfd, static_cast<nfds_t>(n), static_cast<int>(kTick.count()));
    if (pr < 0 && errno != EINTR) break;
    if (pr > 0 && (pfd[wake_i].revents & POLLIN) != 0) {
      std::uint64_t v = 0;
      (void)!::read(wake_fd, &v, sizeof(v));
    }
    if (sock_i >= 0 && pr > 0 && pfd[sock_i].revents != 0) {
      const ssize_t got = ::recv(sock, buf, sizeof(buf), MSG_DONTWAIT);
      if (got > 0) {
        frames.Append(std::string_view(buf, static_cast<std::size_t>(got)));
        while (true) {
          auto msg = frames.Next();
          if (!msg.ok()) {
            malformed = msg.status().message();
          } else if (msg->has_value()) {
            handle(**msg);
          }
          if (!malformed.empty()) {
            // A confused or hostile executor: stop listening and end it.
            sock_open = false;
            kill_unit();
            break;
          }
          if (!msg.ok() || !msg->has_value()) break;
        }
      } else if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
        sock_open = false;
      }
    }
    if (err_i >= 0 && pr > 0 && pfd[err_i].revents != 0) {
      const ssize_t got = ::read(err_fd, buf, sizeof(buf));
      if (got > 0) {
        tail.append(buf, static_cast<std::size_t>(got));
        if (tail.size() > 2 * kStderrTail) tail.erase(0, tail.size() - kStderrTail);
      } else if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
        err_open = false;
      }
    }
    if (pid_i < 0 || (pr > 0 && pfd[pid_i].revents != 0) || !sock_open) {
      // WNOWAIT: the executor stays unreaped (its pid and group id ours) until its group is gone.
      siginfo_t info{};
      if (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
          info.si_pid == pid)
        exited = true;
    }
  }
  // Whatever the executor left behind in its group ends with it; then what it wrote last is read.
  (void)::kill(-pid, SIGKILL);
  while (sock_open) {
    const ssize_t got = ::recv(sock, buf, sizeof(buf), MSG_DONTWAIT);
    if (got <= 0) break;
    frames.Append(std::string_view(buf, static_cast<std::size_t>(got)));
    while (malformed.empty()) {
      auto msg = frames.Next();
      if (!msg.ok()) malformed = msg.status().message();
      if (!msg.ok() || !msg->has_value()) break;
      handle(**msg);
    }
  }
  while (err_open) {
    const ssize_t got = ::read(err_fd, buf, sizeof(buf));
    if (got <= 0) break;
    tail.append(buf, static_cast<std::size_t>(got));
  }
  if (tail.size() > kStderrTail) tail.erase(0, tail.size() - kStderrTail);
  int status = 0;
  rusage ru{};
  while (::wait4(pid, &status, 0, &ru) < 0 && errno == EINTR) {
  }
  if (pidfd >= 0) ::close(pidfd);
  {
    std::lock_guard lock(mu_);
    u.pid = -1;
  }
  r.cpu_seconds = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                  static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
  r.wall_seconds = Seconds(clock.Now() - t0);

  bool cancelled = false;
  std::string reason;
  {
    std::lock_guard lock(mu_);
    cancelled = u.cancel || u.kill_now;
    reason = u.kill_now && !u.cancel ? "the worker is stopping" : u.cancel_reason;
  }
  if (done && malformed.empty()) {
    r.outcome = done->outcome;
    if (done->outcome == proto::UnitOutcome::kOk) {
      r.payload = std::move(done->payload);
      r.hash = std::move(done->hash);
    } else if (done->outcome == proto::UnitOutcome::kCancelled) {
      r.error = cancelled ? reason : done->error;
    } else {
      r.error = WithStderr(done->error, tail);
    }
    return;
  }
  if (cancelled) {
    r.outcome = proto::UnitOutcome::kCancelled;
    r.error = reason;
    return;
  }
  r.outcome = proto::UnitOutcome::kFailed;
  std::string why;
  if (!start_error.empty()) {
    why = "cannot hand the unit to the executor: " + start_error;
  } else if (time_killed) {
    why = "the unit exceeded its time limit of " +
          std::to_string(static_cast<long long>(std::llround(limit_s))) + " s";
  } else if (!malformed.empty()) {
    why = "the executor sent a malformed frame: " + malformed;
  } else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGXCPU) {
    why =
        "the unit exceeded its CPU time limit of " + std::to_string(start.cpu_limit_seconds) + " s";
  } else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGXFSZ) {
    why = "the unit exceeded its file size limit (" + SignalText(SIGXFSZ) + ")";
  } else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS) {
    why = "the unit made a system call the sandbox forbids (" + SignalText(SIGSYS) + ")";
  } else if (WIFSIGNALED(status)) {
    why = "user code crashed: " + SignalText(WTERMSIG(status));
  } else if (WIFEXITED(status)) {
    why = "the executor exited with status " + std::to_string(WEXITSTATUS(status)) +
          " without a result";
  } else {
    why = "the executor ended without a result";
  }
  r.error = WithStderr(why, tail);
  SC_LOG(Info) << "unit " << u.lease.job_id << "/" << u.lease.unit_index << " of package " << m.name
               << ": " << why;
}

}  // namespace sparecycles::worker
