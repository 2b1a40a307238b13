// sparecycles-coordinator: parses options and runs the coordinator until SIGINT/SIGTERM.
#include <signal.h>

#include <cctype>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "sparecycles/coordinator/coordinator.hpp"
#include "sparecycles/core/daemon.hpp"
#include "sparecycles/core/log.hpp"
#include "sparecycles/core/options.hpp"

using namespace sparecycles;

namespace {
coordinator::Coordinator* g_coordinator = nullptr;
void OnSignal(int) {
  if (g_coordinator) g_coordinator->Stop();
}
int Fail(const Status& s) {
  std::fprintf(stderr, "sparecycles-coordinator: %s\n", s.ToString().c_str());
  return 2;
}
void OnHangup(int) {
  if (g_coordinator) g_coordinator->ReloadKeys();
}

// Where the key pair lives: --key-file, else DATA/curve/coordinator.key; empty = none on disk.
std::string KeyPath(const Options& opt) {
  if (!opt.Get("key-file").empty()) return opt.Get("key-file");
  if (!opt.Get("data").empty()) return opt.Get("data") + "/curve/coordinator.key";
  return {};
}

// `sparecycles-coordinator key`: prints the public key (creating the pair on first use).
int PrintKey(const Options& opt) {
  const std::string path = KeyPath(opt);
  if (path.empty()) {
    std::fprintf(stderr,
                 "sparecycles-coordinator key: a coordinator without --data has a new key each "
                 "run; give --data DIR (or --key-file FILE)\n");
    return 2;
  }
  // The public file is enough (and readable by an operator who is not the coordinator's user).
  std::string pub = path;
  if (pub.size() > 4 && pub.compare(pub.size() - 4, 4, ".key") == 0) pub.resize(pub.size() - 4);
  std::error_code ec;
  if (std::filesystem::exists(pub + ".pub", ec)) {
    auto key = curve::LoadPublicKey(pub + ".pub");
    if (!key.ok()) return Fail(key.status());
    std::printf("%s\n", key->Z85().c_str());
    return 0;
  }
  auto pair = curve::LoadOrCreateKeyPair(path, "coordinator");
  if (!pair.ok()) return Fail(pair.status());
  std::printf("%s\n", pair->public_key.Z85().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt(
      "sparecycles-coordinator [options] | sparecycles-coordinator key [--data DIR]",
      "Runs a SpareCycles coordinator: workers (peers) connect to --peers, SDK clients and the\n"
      "`sparecycles` CLI connect to --clients. Jobs are split into units, leased to peers and\n"
      "checked by replication before their results are merged. Both endpoints are CurveZMQ\n"
      "(encrypted, every connection named by its key; docs/security.md). `key` prints the\n"
      "coordinator's public key, which workers and clients pin (--coordinator-key).",
      "SPARECYCLES_COORDINATOR_");
  opt.Add("config", "", "Config file of 'name = value' lines (# comments); flags override it.");
  opt.Add("peers", "tcp://0.0.0.0:7737",
          "Endpoint where workers connect (ZeroMQ syntax; port * = any).");
  opt.Add("clients", "tcp://127.0.0.1:7738", "Endpoint where SDK clients and the CLI connect.");
  opt.Add("data", "", "Directory for the coordinator's state. Empty = keep everything in memory.");
  opt.Add("endpoints-file", "",
          "After binding, write the bound endpoints here (for scripts and tests).");
  opt.Add("heartbeat", "5s", "How often peers must send a heartbeat.");
  opt.Add("peer-timeout", "60s",
          "Silence after which a peer is declared lost and its units reissued.");
  opt.Add("disconnect-grace", "1s",
          "After a peer's connection drops, wait this long for it to reconnect before requeueing "
          "its units.");
  opt.Add("lease-min", "60s", "Shortest lease; a unit is reissued when its lease passes.");
  opt.Add("lease-factor", "5",
          "Lease length as a multiple of the unit's expected run time on its peer.");
  opt.Add("prefetch", "64",
          "Most units a peer may hold beyond its slots (workers ask for more only when units are "
          "short).");
  opt.Add(
      "prefetch-seconds", "0.05",
      "Expected work per slot a peer may hold beyond its slots; of longer units it holds one per\n"
      "slot beyond them, and only while the job has fresh units for every slot of the pool twice.");
  opt.Add("unit-seconds", "1", "Target run time of one unit on a median peer, in seconds.");
  opt.Add(
      "pool", "volunteer",
      "Defaults for cross-checking: volunteer = untrusted peers (2 replicas, quorum 2, adaptive\n"
      "      credibility with spot-checks); cluster = trusted machines (1 replica, quorum 1).");
  opt.Add("replicas", "",
          "Default copies of each unit issued at first (jobs may override); empty = from --pool.");
  opt.Add("quorum", "",
          "Default number of matching results needed to accept a unit; empty = from --pool.");
  opt.Add(
      "adaptive", "",
      "on/off: accept units by peers' credibility instead of a fixed quorum; empty = from --pool.");
  opt.Add("target-error", "1e-3",
          "With adaptive acceptance: the bound on the chance an accepted unit is wrong.");
  opt.Add("saboteur-fraction", "0.2",
          "Assumed upper bound on the share of peers that return wrong results.");
  opt.Add("spot-check-rate", "0.1",
          "Share of assignments that are spot-checks with a known answer (adaptive jobs).");
  opt.Add("blacklist-after", "2", "Wrong answers caught before a peer is blacklisted (0 = never).");
  opt.Add("max-replicas", "4",
          "Default most copies of one unit ever issued (adaptive jobs: at least 8).");
  opt.Add("max-errors", "3", "Default failed runs after which a unit fails.");
  opt.Add(
      "backups", "on",
      "on = near a job's end, run backup copies of straggling units on idle peers; off = never.");
  opt.Add("keep-jobs", "10000",
          "Finished jobs kept for status queries (and in --data); the oldest go first.");
  opt.Add("keep-for", "7d", "...and for at most this long after they finished (e.g. 12h, 30d).");
  opt.Add("distinct", "",
          "hosts, subnets or off: what counts as one host for the Sybil rules — copies of a unit\n"
          "      on distinct hosts, a host's agreeing votes count once, its peers share one\n"
          "      credibility (hosts = one IP address, subnets = one IPv4 /24 or IPv6 /64).\n"
          "      Loopback peers are each their own host. Empty = from --pool (volunteer: hosts,\n"
          "      cluster: off).");
  opt.AddFlag("distinct-hosts", "The same as --distinct hosts.");
  opt.AddFlag("loopback-is-one-host",
              "With --distinct: peers on 127.0.0.0/8 and ::1 are one host, not one each.");
  opt.Add("new-peers-per-host", "",
          "New peer ids one host may enroll per hour; beyond, a Hello is refused with the reason\n"
          "      (0 = unlimited). Empty = from --pool (volunteer: 10, cluster: 0).");
  opt.Add("host-blacklist-after", "4",
          "Wrong answers caught from one host's peers before the host is blacklisted (0 = never).");
  opt.Add(
      "http", "",
      "HOST:PORT for /metrics, /healthz, /readyz and the dashboard (port 0 = any); empty = off.\n"
      "      Read-only without authentication: bind it where only operators reach it.");
  opt.Add(
      "http-admin-token-file", "",
      "File holding the token that allows writes (cancel) from the dashboard; empty = read-only.");
  opt.Add(
      "publishers", "",
      "Package publishers whose signed task packages this coordinator accepts: comma-separated\n"
      "      directories of *.pub files, public key files or 64-hex-digit keys. Empty = uploads\n"
      "      are refused (docs/packages.md, \"Trust model\"). Workers are told these keys.");
  opt.Add("max-package-size", "268435456",
          "Largest task package accepted, in bytes (k, M, G = powers of 1000).");
  opt.Add("package-transfers", "4",
          "Peers fetching task packages at once; the others are asked to retry shortly.");
  opt.Add("key-file", "",
          "The coordinator's CURVE key pair (created when missing, mode 0600). Empty =\n"
          "      DATA/curve/coordinator.key, or a new key each run without --data.");
  opt.Add(
      "worker-keys", "",
      "Only these worker keys may join: a file of 'KEY' lines or a directory of *.pub files,\n"
      "      read again on SIGHUP. Empty = open enrollment (any key; meant for volunteer pools).");
  opt.Add("client-keys", "",
          "Only these client keys may use --clients: a file of 'KEY [ROLE] [jobs=N units=N\n"
          "      bytes=N]' lines (ROLE: submit, read, admin or e.g. submit,read; default submit;\n"
          "      the NAME=N words override the --quota-* flags for that key), read again on\n"
          "      SIGHUP (`sparecycles key show --client` prints a user's key). Empty = any key,\n"
          "      with --client-roles.");
  opt.Add("client-roles", "submit,read",
          "The roles of every client key when --client-keys is not given. submit = submit jobs\n"
          "      and upload packages, see and cancel its own jobs; read = see every job and the\n"
          "      peers; admin = everything, no quotas.");
  opt.Add("quota-jobs", "10000",
          "Unfinished jobs one client key may have (admins: no limit; 0 = no limit).");
  opt.Add("quota-units", "10M",
          "Units not yet settled across one client key's unfinished jobs (0 = no limit).");
  opt.Add("quota-bytes", "16G",
          "Bytes held for one client key: its unfinished jobs' inputs and the packages it\n"
          "      uploaded (k, M, G = powers of 1000; 0 = no limit).");
  opt.Add("curve", "on",
          "on = CurveZMQ on both endpoints (encrypted; every peer and client is its key). off =\n"
          "      PLAINTEXT, anyone may claim any peer id: only to measure what CURVE costs or for\n"
          "      pre-CURVE workers on a closed network during an upgrade; logged as a warning.");
  opt.Add("max-connections", "4096",
          "Open connections per endpoint; one over it is cut at once (docs/security.md,\n"
          "      \"Denial of service\"). Keep below the open-files limit (ulimit -n).");
  opt.Add("max-connections-per-host", "32",
          "Open connections per endpoint from one IP address (loopback is exempt); 0 = no cap.");
  opt.Add("max-pending-bytes", "100663296",
          "A connection whose bytes received run this far ahead of the complete messages read\n"
          "      from it (an unterminated multipart message) is cut (96 MiB; at least one\n"
          "      largest message, 83886080).");
  opt.Add("max-pending-total", "1073741824",
          "The same summed over an endpoint's connections (1 GiB); the largest are cut.");
  opt.Add("connection-guard", "on",
          "off = count connections but never cut one (only to measure what the guard bounds).");
  opt.Add("log-level", "info", "debug, info, warn, error or off.");
  if (Status s = opt.Parse(argc, argv); !s.ok()) return Fail(s);
  if (opt.HelpRequested()) {
    std::cout << opt.Help();
    return 0;
  }
  SetLogComponent("coordinator");
  LogLevel level;
  if (!ParseLogLevel(opt.Get("log-level"), level))
    return Fail(InvalidArgument("--log-level: unknown level"));
  SetLogLevel(level);

  if (!opt.Positional().empty()) {
    if (opt.Positional().size() == 1 && opt.Positional()[0] == "key") return PrintKey(opt);
    return Fail(InvalidArgument("unexpected argument '" + opt.Positional()[0] +
                                "' (the only command is `key`)"));
  }

  coordinator::CoordinatorConfig cfg;
  if (opt.Get("curve") != "on" && opt.Get("curve") != "off")
    return Fail(InvalidArgument("--curve must be on or off"));
  cfg.curve = opt.Get("curve") == "on";
  cfg.key_file = KeyPath(opt);
  cfg.worker_keys = opt.Get("worker-keys");
  cfg.client_keys = opt.Get("client-keys");
  cfg.client_roles = opt.Get("client-roles");
  for (auto [name, field] :
       {std::pair{"quota-jobs", &cfg.quota_jobs}, std::pair{"quota-units", &cfg.quota_units},
        std::pair{"quota-bytes", &cfg.quota_bytes}}) {
    auto v = opt.GetInt(name, 0, std::int64_t{1} << 60);
    if (!v.ok()) return Fail(v.status());
    *field = static_cast<std::uint64_t>(*v);
  }
  cfg.peer_endpoint = opt.Get("peers");
  cfg.client_endpoint = opt.Get("clients");
  cfg.data_dir = opt.Get("data");
  auto max_conn = opt.GetInt("max-connections", 1, 1 << 20);
  auto max_host = opt.GetInt("max-connections-per-host", 0, 1 << 20);
  auto max_pending = opt.GetInt("max-pending-bytes", proto::kMaxFrameBytes, 1ll << 40);
  auto max_total = opt.GetInt("max-pending-total", proto::kMaxFrameBytes, 1ll << 44);
  for (const Status* st :
       {&max_conn.status(), &max_host.status(), &max_pending.status(), &max_total.status()})
    if (!st->ok()) return Fail(*st);
  if (opt.Get("connection-guard") != "on" && opt.Get("connection-guard") != "off")
    return Fail(InvalidArgument("--connection-guard must be on or off"));
  cfg.peer_connections.enabled = opt.Get("connection-guard") == "on";
  cfg.peer_connections.max_connections = static_cast<std::size_t>(*max_conn);
  cfg.peer_connections.max_per_host = static_cast<std::size_t>(*max_host);
  cfg.peer_connections.max_pending_bytes = static_cast<std::uint64_t>(*max_pending);
  cfg.peer_connections.max_pending_total = static_cast<std::uint64_t>(*max_total);
  cfg.client_connections = cfg.peer_connections;
  const std::string publishers = opt.Get("publishers");  // outlives the views into it
  for (std::string_view rest = publishers; !rest.empty();) {
    const auto comma = rest.find(',');
    const std::string one(rest.substr(0, comma));
    if (!one.empty()) cfg.publishers.push_back(one);
    rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
  }
  auto max_pkg = opt.GetInt("max-package-size", 1024, 1ll << 40);
  if (!max_pkg.ok()) return Fail(max_pkg.status());
  cfg.max_package_bytes = static_cast<std::uint64_t>(*max_pkg);
  auto transfers = opt.GetInt("package-transfers", 1, 1024);
  if (!transfers.ok()) return Fail(transfers.status());
  cfg.max_package_transfers = static_cast<std::size_t>(*transfers);
  auto hb = opt.GetDuration("heartbeat");
  auto pt = opt.GetDuration("peer-timeout");
  auto lm = opt.GetDuration("lease-min");
  auto dg = opt.GetDuration("disconnect-grace");
  if (!dg.ok()) return Fail(dg.status());
  cfg.disconnect_grace = *dg;
  if (!hb.ok()) return Fail(hb.status());
  if (!pt.ok()) return Fail(pt.status());
  if (!lm.ok()) return Fail(lm.status());
  cfg.heartbeat = *hb;
  cfg.scheduler.peer_timeout = *pt;
  cfg.scheduler.lease_min = *lm;
  auto lf = opt.GetDouble("lease-factor", 1, 1000);
  auto us = opt.GetDouble("unit-seconds", 0.001, proto::kMaxUnitSeconds);
  auto pf = opt.GetInt("prefetch", 0, 4096);
  auto pfs = opt.GetDouble("prefetch-seconds", 0, 3600);
  const std::string pool = opt.Get("pool");
  if (pool != "volunteer" && pool != "cluster")
    return Fail(InvalidArgument("--pool must be volunteer or cluster"));
  const bool volunteer = pool == "volunteer";
  if (!volunteer && cfg.worker_keys.empty())
    SC_LOG(Warn) << "cluster pool without --worker-keys: ANY worker key may join and is trusted "
                    "with a single replica; list your machines' keys (--worker-keys) unless only "
                    "they can reach "
                 << cfg.peer_endpoint;
  auto opt_or = [&](const char* name, const char* def) {
    return opt.Get(name).empty() ? std::string(def) : opt.Get(name);
  };
  auto rep = ParseInt(opt_or("replicas", volunteer ? "2" : "1"));
  auto quo = ParseInt(opt_or("quorum", volunteer ? "2" : "1"));
  const std::string adaptive = opt_or("adaptive", volunteer ? "on" : "off");
  if (adaptive != "on" && adaptive != "off")
    return Fail(InvalidArgument("--adaptive must be on or off"));
  auto te = opt.GetDouble("target-error", 1e-12, 0.49);
  auto sf = opt.GetDouble("saboteur-fraction", 0, 0.99);
  auto scr = opt.GetDouble("spot-check-rate", 0, 1);
  auto ba = opt.GetInt("blacklist-after", 0, 1000);
  for (const Status* st : {&te.status(), &sf.status(), &scr.status(), &ba.status()})
    if (!st->ok()) return Fail(*st);
  if (rep.ok() && (*rep < 1 || *rep > proto::kMaxReplicas))
    return Fail(InvalidArgument("--replicas must be 1..16"));
  if (quo.ok() && (*quo < 1 || *quo > proto::kMaxReplicas))
    return Fail(InvalidArgument("--quorum must be 1..16"));
  cfg.scheduler.policy.adaptive = adaptive == "on";
  cfg.scheduler.policy.target_error = *te;
  cfg.scheduler.credibility.saboteur_fraction = *sf;
  cfg.scheduler.credibility.spot_check_rate = *scr;
  cfg.scheduler.credibility.spot_check_rate_new = std::max(*scr, std::min(0.5, 5 * *scr));
  cfg.scheduler.credibility.blacklist_after = static_cast<std::uint32_t>(*ba);
  auto mr = opt.GetInt("max-replicas", 1, proto::kMaxReplicasCeiling);
  auto me = opt.GetInt("max-errors", 1, proto::kMaxReplicasCeiling);
  for (const Status* s : {&lf.status(), &us.status(), &pf.status(), &pfs.status(), &rep.status(),
                          &quo.status(), &mr.status(), &me.status()})
    if (!s->ok()) return Fail(*s);
  cfg.scheduler.lease_factor = *lf;
  cfg.scheduler.unit_seconds = *us;
  cfg.scheduler.prefetch = static_cast<std::uint32_t>(*pf);
  cfg.scheduler.prefetch_seconds = *pfs;
  cfg.scheduler.policy.replicas = static_cast<std::uint32_t>(*rep);
  cfg.scheduler.policy.quorum = static_cast<std::uint32_t>(*quo);
  cfg.scheduler.policy.max_replicas = static_cast<std::uint32_t>(*mr);
  cfg.scheduler.policy.max_errors = static_cast<std::uint32_t>(*me);
  const std::string distinct =
      opt.Flag("distinct-hosts") ? "hosts" : opt_or("distinct", volunteer ? "hosts" : "off");
  if (distinct == "hosts") {
    cfg.scheduler.hosts.distinct = coordinator::DistinctBy::kHosts;
  } else if (distinct == "subnets") {
    cfg.scheduler.hosts.distinct = coordinator::DistinctBy::kSubnets;
  } else if (distinct == "off") {
    cfg.scheduler.hosts.distinct = coordinator::DistinctBy::kOff;
  } else {
    return Fail(InvalidArgument("--distinct must be hosts, subnets or off"));
  }
  cfg.scheduler.hosts.loopback_is_one_host = opt.Flag("loopback-is-one-host");
  auto npph = ParseInt(opt_or("new-peers-per-host", volunteer ? "10" : "0"));
  auto hba = opt.GetInt("host-blacklist-after", 0, 1000000);
  if (!npph.ok()) return Fail(npph.status());
  if (*npph < 0 || *npph > 1000000)
    return Fail(InvalidArgument("--new-peers-per-host must be 0..1000000"));
  if (!hba.ok()) return Fail(hba.status());
  cfg.scheduler.hosts.new_peers_per_hour = static_cast<std::uint32_t>(*npph);
  cfg.scheduler.hosts.host_blacklist_after = static_cast<std::uint32_t>(*hba);
  auto keep_jobs = opt.GetInt("keep-jobs", 1, 100'000'000);
  auto keep_for = opt.GetDuration("keep-for");
  if (!keep_jobs.ok()) return Fail(keep_jobs.status());
  if (!keep_for.ok()) return Fail(keep_for.status());
  cfg.scheduler.max_jobs_kept = static_cast<std::size_t>(*keep_jobs);
  cfg.scheduler.retain_finished_seconds = Seconds(*keep_for);
  if (opt.Get("backups") != "on" && opt.Get("backups") != "off")
    return Fail(InvalidArgument("--backups must be on or off"));
  cfg.scheduler.backups = opt.Get("backups") == "on";
  if (cfg.heartbeat >= cfg.scheduler.peer_timeout)
    return Fail(InvalidArgument("--heartbeat must be shorter than --peer-timeout"));

  cfg.http_endpoint = opt.Get("http");  // HTTP side
  if (!opt.Get("http-admin-token-file").empty()) {
    auto token = ReadFile(opt.Get("http-admin-token-file"), 4096);
    if (!token.ok())
      return Fail(InvalidArgument("--http-admin-token-file: " + token.status().message()));
    cfg.http_admin_token = *token;
    while (!cfg.http_admin_token.empty() &&
           std::isspace(static_cast<unsigned char>(cfg.http_admin_token.back())))
      cfg.http_admin_token.pop_back();
    if (cfg.http_admin_token.size() < 16)
      return Fail(
          InvalidArgument("--http-admin-token-file: the token needs at least 16 characters"));
  }
  coordinator::Coordinator coord(cfg, tasks::Registry::BuiltIn());
  if (Status s = coord.Start(); !s.ok()) return Fail(s);
  if (!opt.Get("endpoints-file").empty()) {
    Status s =
        WriteFileAtomic(opt.Get("endpoints-file"),
                        "peers " + coord.peer_endpoint() + "\nclients " + coord.client_endpoint() +
                            "\n" + "key " + coord.public_key().Z85() + "\n" +
                            (coord.http_url().empty() ? "" : "http " + coord.http_url() + "\n"));
    if (!s.ok()) return Fail(s);
  }
  g_coordinator = &coord;
  InstallStopHandler(OnSignal);
  struct sigaction hup {};
  hup.sa_handler = OnHangup;
  sigemptyset(&hup.sa_mask);
  sigaction(SIGHUP, &hup, nullptr);
  coord.Run();
  g_coordinator = nullptr;
  SC_LOG(Info) << "stopped";
  return 0;
}
