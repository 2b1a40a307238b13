// What the coordinator shows of itself: the loop thread keeps cheap counters and fixed-bucket
// histograms (plain increments, no locks) and, at most every 250 ms and only while someone reads
// (or on a reader's request), publishes an immutable Snapshot. HTTP threads take the latest
// snapshot through Latest() and render /metrics and /api/state.json from it; they never touch the
// scheduler. Loop-thread methods: Observe*, AfterTurn. Thread-safe: Latest(), MarkReady().
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "sparecycles/coordinator/connection_limits.hpp"
#include "sparecycles/coordinator/scheduler.hpp"
#include "sparecycles/core/metrics_text.hpp"
#include "sparecycles/core/transport.hpp"

namespace sparecycles::coordinator {

struct WireCounts {
  std::uint64_t frames_in = 0, frames_out = 0, bytes_in = 0, bytes_out = 0, bad_frames = 0,
                send_failures = 0;
};

struct JobRow {
  JobId id = 0;
  std::string task, name;
  proto::JobState state = proto::JobState::kQueued;
  std::int32_t priority = 0;
  std::uint64_t total = 0, done = 0, failed = 0, running = 0, queued = 0;
  double submitted = 0, finished = 0, cpu_seconds = 0;
  double rate = 0;  // units per second: over the last 30 s while running, over its life once final
  double eta = -1;  // seconds to go at `rate`; < 0 = unknown
  std::string error;
};

struct PeerRow {
  std::string peer_id, hostname, host, reason;
  proto::PeerState state = proto::PeerState::kRunning;
  std::uint32_t cores = 0, slots = 0, idle_slots = 0;
  std::uint64_t running = 0, units_done = 0, units_invalid = 0, units_failed = 0;
  double cpu_validated = 0, credibility = 0, throughput = 0, connected_seconds = 0,
         silent_seconds = 0;
};

struct FailureRow {
  JobId job = 0;
  std::uint64_t unit = 0;
  std::string reason;
};

struct SecondSample {
  double wall = 0;  // seconds since the epoch
  float units_per_second = 0;
  float active_cores = 0;     // slots of connected peers that are not paused
  std::uint32_t running = 0;  // leases in flight
};

struct Snapshot {
  std::uint64_t version = 0;
  double wall = 0, start_wall = 0;
  bool ready = false;
  double last_turn_age = 0;  // seconds since the loop's last turn when this was taken
  SchedulerStats scheduler;
  WireCounts peers_wire, clients_wire;
  std::uint64_t disconnects = 0, leases_in_flight = 0;
  std::uint64_t jobs_by_state[5] = {};  // indexed by proto::JobState
  std::uint64_t units_queued = 0, units_running = 0;
  std::uint64_t peers_by_state[3] = {};  // indexed by proto::PeerState
  std::uint64_t donated_cores = 0, announced_cores = 0;
  std::vector<JobRow> jobs;    // every unfinished job and the latest finished ones, newest first
  std::vector<PeerRow> peers;  // sorted by peer id
  std::vector<FailureRow> failures;   // the latest failed units (bounded)
  std::vector<SecondSample> history;  // per second, the last hour, oldest first
  metrics::Histogram commit_seconds, turn_seconds;
  std::map<std::string, metrics::Histogram> unit_run_seconds;  // by task
  std::uint64_t publishes = 0;
  GuardStats peer_connections, client_connections;  // the connection guards' counts
};

class LoopMetrics {
 public:
  static constexpr std::size_t kHistorySeconds = 3600;
  static constexpr std::size_t kFinishedJobsShown = 50;
  static constexpr std::size_t kFailuresShown = 100;

  /// `wake` makes the loop run a turn soon (a reader wants a fresh snapshot). Thread-safe.
  /// `publish_every`: the youngest snapshot a reader accepts, and the loop's own publishing
  /// period while read. Default: 250 ms
  explicit LoopMetrics(std::function<void()> wake,
                       Duration publish_every = std::chrono::milliseconds(250));

  // ---- loop thread
  void ObserveCommit(double seconds) { commit_.Observe(seconds); }
  void ObserveTurn(double seconds) { turn_.Observe(seconds); }
  /// Before the scheduler sees the result (the job still exists).
  void ObserveResult(const Scheduler& s, const proto::ResultMsg& r);
  /// The connection guards' counts, for the next snapshot.
  void SetConnections(const GuardStats& peers, const GuardStats& clients) {
    peer_connections_ = peers;
    client_connections_ = clients;
  }
  /// Once per loop turn: samples once a second, publishes when asked or watched.
  void AfterTurn(const Scheduler& s, const net::WireStats& peers, const net::WireStats& clients,
                 std::uint64_t disconnects, TimePoint now);

  // ---- any thread
  /// The latest snapshot; asks the loop for a fresh one (and waits up to `wait`) when it is older
  /// than 250 ms. Null only before the loop's first turn.
  std::shared_ptr<const Snapshot> Latest(Duration wait = std::chrono::milliseconds(300));
  void MarkReady(bool ready) { ready_.store(ready); }
  /// Steady time of the loop's last turn (for /readyz).
  TimePoint last_turn() const {
    return TimePoint(Duration(last_turn_ns_.load(std::memory_order_relaxed)));
  }

 private:
  void Sample(const Scheduler& s, TimePoint now, double wall);
  void Publish(const Scheduler& s, const net::WireStats& peers, const net::WireStats& clients,
               std::uint64_t disconnects, TimePoint now);
  std::uint64_t Fingerprint(const Scheduler& s, const net::WireStats& peers,
                            const net::WireStats& clients) const;

  std::function<void()> wake_;
  Duration publish_every_;
  double start_wall_;
  // Loop-thread state.
  metrics::Histogram commit_ = metrics::Histogram::Latency(), turn_ = metrics::Histogram::Latency();
  std::map<std::string, metrics::Histogram> run_time_;
  JobId last_job_ = 0;  // cache: results mostly come for one job
  metrics::Histogram* last_hist_ = nullptr;
  std::deque<SecondSample> history_;
  TimePoint next_sample_{}, last_publish_{};
  std::uint64_t last_validated_ = 0;
  double last_sample_wall_ = 0;
  std::uint64_t last_fingerprint_ = ~0ull;
  std::uint64_t version_ = 0;
  struct Track {
    std::deque<std::pair<double, std::uint64_t>> points;  // (wall, done) per second, 30 s
    std::uint64_t generation = 0;
  };
  std::unordered_map<JobId, Track> job_track_;
  std::unordered_map<std::string, Track> peer_track_;
  std::uint64_t generation_ = 0;
  GuardStats peer_connections_, client_connections_;
  struct FailureCache {
    std::uint64_t failed_seen = ~0ull;
    std::vector<FailureRow> rows;
  };
  std::unordered_map<JobId, FailureCache> failure_cache_;

  // Shared with readers.
  std::atomic<bool> ready_{false};
  std::atomic<bool> demand_{false};
  std::atomic<std::int64_t> last_read_ns_{INT64_MIN / 2};
  std::atomic<std::int64_t> last_turn_ns_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  std::shared_ptr<const Snapshot> latest_;
};

/// The Prometheus exposition of a snapshot (every metric is listed in docs/operations.md).
std::string RenderMetrics(const Snapshot& s);
/// The dashboard's data.
std::string RenderStateJson(const Snapshot& s);
std::string_view PeerStateName(proto::PeerState s);

}  // namespace sparecycles::coordinator
