// What hostile peers can make a real coordinator hold in memory (docs/security.md, "Denial of
// service"): each case runs against a fresh `sparecycles-coordinator` with its connection guard
// on (the defaults) and, as the same-run baseline, with --connection-guard off. The attacker
// speaks raw ZMTP 3 to 127.0.0.1 and completes the CURVE handshake with a fresh key, as any
// stranger may in a volunteer pool (tests/support/raw_zmtp.hpp); with --curve off both sides
// are plaintext and the attacker speaks NULL. Cases:
//   slow_handshakes   N connections that send half a greeting and stall
//   multipart_1b      one connection streaming 1-byte frames, all with MORE
//   multipart_1mib    one connection streaming 1 MiB frames, all with MORE
//   max_frames        complete messages of just under ZMQ_MAXMSGSIZE (80 MiB), back to back
//   churn             connections that handshake and close, 16 at a time
// Per case: the coordinator's VmRSS before, its peak (VmHWM, reset before the case) and VmRSS
// after the attacker closed; whether the attacker was cut. Every case is bounded in bytes and
// seconds.
#include <thread>

#include "bench_common.hpp"
#include "raw_zmtp.hpp"
#include "sparecycles/core/hash.hpp"
#include "sparecycles/core/protocol.hpp"

using namespace sparecycles;
using namespace sparecycles::bench;
using testing::RawZmtp;

namespace {

constexpr double kMiB = 1024.0 * 1024.0;

double ProcMiB(pid_t pid, const char* field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  const std::string prefix = std::string(field) + ":";
  while (std::getline(in, line))
    if (line.rfind(prefix, 0) == 0)
      return std::strtod(line.c_str() + prefix.size(), nullptr) / 1024;
  return NAN;
}

// Resets VmHWM to the current RSS (Linux >= 4.0), so a case's peak is its own.
void ResetPeak(pid_t pid) { std::ofstream("/proc/" + std::to_string(pid) + "/clear_refs") << "5"; }

struct Outcome {
  double before = 0, peak = 0, after = 0;
  double sent_mib = 0;      // what the attacker got written
  std::uint64_t cut = 0;    // attacker connections the coordinator closed
  std::uint64_t tried = 0;  // attacker connections
  double seconds = 0;
};

struct Params {
  int slow_connections = 2000;
  double multipart_budget_mib = 512, multipart_seconds = 60;
  int max_frames = 8;
  int churn = 5000;
};

// A coordinator of its own for one case; `guard` false = --connection-guard off.
// `curve` false: the coordinator runs --curve off and the attacker speaks NULL.
struct Target {
  testing::Cluster cluster;
  pid_t pid;
  std::uint16_t port;
  bool curve;
  Target(bool guard, bool curve_on)
      : cluster(0, {"--log-level", "warn", "--connection-guard", guard ? "on" : "off", "--curve",
                    curve_on ? "on" : "off"}),
        pid(cluster.coordinator().pid()),
        port(RawZmtp::PortOf(cluster.peer_endpoint())),
        curve(curve_on) {
    if (!cluster.ok() || port == 0) Die("the coordinator did not start");
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  bool Handshake(RawZmtp& z, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    return z.Connect(port) && (curve ? z.HandshakeCurve(cluster.coordinator_key(), timeout)
                                     : z.HandshakeNull(timeout));
  }
};

template <class Attack>
Outcome Measure(Target& t, Attack&& attack) {
  Outcome o;
  ResetPeak(t.pid);
  o.before = ProcMiB(t.pid, "VmRSS");
  const double t0 = Now();
  attack(o);  // reads o.peak itself while its connections are still open
  o.seconds = Now() - t0;
  o.peak = std::max(o.peak, ProcMiB(t.pid, "VmHWM"));
  std::this_thread::sleep_for(std::chrono::seconds(2));  // closed connections are torn down
  o.after = ProcMiB(t.pid, "VmRSS");
  if (!t.cluster.coordinator().running()) Die("the coordinator died: " + t.cluster.Logs());
  return o;
}

Outcome SlowHandshakes(Target& t, const Params& p) {
  return Measure(t, [&](Outcome& o) {
    std::vector<RawZmtp> conns(static_cast<std::size_t>(p.slow_connections));
    for (auto& c : conns) {
      if (!c.Connect(t.port)) break;
      ++o.tried;
      c.SendGreeting(t.curve ? "CURVE" : "NULL", 20);
    }
    std::this_thread::sleep_for(std::chrono::seconds(2));
    for (auto& c : conns)
      if (c.fd() >= 0 && c.WaitClosed(std::chrono::milliseconds(1))) ++o.cut;
    o.peak = ProcMiB(t.pid, "VmHWM");
  });
}

Outcome Multipart(Target& t, const Params& p, std::size_t frame_bytes) {
  return Measure(t, [&](Outcome& o) {
    RawZmtp z;
    o.tried = 1;
    if (!t.Handshake(z)) Die("the handshake failed");
    const std::string data(frame_bytes, 'x');
    const std::size_t batch = std::max<std::size_t>(1, (1 << 20) / frame_bytes);
    std::string out;
    const double deadline = Now() + p.multipart_seconds;
    double sent = 0;
    bool cut = false;
    while (sent < p.multipart_budget_mib * kMiB && Now() < deadline) {
      out.clear();
      for (std::size_t i = 0; i < batch; ++i) z.AppendFrame(out, data, true);
      if (!z.SendAll(out, std::chrono::seconds(5))) {
        cut = true;
        break;
      }
      sent += static_cast<double>(out.size());
    }
    o.sent_mib = sent / kMiB;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));  // the last bytes arrive
    o.peak = ProcMiB(t.pid, "VmHWM");
    if (!cut) cut = z.WaitClosed(std::chrono::seconds(1));
    o.cut = cut ? 1 : 0;
  });
}

Outcome MaxFrames(Target& t, const Params& p) {
  return Measure(t, [&](Outcome& o) {
    RawZmtp z;
    o.tried = 1;
    if (!t.Handshake(z)) Die("the handshake failed");
    // The largest frame ZMQ_MAXMSGSIZE lets through, as complete single-frame messages.
    const std::string data(proto::kMaxFrameBytes - 64, 'x');
    std::string out;
    for (int i = 0; i < p.max_frames; ++i) {
      out.clear();
      z.AppendFrame(out, data, false);
      if (!z.SendAll(out, std::chrono::seconds(10))) {
        o.cut = 1;
        break;
      }
      o.sent_mib += static_cast<double>(out.size()) / kMiB;
    }
    std::this_thread::sleep_for(std::chrono::seconds(1));
    o.peak = ProcMiB(t.pid, "VmHWM");
    if (o.cut == 0 && z.WaitClosed(std::chrono::milliseconds(200))) o.cut = 1;
  });
}

Outcome Churn(Target& t, const Params& p) {
  return Measure(t, [&](Outcome& o) {
    std::atomic<int> next{0};
    std::atomic<std::uint64_t> ok{0};
    std::vector<std::thread> threads;
    threads.reserve(16);
    for (int k = 0; k < 16; ++k)
      threads.emplace_back([&] {
        while (next.fetch_add(1) < p.churn) {
          RawZmtp z;
          if (t.Handshake(z)) ++ok;
        }
      });
    for (auto& th : threads) th.join();
    o.tried = static_cast<std::uint64_t>(p.churn);
    o.cut = o.tried - ok.load();  // connections that did not complete a handshake
  });
}

void Report(const Args& args, const std::string& name, const Outcome& on, const Outcome& off) {
  std::fprintf(stderr,
               "%-16s | guard on : RSS %7.1f -> peak %7.1f -> after %7.1f MiB, sent %8.1f MiB, "
               "cut %llu/%llu, %.1f s\n"
               "%-16s | guard off: RSS %7.1f -> peak %7.1f -> after %7.1f MiB, sent %8.1f MiB, "
               "cut %llu/%llu, %.1f s\n",
               name.c_str(), on.before, on.peak, on.after, on.sent_mib,
               static_cast<unsigned long long>(on.cut), static_cast<unsigned long long>(on.tried),
               on.seconds, "", off.before, off.peak, off.after, off.sent_mib,
               static_cast<unsigned long long>(off.cut), static_cast<unsigned long long>(off.tried),
               off.seconds);
  Figure f;
  f.figure = "coordinator_peak_rss_growth_mib";
  f.case_name = name;
  f.value = on.peak - on.before;
  f.unit = "MiB";
  f.baseline = off.peak - off.before;
  f.baseline_name = "--connection-guard off";
  f.higher_is_better = false;
  f.extra = {{"rss_before_mib", on.before},
             {"rss_peak_mib", on.peak},
             {"rss_after_mib", on.after},
             {"sent_mib", on.sent_mib},
             {"cut", static_cast<double>(on.cut)},
             {"tried", static_cast<double>(on.tried)},
             {"baseline_rss_peak_mib", off.peak},
             {"baseline_sent_mib", off.sent_mib},
             {"baseline_cut", static_cast<double>(off.cut)}};
  Emit(f, args);
}

}  // namespace

int main(int argc, char** argv) {
  Args args(argc, argv);
  if (args.help()) {
    std::cout
        << "bench_hostile [--quick] [--curve on|off] [--cases a,b,...] [--slow-connections N]\n"
           "  [--multipart-mib M] [--multipart-seconds S] [--max-frames N] [--churn N]\n"
           "Cases: slow_handshakes, multipart_1b, multipart_1mib, max_frames, churn.\n";
    return 0;
  }
  return Guarded([&] {
    RaiseFdLimit();
    InitCrypto();
    Params p;
    p.slow_connections = static_cast<int>(args.Num("slow-connections", 2000, 200));
    p.multipart_budget_mib = args.Num("multipart-mib", 512, 64);
    p.multipart_seconds = args.Num("multipart-seconds", 60, 5);
    p.max_frames = static_cast<int>(args.Num("max-frames", 8, 1));
    p.churn = static_cast<int>(args.Num("churn", 5000, 100));
    const std::string cases =
        args.Str("cases", "slow_handshakes,multipart_1b,multipart_1mib,max_frames,churn");
    auto wanted = [&](const std::string& c) {
      return ("," + cases + ",").find("," + c + ",") != std::string::npos;
    };
    const bool curve = args.Str("curve", "on") != "off";
    std::fprintf(stderr, "coordinator memory under hostile peers (CURVE %s, 127.0.0.1)\n",
                 curve ? "on" : "off");
    auto run = [&](const std::string& name, auto&& one) {
      if (!wanted(name)) return;
      Outcome res[2];
      for (int guard = 1; guard >= 0; --guard) {
        Target t(guard == 1, curve);
        res[guard] = one(t);
      }
      Report(args, name, res[1], res[0]);
    };
    run("slow_handshakes", [&](Target& t) { return SlowHandshakes(t, p); });
    run("multipart_1b", [&](Target& t) { return Multipart(t, p, 1); });
    run("multipart_1mib", [&](Target& t) { return Multipart(t, p, 1 << 20); });
    run("max_frames", [&](Target& t) { return MaxFrames(t, p); });
    run("churn", [&](Target& t) { return Churn(t, p); });
    return 0;
  });
}
