#include "executor_process.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
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
  Proc* proc = nullptr;  // the process it was given to (kAssigned, kSent)
  bool cancel = false;   // Cancel() was called
  bool hand_back = false;
  std::string cancel_reason;

  float progress = 0, first_progress = -1;
  std::optional<proto::Checkpoint> upload;
  std::uint64_t saved = 0;
  std::optional<proto::ResultMsg> result;  // set when phase == kDone

  float ResumedFrom() const {
    if (!resume) return -1;
    if (resumed_from >= 0) return resumed_from;
    return std::max(0.0f, first_progress);
  }
};

// One executor process, from the schedule that wanted it until its supervisor has reaped it.
// Guarded by the executor's mutex; `n`, `key`, `package` and `dir` never change.
struct ProcessExecutor::Proc {
  std::uint64_t n = 0;
  std::string key;  // KeyOf() of every unit it may run
  std::shared_ptr<const PackageRef> package;
  std::string dir;

  pid_t pid = -1;
  int wake_fd = -1;  // eventfd the supervisor polls; written when a request changes
  std::thread thread;
  std::deque<std::shared_ptr<Unit>> units;  // given to it, in order: sent ones first
  /// Shared with the process: the lease id of the unit it is running (or ran last); read by the
  /// supervisor after it died. Written by the process, so only a hint about its own units.
  const std::atomic<std::uint64_t>* running = nullptr;
  bool paused = false;    // wanted stopped (SIGSTOP) by the slot budget
  bool ending = false;    // takes no more units; ends once it has none
  bool kill_now = false;  // shutdown: SIGKILL at once

  bool busy() const { return !units.empty(); }
  void Wake() const {
    if (wake_fd >= 0) {
      const std::uint64_t one = 1;
      (void)!::write(wake_fd, &one, sizeof(one));
    }
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

// argv/envp for posix_spawn: pointers into `v` (which must outlive them), then a null.
std::vector<char*> CStrings(std::vector<std::string>& v) {
  std::vector<char*> out;
  out.reserve(v.size() + 1);
  for (auto& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
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

SandboxProbe ProbeSandbox(const std::string& executor_path, std::uint32_t uid, std::uint32_t gid,
                          const std::string& disable_layer) {
  SandboxProbe out;
  const std::string exe = executor_path.empty() ? DefaultExecutorPath() : executor_path;
  char tmpl[] = "/tmp/sparecycles-sandbox-probe-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) {
    out.missing = std::string("cannot make a scratch directory: ") + std::strerror(errno);
    return out;
  }
  const std::string dir = tmpl;
  (void)::chmod(dir.c_str(), 0755);
  if (::geteuid() == 0) (void)::chown(dir.c_str(), uid, gid);
  int outp[2] = {-1, -1};
  if (::pipe2(outp, O_CLOEXEC) != 0) {
    out.missing = std::string("cannot make a pipe: ") + std::strerror(errno);
    (void)::rmdir(dir.c_str());
    return out;
  }
  std::vector<std::string> args = {exe, "--probe", dir, "--probe-user",
                                   std::to_string(uid) + ":" + std::to_string(gid)};
  if (!disable_layer.empty()) args.insert(args.end(), {"--disable-layer-for-test", disable_layer});
  std::vector<std::string> env = ChildEnvironment(dir);
  std::vector<char*> cargv = CStrings(args), cenv = CStrings(env);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, outp[1], 1);
  posix_spawn_file_actions_adddup2(&fa, outp[1], 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, exe.c_str(), &fa, &attr, cargv.data(), cenv.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  ::close(outp[1]);
  if (rc != 0) {
    ::close(outp[0]);
    (void)::rmdir(dir.c_str());
    out.missing = "cannot start " + exe + ": " + std::strerror(rc);
    return out;
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  char buf[4096];
  while (out.report.size() < (64u << 10)) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd pfd{outp[0], POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(left.count())) <= 0) break;
    const ssize_t n = ::read(outp[0], buf, sizeof(buf));
    if (n <= 0) break;
    out.report.append(buf, static_cast<std::size_t>(n));
  }
  ::close(outp[0]);
  (void)::kill(-pid, SIGKILL);  // done or overdue: nothing of it stays
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  (void)::rmdir(dir.c_str());
  std::istringstream lines(out.report);
  for (std::string line; std::getline(lines, line);)
    if (line.find("unavailable") != std::string::npos || line.find("ALLOWED") != std::string::npos)
      out.missing += (out.missing.empty() ? "" : "; ") + line;
  out.ok = WIFEXITED(status) && WEXITSTATUS(status) == 0 && out.missing.empty();
  if (!out.ok && out.missing.empty())
    out.missing =
        "the probe " +
        std::string(WIFEXITED(status) ? "exited with status " + std::to_string(WEXITSTATUS(status))
                                      : "was killed") +
        " without naming a layer";
  return out;
}

ProcessExecutor::ProcessExecutor(ProcessExecutorConfig config, std::function<void()> on_finished)
    : config_(std::move(config)), on_finished_(std::move(on_finished)), allowed_(config_.slots) {}

ProcessExecutor::~ProcessExecutor() {
  std::vector<std::thread> threads;
  {
    std::unique_lock lock(mu_);
    shutting_down_ = true;
    for (auto& p : procs_) {
      p->kill_now = true;
      p->Wake();
    }
    idle_cv_.wait(lock, [&] { return procs_.empty(); });
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
    } else {
      queued_.emplace(u->seq, u);
    }
    notify = ScheduleLocked();
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
    if (u.phase == Phase::kQueued || u.phase == Phase::kAssigned) {
      queued_.erase(u.seq);
      if (u.proc != nullptr) {
        auto& q = u.proc->units;
        q.erase(std::remove(q.begin(), q.end(), it->second), q.end());
        u.proc->Wake();
      }
      proto::ResultMsg r;
      r.outcome = proto::UnitOutcome::kCancelled;
      r.error = u.cancel_reason;
      FinishLocked(u, std::move(r));
    } else if (u.proc != nullptr) {
      u.proc->Wake();
    }
    notify = ScheduleLocked();
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

void ProcessExecutor::SetShortUnits(bool short_units) {
  bool notify = false;
  {
    std::lock_guard lock(mu_);
    if (short_units_ == short_units) return;
    short_units_ = short_units;
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
    v.started = u->phase == Phase::kSent || u->phase == Phase::kDone;
    v.waiting = u->phase != Phase::kDone && u->proc != nullptr && u->proc->paused;
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
  for (const auto& p : procs_)
    if (p->pid > 0) out.push_back(p->pid);
  return out;
}

std::uint64_t ProcessExecutor::processes_started() const {
  std::lock_guard lock(mu_);
  return processes_started_;
}

std::string ProcessExecutor::KeyOf(const Unit& u) const {
  // Same package (its directory is its id's), so the same limits (they follow from its manifest
  // and this executor's configuration). A unit's share of the cores travels with it.
  return u.package->dir;
}

unsigned ProcessExecutor::LiveLocked() const {
  unsigned n = 0;
  for (const auto& p : procs_)
    if (p->busy() && !p->paused) ++n;
  return n;
}

// Applies the slot budget to processes with units: pauses the newest while more run than
// allowed, continues the oldest paused ones while fewer do; ends idle processes the budget has
// no room for; then gives queued units, in order, to an idle process of their package, a new
// process, or (short units) a busy process of their package with room in its batch. Never more
// processes than the configured size. Returns whether a finished unit still needs announcing.
bool ProcessExecutor::ScheduleLocked() {
  if (shutting_down_) return notify_pending_;
  unsigned live = LiveLocked();
  while (live > allowed_) {
    Proc* newest = nullptr;
    for (auto& p : procs_)
      if (p->busy() && !p->paused && (newest == nullptr || p->n > newest->n)) newest = p.get();
    if (newest == nullptr) break;
    newest->paused = true;
    newest->Wake();
    --live;
  }
  while (live < allowed_) {
    Proc* oldest = nullptr;
    for (auto& p : procs_)
      if (p->busy() && p->paused && (oldest == nullptr || p->n < oldest->n)) oldest = p.get();
    if (oldest == nullptr) break;
    oldest->paused = false;
    oldest->Wake();
    ++live;
  }
  unsigned keeping = 0;  // processes not ending
  for (auto& p : procs_)
    if (!p->ending) ++keeping;
  for (auto it = procs_.rbegin(); it != procs_.rend() && keeping > allowed_; ++it) {
    Proc& p = **it;
    if (!p.ending && !p.busy()) {
      p.ending = true;
      p.Wake();
      --keeping;
    }
  }

  const std::size_t cap = short_units_ ? std::max(1u, config_.batch_units) : 1;
  auto give = [&](Proc& p, const std::shared_ptr<Unit>& u) {
    queued_.erase(u->seq);
    u->phase = Phase::kAssigned;
    u->proc = &p;
    p.units.push_back(u);
    p.Wake();
  };
  while (!queued_.empty()) {
    const std::shared_ptr<Unit> u = queued_.begin()->second;
    const std::string key = KeyOf(*u);
    Proc* idle = nullptr;
    Proc* batch = nullptr;
    Proc* other_idle = nullptr;
    for (auto& p : procs_) {
      if (p->ending || p->kill_now) continue;
      if (p->key == key) {
        if (!p->busy() && idle == nullptr) idle = p.get();
        if (p->busy() && !p->paused && p->units.size() < cap &&
            (batch == nullptr || p->units.size() < batch->units.size()))
          batch = p.get();
      } else if (!p->busy() && other_idle == nullptr) {
        other_idle = p.get();
      }
    }
    if (live < allowed_ && idle != nullptr) {
      give(*idle, u);
      ++live;
      continue;
    }
    if (live < allowed_ && procs_.size() < config_.slots) {
      auto p = std::make_shared<Proc>();
      p->n = next_proc_++;
      p->key = key;
      p->package = u->package;
      // Unique in this worker process even when executors share a work root (tests do).
      static std::atomic<std::uint64_t> dirs{0};
      p->dir = config_.work_root + "/exec-" + std::to_string(dirs.fetch_add(1));
      p->wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
      procs_.push_back(p);
      give(*p, u);
      ++live;
      p->thread = std::thread([this, p] { Supervise(p); });
      continue;
    }
    if (live < allowed_ && other_idle != nullptr) {
      // Another package's idle process holds the slot: it ends, and this unit waits for it.
      other_idle->ending = true;
      other_idle->Wake();
    }
    if (batch != nullptr) {
      give(*batch, u);
      continue;
    }
    break;  // in order: later units wait too
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
  u.proc = nullptr;
  if (finished_.empty()) notify_pending_ = true;
  finished_.push_back(u.lease.lease_id);
  idle_cv_.notify_all();
}

// A supervisor thread: spawns the executor process, serves it until it has exited, and hands
// back the units it did not finish. The thread that spawns a process must outlive it
// (PR_SET_PDEATHSIG fires when the spawning *thread* ends), which is why the supervisor, not the
// loop thread, spawns it.
void ProcessExecutor::Supervise(const std::shared_ptr<Proc>& proc) {
  Proc& p = *proc;
  const std::string& dir = p.dir;
  std::error_code ec;
  fs::remove_all(dir, ec);
  int sv[2] = {-1, -1};
  int errp[2] = {-1, -1};
  pid_t pid = -1;
  std::string spawn_error;
  int page_fd = static_cast<int>(::syscall(SYS_memfd_create, "sparecycles-executor", MFD_CLOEXEC));
  void* page = MAP_FAILED;
  if (page_fd >= 0 && ::ftruncate(page_fd, sizeof(std::uint64_t)) == 0)
    page = ::mmap(nullptr, sizeof(std::uint64_t), PROT_READ | PROT_WRITE, MAP_SHARED, page_fd, 0);
  if (page != MAP_FAILED) {
    std::lock_guard lock(mu_);
    p.running = static_cast<const std::atomic<std::uint64_t>*>(page);
  }
  const std::string exe =
      config_.executor_path.empty() ? DefaultExecutorPath() : config_.executor_path;
  if (!fs::create_directory(dir, ec) || ec) {
    spawn_error = "cannot create the executor's directory " + dir + ": " + ec.message();
  } else if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0 ||
             ::pipe2(errp, O_CLOEXEC) != 0) {
    spawn_error = std::string("cannot make the executor's channel: ") + std::strerror(errno);
  } else {
    fs::permissions(dir, fs::perms::owner_all, ec);
    if (std::string e = ShareWithSandboxUser(dir, p.package->dir); !e.empty()) spawn_error = e;
  }
  if (spawn_error.empty()) {
    // Above 3, so the dup2s below never overwrite one another.
    sv[1] = DupHigh(sv[1]);
    errp[1] = DupHigh(errp[1]);
    if (page_fd >= 0) page_fd = DupHigh(page_fd);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, errp[1], 2);
    posix_spawn_file_actions_adddup2(&fa, sv[1], 3);
    if (page != MAP_FAILED) posix_spawn_file_actions_adddup2(&fa, page_fd, 4);
    posix_spawn_file_actions_addclosefrom_np(&fa, page != MAP_FAILED ? 5 : 4);
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
    if (page != MAP_FAILED) args.insert(args.end(), {"--state-fd", "4"});
    std::vector<std::string> env = ChildEnvironment(dir);
    std::vector<char*> cargv = CStrings(args), cenv = CStrings(env);
    const int rc = ::posix_spawn(&pid, exe.c_str(), &fa, &attr, cargv.data(), cenv.data());
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) {
      pid = -1;
      spawn_error = "cannot start " + exe + ": " + std::strerror(rc);
    }
  }
  for (int* fd : {&sv[1], &errp[1], &page_fd})
    if (*fd >= 0) ::close(std::exchange(*fd, -1));

  if (pid > 0) {
    {
      std::lock_guard lock(mu_);
      p.pid = pid;
      ++processes_started_;
    }
    Serve(p, sv[0], errp[0]);
  } else {
    SC_LOG(Warn) << "executor for package " << p.package->manifest.name << ": " << spawn_error;
  }
  for (int fd : {sv[0], errp[0]})
    if (fd >= 0) ::close(fd);
  fs::remove_all(dir, ec);

  bool notify = false;
  {
    std::lock_guard lock(mu_);
    // The unit a failed start was meant for fails; units behind it wait for a fresh process.
    if (!spawn_error.empty() && !p.units.empty()) {
      auto first = p.units.front();
      p.units.pop_front();
      proto::ResultMsg r;
      r.outcome = proto::UnitOutcome::kFailed;
      r.error = spawn_error;
      FinishLocked(*first, std::move(r));
    }
    for (auto& u : p.units) {
      u->phase = Phase::kQueued;
      u->proc = nullptr;
      if (u->cancel) {
        proto::ResultMsg r;
        r.outcome = proto::UnitOutcome::kCancelled;
        r.error = u->cancel_reason;
        FinishLocked(*u, std::move(r));
      } else {
        queued_.emplace(u->seq, u);  // back in its place in the order
      }
    }
    p.units.clear();
    p.pid = -1;
    p.running = nullptr;
    if (page != MAP_FAILED) ::munmap(page, sizeof(std::uint64_t));
    if (p.wake_fd >= 0) ::close(std::exchange(p.wake_fd, -1));
    exited_threads_.push_back(std::move(p.thread));
    procs_.erase(std::remove(procs_.begin(), procs_.end(), proc), procs_.end());
    idle_cv_.notify_all();
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

namespace {

// The CPU time of process `pid` (all its threads), from /proc/PID/stat; negative when unreadable.
double ProcCpuSeconds(pid_t pid) {
  char path[64];
  std::snprintf(path, sizeof(path), "/proc/%d/stat", static_cast<int>(pid));
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char buf[1024];
  const ssize_t n = ::read(fd, buf, sizeof(buf) - 1);
  ::close(fd);
  if (n <= 0) return -1;
  buf[n] = '\0';
  const char* close = std::strrchr(buf, ')');
  if (close == nullptr) return -1;
  // After ")": state, ppid, pgrp, session, tty_nr, tpgid, flags, minflt, cminflt, majflt,
  // cmajflt, utime, stime.
  std::istringstream in(close + 1);
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 0; i < 11 && in >> field; ++i) {
  }
  if (!(in >> utime >> stime)) return -1;
  static const long ticks = std::max(1L, ::sysconf(_SC_CLK_TCK));
  return static_cast<double>(utime + stime) / static_cast<double>(ticks);
}

// A reused native executor's RLIMIT_CPU is this many units' CPU limits; it is retired once it has
// used all but one of them, so a unit never starts with less than its own limit left.
constexpr double kCpuBudgetUnits = 4;
constexpr auto kCpuEvery = std::chrono::milliseconds(100);

}  // namespace

// Talks to a running executor until it has exited, then reaps it and ends the unit it was
// running (if any) with what happened.
void ProcessExecutor::Serve(Proc& p, int sock, int err_fd) {
  const Clock& clock = *config_.clock;
  const pid_t pid = p.pid;
  const package::Manifest& m = p.package->manifest;
  const bool native = m.kind == package::Kind::kNative;
  const double limit_s =
      config_.time_limit_factor * std::max<double>(1, m.resources.expected_seconds);
  const Duration limit = FromSeconds(limit_s);
  const double cpu_factor =
      config_.cpu_limit_factor > 0
          ? config_.cpu_limit_factor
          : config_.time_limit_factor * std::max(1u, std::thread::hardware_concurrency());
  const double unit_cpu_limit =
      std::clamp<double>(std::ceil(cpu_factor * std::max<double>(1, m.resources.expected_seconds)),
                         1, UINT32_MAX / kCpuBudgetUnits);

  wire::Start start;
  start.kind = m.kind;
  start.package_dir = p.package->dir;
  start.manifest = package::EncodeManifest(m);
  start.checkpoint_interval_ms = static_cast<std::uint32_t>(
      std::clamp<std::int64_t>(ToMillis(config_.checkpoint_interval), 0, UINT32_MAX));
  start.time_limit_ms =
      static_cast<std::uint32_t>(std::clamp<double>(limit_s * 1000, 0, UINT32_MAX));
  start.work_dir = p.dir;
  start.sandbox = config_.sandbox ? wire::SandboxMode::kRequired : wire::SandboxMode::kOff;
  start.memory_limit_bytes = m.resources.memory_bytes;
  if (config_.memory_cap_bytes != 0)
    start.memory_limit_bytes = std::min(start.memory_limit_bytes, config_.memory_cap_bytes);
  // A command unit's program starts with a CPU clock of its own and inherits the limit; a native
  // unit runs on the process's clock, so the process gets room for several units (see above).
  start.cpu_limit_seconds =
      static_cast<std::uint32_t>(native ? unit_cpu_limit * kCpuBudgetUnits : unit_cpu_limit);
  start.sandbox_uid = config_.sandbox_uid;
  start.sandbox_gid = config_.sandbox_gid;
  start.disable_layer_for_test = config_.disable_layer_for_test;
  std::string malformed, send_error;
  std::string out;  // frames not yet written
  if (auto f = wire::EncodeFrame(start); f.ok()) {
    out = std::move(*f);
  } else {
    send_error = f.status().ToString();
  }

  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  wire::FrameReader frames;
  std::string tail;
  bool sock_open = true, err_open = true, exited = false;
  bool stopped = false;  // SIGSTOP sent and not yet continued
  bool killed = false, time_killed = false, cpu_killed = false, last_seen = false;
  Duration stopped_total{};
  TimePoint stopped_since{};
  // The unit running now (the first sent one without a Done) and what it has used.
  std::uint64_t front = 0;
  TimePoint front_began{};
  Duration front_stopped_base{};
  bool front_cancel_sent = false;
  TimePoint front_cancel_at{};
  double cpu_base = -1, cpu_reported = 0;
  std::uint64_t cpu_base_lease = 0;
  TimePoint cpu_read_at{};
  std::set<std::uint64_t> cancels_sent;
  TimePoint idle_since = clock.Now();
  bool notify_loop = false;  // a finished unit to announce (outside the lock)
  char buf[64 * 1024];

  auto kill_proc = [&] {
    if (!killed) SignalUnit(pid, SIGKILL);
    killed = true;
  };
  // The unit `lease_id` among this process's sent ones (mu_ held).
  auto find = [&](std::uint64_t lease_id) -> Unit* {
    for (auto& u : p.units)
      if (u->phase == Phase::kSent && u->lease.lease_id == lease_id) return u.get();
    return nullptr;
  };
  auto handle = [&](wire::Message& msg) {
    if (auto* pr = std::get_if<wire::Progress>(&msg)) {
      std::lock_guard lock(mu_);
      if (Unit* u = find(pr->lease_id)) {
        u->progress = pr->fraction;
        if (u->first_progress < 0) u->first_progress = pr->fraction;
      }
    } else if (auto* c = std::get_if<wire::Checkpoint>(&msg)) {
      std::optional<proto::Lease> lease;
      {
        std::lock_guard lock(mu_);
        if (Unit* u = find(c->lease_id)) lease = u->lease;
      }
      if (!lease) return;
      if (config_.store != nullptr) config_.store->Save(*lease, c->fraction, c->state);
      std::lock_guard lock(mu_);
      if (Unit* u = find(c->lease_id)) {
        u->upload = proto::Checkpoint{lease->lease_id, lease->job_id, lease->unit_index,
                                      c->fraction, std::move(c->state)};
        ++u->saved;
      }
    } else if (auto* d = std::get_if<wire::Done>(&msg)) {
      const TimePoint now = clock.Now();
      std::lock_guard lock(mu_);
      auto it = std::find_if(p.units.begin(), p.units.end(), [&](const auto& x) {
        return x->phase == Phase::kSent && x->lease.lease_id == d->lease_id;
      });
      // In turn, or out of turn a unit cancelled while it waited in the executor.
      const bool in_turn = it == p.units.begin() && it != p.units.end();
      if (it == p.units.end() ||
          (!in_turn && !((*it)->cancel && d->outcome == proto::UnitOutcome::kCancelled))) {
        malformed = "a Done message for a unit it was not running";
        return;
      }
      std::shared_ptr<Unit> u = *it;
      p.units.erase(it);
      if (!in_turn) {
        proto::ResultMsg r;
        r.outcome = proto::UnitOutcome::kCancelled;
        r.error = u->cancel_reason;
        FinishLocked(*u, std::move(r));
        if (ScheduleLocked()) {
          notify_pending_ = false;
          notify_loop = true;
        }
        return;
      }
      proto::ResultMsg r;
      r.outcome = d->outcome;
      r.cpu_seconds = d->cpu_seconds;
      cpu_reported += d->cpu_seconds;
      r.wall_seconds = front == d->lease_id ? Seconds(now - front_began) : 0;
      if (d->outcome == proto::UnitOutcome::kOk) {
        r.payload = std::move(d->payload);
        r.hash = std::move(d->hash);
      } else if (d->outcome == proto::UnitOutcome::kCancelled) {
        r.error = u->cancel ? u->cancel_reason : d->error;
      } else {
        r.error = WithStderr(d->error, tail);
        tail.clear();
      }
      FinishLocked(*u, std::move(r));
      if (d->last) {
        last_seen = true;  // it exits now; what was sent after this unit goes elsewhere
        p.ending = true;
      }
      // The next unit starts now (the executor runs them back to back).
      front = 0;
      if (!p.units.empty() && p.units.front()->phase == Phase::kSent) {
        front = p.units.front()->lease.lease_id;
        front_began = now;
        front_stopped_base = stopped_total;
        front_cancel_sent = false;
      }
      if (ScheduleLocked()) {
        notify_pending_ = false;
        notify_loop = true;
      }
    } else {
      malformed = "a message only the worker sends";
    }
  };
  if (!send_error.empty()) kill_proc();

  while (!exited) {
    bool want_stop = false, kill_now = false, ending = false, idle = false;
    bool front_cancel = false;
    std::string front_reason;
    std::vector<std::pair<std::uint64_t, std::string>> cancels;
    const TimePoint now = clock.Now();
    {
      std::lock_guard lock(mu_);
      want_stop = p.paused;
      kill_now = p.kill_now;
      ending = p.ending;
      // Retired (its CPU budget, or it exits): units given to it and not yet sent go elsewhere.
      if (p.ending && std::any_of(p.units.begin(), p.units.end(),
                                  [](const auto& u) { return u->phase == Phase::kAssigned; })) {
        for (auto it = p.units.begin(); it != p.units.end();) {
          if ((*it)->phase != Phase::kAssigned) {
            ++it;
            continue;
          }
          (*it)->phase = Phase::kQueued;
          (*it)->proc = nullptr;
          queued_.emplace((*it)->seq, *it);
          it = p.units.erase(it);
        }
        if (ScheduleLocked()) {
          notify_pending_ = false;
          notify_loop = true;
        }
      }
      // Units given to it and not yet sent go out now, together.
      if (!killed && !last_seen && !p.ending) {
        bool failed_to_send = false;
        for (auto it = p.units.begin(); it != p.units.end();) {
          const std::shared_ptr<Unit> u = *it;
          if (u->phase != Phase::kAssigned) {
            ++it;
            continue;
          }
          wire::Run run{u->lease.lease_id, u->lease.job_id, u->lease.unit_index,
                        u->lease.unit,     u->resume,       u->threads};
          auto f = wire::EncodeFrame(run);
          if (!f.ok()) {  // too large to send: that unit fails, the process goes on
            it = p.units.erase(it);
            proto::ResultMsg r;
            r.outcome = proto::UnitOutcome::kFailed;
            r.error = "cannot hand the unit to the executor: " + f.status().ToString();
            FinishLocked(*u, std::move(r));
            failed_to_send = true;
            continue;
          }
          ++it;
          u->phase = Phase::kSent;
          out += *f;
          if (front == 0) {
            front = u->lease.lease_id;
            front_began = now;
            front_stopped_base = stopped_total;
            front_cancel_sent = false;
          }
        }
        // After the loop: scheduling may give this process more units.
        if (failed_to_send && ScheduleLocked()) {
          notify_pending_ = false;
          notify_loop = true;
        }
      }
      for (auto& u : p.units) {
        if (u->phase != Phase::kSent || !u->cancel) continue;
        if (u->lease.lease_id == front) {
          front_cancel = true;
          front_reason = u->cancel_reason;
        } else if (cancels_sent.insert(u->lease.lease_id).second) {
          cancels.emplace_back(u->lease.lease_id, u->cancel_reason);
        }
      }
      idle = p.units.empty();
    }
    if (notify_loop) {
      notify_loop = false;
      on_finished_();
    }
    if (!send_error.empty()) kill_proc();
    if (idle) {
      if (idle_since == TimePoint{}) idle_since = now;
    } else {
      idle_since = TimePoint{};
    }
    if (!killed && want_stop != stopped) {
      SignalUnit(pid, want_stop ? SIGSTOP : SIGCONT);
      if (want_stop) {
        stopped_since = now;
      } else {
        stopped_total += now - stopped_since;
      }
      stopped = want_stop;
    }
    if (kill_now || last_seen) kill_proc();
    // Nothing to run: it ends when told to or after the idle time (no unit is lost by killing).
    if (idle && (ending || now - idle_since >= config_.idle_timeout)) kill_proc();
    for (const auto& [id, reason] : cancels)
      if (auto f = wire::EncodeFrame(wire::Cancel{id, reason}); f.ok()) out += *f;
    if (front_cancel && !killed) {
      // A paused unit uses no CPU and cannot read the Cancel: it ends at once; a running one
      // gets the grace to stop at its next Progress().
      const bool grace_over = front_cancel_sent && now - front_cancel_at >= config_.kill_grace;
      if (stopped || grace_over) {
        kill_proc();
      } else if (!front_cancel_sent) {
        front_cancel_sent = true;
        front_cancel_at = now;
        if (auto f = wire::EncodeFrame(wire::Cancel{front, front_reason}); f.ok()) out += *f;
      }
    }
    const Duration stopped_now = stopped_total + (stopped ? now - stopped_since : Duration{});
    if (front != 0 && !killed && now - front_began - (stopped_now - front_stopped_base) > limit) {
      time_killed = true;
      kill_proc();
    }
    // CPU time of the running unit, from the process's own clock as the kernel keeps it.
    if (native && !killed && now - cpu_read_at >= kCpuEvery) {
      cpu_read_at = now;
      const double c = ProcCpuSeconds(pid);
      if (c >= 0) {
        if (front != cpu_base_lease) {
          cpu_base_lease = front;
          cpu_base = c;
        } else if (front != 0 && c - cpu_base > unit_cpu_limit) {
          cpu_killed = true;
          kill_proc();
        }
        if (c > unit_cpu_limit * (kCpuBudgetUnits - 1)) {
          std::lock_guard lock(mu_);
          p.ending = true;  // retired: its next unit would have less than its limit left
        }
      }
    }
    // Frames to write (Start, Run batches, Cancel): as far as the channel takes them now.
    while (!out.empty() && sock_open && !killed) {
      const ssize_t n = ::send(sock, out.data(), out.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n > 0) {
        out.erase(0, static_cast<std::size_t>(n));
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else {
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) out.clear();  // it is gone
        break;
      }
    }

    pollfd pfd[4];
    int n = 0;
    const int sock_i = sock_open ? n : -1;
    if (sock_open) pfd[n++] = {sock, static_cast<short>(POLLIN | (out.empty() ? 0 : POLLOUT)), 0};
    const int err_i = err_open ? n : -1;
    if (err_open) pfd[n++] = {err_fd, POLLIN, 0};
    const int pid_i = pidfd >= 0 ? n : -1;
    if (pidfd >= 0) pfd[n++] = {pidfd, POLLIN, 0};
    const int wake_i = n;
    pfd[n++] = {p.wake_fd, POLLIN, 0};  // p.wake_fd stays open until this thread returns
    const int pr = ::poll(pfd, static_cast<nfds_t>(n), static_cast<int>(kTick.count()));
    if (pr < 0 && errno != EINTR) break;
    if (pr > 0 && (pfd[wake_i].revents & POLLIN) != 0) {
      std::uint64_t v = 0;
      (void)!::read(p.wake_fd, &v, sizeof(v));
    }
    if (sock_i >= 0 && pr > 0 && (pfd[sock_i].revents & ~POLLOUT) != 0) {
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
            kill_proc();
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
  const TimePoint now = clock.Now();

  std::shared_ptr<Unit> u;
  {
    std::lock_guard lock(mu_);
    p.pid = -1;
    if (!p.units.empty() && p.units.front()->phase == Phase::kSent && !last_seen) {
      // The unit it was running, as it recorded it: the ones before it finished but their Done
      // frames were still held (they run again elsewhere), the ones after it never started.
      auto it = p.units.begin();
      const std::uint64_t was = p.running != nullptr ? p.running->load() : 0;
      for (auto k = p.units.begin(); k != p.units.end() && (*k)->phase == Phase::kSent; ++k)
        if ((*k)->lease.lease_id == was) it = k;
      u = *it;
      p.units.erase(it);
    }
  }
  if (notify_loop) {
    notify_loop = false;
    on_finished_();
  }
  if (u == nullptr) return;  // nothing was running: the rest never started and go elsewhere
  proto::ResultMsg r;
  const double total_cpu = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                           static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
  r.cpu_seconds = std::max(0.0, total_cpu - cpu_reported);
  r.wall_seconds = front == u->lease.lease_id ? Seconds(now - front_began) : 0;
  bool cancelled = false;
  std::string reason;
  {
    std::lock_guard lock(mu_);
    cancelled = u->cancel || p.kill_now;
    reason = p.kill_now && !u->cancel ? "the worker is stopping" : u->cancel_reason;
  }
  std::string why;
  if (cancelled) {
    r.outcome = proto::UnitOutcome::kCancelled;
    r.error = reason;
  } else {
    r.outcome = proto::UnitOutcome::kFailed;
    if (!send_error.empty()) {
      why = "cannot hand the unit to the executor: " + send_error;
    } else if (time_killed) {
      why = "the unit exceeded its time limit of " +
            std::to_string(static_cast<long long>(std::llround(limit_s))) + " s";
    } else if (cpu_killed || (WIFSIGNALED(status) && WTERMSIG(status) == SIGXCPU)) {
      why = "the unit exceeded its CPU time limit of " +
            std::to_string(static_cast<long long>(std::llround(unit_cpu_limit))) + " s";
    } else if (!malformed.empty()) {
      why = "the executor sent a malformed frame: " + malformed;
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
    SC_LOG(Info) << "unit " << u->lease.job_id << "/" << u->lease.unit_index << " of package "
                 << m.name << ": " << why;
  }
  std::lock_guard lock(mu_);
  FinishLocked(*u, std::move(r));
}

}  // namespace sparecycles::worker
