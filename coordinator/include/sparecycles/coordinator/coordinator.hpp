// The coordinator process as a library: binds the peer and client endpoints and runs the one event
// loop that owns the Scheduler. Start() binds (so the OS-chosen ports are known), Run() blocks on
// the calling thread until Stop(), which any thread may call. See docs/architecture.md.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "sparecycles/coordinator/connection_limits.hpp"
#include "sparecycles/coordinator/scheduler.hpp"
#include "sparecycles/core/clock.hpp"
#include "sparecycles/core/curve_keys.hpp"
#include "sparecycles/core/status.hpp"

namespace sparecycles::coordinator {

struct CoordinatorConfig {
  std::string peer_endpoint = "tcp://0.0.0.0:7737";    // where workers connect. Default: port 7737
  std::string client_endpoint = "tcp://0.0.0.0:7738";  // where SDK clients connect. Default: 7738
  std::string data_dir;  // directory for the durable store; empty = memory only
  Duration heartbeat = std::chrono::seconds(5);  // peers send a Heartbeat this often. Default: 5 s
  Duration progress_interval =
      std::chrono::milliseconds(200);  // watcher updates at most this often
  // After a peer's TCP connection drops, wait this long for it to come back before its units are
  // requeued (a killed process never does). Silence detection (peer_timeout) still covers peers
  // whose connection stays up but who stop talking. Default: 1 s
  Duration disconnect_grace = std::chrono::seconds(1);
  SchedulerConfig scheduler;
  // Task packages (docs/packages.md): kept in DATA_DIR/packages (a temporary directory without a
  // data directory). Uploads must be signed by one of `publishers` (directories of *.pub files,
  // key files or hex keys) unless `allow_unsigned_packages` (the embedded local mode only).
  std::vector<std::string> publishers;
  bool allow_unsigned_packages = false;
  std::uint64_t max_package_bytes = 256ull << 20;  // largest upload. Default: 256 MiB
  std::size_t max_package_transfers = 4;           // peers fetching packages at once. Default: 4
  // HTTP side (/metrics, /healthz, /readyz, the dashboard; docs/operations.md): HOST:PORT to bind,
  // port 0 = any free one. Default: empty = no HTTP. Reads are open; writes need the admin token.
  std::string http_endpoint;
  std::string http_admin_token;  // empty = the dashboard is read-only. Default: empty
  // Security layer (docs/security.md). Both endpoints are CURVE servers with this key pair:
  // `key` when given (the embedded local mode), else the file `key_file`, else
  // DATA_DIR/curve/coordinator.key, created on first start; without a data directory a fresh key
  // for this run only. Its public key is also published for programs of the same user on this
  // machine (curve::PublishLocalKey).
  std::optional<curve::KeyPair> key;
  std::string key_file;
  // Publish the public key for this user's programs on this machine (removed again when the
  // Coordinator is destroyed). Default: true
  bool publish_local_key = true;
  // Peer endpoint: empty = open enrollment (any worker key may join), else only the worker keys
  // listed in this file or directory (cluster pools). Reloaded by ReloadKeys(). Default: empty
  std::string worker_keys;
  // Client endpoint: empty = any client key, else only the listed keys ("KEY [ROLE] [QUOTA=N]"
  // lines). Default: empty
  std::string client_keys;
  // The roles of every key when client_keys is empty: "submit", "read", "admin" or several
  // joined by commas (docs/security.md, "Client roles"). Default: submit,read
  std::string client_roles = "submit,read";
  // Per client key, unless its line in client_keys says otherwise; admins have none; 0 = no
  // limit. Unfinished jobs, their unsettled units, and bytes held (job inputs and packages).
  std::uint64_t quota_jobs = 10000;            // Default: 10000
  std::uint64_t quota_units = 10'000'000;      // Default: 10 million
  std::uint64_t quota_bytes = 16'000'000'000;  // Default: 16 GB
  // false = no CURVE on either endpoint (plaintext, anyone can be anyone). Only for the
  // benchmarks that measure what CURVE costs; the daemon has no option for it. Default: true
  bool curve = true;
  // Where the event loop reads the time (timers, deadlines, peers' silence). Must outlive the
  // Coordinator. Default: the process's steady clock
  const Clock* clock = &SteadyClock::Instance();
  // Denial-of-service bounds of each endpoint: connection caps and the cut of connections that
  // hoard unread bytes (docs/security.md, "Denial of service").
  GuardLimits peer_connections, client_connections;
};

struct CoordinatorStats {
  std::uint64_t frames_in = 0, frames_out = 0, bad_frames = 0, send_failures = 0;
  std::uint64_t peers = 0, jobs = 0, leases_in_flight = 0, disconnects = 0;
  // Security layer: handshakes let in or refused by the ZAP handler; Hellos whose peer id is not
  // the one of the connection's key (refused).
  std::uint64_t peer_keys_refused = 0, client_keys_refused = 0, hellos_wrong_id = 0;
  // Client requests refused for their key's role (PERMISSION_DENIED) or quota.
  std::uint64_t requests_denied = 0, quota_refusals = 0;
  SchedulerStats scheduler;
  GuardStats peer_connections, client_connections;  // open, accepted and cut connections
};

class Coordinator {
 public:
  Coordinator(CoordinatorConfig config, const tasks::Registry& registry);
  ~Coordinator();
  Coordinator(const Coordinator&) = delete;
  Coordinator& operator=(const Coordinator&) = delete;

  /// Binds both endpoints. Errors: Unavailable when an endpoint cannot be bound.
  Status Start();
  /// Runs the event loop until Stop(). Call after a successful Start().
  void Run();
  /// Asks Run() to return. Thread-safe; idempotent.
  void Stop();
  /// Asks the loop to read the worker and client key lists again. Thread-safe and
  /// async-signal-safe (SIGHUP); a list that fails to load leaves the previous one in force.
  void ReloadKeys();
  /// The public key both endpoints serve with (valid after Start()).
  curve::PublicKey public_key() const;

  /// The bound endpoints, with the ports the OS picked (valid after Start()).
  std::string peer_endpoint() const;
  std::string client_endpoint() const;
  /// "http://HOST:PORT" of the HTTP side, empty when it is off (valid after Start()).
  std::string http_url() const;
  /// A snapshot of the counters. Thread-safe.
  CoordinatorStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sparecycles::coordinator
