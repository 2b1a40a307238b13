// 10,000 simulated peers on one coordinator: its memory (VmRSS) and CPU (utime + stime from
// /proc/PID/stat) at rest and under load.
//
// The simulator speaks the real peer protocol (docs/protocol.md section 6): every simulated peer
// has its own ZeroMQ DEALER connection, says Hello (announcing the spin task), Capacity and
// RequestWork like the reference worker, sends a Heartbeat every heartbeat_ms, and answers each
// lease with a Result whose hash is BLAKE2b-256 of the spin task's Canonicalize(payload), computed
// by the real task's Execute. Many peers are multiplexed on one poll loop per process; because a
// DEALER costs two file descriptors and the hard RLIMIT_NOFILE here is 20,000, the peers are
// spread over --shards forked processes (default: at most 2,500 peers per shard).
//
// Figures (baselines measured in the same run):
//   RSS at rest with N peers            vs the same coordinator with 0 peers    (goal <= 1 GiB)
//   CPU % at rest with N peers          vs the same coordinator with 0 peers
//   RSS and CPU % under load (a spin ms=0 job spread over all N peers) vs at rest, and units/s
#include <signal.h>
#include <sys/wait.h>

#include "bench_common.hpp"
#include "sparecycles/core/curve_keys.hpp"
#include "sparecycles/core/hash.hpp"
#include "sparecycles/core/protocol.hpp"
#include "sparecycles/tasks/task.hpp"

using namespace sparecycles;
using namespace sparecycles::bench;

namespace {

volatile sig_atomic_t g_stop = 0;
void OnTerm(int) { g_stop = 1; }

struct SimPeer {
  zmq::socket_t sock;
  std::string id;
  bool welcomed = false;
  double hello_at = 0, next_heartbeat = 0;
  std::uint32_t last_request = 0;
  std::vector<proto::Lease> leases;  // assigned, not yet answered
};

template <class M>
void Send(SimPeer& p, const M& m) {
  const std::string frame = proto::Encode(m);
  (void)p.sock.send(zmq::buffer(frame), zmq::send_flags::dontwait);
}

void SendHello(SimPeer& p) {
  proto::Hello h;
  h.peer_id = p.id;
  h.hostname = "sim";
  h.software = "sparecycles-peer-sim";
  h.cores = 1;
  h.memory_bytes = 1ull << 30;
  h.tasks.push_back({"spin", 1, 1000.0});
  Send(p, h);
  p.hello_at = Now();
}

// One shard: `count` peers on one poll loop, until SIGTERM. Never returns.
[[noreturn]] void RunShard(const std::string& endpoint, int shard, int count, double heartbeat_s) {
  signal(SIGTERM, OnTerm);
  const tasks::Task* spin = tasks::Registry::BuiltIn().Find("spin");
  tasks::NullContext ctx;
  zmq::context_t zctx;
  zctx.set(zmq::ctxopt::max_sockets, count + 64);
  std::vector<SimPeer> peers(static_cast<std::size_t>(count));
  std::vector<zmq::pollitem_t> items;
  // Like real workers, every simulated peer is a CURVE key (the coordinator published its own
  // key for this user on this machine), and its peer id is its key's.
  const std::optional<curve::PublicKey> server = curve::FindLocalKey(endpoint);
  const double t0 = Now();
  for (int i = 0; i < count; ++i) {
    auto& p = peers[static_cast<std::size_t>(i)];
    p.sock = zmq::socket_t(zctx, zmq::socket_type::dealer);
    p.sock.set(zmq::sockopt::linger, 0);
    p.sock.set(zmq::sockopt::reconnect_ivl, 100);
    p.sock.set(zmq::sockopt::reconnect_ivl_max, 2000);
    p.id =
        "sim-" + std::to_string(getpid()) + "-" + std::to_string(shard) + "-" + std::to_string(i);
    if (server) {
      const curve::KeyPair key = curve::Generate();
      p.sock.set(zmq::sockopt::curve_serverkey, server->Z85());
      p.sock.set(zmq::sockopt::curve_publickey, key.public_key.Z85());
      p.sock.set(zmq::sockopt::curve_secretkey, key.SecretZ85());
      p.id = curve::PeerIdFor(key.public_key);
    }
    p.sock.connect(endpoint);
    SendHello(p);
    // Spread the heartbeats over the period, as independent peers would be.
    p.next_heartbeat = t0 + heartbeat_s * (static_cast<double>(i) / count);
    items.push_back({p.sock.handle(), 0, ZMQ_POLLIN, 0});
  }
  std::size_t hb_cursor = 0;
  while (!g_stop) {
    try {
      zmq::poll(items, std::chrono::milliseconds(20));
    } catch (const zmq::error_t&) {
      continue;  // EINTR
    }
    const double now = Now();
    for (std::size_t i = 0; i < peers.size(); ++i) {
      if (!(items[i].revents & ZMQ_POLLIN)) continue;
      auto& p = peers[i];
      zmq::message_t m;
      while (p.sock.recv(m, zmq::recv_flags::dontwait)) {
        std::string_view body;
        auto type = proto::ParseHeader({static_cast<const char*>(m.data()), m.size()}, body);
        if (!type.ok()) continue;
        switch (*type) {
          case proto::MsgType::kWelcome: {
            p.welcomed = true;
            Send(p, proto::Capacity{1, 1, 1ull << 30, proto::PeerState::kRunning, ""});
            Send(p, proto::RequestWork{2});
            p.last_request = 2;
            break;
          }
          case proto::MsgType::kAssign: {
            proto::Assign a;
            if (proto::Decode(body, a).ok())
              for (auto& l : a.leases) p.leases.push_back(std::move(l));
            break;
          }
          case proto::MsgType::kReject:
            if (now - p.hello_at > 0.2) SendHello(p);
            break;
          case proto::MsgType::kCancelLeases: {
            proto::CancelLeases c;
            if (proto::Decode(body, c).ok())
              std::erase_if(p.leases, [&](const proto::Lease& l) {
                return std::find(c.lease_ids.begin(), c.lease_ids.end(), l.lease_id) !=
                       c.lease_ids.end();
              });
            break;
          }
          default:
            break;  // Ack: nothing to keep (results are not re-sent here)
        }
      }
      // Run what this peer holds (spin ms=0 finishes at once) and ask for more.
      if (!p.leases.empty()) {
        for (const auto& l : p.leases) {
          proto::ResultMsg r;
          r.lease_id = l.lease_id;
          r.job_id = l.job_id;
          r.unit_index = l.unit_index;
          const double e0 = Now();
          auto out = spin->Execute(l.unit, ctx);
          if (out.ok()) {
            r.payload = std::move(*out);
            const Hash256 h = Blake2b256(spin->Canonicalize(r.payload));
            r.hash.assign(reinterpret_cast<const char*>(h.data()), h.size());
          } else {
            r.outcome = proto::UnitOutcome::kFailed;
            r.error = out.status().ToString();
          }
          r.wall_seconds = r.cpu_seconds = Now() - e0;
          Send(p, r);
        }
        p.leases.clear();
        Send(p, proto::RequestWork{2});
        p.last_request = 2;
      }
    }
    // Heartbeats (and Hello retries) for the peers whose time has come, round robin.
    for (std::size_t n = 0; n < peers.size(); ++n, hb_cursor = (hb_cursor + 1) % peers.size()) {
      auto& p = peers[hb_cursor];
      if (p.next_heartbeat > now) break;
      if (p.welcomed)
        Send(p, proto::Heartbeat{});
      else if (now - p.hello_at > 2.0)
        SendHello(p);
      p.next_heartbeat = now + heartbeat_s;
    }
  }
  _exit(0);
}

struct Window {
  double rss_mib = 0, cpu_percent = 0;
};

Window Observe(pid_t pid, double seconds) {
  const ProcSample a = ReadProc(pid);
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  const ProcSample b = ReadProc(pid);
  return {b.rss_mib, 100.0 * (b.cpu_s - a.cpu_s) / (b.at - a.at)};
}

}  // namespace

int main(int argc, char** argv) {
  return Guarded([&] {
    Args args(argc, argv);
    if (args.help()) {
      std::cout
          << "Usage: bench_peer_sim [--quick] [--peers N] [--shards K] [--rest-seconds S] [--units "
             "U]\n"
             "N simulated peers on one coordinator: its RSS and CPU at rest and under load.\n";
      return 0;
    }
    const int npeers = static_cast<int>(args.Num("peers", 10000, 200));
    const int shards = static_cast<int>(args.Num("shards", std::max(1, (npeers + 2499) / 2500), 1));
    const double rest_s = args.Num("rest-seconds", 15, 2);
    const auto units = static_cast<std::uint64_t>(args.Num("units", 50000, 2000));
    const double heartbeat_s = args.Num("heartbeat-seconds", 5, 1);
    const rlim_t fds = RaiseFdLimit();
    std::cerr << "peer simulator: " << npeers << " peers in " << shards
              << " shard process(es), open-file limit " << fds << ", heartbeat " << heartbeat_s
              << " s\n";

    TempDir dir;
    const std::string ep_file = dir / "endpoints";
    if (!Supports(SPARECYCLES_COORDINATOR_BIN, "--pool"))
      Die("this tool expects a coordinator with --pool");
    Process coordinator({SPARECYCLES_COORDINATOR_BIN, "--peers", "tcp://127.0.0.1:*", "--clients",
                         "tcp://127.0.0.1:*", "--endpoints-file", ep_file, "--heartbeat",
                         std::to_string(static_cast<int>(heartbeat_s * 1000)) + "ms", "--log-level",
                         "warn", "--pool", "cluster"},
                        dir / "coordinator");
    if (!testing::WaitForFile(ep_file, std::chrono::seconds(10)))
      Die("coordinator did not start: " + coordinator.Stderr());
    std::string peer_ep, client_ep;
    {
      std::istringstream in(testing::ReadAll(ep_file));
      std::string k, v;
      while (in >> k >> v) {
        if (k == "peers") peer_ep = v;
        if (k == "clients") client_ep = v;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    const Window empty = Observe(coordinator.pid(), std::min(rest_s, 5.0));

    // Fork the shards before this process starts any thread (the SDK client has an I/O thread).
    std::vector<pid_t> shard_pids;
    struct Reaper {  // on any exit from here on, the shards are ended by pid and reaped
      std::vector<pid_t>& pids;
      ~Reaper() {
        for (pid_t pid : pids) kill(pid, SIGTERM);
        for (pid_t pid : pids) waitpid(pid, nullptr, 0);
      }
    } reaper{shard_pids};
    for (int s = 0; s < shards; ++s) {
      const int count = npeers / shards + (s < npeers % shards ? 1 : 0);
      const pid_t pid = fork();
      if (pid < 0) Die("fork failed");
      if (pid == 0) RunShard(peer_ep, s, count, heartbeat_s);
      shard_pids.push_back(pid);
    }
    auto stop_shards = [&] {
      for (pid_t pid : shard_pids) kill(pid, SIGTERM);
      for (pid_t pid : shard_pids) waitpid(pid, nullptr, 0);
      shard_pids.clear();
    };
    auto sim_cpu = [&] {
      double cpu = 0;
      for (pid_t pid : shard_pids) cpu += ReadProc(pid).cpu_s;
      return cpu;
    };

    auto client = Client::Connect(client_ep, ClientOptions{std::chrono::milliseconds(30000)});
    if (!client.ok()) Die(client.status().ToString());
    const double reg0 = Now();
    std::size_t registered = 0;
    while (Now() - reg0 < args.Num("register-seconds", 300, 60)) {
      auto p = client->Peers();
      if (p.ok()) registered = p->size();
      if (registered >= static_cast<std::size_t>(npeers)) break;
      std::this_thread::sleep_for(
          std::chrono::milliseconds(1000));  // a PeerList of 10k is not free
    }
    const double reg_s = Now() - reg0;
    // Fewer than all registered is itself a finding: report what was measured, with the count.
    if (registered == 0) Die("no simulated peer registered");
    std::cerr << "  " << registered << " of " << npeers << " peers registered in " << reg_s
              << " s\n";
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    const Window rest = Observe(coordinator.pid(), rest_s);

    // Under load: one spin ms=0 job over all peers.
    const ProcSample l0 = ReadProc(coordinator.pid());
    const double s0 = sim_cpu();
    double peak_rss = l0.rss_mib;
    const double t0 = Now();
    auto job = client->Submit(SpinJob(units, 0));
    if (!job.ok()) Die("submit: " + job.status().ToString());
    Result<JobResult> result = DeadlineExceeded("");
    while (true) {
      result = job->Wait(std::chrono::milliseconds(250));
      peak_rss = std::max(peak_rss, ReadProc(coordinator.pid()).rss_mib);
      if (result.ok() || result.status().code() != StatusCode::kDeadlineExceeded ||
          Now() - t0 > 600)
        break;
    }
    const double job_s = Now() - t0;
    const ProcSample l1 = ReadProc(coordinator.pid());
    const double sim_cpu_s = sim_cpu() - s0;
    stop_shards();
    if (!result.ok()) Die("load job: " + result.status().ToString());
    if (result->info.state != JobState::kDone)
      Die("load job ended " + std::string(JobStateName(result->info.state)));

    const std::string n =
        std::to_string(npeers) + " peers (" + std::to_string(registered) + " registered)";
    Figure f;
    f.figure = "coordinator_rss_mib";
    f.unit = "MiB";
    f.higher_is_better = false;
    f.case_name = "at rest, " + n;
    f.value = rest.rss_mib;
    f.baseline = empty.rss_mib;
    f.baseline_name = "same coordinator, 0 peers";
    f.goal = "<= 1024";
    f.extra = {{"registration_s", reg_s}, {"peers_registered", static_cast<double>(registered)}};
    Emit(f, args);
    f.extra.clear();
    f.case_name = "under load (peak), " + n;
    f.value = peak_rss;
    f.baseline = rest.rss_mib;
    f.baseline_name = "at rest, " + n;
    Emit(f, args);

    f = Figure{};
    f.figure = "coordinator_cpu_percent";
    f.unit = "% of one core";
    f.higher_is_better = false;
    f.case_name = "at rest, " + n + ", heartbeat " + Num(heartbeat_s) + " s";
    f.value = rest.cpu_percent;
    f.baseline = empty.cpu_percent;
    f.baseline_name = "same coordinator, 0 peers";
    Emit(f, args);
    f.case_name = "under load, " + n + ", spin ms=0 job of " + std::to_string(units) + " units";
    f.value = 100.0 * (l1.cpu_s - l0.cpu_s) / (l1.at - l0.at);
    f.baseline = rest.cpu_percent;
    f.baseline_name = "at rest, " + n;
    f.extra = {
        {"units_per_s", static_cast<double>(units) / job_s},
        {"coordinator_cpu_us_per_unit", 1e6 * (l1.cpu_s - l0.cpu_s) / static_cast<double>(units)},
        {"simulator_cpu_percent", 100.0 * sim_cpu_s / job_s}};
    Emit(f, args);
    return 0;
  });
}
