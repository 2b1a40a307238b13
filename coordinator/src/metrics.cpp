#include "metrics.hpp"

#include <algorithm>
#include <cmath>

#include "sparecycles/core/http.hpp"

namespace sparecycles::coordinator {

namespace {
constexpr Duration kReaderRecent =
    std::chrono::seconds(10);       // publish proactively this long after a read
constexpr double kRateWindow = 30;  // seconds of per-job / per-peer history

std::int64_t Ns(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

WireCounts Copy(const net::WireStats& w) {
  WireCounts c;
  c.frames_in = w.frames_in.load(std::memory_order_relaxed);
  c.frames_out = w.frames_out.load(std::memory_order_relaxed);
  c.bytes_in = w.bytes_in.load(std::memory_order_relaxed);
  c.bytes_out = w.bytes_out.load(std::memory_order_relaxed);
  c.bad_frames = w.bad_frames.load(std::memory_order_relaxed);
  c.send_failures = w.send_failures.load(std::memory_order_relaxed);
  return c;
}

void Push(std::deque<std::pair<double, std::uint64_t>>& points, double wall, std::uint64_t v) {
  points.emplace_back(wall, v);
  while (points.size() > 2 && points.back().first - points.front().first > kRateWindow)
    points.pop_front();
}
double RateOf(const std::deque<std::pair<double, std::uint64_t>>& points) {
  if (points.size() < 2) return 0;
  const double dt = points.back().first - points.front().first;
  if (dt <= 0) return 0;
  return static_cast<double>(points.back().second -
                             std::min(points.back().second, points.front().second)) /
         dt;
}
}  // namespace

std::string_view PeerStateName(proto::PeerState s) {
  switch (s) {
    case proto::PeerState::kRunning:
      return "running";
    case proto::PeerState::kThrottled:
      return "throttled";
    case proto::PeerState::kPaused:
      return "paused";
  }
  return "unknown";
}

LoopMetrics::LoopMetrics(std::function<void()> wake, Duration publish_every)
    : wake_(std::move(wake)), publish_every_(publish_every), start_wall_(WallSeconds()) {}

void LoopMetrics::ObserveResult(const Scheduler& s, const proto::ResultMsg& r) {
  if (r.outcome != proto::UnitOutcome::kOk) return;
  if (r.job_id != last_job_ || last_hist_ == nullptr) {
    const Job* job = s.FindJob(r.job_id);
    if (job == nullptr || job->task == nullptr) return;
    auto [it, inserted] =
        run_time_.try_emplace(std::string(job->task->Name()), metrics::Histogram::RunTime());
    last_job_ = r.job_id;
    last_hist_ = &it->second;
  }
  last_hist_->Observe(r.wall_seconds);
}

std::uint64_t LoopMetrics::Fingerprint(const Scheduler& s, const net::WireStats& peers,
                                       const net::WireStats& clients) const {
  const SchedulerStats& st = s.stats();
  return st.leases_issued + st.results_accepted * 3 + st.results_stale * 5 +
         st.results_rejected * 7 + st.units_validated * 11 + st.units_failed * 13 +
         st.leases_expired * 17 + st.peers_lost * 19 +
         peers.frames_in.load(std::memory_order_relaxed) * 23 +
         clients.frames_in.load(std::memory_order_relaxed) * 29 + s.peers().size() * 31 +
         s.jobs().size() * 37;
}

void LoopMetrics::AfterTurn(const Scheduler& s, const net::WireStats& peers,
                            const net::WireStats& clients, std::uint64_t disconnects,
                            TimePoint now) {
  last_turn_ns_.store(Ns(now), std::memory_order_relaxed);
  if (now >= next_sample_) {
    Sample(s, now, WallSeconds());
    // Stay on a one-second grid unless the loop was blocked for long.
    next_sample_ = now - next_sample_ > std::chrono::seconds(2)
                       ? now + std::chrono::seconds(1)
                       : next_sample_ + std::chrono::seconds(1);
  }
  const bool demand = demand_.load(std::memory_order_relaxed) && demand_.exchange(false);
  if (!demand) {
    if (now - last_publish_ < publish_every_) return;
    if (Ns(now) - last_read_ns_.load(std::memory_order_relaxed) > Ns(TimePoint(kReaderRecent)))
      return;
    const std::uint64_t fp = Fingerprint(s, peers, clients);
    if (fp == last_fingerprint_ && now - last_publish_ < std::chrono::seconds(1)) return;
  }
  Publish(s, peers, clients, disconnects, now);
}

void LoopMetrics::Sample(const Scheduler& s, TimePoint now, double wall) {
  ++generation_;
  SecondSample sample;
  sample.wall = wall;
  const std::uint64_t validated = s.stats().units_validated;
  if (last_sample_wall_ > 0 && wall > last_sample_wall_)
    sample.units_per_second =
        static_cast<float>(static_cast<double>(validated - std::min(validated, last_validated_)) /
                           (wall - last_sample_wall_));
  last_validated_ = validated;
  last_sample_wall_ = wall;
  double cores = 0;
  for (const auto& [h, p] : s.peers()) {
    if (p.state != proto::PeerState::kPaused) cores += p.slots;
    Track& t = peer_track_[p.hello.peer_id];
    Push(t.points, wall, p.units_done);
    t.generation = generation_;
  }
  sample.active_cores = static_cast<float>(cores);
  sample.running = static_cast<std::uint32_t>(s.in_flight());
  history_.push_back(sample);
  while (history_.size() > kHistorySeconds) history_.pop_front();
  for (const auto& [id, job] : s.jobs()) {
    if (proto::IsFinal(job->state)) continue;
    Track& t = job_track_[id];
    Push(t.points, wall, job->done);
    t.generation = generation_;
  }
  std::erase_if(job_track_, [&](const auto& kv) { return kv.second.generation != generation_; });
  std::erase_if(peer_track_, [&](const auto& kv) { return kv.second.generation != generation_; });
  (void)now;
}

void LoopMetrics::Publish(const Scheduler& s, const net::WireStats& peers,
                          const net::WireStats& clients, std::uint64_t disconnects, TimePoint now) {
  auto snap = std::make_shared<Snapshot>();
  const double wall = WallSeconds();
  snap->version = ++version_;
  snap->publishes = version_;
  snap->wall = wall;
  snap->start_wall = start_wall_;
  snap->ready = ready_.load();
  snap->scheduler = s.stats();
  snap->peers_wire = Copy(peers);
  snap->clients_wire = Copy(clients);
  snap->disconnects = disconnects;
  snap->peer_connections = peer_connections_;
  snap->client_connections = client_connections_;
  snap->leases_in_flight = s.in_flight();
  std::size_t finished_shown = 0;
  std::vector<FailureRow> failures;
  for (auto it = s.jobs().rbegin(); it != s.jobs().rend(); ++it) {
    const Job& job = *it->second;
    const auto state_index = static_cast<std::size_t>(job.state);
    if (state_index < 5) ++snap->jobs_by_state[state_index];
    const bool final = proto::IsFinal(job.state);
    std::uint64_t queued = 0;
    if (!final) {
      queued = job.fresh.size() + job.ready.size();
      snap->units_queued += queued;
      snap->units_running += job.running;
    }
    if (final && finished_shown >= kFinishedJobsShown) continue;
    finished_shown += final ? 1 : 0;
    JobRow row;
    row.id = job.id;
    row.task = job.spec.task;
    row.name = job.spec.name;
    row.state = job.state;
    row.priority = job.spec.priority;
    row.total = job.units.empty() ? job.units_total_final : job.units.size();
    row.done = job.done;
    row.failed = job.failed;
    row.running = job.running;
    row.queued = queued;
    row.submitted = job.submitted_wall;
    row.finished = job.finished_wall;
    row.cpu_seconds = job.cpu_seconds;
    row.error = job.error;
    if (final) {
      const double life = job.finished_wall - job.submitted_wall;
      row.rate = life > 0 ? static_cast<double>(job.done) / life : 0;
      row.eta = 0;
    } else {
      auto t = job_track_.find(job.id);
      row.rate = t == job_track_.end() ? 0 : RateOf(t->second.points);
      const std::uint64_t left = row.total - std::min(row.total, row.done + row.failed);
      row.eta = row.rate > 0 ? static_cast<double>(left) / row.rate : -1;
    }
    // Failed units: a job's list is final once it ends; while it runs, its units are scanned only
    // when its failure count changed.
    if (job.failed > 0 && failures.size() < kFailuresShown) {
      FailureCache& fc = failure_cache_[job.id];
      if (fc.failed_seen != job.failed) {
        fc.rows.clear();
        if (!job.failures.empty()) {
          for (const auto& f : job.failures) {
            if (fc.rows.size() >= kFailuresShown) break;
            fc.rows.push_back({job.id, f.unit_index, f.reason});
          }
        } else {
          for (std::size_t i = 0; i < job.units.size() && fc.rows.size() < kFailuresShown; ++i)
            if (job.units[i].state == Unit::State::kFailed)
              fc.rows.push_back({job.id, i, job.units[i].failure});
        }
        fc.failed_seen = job.failed;
      }
      for (const auto& f : fc.rows) {
        if (failures.size() >= kFailuresShown) break;
        failures.push_back(f);
      }
    }
    snap->jobs.push_back(std::move(row));
  }
  std::erase_if(failure_cache_, [&](const auto& kv) { return s.FindJob(kv.first) == nullptr; });
  snap->failures = std::move(failures);
  for (const auto& [h, p] : s.peers()) {
    PeerRow row;
    row.peer_id = p.hello.peer_id;
    row.hostname = p.hello.hostname;
    row.host = p.hello.host;
    row.reason = p.reason;
    row.state = p.state;
    row.cores = p.hello.cores;
    row.slots = p.slots;
    row.idle_slots = p.idle_slots;
    row.running = p.leases.size();
    row.units_done = p.units_done;
    row.units_invalid = p.units_invalid;
    row.units_failed = p.units_failed;
    row.cpu_validated = p.cpu_seconds_validated;
    row.credibility = s.Credibility(p.hello.peer_id);
    if (auto t = peer_track_.find(p.hello.peer_id); t != peer_track_.end())
      row.throughput = RateOf(t->second.points);
    row.connected_seconds = Seconds(now - p.connected_at);
    row.silent_seconds = Seconds(now - p.last_seen);
    const auto si = static_cast<std::size_t>(p.state);
    if (si < 3) ++snap->peers_by_state[si];
    snap->announced_cores += p.hello.cores;
    if (p.state != proto::PeerState::kPaused) snap->donated_cores += p.slots;
    snap->peers.push_back(std::move(row));
  }
  std::sort(snap->peers.begin(), snap->peers.end(),
            [](const PeerRow& a, const PeerRow& b) { return a.peer_id < b.peer_id; });
  snap->history.assign(history_.begin(), history_.end());
  snap->commit_seconds = commit_;
  snap->turn_seconds = turn_;
  snap->unit_run_seconds = run_time_;
  last_publish_ = now;
  last_fingerprint_ = Fingerprint(s, peers, clients);
  {
    std::lock_guard lock(mu_);
    latest_ = std::move(snap);
  }
  cv_.notify_all();
}

std::shared_ptr<const Snapshot> LoopMetrics::Latest(Duration wait) {
  const TimePoint now = SteadyClock::Instance().Now();
  last_read_ns_.store(Ns(now), std::memory_order_relaxed);
  std::unique_lock lock(mu_);
  if (latest_ && WallSeconds() - latest_->wall < Seconds(publish_every_)) return latest_;
  const std::uint64_t have = latest_ ? latest_->version : 0;
  demand_.store(true);
  lock.unlock();
  if (wake_) wake_();
  lock.lock();
  cv_.wait_for(lock, wait, [&] { return latest_ && latest_->version > have; });
  return latest_;
}

// ------------------------------------------------------------------------------- rendering

std::string RenderMetrics(const Snapshot& s) {
  metrics::Writer w;
  w.Family("sparecycles_build_info", "gauge", "Always 1; the version of the coordinator.");
  w.Sample("sparecycles_build_info", {{"version", "0.1.0"}, {"role", "coordinator"}}, 1);
  w.Gauge("sparecycles_start_time_seconds",
          "When the coordinator started, in seconds since the epoch.", s.start_wall);
  w.Gauge("sparecycles_ready",
          "1 when the coordinator is ready (endpoints bound, store loaded, loop turning).",
          s.ready ? 1 : 0);

  static constexpr const char* kJobStates[] = {"queued", "running", "done", "failed", "cancelled"};
  w.Family("sparecycles_jobs", "gauge",
           "Jobs the coordinator keeps, by state (finished jobs: the latest 10,000).");
  for (int i = 0; i < 5; ++i)
    w.Sample("sparecycles_jobs", {{"state", kJobStates[i]}},
             static_cast<double>(s.jobs_by_state[i]));
  w.Gauge("sparecycles_units_queued", "Unit copies of unfinished jobs waiting to be leased.",
          static_cast<double>(s.units_queued));
  w.Gauge("sparecycles_units_running", "Unit copies of unfinished jobs leased to peers now.",
          static_cast<double>(s.units_running));
  const SchedulerStats& st = s.scheduler;
  w.Counter("sparecycles_units_done_total", "Units accepted (validated by quorum or credibility).",
            static_cast<double>(st.units_validated));
  w.Counter("sparecycles_units_failed_total",
            "Units that failed for good (max errors or no quorum).",
            static_cast<double>(st.units_failed));
  w.Counter("sparecycles_leases_issued_total",
            "Leases handed to peers (every copy, spot-checks and backups included).",
            static_cast<double>(st.leases_issued));
  w.Counter("sparecycles_leases_expired_total",
            "Leases that passed their deadline; their units were reissued.",
            static_cast<double>(st.leases_expired));
  w.Gauge("sparecycles_leases_in_flight", "Leases held by peers now.",
          static_cast<double>(s.leases_in_flight));
  w.Counter("sparecycles_backups_issued_total", "Extra copies issued for straggling units.",
            static_cast<double>(st.backups_issued));
  w.Family("sparecycles_results_total", "counter",
           "Results received from peers, by what became of them.");
  w.Sample("sparecycles_results_total", {{"outcome", "accepted"}},
           static_cast<double>(st.results_accepted));
  w.Sample("sparecycles_results_total", {{"outcome", "stale"}},
           static_cast<double>(st.results_stale));
  w.Sample("sparecycles_results_total", {{"outcome", "rejected"}},
           static_cast<double>(st.results_rejected));
  w.Counter("sparecycles_replicas_disagreed_total",
            "Replicas whose result hash differed from the accepted one.",
            static_cast<double>(st.replicas_disagreed));
  w.Counter("sparecycles_spot_checks_total",
            "Spot-checks issued (accepted units reissued to test a peer).",
            static_cast<double>(st.spot_checks));
  w.Counter("sparecycles_spot_checks_failed_total", "Spot-checks a peer answered wrongly.",
            static_cast<double>(st.spot_checks_failed));
  w.Counter("sparecycles_peer_offences_total",
            "Wrong answers caught (failed spot-check or outvoted).",
            static_cast<double>(st.offences));
  w.Counter("sparecycles_peers_blacklisted_total", "Peers blacklisted after repeated offences.",
            static_cast<double>(st.blacklisted));
  w.Counter("sparecycles_units_backtracked_total",
            "Accepted units reopened because a voter was caught.",
            static_cast<double>(st.backtracked));

  static constexpr const char* kPeerStates[] = {"running", "throttled", "paused"};
  w.Family("sparecycles_peers", "gauge", "Connected peers, by the state they announced.");
  for (int i = 0; i < 3; ++i)
    w.Sample("sparecycles_peers", {{"state", kPeerStates[i]}},
             static_cast<double>(s.peers_by_state[i]));
  w.Gauge("sparecycles_donated_cores",
          "Cores connected peers may use now (slots of peers that are not paused).",
          static_cast<double>(s.donated_cores));
  w.Gauge("sparecycles_announced_cores", "Cores connected peers announced in their Hello.",
          static_cast<double>(s.announced_cores));
  w.Counter("sparecycles_peers_lost_total", "Peers declared lost (silent or disconnected).",
            static_cast<double>(st.peers_lost));
  w.Counter("sparecycles_peer_disconnects_total",
            "Peers removed after their TCP connection dropped.",
            static_cast<double>(s.disconnects));

  w.Family("sparecycles_connections_open", "gauge", "Open TCP connections, by endpoint.");
  w.Sample("sparecycles_connections_open", {{"endpoint", "peers"}},
           static_cast<double>(s.peer_connections.open));
  w.Sample("sparecycles_connections_open", {{"endpoint", "clients"}},
           static_cast<double>(s.client_connections.open));
  w.Family("sparecycles_connections_cut_total", "counter",
           "Connections cut by the connection guard, by endpoint and reason (connections, host: "
           "over a cap; pending, pending_total: bytes received beyond the messages read).");
  for (int r = 0; r < kCutReasons; ++r) {
    const char* reason = CutReasonName(static_cast<CutReason>(r));
    w.Sample("sparecycles_connections_cut_total", {{"endpoint", "peers"}, {"reason", reason}},
             static_cast<double>(s.peer_connections.cut[r]));
    w.Sample("sparecycles_connections_cut_total", {{"endpoint", "clients"}, {"reason", reason}},
             static_cast<double>(s.client_connections.cut[r]));
  }

  auto wire = [&](const char* name, const char* type, const char* help, auto field_in,
                  auto field_out) {
    w.Family(name, type, help);
    w.Sample(name, {{"endpoint", "peers"}, {"direction", "in"}},
             static_cast<double>(field_in(s.peers_wire)));
    w.Sample(name, {{"endpoint", "peers"}, {"direction", "out"}},
             static_cast<double>(field_out(s.peers_wire)));
    w.Sample(name, {{"endpoint", "clients"}, {"direction", "in"}},
             static_cast<double>(field_in(s.clients_wire)));
    w.Sample(name, {{"endpoint", "clients"}, {"direction", "out"}},
             static_cast<double>(field_out(s.clients_wire)));
  };
  wire(
      "sparecycles_wire_frames_total", "counter", "ZeroMQ frames per endpoint and direction.",
      [](const WireCounts& c) { return c.frames_in; },
      [](const WireCounts& c) { return c.frames_out; });
  wire(
      "sparecycles_wire_bytes_total", "counter",
      "Bytes of ZeroMQ frames per endpoint and direction.",
      [](const WireCounts& c) { return c.bytes_in; },
      [](const WireCounts& c) { return c.bytes_out; });
  w.Family("sparecycles_wire_bad_frames_total", "counter",
           "Frames dropped as malformed, per endpoint.");
  w.Sample("sparecycles_wire_bad_frames_total", {{"endpoint", "peers"}},
           static_cast<double>(s.peers_wire.bad_frames));
  w.Sample("sparecycles_wire_bad_frames_total", {{"endpoint", "clients"}},
           static_cast<double>(s.clients_wire.bad_frames));
  w.Family("sparecycles_wire_send_failures_total", "counter",
           "Frames that could not be sent, per endpoint.");
  w.Sample("sparecycles_wire_send_failures_total", {{"endpoint", "peers"}},
           static_cast<double>(s.peers_wire.send_failures));
  w.Sample("sparecycles_wire_send_failures_total", {{"endpoint", "clients"}},
           static_cast<double>(s.clients_wire.send_failures));

  w.Family("sparecycles_store_commit_seconds", "histogram",
           "Time of one SQLite commit (one per loop turn that changed state).");
  w.HistogramSeries("sparecycles_store_commit_seconds", {}, s.commit_seconds);
  w.Family("sparecycles_loop_turn_seconds", "histogram",
           "Time the event loop spent in one turn, waiting excluded.");
  w.HistogramSeries("sparecycles_loop_turn_seconds", {}, s.turn_seconds);
  w.Family("sparecycles_unit_run_seconds", "histogram",
           "Wall time of units that ran to a result, as reported by the peer, by task.");
  for (const auto& [task, h] : s.unit_run_seconds)
    w.HistogramSeries("sparecycles_unit_run_seconds", {{"task", task}}, h);

  // Per job: unfinished jobs and the latest finished ones only, so the series stay few.
  w.Family("sparecycles_job_units", "gauge",
           "Units of a job (unfinished and the latest finished jobs), by state. The label is "
           "job_id: Prometheus owns `job`.");
  for (const JobRow& j : s.jobs) {
    const std::string id = std::to_string(j.id);
    w.Sample("sparecycles_job_units", {{"job_id", id}, {"task", j.task}, {"state", "total"}},
             static_cast<double>(j.total));
    w.Sample("sparecycles_job_units", {{"job_id", id}, {"task", j.task}, {"state", "done"}},
             static_cast<double>(j.done));
    w.Sample("sparecycles_job_units", {{"job_id", id}, {"task", j.task}, {"state", "failed"}},
             static_cast<double>(j.failed));
    w.Sample("sparecycles_job_units", {{"job_id", id}, {"task", j.task}, {"state", "running"}},
             static_cast<double>(j.running));
  }
  w.Family("sparecycles_peer_units_done", "gauge",
           "Units a connected peer ran that were accepted, since it connected.");
  for (const PeerRow& p : s.peers)
    w.Sample("sparecycles_peer_units_done", {{"peer", p.peer_id}},
             static_cast<double>(p.units_done));
  w.Family("sparecycles_peer_slots", "gauge", "Cores a connected peer may use now.");
  for (const PeerRow& p : s.peers)
    w.Sample("sparecycles_peer_slots", {{"peer", p.peer_id}}, static_cast<double>(p.slots));
  w.Family("sparecycles_peer_credibility", "gauge",
           "A connected peer's credibility (0..1, docs/cross-checking.md).");
  for (const PeerRow& p : s.peers)
    w.Sample("sparecycles_peer_credibility", {{"peer", p.peer_id}}, p.credibility);
  w.Counter("sparecycles_snapshots_published_total",
            "Snapshots the event loop published for the HTTP side.",
            static_cast<double>(s.publishes));
  return w.text();
}

std::string RenderStateJson(const Snapshot& s) {
  using http::JsonNumber;
  using http::JsonString;
  auto num = [](auto v) { return JsonNumber(static_cast<double>(v)); };
  std::string o;
  o.reserve(4096 + s.history.size() * 48 + s.jobs.size() * 256 + s.peers.size() * 256);
  o += "{\"now\":" + JsonNumber(s.wall) + ",\"started\":" + JsonNumber(s.start_wall) +
       ",\"ready\":" + (s.ready ? "true" : "false") + ",\"version\":" + num(s.version);
  const SchedulerStats& st = s.scheduler;
  o += ",\"totals\":{\"units_done\":" + num(st.units_validated) +
       ",\"units_failed\":" + num(st.units_failed) + ",\"units_queued\":" + num(s.units_queued) +
       ",\"units_running\":" + num(s.units_running) +
       ",\"leases_issued\":" + num(st.leases_issued) +
       ",\"leases_expired\":" + num(st.leases_expired) +
       ",\"results_accepted\":" + num(st.results_accepted) +
       ",\"results_stale\":" + num(st.results_stale) +
       ",\"results_rejected\":" + num(st.results_rejected) +
       ",\"replicas_disagreed\":" + num(st.replicas_disagreed) +
       ",\"donated_cores\":" + num(s.donated_cores) + ",\"peers\":" + num(s.peers.size()) +
       ",\"bad_frames\":" + num(s.peers_wire.bad_frames + s.clients_wire.bad_frames) + "}";
  o += ",\"jobs\":[";
  for (std::size_t i = 0; i < s.jobs.size(); ++i) {
    const JobRow& j = s.jobs[i];
    if (i) o += ',';
    o += "{\"id\":" + num(j.id) + ",\"task\":" + JsonString(j.task) +
         ",\"name\":" + JsonString(j.name) +
         ",\"state\":" + JsonString(proto::JobStateName(j.state)) +
         ",\"priority\":" + num(j.priority) + ",\"total\":" + num(j.total) +
         ",\"done\":" + num(j.done) + ",\"failed\":" + num(j.failed) +
         ",\"running\":" + num(j.running) + ",\"queued\":" + num(j.queued) +
         ",\"submitted\":" + JsonNumber(j.submitted) + ",\"finished\":" + JsonNumber(j.finished) +
         ",\"cpu_seconds\":" + JsonNumber(j.cpu_seconds) + ",\"rate\":" + JsonNumber(j.rate) +
         ",\"eta\":" + JsonNumber(j.eta) + ",\"error\":" + JsonString(j.error) + "}";
  }
  o += "],\"peers\":[";
  for (std::size_t i = 0; i < s.peers.size(); ++i) {
    const PeerRow& p = s.peers[i];
    if (i) o += ',';
    o += "{\"peer_id\":" + JsonString(p.peer_id) + ",\"hostname\":" + JsonString(p.hostname) +
         ",\"state\":" + JsonString(PeerStateName(p.state)) +
         ",\"reason\":" + JsonString(p.reason) + ",\"cores\":" + num(p.cores) +
         ",\"slots\":" + num(p.slots) + ",\"running\":" + num(p.running) +
         ",\"units_done\":" + num(p.units_done) + ",\"units_invalid\":" + num(p.units_invalid) +
         ",\"cpu_validated\":" + JsonNumber(p.cpu_validated) +
         ",\"credibility\":" + JsonNumber(p.credibility) +
         ",\"throughput\":" + JsonNumber(p.throughput) +
         ",\"connected_seconds\":" + JsonNumber(p.connected_seconds) +
         ",\"silent_seconds\":" + JsonNumber(p.silent_seconds) + "}";
  }
  o += "],\"failures\":[";
  for (std::size_t i = 0; i < s.failures.size(); ++i) {
    if (i) o += ',';
    o += "{\"job\":" + num(s.failures[i].job) + ",\"unit\":" + num(s.failures[i].unit) +
         ",\"reason\":" + JsonString(s.failures[i].reason) + "}";
  }
  // The chart: parallel arrays, seconds relative to `now` (smaller than objects per sample).
  o += "],\"history\":{\"t\":[";
  for (std::size_t i = 0; i < s.history.size(); ++i) {
    if (i) o += ',';
    o += JsonNumber(std::round((s.history[i].wall - s.wall) * 10) / 10);
  }
  o += "],\"units_per_second\":[";
  for (std::size_t i = 0; i < s.history.size(); ++i) {
    if (i) o += ',';
    o += JsonNumber(std::round(s.history[i].units_per_second * 10) / 10);
  }
  o += "],\"active_cores\":[";
  for (std::size_t i = 0; i < s.history.size(); ++i) {
    if (i) o += ',';
    o += JsonNumber(s.history[i].active_cores);
  }
  o += "]}}";
  return o;
}

}  // namespace sparecycles::coordinator
