// sparecycles-executor: runs ONE unit of a task package for the worker, in a process of its own,
// so a crash, abort or hang of the package's code fails only that unit. The worker starts it with
// one end of a socketpair (--fd N); it reads one Start frame, runs the unit, streams Progress and
// Checkpoint frames, sends Done and exits. Wire: executor_wire.hpp; shape: docs/architecture.md.
#include <fcntl.h>
#include <oneapi/tbb/global_control.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
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
int Probe(const std::string& dir, const std::string& disable) {
  std::cout << "landlock ABI: " << sandbox::LandlockAbi() << "\n";
  sandbox::Spec spec;
  spec.package_dir = dir;
  spec.work_dir = dir;
  spec.disable_layer_for_test = disable;
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

// The channel to the worker: writes from any thread (kernels report from TBB threads), one
// reader thread that watches for Cancel.
class Channel {
 public:
  explicit Channel(int fd) : fd_(fd) {}

  Status Send(const wire::Message& m) {
    std::lock_guard lock(write_mu_);
    return wire::WriteFrame(fd_, m);
  }
  int fd() const { return fd_; }

  /// Reads frames until the worker closes its end; Cancel (or a closed channel) sets the flag.
  void StartReader() {
    reader_ = std::thread([this] {
      while (true) {
        auto m = wire::ReadFrame(fd_);
        if (!m.ok() || !m->has_value()) {
          RequestStop(m.ok() ? "the worker closed the channel" : m.status().ToString());
          return;
        }
        if (const auto* c = std::get_if<wire::Cancel>(&**m)) RequestStop(c->reason);
        // Anything else from the worker after Start is ignored.
      }
    });
    reader_.detach();  // blocked in read() until the process exits
  }

  bool stop() const { return stop_.load(std::memory_order_relaxed); }
  std::string reason() const {
    std::lock_guard lock(reason_mu_);
    return reason_.empty() ? "cancelled" : reason_;
  }

 private:
  void RequestStop(std::string why) {
    {
      std::lock_guard lock(reason_mu_);
      if (reason_.empty()) reason_ = std::move(why);
    }
    stop_.store(true);
  }

  const int fd_;
  std::mutex write_mu_;
  std::thread reader_;
  std::atomic<bool> stop_{false};
  mutable std::mutex reason_mu_;
  std::string reason_;
};

// Sends fractions to the worker at most every kProgressEvery (and always 1.0).
class ProgressSender {
 public:
  explicit ProgressSender(Channel& ch) : ch_(ch) {}
  void Report(double fraction) {
    const float f = static_cast<float>(std::clamp(fraction, 0.0, 1.0));
    progress_.store(f, std::memory_order_relaxed);
    const auto now = Clock::now().time_since_epoch().count();
    auto last = last_sent_.load(std::memory_order_relaxed);
    if (f < 1.0f && now - last < std::chrono::nanoseconds(kProgressEvery).count()) return;
    if (!last_sent_.compare_exchange_strong(last, now, std::memory_order_relaxed)) return;
    (void)ch_.Send(wire::Progress{f});
  }
  float progress() const { return progress_.load(std::memory_order_relaxed); }

 private:
  Channel& ch_;
  std::atomic<float> progress_{0};
  std::atomic<std::int64_t> last_sent_{0};
};

class ExecutorContext final : public tasks::UnitContext {
 public:
  ExecutorContext(Channel& ch, const wire::Start& start)
      : ch_(ch),
        progress_(ch),
        resume_(start.resume),
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
    (void)ch_.Send(wire::Checkpoint{progress_.progress(), std::string(state)});
  }

 private:
  Channel& ch_;
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

wire::Done RunNative(Channel& ch, const wire::Start& start, const package::Manifest& m) {
  // TBB inside the unit uses its share of the donated cores (the plugin binds to this process's
  // libtbb), not every core of the machine.
  std::unique_ptr<tbb::global_control> threads;
  if (const char* t = std::getenv("SPARECYCLES_UNIT_THREADS")) {
    const long n = std::strtol(t, nullptr, 10);
    if (n >= 1 && n <= 4096)
      threads = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism,
                                                      static_cast<std::size_t>(n));
  }
  auto task = package::LoadTaskPlugin(start.package_dir + "/" + m.entry);
  if (!task.ok()) return Failed("cannot load the package's task: " + task.status().ToString());
  ExecutorContext ctx(ch, start);
  try {
    if (ch.stop()) throw tasks::UnitCancelled{ch.reason()};
    auto out = (*task)->Execute(start.unit, ctx);
    if (!out.ok()) return Failed(out.status().ToString());
    // A native package's result is sent in its canonical form, so whoever holds it can check its
    // hash without running the package's code.
    std::string canonical = (*task)->Canonicalize(*out);
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

wire::Done RunCommand(Channel& ch, const wire::Start& start, const package::Manifest& m) {
  auto unit = package::DecodeCommandUnit(start.unit);
  if (!unit.ok()) return Failed(unit.status().ToString());
  ProgressSender progress(ch);
  package::RunOptions o;
  o.package_dir = start.package_dir;
  o.work_dir = start.work_dir;
  // The worker enforces the unit's time limit, counting only the time it was not paused; the
  // runner's own timeout is a far backstop.
  o.timeout_seconds = 2.0 * std::max<double>(start.time_limit_ms / 1000.0, 1) + 60;
  o.progress = [&](double f) { progress.Report(f); };
  o.stop = [&] { return ch.stop(); };
  auto run = package::RunCommandUnit(m, *unit, o);
  if (!run.ok()) {
    if (run.status().code() == StatusCode::kCancelled) {
      wire::Done d;
      d.outcome = proto::UnitOutcome::kCancelled;
      d.error = ch.reason();
      return d;
    }
    return Failed(run.status().ToString());
  }
  if (run->result.size() > proto::kMaxResultBytes)
    return Failed("the unit's outputs are " + std::to_string(run->result.size()) +
                  " bytes, above the limit of " + std::to_string(proto::kMaxResultBytes));
  return Ok(std::move(run->result), run->canonical_hash);
}

int Main(int argc, char** argv) {
  // Its own process group at once: the worker stops, continues and kills the unit by group.
  (void)::setpgid(0, 0);
  Options opts("sparecycles-executor",
               "Runs one unit of a task package for sparecycles-worker, which starts it; not meant "
               "to be run by hand.",
               "SPARECYCLES_EXECUTOR_");
  opts.Add("fd", "3", "the file descriptor of the worker's end of the channel (a socketpair)");
  opts.Add("probe", "",
           "applies every sandbox layer with this directory as package and unit directory, "
           "prints one line per layer and exits (sparecycles-worker sandbox-check)");
  opts.Add("disable-layer-for-test", "", "with --probe: reports this layer unavailable");
  if (Status s = opts.Parse(argc, argv); !s.ok()) {
    std::cerr << "sparecycles-executor: " << s.ToString() << "\n";
    return 2;
  }
  if (opts.HelpRequested()) {
    std::cout << opts.Help();
    return 0;
  }
  if (const std::string probe = opts.Get("probe"); !probe.empty()) {
    const int rc = Probe(probe, opts.Get("disable-layer-for-test"));
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
  wire::Done done;
  auto manifest = package::DecodeManifest(start.manifest);
  if (!manifest.ok()) {
    done = Failed("the package's manifest: " + manifest.status().ToString());
  } else if (manifest->kind != start.kind) {
    done = Failed("the Start message and the manifest disagree on the package's kind");
  } else if (::chdir(start.work_dir.c_str()) != 0) {
    done =
        Failed("cannot enter the unit's directory " + start.work_dir + ": " + std::strerror(errno));
  } else if (Status s = PrepareForUserCode(start); !s.ok()) {
    done = Failed("cannot prepare the executor: " + s.ToString());
  } else {
    ch.StartReader();
    done = manifest->kind == package::Kind::kNative ? RunNative(ch, start, *manifest)
                                                    : RunCommand(ch, start, *manifest);
  }
  if (done.error.size() > wire::kMaxErrorBytes) done.error.resize(wire::kMaxErrorBytes);
  const Status sent = ch.Send(done);
  std::cerr.flush();
  std::fflush(nullptr);
  // No static destructors: the package's library stays loaded and its threads may still run.
  ::_exit(sent.ok() ? 0 : 3);
}

}  // namespace
}  // namespace sparecycles::worker

int main(int argc, char** argv) { return sparecycles::worker::Main(argc, argv); }
