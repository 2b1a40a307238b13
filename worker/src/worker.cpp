#include "sparecycles/worker/worker.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/task_arena.h>

#include "sparecycles/core/daemon.hpp"
#include "sparecycles/core/hash.hpp"
#include "sparecycles/core/log.hpp"
#include "sparecycles/core/protocol.hpp"
#include "sparecycles/core/transport.hpp"

namespace sparecycles::worker {

using proto::MsgType;

unsigned HardwareCores() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : n;
}

std::uint64_t TotalMemoryBytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  std::uint64_t kb = 0;
  std::string unit;
  while (in >> key >> kb >> unit)
    if (key == "MemTotal:") return kb * 1024;
  return 0;
}

namespace {

// What a kernel sees while it runs: progress goes to heartbeats, cancellation stops it at the
// next Progress() call.
class UnitCtx final : public tasks::UnitContext {
 public:
  void Progress(double fraction) override {
    progress_.store(static_cast<float>(std::clamp(fraction, 0.0, 1.0)), std::memory_order_relaxed);
    if (cancel_.load(std::memory_order_relaxed)) throw tasks::UnitCancelled{"cancelled"};
  }
  bool StopRequested() const override { return cancel_.load(std::memory_order_relaxed); }
  void Cancel() { cancel_.store(true); }
  float progress() const { return progress_.load(std::memory_order_relaxed); }

 private:
  std::atomic<float> progress_{0};
  std::atomic<bool> cancel_{false};
};

double ProcessCpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

}  // namespace

struct Worker::Impl {
  Impl(WorkerConfig c, const tasks::Registry& r) : config(std::move(c)), registry(r) {}

  WorkerConfig config;
  const tasks::Registry& registry;
  std::string peer_id;
  proto::Hello hello;
  zmq::context_t ctx{1};
  std::optional<zmq::socket_t> sock;
  net::WireStats wire;
  net::EventFd wake;
  std::atomic<bool> stop{false};
  std::unique_ptr<tbb::global_control> parallelism;
  std::unique_ptr<tbb::task_arena> arena;
  unsigned slots = 1;

  struct Running {
    proto::Lease lease;
    std::shared_ptr<UnitCtx> ctx;
  };
  std::deque<proto::Lease> waiting;                  // prefetched, not started
  std::unordered_map<std::uint64_t, Running> running;
  std::unordered_map<std::uint64_t, std::string> unacked;  // lease id -> encoded Result frame

  std::mutex done_mu;
  std::condition_variable done_cv;
  std::vector<proto::ResultMsg> done;  // completions from arena threads
  int active_units = 0;                // guarded by done_mu

  bool welcomed = false;
  TimePoint hello_sent{}, last_heartbeat{};
  Duration heartbeat = std::chrono::seconds(5);
  std::uint32_t last_request = UINT32_MAX;
  proto::Capacity last_capacity;
  bool capacity_sent = false;

  mutable std::mutex stats_mu;
  WorkerStats stats;

  template <class M>
  void Send(const M& msg) {
    net::SendDealer(*sock, proto::Encode(msg), &wire);
  }

  void SendHello(TimePoint now) {
    // Everything this peer still holds: running, prefetched, and finished but not acknowledged.
    hello.running_leases.clear();
    for (const auto& [id, r] : running) hello.running_leases.push_back(id);
    for (const auto& l : waiting) hello.running_leases.push_back(l.lease_id);
    for (const auto& [id, frame] : unacked) hello.running_leases.push_back(id);
    if (hello.running_leases.size() > proto::kMaxLeasesPerMessage) hello.running_leases.resize(proto::kMaxLeasesPerMessage);
    Send(hello);
    hello_sent = now;
    welcomed = false;
    std::lock_guard lock(stats_mu);
    ++stats.hellos_sent;
  }

  void OnFrame(zmq::message_t& m, TimePoint now) {
    std::string_view body;
    auto type = proto::ParseHeader({static_cast<const char*>(m.data()), m.size()}, body);
    if (!type.ok()) {
      ++wire.bad_frames;
      SC_LOG(Warn) << "dropped a bad frame from the coordinator: " << type.status().ToString();
      return;
    }
    auto decode = [&](auto& msg) {
      Status s = proto::Decode(body, msg);
      if (!s.ok()) {
        ++wire.bad_frames;
        SC_LOG(Warn) << "dropped a bad " << proto::MsgTypeName(*type) << ": " << s.ToString();
      }
      return s.ok();
    };
    switch (*type) {
      case MsgType::kWelcome: {
        proto::Welcome w;
        if (!decode(w)) return;
        const bool first = !welcomed;
        welcomed = true;
        heartbeat = std::chrono::milliseconds(std::clamp<std::uint32_t>(w.heartbeat_ms, 50, 600000));
        if (first) SC_LOG(Info) << "connected to coordinator session " << w.session;
        // Everything not yet acknowledged goes again: the coordinator may have restarted.
        for (const auto& [id, frame] : unacked) net::SendDealer(*sock, frame, &wire);
        capacity_sent = false;
        last_request = UINT32_MAX;
        break;
      }
      case MsgType::kReject: {
        proto::Reject r;
        if (!decode(r)) return;
        if (r.code == proto::RejectCode::kHelloFirst) {
          if (now - hello_sent > std::chrono::milliseconds(200)) SendHello(now);
        } else {
          SC_LOG(Error) << "coordinator rejected us: " << r.message;
          if (r.code == proto::RejectCode::kBadVersion) stop.store(true);
        }
        break;
      }
      case MsgType::kAssign: {
        proto::Assign a;
        if (!decode(a)) return;
        for (auto& l : a.leases) waiting.push_back(std::move(l));
        last_request = UINT32_MAX;  // the standing request changed
        break;
      }
      case MsgType::kAck: {
        proto::Ack a;
        if (!decode(a)) return;
        for (auto id : a.lease_ids) unacked.erase(id);
        break;
      }
      case MsgType::kCancelLeases: {
        proto::CancelLeases c;
        if (!decode(c)) return;
        for (auto id : c.lease_ids) {
          auto it = std::find_if(waiting.begin(), waiting.end(), [&](const auto& l) { return l.lease_id == id; });
          if (it != waiting.end()) waiting.erase(it);
          if (auto r = running.find(id); r != running.end()) r->second.ctx->Cancel();
        }
        break;
      }
      default:
        ++wire.bad_frames;
        SC_LOG(Warn) << "unexpected " << proto::MsgTypeName(*type) << " from the coordinator";
    }
  }

  void StartUnits() {
    while (!waiting.empty() && running.size() < slots) {
      proto::Lease lease = std::move(waiting.front());
      waiting.pop_front();
      auto uctx = std::make_shared<UnitCtx>();
      const std::uint64_t id = lease.lease_id;
      running.emplace(id, Running{lease, uctx});
      {
        std::lock_guard lock(done_mu);
        ++active_units;
      }
      arena->enqueue([this, lease = std::move(lease), uctx] { Execute(lease, *uctx); });
    }
  }

  // Runs on an arena thread. Never throws: a kernel's exception fails its unit, not the worker.
  void Execute(const proto::Lease& lease, UnitCtx& uctx) {
    proto::ResultMsg r;
    r.lease_id = lease.lease_id;
    r.job_id = lease.job_id;
    r.unit_index = lease.unit_index;
    const auto t0 = std::chrono::steady_clock::now();
    const double cpu0 = ProcessCpuSeconds();
    try {
      const tasks::Task* task = registry.Find(lease.task, lease.task_version);
      if (task == nullptr) {
        r.outcome = proto::UnitOutcome::kFailed;
        r.error = "this worker cannot run task " + lease.task + " v" + std::to_string(lease.task_version);
      } else {
        auto out = task->Execute(lease.unit, uctx);
        if (out.ok() && out->size() > proto::kMaxResultBytes) {
          r.outcome = proto::UnitOutcome::kFailed;
          r.error = "the unit's result is " + std::to_string(out->size()) + " bytes, above the limit of " +
                    std::to_string(proto::kMaxResultBytes);
        } else if (out.ok()) {
          const Hash256 h = Blake2b256(task->Canonicalize(*out));
          r.hash.assign(reinterpret_cast<const char*>(h.data()), h.size());
          r.payload = std::move(*out);
          r.outcome = proto::UnitOutcome::kOk;
        } else {
          r.outcome = proto::UnitOutcome::kFailed;
          r.error = out.status().ToString();
        }
      }
    } catch (const tasks::UnitCancelled& c) {
      r.outcome = proto::UnitOutcome::kCancelled;
      r.error = c.reason;
    } catch (const std::exception& e) {
      r.outcome = proto::UnitOutcome::kFailed;
      r.error = std::string("kernel threw: ") + e.what();
    } catch (...) {
      r.outcome = proto::UnitOutcome::kFailed;
      r.error = "kernel threw an unknown exception";
    }
    if (r.error.size() > proto::kMaxTextBytes) r.error.resize(proto::kMaxTextBytes);
    r.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    // Units share the arena, so the process CPU time over the unit is shared out by slot count.
    r.cpu_seconds = std::max(0.0, ProcessCpuSeconds() - cpu0) / std::max(1u, slots);
    r.cpu_seconds = std::max(r.cpu_seconds, 0.0);
    {
      std::lock_guard lock(done_mu);
      done.push_back(std::move(r));
      --active_units;
    }
    done_cv.notify_all();
    wake.Wake();
  }

  void DrainCompletions() {
    std::vector<proto::ResultMsg> batch;
    {
      std::lock_guard lock(done_mu);
      batch.swap(done);
    }
    for (auto& r : batch) {
      auto it = running.find(r.lease_id);
      const bool cancelled_by_us = it != running.end() && it->second.ctx->StopRequested();
      running.erase(r.lease_id);
      {
        std::lock_guard lock(stats_mu);
        if (r.outcome == proto::UnitOutcome::kOk) ++stats.units_done;
        else if (r.outcome == proto::UnitOutcome::kFailed) ++stats.units_failed;
        else ++stats.units_cancelled;
        stats.cpu_seconds += r.cpu_seconds;
      }
      if (r.outcome == proto::UnitOutcome::kFailed)
        SC_LOG(Warn) << "unit " << r.job_id << "/" << r.unit_index << " failed: " << r.error;
      if (cancelled_by_us && r.outcome == proto::UnitOutcome::kCancelled) continue;  // coordinator knows
      std::string frame = proto::Encode(r);
      net::SendDealer(*sock, frame, &wire);
      unacked[r.lease_id] = std::move(frame);
    }
  }

  void Announce(TimePoint now) {
    if (!welcomed) return;
    proto::Capacity cap;
    cap.slots = slots;
    cap.idle_slots = slots > running.size() ? static_cast<std::uint32_t>(slots - running.size()) : 0;
    cap.memory_available = hello.memory_bytes;
    cap.state = proto::PeerState::kRunning;
    if (!capacity_sent || cap.slots != last_capacity.slots || cap.idle_slots != last_capacity.idle_slots) {
      Send(cap);
      last_capacity = cap;
      capacity_sent = true;
    }
    const std::size_t held = running.size() + waiting.size();
    const std::size_t cap_units = slots + config.prefetch;
    const auto want = static_cast<std::uint32_t>(cap_units > held ? cap_units - held : 0);
    if (want != last_request) {
      Send(proto::RequestWork{want});
      last_request = want;
    }
    if (now - last_heartbeat >= heartbeat) {
      proto::Heartbeat hb;
      for (const auto& [id, r] : running) hb.running.push_back({id, r.ctx->progress()});
      Send(hb);
      last_heartbeat = now;
    }
  }

  void UpdateStats() {
    std::lock_guard lock(stats_mu);
    stats.bad_frames = wire.bad_frames;
    stats.results_unacked = unacked.size();
    stats.running = running.size();
    stats.connected = welcomed;
  }

  void Loop() {
    std::vector<zmq::pollitem_t> items = {{sock->handle(), 0, ZMQ_POLLIN, 0}, {nullptr, wake.fd(), ZMQ_POLLIN, 0}};
    SendHello(SteadyClock::Instance().Now());
    while (!stop.load()) {
      net::Poll(items, std::chrono::milliseconds(50));
      if (items[1].revents & ZMQ_POLLIN) wake.Drain();
      TimePoint now = SteadyClock::Instance().Now();
      for (int i = 0; i < 1024; ++i) {
        auto m = net::RecvDealer(*sock, &wire);
        if (!m) break;
        OnFrame(*m, now);
      }
      DrainCompletions();
      StartUnits();
      if (!welcomed && now - hello_sent >= config.hello_retry) SendHello(now);
      Announce(now);
      UpdateStats();
    }
    Leave();
  }

  // Graceful leave: stop running units at their next progress call and hand every lease back.
  void Leave() {
    proto::Bye bye;
    for (const auto& l : waiting) bye.returned_leases.push_back(l.lease_id);
    for (auto& [id, r] : running) {
      r.ctx->Cancel();
      bye.returned_leases.push_back(id);
    }
    waiting.clear();
    {
      std::unique_lock lock(done_mu);
      done_cv.wait(lock, [&] { return active_units == 0; });
      // Units that finished anyway are still worth sending.
      for (auto& r : done) {
        if (r.outcome != proto::UnitOutcome::kOk) continue;
        bye.returned_leases.erase(std::remove(bye.returned_leases.begin(), bye.returned_leases.end(), r.lease_id),
                                  bye.returned_leases.end());
        net::SendDealer(*sock, proto::Encode(r), &wire);
      }
      done.clear();
    }
    running.clear();
    if (welcomed) {
      Send(bye);
      // Give the Bye a moment to leave before the socket closes.
      sock->set(zmq::sockopt::linger, 1000);
    }
    SC_LOG(Info) << "left the coordinator (" << bye.returned_leases.size() << " leases handed back)";
  }
};

Worker::Worker(WorkerConfig config, const tasks::Registry& registry)
    : impl_(std::make_unique<Impl>(std::move(config), registry)) {}

Worker::~Worker() {
  if (impl_->arena) {
    std::unique_lock lock(impl_->done_mu);
    impl_->done_cv.wait(lock, [&] { return impl_->active_units == 0; });
  }
}

static Result<std::string> ResolvePeerId(const WorkerConfig& cfg) {
  if (!cfg.peer_id.empty()) return cfg.peer_id;
  if (cfg.state_dir.empty()) return RandomId("peer-");
  std::error_code ec;
  std::filesystem::create_directories(cfg.state_dir, ec);
  if (ec) return Unavailable("cannot create state directory " + cfg.state_dir + ": " + ec.message());
  const std::string path = cfg.state_dir + "/peer-id";
  if (auto existing = ReadFile(path, 256); existing.ok()) {
    std::string id = *existing;
    while (!id.empty() && (id.back() == '\n' || id.back() == ' ')) id.pop_back();
    if (!id.empty() && id.size() <= proto::kMaxIdBytes) return id;
  }
  std::string id = RandomId("peer-");
  SC_RETURN_IF_ERROR(WriteFileAtomic(path, id + "\n"));
  return id;
}

Status Worker::Start() {
  InitCrypto();
  Impl& m = *impl_;
  auto id = ResolvePeerId(m.config);
  if (!id.ok()) return id.status();
  m.peer_id = *id;
  m.slots = m.config.cores == 0 ? HardwareCores() : m.config.cores;
  if (m.slots > 4096) return InvalidArgument("--cores above 4096");
  // The arena gets a slot per donated core, all for TBB's own threads; make sure the global pool
  // has that many.
  const auto current = tbb::global_control::active_value(tbb::global_control::max_allowed_parallelism);
  if (current < m.slots + 1)
    m.parallelism = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism, m.slots + 1);
  m.arena = std::make_unique<tbb::task_arena>(static_cast<int>(m.slots), 0);

  m.hello.peer_id = m.peer_id;
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  m.hello.hostname = host;
  m.hello.account = m.config.account;
  m.hello.software = "sparecycles-worker 0.1.0";
  m.hello.cores = m.slots;
  m.hello.memory_bytes = TotalMemoryBytes();
  for (const tasks::Task* t : m.registry.All()) {
    if (!m.config.only_tasks.empty() &&
        std::find(m.config.only_tasks.begin(), m.config.only_tasks.end(), t->Name()) == m.config.only_tasks.end())
      continue;
    proto::TaskInfo info;
    info.name = std::string(t->Name());
    info.version = t->Version();
    info.work_per_second = m.config.calibrate_seconds > 0 ? t->Calibrate(m.config.calibrate_seconds)
                                                          : t->DefaultWorkPerSecond();
    m.hello.tasks.push_back(std::move(info));
  }
  net::SocketConfig sc;
  auto sock = net::ConnectDealer(m.ctx, m.config.coordinator, sc);
  if (!sock.ok()) return sock.status();
  m.sock.emplace(std::move(*sock));
  SC_LOG(Info) << "peer " << m.peer_id << " donating " << m.slots << " cores to " << m.config.coordinator;
  return OkStatus();
}

void Worker::Run() { impl_->Loop(); }

void Worker::Stop() {
  impl_->stop.store(true);
  impl_->wake.Wake();
}

const std::string& Worker::peer_id() const { return impl_->peer_id; }

WorkerStats Worker::stats() const {
  std::lock_guard lock(impl_->stats_mu);
  return impl_->stats;
}

}  // namespace sparecycles::worker
