// sparecycles-executor: runs units of ONE task package for the worker, in a process of its own,
// so a crash, abort or hang of the package's code fails only the unit it was running. The worker
// starts it with one end of a socketpair (--fd N); it reads one Start frame, confines itself once
// (sandbox.hpp), loads the package, then runs the Run frames it receives one at a time, each in a
// fresh unit directory, streaming Progress and Checkpoint frames and sending a Done per unit
// (batched when units come back to back). It exits when the worker closes the channel, or after a
// unit that left processes behind. Wire: executor_wire.hpp; shape: docs/architecture.md.
#include <fcntl.h>
#include <oneapi/tbb/global_control.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <thread>

#include "executor_wire.hpp"
#include "sandbox.hpp"
#include "sparecycles/core/hash.hpp"
#include "sparecycles/core/options.hpp"
#include "sparecycles/package/command.hpp"
#include "sparecycles/package/plugin_loader.hpp"
#include "sparecycles/tasks/task.hpp"

namespace sparecycles::worker {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kProgressEvery = std::chrono::milliseconds(100);

// Dies with the worker: the first thing done, before the Start message is read.
Status DieWithWorker() {
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
    return Internal("prctl(PR_SET_PDEATHSIG) failed: " + std::string(std::strerror(errno)));
  // The worker may have died before the line above: then this process was reparented already.
  if (::getppid() == 1) return Unavailable("the worker is gone");
  return OkStatus();
}

sandbox::Spec SpecOf(const wire::Start& start) {
  sandbox::Spec spec;
  spec.package_dir = start.package_dir;
  spec.work_dir = start.work_dir;
  spec.limits.memory_bytes = start.memory_limit_bytes;
  spec.limits.cpu_seconds = std::max<std::uint32_t>(1, start.cpu_limit_seconds);
  spec.uid = start.sandbox_uid;
  spec.gid = start.sandbox_gid;
  spec.disable_layer_for_test = start.disable_layer_for_test;
  spec.allow_exec = start.kind == package::Kind::kCommand;
  return spec;
}

// Everything done to this process before any user code is loaded or run: no new privileges, and
// (sandbox required) every confinement layer of sandbox.hpp; a layer this machine lacks fails the
// unit with the layer named.
Status PrepareForUserCode(const wire::Start& start) {
  SC_RETURN_IF_ERROR(DieWithWorker());
  if (start.sandbox == wire::SandboxMode::kOff) {
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
      return Internal("prctl(PR_SET_NO_NEW_PRIVS) failed: " + std::string(std::strerror(errno)));
    return OkStatus();
  }
  for (const auto& layer : sandbox::ApplyAll(SpecOf(start)))
    if (!layer.status.ok())
      return FailedPrecondition("sandbox layer " + layer.name +
                                " unavailable: " + layer.status.message());
  return OkStatus();
}

// `--probe DIR`: applies every layer with DIR as both package and unit directory and prints one
// line per layer; exit 0 when all are active.
int Probe(const std::string& dir, const std::string& disable, const std::string& user) {
  std::cout << "landlock ABI: " << sandbox::LandlockAbi() << "\n";
  sandbox::Spec spec;
  spec.package_dir = dir;
  spec.work_dir = dir;
  spec.disable_layer_for_test = disable;
  if (!user.empty()) {
    unsigned long uid = 0, gid = 0;
    if (std::sscanf(user.c_str(), "%lu:%lu", &uid, &gid) != 2 || uid > UINT32_MAX ||
        gid > UINT32_MAX) {
      std::cout << "--probe-user: expected UID:GID, not '" << user << "'\n";
      return 2;
    }
    spec.uid = static_cast<std::uint32_t>(uid);
    spec.gid = static_cast<std::uint32_t>(gid);
  }
  bool all = true;
  for (const auto& layer : sandbox::ApplyAll(spec)) {
    all = all && layer.status.ok();
    std::cout << layer.name << ": "
              << (layer.status.ok() ? "active" : "unavailable: " + layer.status.message())
              << (layer.detail.empty() ? "" : " (" + layer.detail + ")") << "\n";
  }
  // What a confined process sees, checked from inside.
  const bool socket_refused = ::socket(AF_INET, SOCK_STREAM, 0) < 0;
  std::cout << "check socket(AF_INET): " << (socket_refused ? "refused" : "ALLOWED") << "\n";
  const bool read_refused = ::open("/etc/hostname", O_RDONLY | O_CLOEXEC) < 0;
  std::cout << "check read /etc/hostname: " << (read_refused ? "refused" : "ALLOWED") << "\n";
  std::cout.flush();
  return all && socket_refused && read_refused ? 0 : 1;
}

// The channel to the worker: frames out from any thread (kernels report from TBB threads), one
// reader thread that queues Run frames for the main thread and applies Cancel frames.
class Channel {
 public:
  explicit Channel(int fd) : fd_(fd) {}

  Status Send(const wire::Message& m) {
    std::lock_guard lock(write_mu_);
    return wire::WriteFrame(fd_, m);
  }
  /// Writes already framed bytes (a batch of Done frames) in one go.
  Status SendRaw(const std::string& bytes) {
    std::lock_guard lock(write_mu_);
    std::size_t off = 0;
    while (off < bytes.size()) {
      const ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return Unavailable(std::string("executor channel: ") + std::strerror(errno));
      off += static_cast<std::size_t>(n);
    }
    return OkStatus();
  }
  int fd() const { return fd_; }

  /// Reads frames until the worker closes its end: Run frames are queued, Cancel stops the unit
  /// it names (running: StopRequested(); waiting: it is taken out and its Done sent at once).
  void StartReader() {
    reader_ = std::thread([this] {
      wire::FrameReader frames;
      std::string buf(256 * 1024, '\0');
      while (true) {
        const ssize_t n = ::recv(fd_, buf.data(), buf.size(), 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
          Close(n == 0 ? "the worker closed the channel" : std::strerror(errno));
          return;
        }
        frames.Append(std::string_view(buf.data(), static_cast<std::size_t>(n)));
        while (true) {
          auto m = frames.Next();
          if (!m.ok()) {
            Close(m.status().ToString());
            return;
          }
          if (!m->has_value()) break;
          if (auto* r = std::get_if<wire::Run>(&**m)) {
            std::lock_guard lock(mu_);
            queue_.push_back(std::move(*r));
            cv_.notify_one();
          } else if (const auto* c = std::get_if<wire::Cancel>(&**m)) {
            std::lock_guard lock(mu_);
            if (c->lease_id == current_) {
              if (!stop_current_.exchange(true)) reason_ = c->reason;
            } else {
              // A unit still waiting ends at once, out of turn.
              for (auto q = queue_.begin(); q != queue_.end(); ++q) {
                if (q->lease_id != c->lease_id) continue;
                queue_.erase(q);
                wire::Done d;
                d.lease_id = c->lease_id;
                d.outcome = proto::UnitOutcome::kCancelled;
                d.error = c->reason.empty() ? "cancelled" : c->reason;
                (void)Send(d);
                break;
              }
            }
          }
          // Anything else from the worker after Start is ignored.
        }
      }
    });
    reader_.detach();  // blocked in recv() until the process exits
  }

  /// The next unit to run (it becomes the current one), or nullopt once the channel is closed.
  std::optional<wire::Run> Next() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return closed_ || !queue_.empty(); });
    if (closed_) return std::nullopt;
    wire::Run r = std::move(queue_.front());
    queue_.pop_front();
    current_ = r.lease_id;
    reason_.clear();
    stop_current_.store(false);
    return r;
  }
  /// True when more units wait (their results may be batched with this one's).
  bool MoreQueued() const {
    std::lock_guard lock(mu_);
    return !queue_.empty();
  }

  bool stop() const {
    return stop_current_.load(std::memory_order_relaxed) ||
           closed_flag_.load(std::memory_order_relaxed);
  }
  std::string reason() const {
    std::lock_guard lock(mu_);
    return reason_.empty() ? "cancelled" : reason_;
  }

 private:
  void Close(std::string why) {
    std::lock_guard lock(mu_);
    if (reason_.empty()) reason_ = std::move(why);
    closed_ = true;
    closed_flag_.store(true);
    cv_.notify_all();
  }

  const int fd_;
  std::mutex write_mu_;
  std::thread reader_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<wire::Run> queue_;
  std::uint64_t current_ = 0;
  bool closed_ = false;
  std::atomic<bool> closed_flag_{false}, stop_current_{false};
  std::string reason_;
};

// Sends fractions to the worker at most every kProgressEvery (and always 1.0).
class ProgressSender {
 public:
  ProgressSender(Channel& ch, std::uint64_t lease_id) : ch_(ch), lease_id_(lease_id) {}
  void Report(double fraction) {
    const float f = static_cast<float>(std::clamp(fraction, 0.0, 1.0));
    progress_.store(f, std::memory_order_relaxed);
    const auto now = Clock::now().time_since_epoch().count();
    auto last = last_sent_.load(std::memory_order_relaxed);
    if (f < 1.0f && now - last < std::chrono::nanoseconds(kProgressEvery).count()) return;
    if (!last_sent_.compare_exchange_strong(last, now, std::memory_order_relaxed)) return;
    (void)ch_.Send(wire::Progress{lease_id_, f});
  }
  float progress() const { return progress_.load(std::memory_order_relaxed); }

 private:
  Channel& ch_;
  const std::uint64_t lease_id_;
  std::atomic<float> progress_{0};
  std::atomic<std::int64_t> last_sent_{0};
};

class ExecutorContext final : public tasks::UnitContext {
 public:
  ExecutorContext(Channel& ch, const wire::Start& start, const wire::Run& run)
      : ch_(ch),
        lease_id_(run.lease_id),
        progress_(ch, run.lease_id),
        resume_(run.resume),
        interval_(std::chrono::milliseconds(start.checkpoint_interval_ms)),
        last_checkpoint_(Clock::now().time_since_epoch().count()) {}

  void Progress(double fraction) override {
    if (ch_.stop()) throw tasks::UnitCancelled{ch_.reason()};
    progress_.Report(fraction);
  }
  bool StopRequested() const override { return ch_.stop(); }
  std::optional<std::string> ResumeState() const override { return resume_; }
  bool CheckpointDue() const override {
    if (interval_ <= std::chrono::nanoseconds::zero()) return false;
    const auto now = Clock::now().time_since_epoch().count();
    return now - last_checkpoint_.load(std::memory_order_relaxed) >= interval_.count();
  }
  void Checkpoint(std::string_view state) override {
    last_checkpoint_.store(Clock::now().time_since_epoch().count(), std::memory_order_relaxed);
    if (state.size() > proto::kMaxCheckpointBytes) {
      if (!too_big_logged_.exchange(true))
        std::cerr << "sparecycles-executor: a checkpoint of " << state.size()
                  << " bytes is above the limit; not saved\n";
      return;
    }
    (void)ch_.Send(wire::Checkpoint{lease_id_, progress_.progress(), std::string(state)});
  }

 private:
  Channel& ch_;
  const std::uint64_t lease_id_;
  ProgressSender progress_;
  const std::optional<std::string> resume_;
  const std::chrono::nanoseconds interval_;
  std::atomic<std::int64_t> last_checkpoint_;
  std::atomic<bool> too_big_logged_{false};
};

wire::Done Failed(std::string error) {
  wire::Done d;
  d.outcome = proto::UnitOutcome::kFailed;
  d.error = std::move(error);
  return d;
}

wire::Done Ok(std::string payload, const Hash256& h) {
  wire::Done d;
  d.payload = std::move(payload);
  d.hash.assign(reinterpret_cast<const char*>(h.data()), h.size());
  return d;
}

wire::Done RunNative(Channel& ch, const wire::Start& start, const wire::Run& run,
                     const tasks::Task& task) {
  ExecutorContext ctx(ch, start, run);
  try {
    if (ch.stop()) throw tasks::UnitCancelled{ch.reason()};
    auto out = task.Execute(run.unit, ctx);
    if (!out.ok()) return Failed(out.status().ToString());
    // A native package's result is sent in its canonical form, so whoever holds it can check its
    // hash without running the package's code.
    std::string canonical = task.Canonicalize(*out);
    if (canonical.size() > proto::kMaxResultBytes)
      return Failed("the unit's result is " + std::to_string(canonical.size()) +
                    " bytes, above the limit of " + std::to_string(proto::kMaxResultBytes));
    const Hash256 h = Blake2b256(canonical);
    return Ok(std::move(canonical), h);
  } catch (const std::bad_alloc&) {
    return Failed("memory limit of " + std::to_string(start.memory_limit_bytes >> 20) +
                  " MiB exceeded (an allocation failed)");
  } catch (const tasks::UnitCancelled& c) {
    wire::Done d;
    d.outcome = proto::UnitOutcome::kCancelled;
    d.error = c.reason;
    return d;
  } catch (const std::exception& e) {
    return Failed(std::string("kernel threw: ") + e.what());
  } catch (...) {
    return Failed("kernel threw an unknown exception");
  }
}

wire::Done RunCommand(Channel& ch, const wire::Start& start, const wire::Run& run,
                      const package::Manifest& m, const std::string& unit_dir) {
  auto unit = package::DecodeCommandUnit(run.unit);
  if (!unit.ok()) return Failed(unit.status().ToString());
  ProgressSender progress(ch, run.lease_id);
  package::RunOptions o;
  o.package_dir = start.package_dir;
  o.work_dir = unit_dir;
  // The worker enforces the unit's time limit, counting only the time it was not paused; the
  // runner's own timeout is a far backstop.
  o.timeout_seconds = 2.0 * std::max<double>(start.time_limit_ms / 1000.0, 1) + 60;
  o.progress = [&](double f) { progress.Report(f); };
  o.stop = [&] { return ch.stop(); };
  auto result = package::RunCommandUnit(m, *unit, o);
  if (!result.ok()) {
    if (result.status().code() == StatusCode::kCancelled) {
      wire::Done d;
      d.outcome = proto::UnitOutcome::kCancelled;
      d.error = ch.reason();
      return d;
    }
    return Failed(result.status().ToString());
  }
  if (result->result.size() > proto::kMaxResultBytes)
    return Failed("the unit's outputs are " + std::to_string(result->result.size()) +
                  " bytes, above the limit of " + std::to_string(proto::kMaxResultBytes));
  return Ok(std::move(result->result), result->canonical_hash);
}

double ProcessCpuSeconds() {
  timespec ts{};
  (void)::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Removes everything in this process's directory (the unit's directory and whatever a unit put
// beside it), so the next unit starts from nothing. Entries a unit made unreadable are made
// readable first (the directory is this process's own).
void ClearProcessDir(const std::string& dir) {
  std::error_code ec;
  for (int attempt = 0; attempt < 2; ++attempt) {
    bool left = false;
    for (auto it = std::filesystem::directory_iterator(dir, ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
      std::error_code e2;
      if (attempt == 1)
        for (auto r = std::filesystem::recursive_directory_iterator(it->path(), e2);
             !e2 && r != std::filesystem::recursive_directory_iterator(); r.increment(e2))
          std::filesystem::permissions(r->path(), std::filesystem::perms::owner_all,
                                       std::filesystem::perm_options::add, e2);
      std::filesystem::permissions(it->path(), std::filesystem::perms::owner_all,
                                   std::filesystem::perm_options::add, e2);
      std::filesystem::remove_all(it->path(), e2);
      if (e2) left = true;
    }
    if (!left) return;
  }
}

// True when the directory open as `dir_fd` holds nothing but `except` (if not empty). Two system
// calls: it is read after every unit.
bool DirHoldsOnly(int dir_fd, const char* except) {
  if (::lseek(dir_fd, 0, SEEK_SET) != 0) return false;
  alignas(8) char buf[1024];
  const long n = ::syscall(SYS_getdents64, dir_fd, buf, sizeof(buf));
  if (n < 0) return false;
  for (long off = 0; off < n;) {
    const char* name = buf + off + 19;  // d_ino (8), d_off (8), d_reclen (2), d_type (1)
    std::uint16_t reclen = 0;
    std::memcpy(&reclen, buf + off + 16, sizeof(reclen));
    if (std::strcmp(name, ".") != 0 && std::strcmp(name, "..") != 0 &&
        std::strcmp(name, except) != 0)
      return false;
    if (reclen == 0) return false;
    off += reclen;
  }
  return true;
}

// The unit directory beneath this process's directory. A unit gets it empty, with mode 0700, and
// as the same directory the process made: after a unit that left it so (and nothing beside it),
// it serves the next unit as it is; otherwise everything is removed and it is made anew. (Making
// and removing a directory per unit costs more than a trivial unit: about 0.3 ms on ext4.)
class UnitDir {
 public:
  UnitDir(std::string process_dir)
      : process_dir_(std::move(process_dir)),
        path_(process_dir_ + "/" + std::string(wire::kUnitDirName)),
        process_fd_(::open(process_dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) {}
  const std::string& path() const { return path_; }

  /// Ready for the next unit, and this process in it.
  Status Enter() {
    if (fd_ < 0) {
      ClearProcessDir(process_dir_);
      if (::mkdir(path_.c_str(), 0700) != 0)
        return Internal("cannot make the unit's directory " + path_ + ": " + std::strerror(errno));
      fd_ = ::open(path_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      struct stat st {};
      if (fd_ < 0 || ::fstat(fd_, &st) != 0)
        return Internal("cannot open the unit's directory " + path_ + ": " + std::strerror(errno));
      ino_ = st.st_ino;
    }
    if (::chdir(path_.c_str()) != 0)
      return Internal("cannot enter the unit's directory " + path_ + ": " + std::strerror(errno));
    return OkStatus();
  }
  /// After a unit: back in this process's directory, and the unit's directory as it was made or
  /// cleared.
  void Leave() {
    (void)::chdir(process_dir_.c_str());
    struct stat st {
    }, by_path{};
    const bool same = fd_ >= 0 && process_fd_ >= 0 && ::fstat(fd_, &st) == 0 &&
                      ::stat(path_.c_str(), &by_path) == 0 && by_path.st_ino == ino_ &&
                      st.st_ino == ino_ && (st.st_mode & 07777) == 0700 && DirHoldsOnly(fd_, "") &&
                      DirHoldsOnly(process_fd_, wire::kUnitDirName.data());
    if (same) return;
    if (fd_ >= 0) ::close(std::exchange(fd_, -1));
    ClearProcessDir(process_dir_);
  }

 private:
  const std::string process_dir_, path_;
  const int process_fd_;
  int fd_ = -1;
  ino_t ino_ = 0;
};

// Done frames of units that run back to back are written together: at most kBatchFrames of
// them, and none held longer than kBatchHold (a helper thread writes what has waited that long,
// so a long unit never holds back the results of the short ones before it).
constexpr std::size_t kBatchFrames = 64;
constexpr auto kBatchHold = std::chrono::milliseconds(5);

class DoneBatcher {
 public:
  explicit DoneBatcher(Channel& ch) : ch_(ch) {
    thread_ = std::thread([this] {
      std::unique_lock lock(mu_);
      while (true) {
        if (held_.empty()) {
          cv_.wait(lock);
          continue;
        }
        if (cv_.wait_until(lock, since_ + kBatchHold) == std::cv_status::timeout) FlushLocked();
      }
    });
    thread_.detach();  // waits until the process exits
  }
  /// Holds a framed Done, or writes it with everything held when `now` or the batch is full.
  void Add(const std::string& frame, bool now) {
    std::lock_guard lock(mu_);
    if (held_.empty()) {
      since_ = Clock::now();
      cv_.notify_one();
    }
    held_ += frame;
    if (now || ++count_ >= kBatchFrames) FlushLocked();
  }
  bool ok() const {
    std::lock_guard lock(mu_);
    return ok_;
  }

 private:
  void FlushLocked() {
    if (held_.empty()) return;
    ok_ = ch_.SendRaw(held_).ok() && ok_;
    held_.clear();
    count_ = 0;
  }

  Channel& ch_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::string held_;
  std::size_t count_ = 0;
  Clock::time_point since_{};
  bool ok_ = true;
  std::thread thread_;
};

int Main(int argc, char** argv) {
  // Its own process group at once: the worker stops, continues and kills the unit by group.
  (void)::setpgid(0, 0);
  Options opts("sparecycles-executor",
               "Runs units of one task package for sparecycles-worker, which starts it; not meant "
               "to be run by hand.",
               "SPARECYCLES_EXECUTOR_");
  opts.Add("fd", "3", "the file descriptor of the worker's end of the channel (a socketpair)");
  opts.Add("state-fd", "-1",
           "a shared memory file where it records the unit it is running (-1 = none)");
  opts.Add("probe", "",
           "applies every sandbox layer with this directory as package and unit directory, "
           "prints one line per layer and exits (sparecycles-worker sandbox-check)");
  opts.Add("disable-layer-for-test", "", "with --probe: reports this layer unavailable");
  opts.Add("probe-user", "",
           "with --probe: UID:GID a root executor switches to (empty = 65534:65534, nobody)");
  if (Status s = opts.Parse(argc, argv); !s.ok()) {
    std::cerr << "sparecycles-executor: " << s.ToString() << "\n";
    return 2;
  }
  if (opts.HelpRequested()) {
    std::cout << opts.Help();
    return 0;
  }
  if (const std::string probe = opts.Get("probe"); !probe.empty()) {
    const int rc = Probe(probe, opts.Get("disable-layer-for-test"), opts.Get("probe-user"));
    std::fflush(nullptr);
    // Ends as a confined unit does: nothing runs at exit inside the sandbox (a leak checker's
    // at-exit pass needs ptrace, which the sandbox refuses, and would turn success into failure).
    ::_exit(rc);
  }
  auto fd = opts.GetInt("fd", 3, 1 << 20);
  if (!fd.ok() || ::fcntl(static_cast<int>(*fd), F_GETFD) < 0) {
    std::cerr << "sparecycles-executor: --fd does not name an open descriptor\n";
    return 2;
  }
  // Programs a command unit starts must not inherit the channel.
  (void)::fcntl(static_cast<int>(*fd), F_SETFD, FD_CLOEXEC);
  Channel ch(static_cast<int>(*fd));
  auto first = wire::ReadFrame(ch.fd());
  if (!first.ok() || !first->has_value() || !std::holds_alternative<wire::Start>(**first)) {
    std::cerr << "sparecycles-executor: expected a Start message: "
              << (first.ok() ? "got none" : first.status().ToString()) << "\n";
    return 2;
  }
  const wire::Start start = std::get<wire::Start>(std::move(**first));
  InitCrypto();
  // Orphans of a unit's processes become this process's children, so that after each unit it
  // can tell whether anything the unit started is still alive.
  (void)::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  // Everything that can fail before user code fails every unit sent, with the reason.
  std::string broken;
  auto manifest = package::DecodeManifest(start.manifest);
  if (!manifest.ok()) {
    broken = "the package's manifest: " + manifest.status().ToString();
  } else if (manifest->kind != start.kind) {
    broken = "the Start message and the manifest disagree on the package's kind";
  } else if (::chdir(start.work_dir.c_str()) != 0) {
    broken =
        "cannot enter the executor's directory " + start.work_dir + ": " + std::strerror(errno);
  } else if (Status s = PrepareForUserCode(start); !s.ok()) {
    broken = "cannot prepare the executor: " + s.ToString();
  }
  // A native package's library is loaded once, after the sandbox, and serves every unit.
  std::unique_ptr<tasks::Task> task;
  if (broken.empty() && manifest->kind == package::Kind::kNative) {
    auto loaded = package::LoadTaskPlugin(start.package_dir + "/" + manifest->entry);
    if (loaded.ok()) {
      task = std::move(loaded).value();
    } else {
      broken = "cannot load the package's task: " + loaded.status().ToString();
    }
  }
  UnitDir unit_dir(start.work_dir);
  ch.StartReader();
  DoneBatcher batcher(ch);
  // The unit about to run, in a page shared with the worker: when this process dies, the worker
  // knows which unit killed it (Done frames of units before it may not have been written yet).
  std::atomic<std::uint64_t>* running = nullptr;
  if (auto sfd = opts.GetInt("state-fd", -1, 1 << 20); sfd.ok() && *sfd >= 0) {
    void* page = ::mmap(nullptr, sizeof(std::uint64_t), PROT_READ | PROT_WRITE, MAP_SHARED,
                        static_cast<int>(*sfd), 0);
    ::close(static_cast<int>(*sfd));
    if (page != MAP_FAILED) running = static_cast<std::atomic<std::uint64_t>*>(page);
  }
  // TBB inside the units uses their share of the donated cores (the plugin binds to this
  // process's libtbb), not every core of the machine; changed only when a unit's share differs.
  std::unique_ptr<tbb::global_control> threads;
  std::uint32_t threads_now = 0;
  while (auto run = ch.Next()) {
    if (task != nullptr && run->threads != threads_now) {
      threads.reset();
      threads = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism,
                                                      run->threads);
      threads_now = run->threads;
    }
    if (running != nullptr) running->store(run->lease_id, std::memory_order_release);
    const double cpu0 = ProcessCpuSeconds();
    wire::Done done;
    if (!broken.empty()) {
      done = Failed(broken);
    } else {
      // An empty directory of its own, beneath this process's directory.
      if (Status s = unit_dir.Enter(); !s.ok()) {
        done = Failed(s.message());
        done.last = true;  // a fresh process gets a fresh directory
      } else {
        done = task != nullptr ? RunNative(ch, start, *run, *task)
                               : RunCommand(ch, start, *run, *manifest, unit_dir.path());
      }
      unit_dir.Leave();
    }
    done.lease_id = run->lease_id;
    done.cpu_seconds = std::max(0.0, ProcessCpuSeconds() - cpu0);
    if (done.error.size() > wire::kMaxErrorBytes) done.error.resize(wire::kMaxErrorBytes);
    // Processes a unit started and left running would run on into the next unit: this process
    // ends after this unit and the next one gets a fresh process.
    int status = 0;
    pid_t child = 0;
    while ((child = ::waitpid(-1, &status, WNOHANG)) > 0) {
    }
    done.last = done.last || child == 0;
    auto frame = wire::EncodeFrame(done);
    if (!frame.ok()) frame = wire::EncodeFrame(Failed(frame.status().ToString()));
    batcher.Add(*frame, done.last || !ch.MoreQueued());
    if (done.last || !batcher.ok()) break;
  }
  std::cerr.flush();
  std::fflush(nullptr);
  // No static destructors: the package's library stays loaded and its threads may still run.
  ::_exit(0);
}

}  // namespace
}  // namespace sparecycles::worker

int main(int argc, char** argv) { return sparecycles::worker::Main(argc, argv); }
