#include "volunteer_page.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <set>
#include <sstream>

#include "sparecycles/core/curve_keys.hpp"
#include "sparecycles/core/daemon.hpp"
#include "sparecycles/core/log.hpp"
#include "sparecycles/core/metrics_text.hpp"
#include "sparecycles/core/options.hpp"
#include "sparecycles/core/protocol.hpp"
#include "sparecycles/core/transport.hpp"

namespace sparecycles::worker {

namespace {
using http::JsonNumber;
using http::JsonString;

// The preferences the page may change, in the order it shows them (names as the options').
const std::vector<std::string>& EditableNames() { return Preferences::OwnerNames(); }

http::Response Text(int status, std::string body) {
  http::Response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

std::string HostOnly(const std::string& host_header) {
  if (!host_header.empty() && host_header.front() == '[')
    return host_header.substr(1, host_header.find(']') - 1);
  return host_header.substr(0, host_header.rfind(':'));
}
}  // namespace

double ValidatedCpuSeconds(const std::string& clients, const std::string& peer_id,
                           const std::string& coordinator_key) {
  std::optional<curve::PublicKey> server;
  if (!coordinator_key.empty()) {
    auto k = curve::PublicKeyFromArg(coordinator_key);
    if (k.ok()) server = *k;
  } else {
    server = curve::FindLocalKey(clients);
  }
  if (!server) return -1;                         // the client endpoint only speaks CURVE
  const curve::KeyPair mine = curve::Generate();  // a read-only query: an ephemeral client key
  net::SocketConfig sc;
  sc.curve_server_key = server->Z85();
  sc.curve_public = mine.public_key.Z85();
  sc.curve_secret = mine.SecretZ85();
  zmq::context_t ctx{1};
  auto sock = net::ConnectDealer(ctx, clients, sc);
  if (!sock.ok()) return -1;
  sock->set(zmq::sockopt::linger, 0);
  proto::ListPeers req;
  req.request_id = 1;
  net::SendDealer(*sock, proto::Encode(req), nullptr);
  std::vector<zmq::pollitem_t> items = {{sock->handle(), 0, ZMQ_POLLIN, 0}};
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (std::chrono::steady_clock::now() < deadline) {
    net::Poll(items, std::chrono::milliseconds(100));
    auto m = net::RecvDealer(*sock, nullptr);
    if (!m) continue;
    std::string_view body;
    auto type = proto::ParseHeader({static_cast<const char*>(m->data()), m->size()}, body);
    if (!type.ok() || *type != proto::MsgType::kPeerList) continue;
    proto::PeerList list;
    if (!proto::Decode(body, list).ok()) return -1;
    for (const auto& p : list.peers)
      if (p.peer_id == peer_id) return p.cpu_seconds;
    return 0;
  }
  return -1;
}

VolunteerPage::VolunteerPage(VolunteerPageConfig config, std::shared_ptr<OwnerControl> control)
    : config_(std::move(config)), control_(std::move(control)) {
  server_.Get("/", [](const http::Request&) {
    http::Response r;
    r.content_type = "text/html; charset=utf-8";
    r.body = std::string(assets::VolunteerHtml());
    r.headers["Content-Security-Policy"] =
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src "
        "'self'";
    return r;
  });
  server_.Get("/healthz", [](const http::Request&) { return Text(200, "ok\n"); });
  server_.Get("/api/state.json", [this](const http::Request&) { return State(); });
  server_.Get("/metrics", [this](const http::Request&) { return Metrics(); });
  server_.Post("/api/pause", [this](const http::Request& req) {
    http::Response refuse;
    if (!FromPage(req, refuse)) return refuse;
    control_->SetPaused(true);
    SC_LOG(Info) << "paused by the owner (volunteer page)";
    return Text(200, "paused\n");
  });
  server_.Post("/api/resume", [this](const http::Request& req) {
    http::Response refuse;
    if (!FromPage(req, refuse)) return refuse;
    control_->SetPaused(false);
    SC_LOG(Info) << "resumed by the owner (volunteer page)";
    return Text(200, "resumed\n");
  });
  server_.Post("/api/prefs", [this](const http::Request& req) { return Prefs(req); });
}

VolunteerPage::~VolunteerPage() { Stop(); }

Status VolunteerPage::Start() {
  std::string host;
  int port = 0;
  SC_RETURN_IF_ERROR(http::ParseHostPort(config_.bind, host, port));
  if (!http::IsLoopback(host))
    return InvalidArgument(
        "the volunteer page binds to this machine only (127.0.0.1 or [::1]), not " + host);
  SC_RETURN_IF_ERROR(server_.Start(config_.bind));
  if (!config_.clients_endpoint.empty()) poller_ = std::thread([this] { PollValidated(); });
  SC_LOG(Info) << "volunteer page on " << server_.url() << "/";
  return OkStatus();
}

void VolunteerPage::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (poller_.joinable()) poller_.join();
  server_.Stop();
}

void VolunteerPage::PollValidated() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    lock.unlock();
    double v = -1;
    if (auto view = control_->Latest(); view && !view->status.peer_id.empty())
      v = ValidatedCpuSeconds(config_.clients_endpoint, view->status.peer_id,
                              config_.coordinator_key);
    lock.lock();
    if (v >= 0) validated_ = v;
    stop_cv_.wait_for(lock, std::chrono::seconds(10), [&] { return stopping_; });
  }
}

bool VolunteerPage::FromPage(const http::Request& req, http::Response& refuse) const {
  // A site open in the owner's browser can post a form to 127.0.0.1, but cannot add a custom
  // header without a CORS preflight (never answered here), and a rebinding DNS name shows up in
  // Host.
  if (req.Header("x-sparecycles") != "1") {
    refuse = Text(403, "writes only from the volunteer page (X-SpareCycles header missing)\n");
    return false;
  }
  if (!http::IsLoopback(HostOnly(req.Header("host")))) {
    refuse = Text(403, "writes only through a loopback address\n");
    return false;
  }
  return true;
}

Status VolunteerPage::ApplyFields(const std::map<std::string, std::string>& fields,
                                  Preferences& prefs) {
  Preferences p = prefs;
  for (const auto& [name, raw] : fields) {
    const auto& names = EditableNames();
    if (std::find(names.begin(), names.end(), name) == names.end())
      return InvalidArgument("unknown preference '" + name + "'");
    if (raw.size() > 256) return InvalidArgument(name + ": too long");
    for (char c : raw)  // values go into the config file as one line each
      if (static_cast<unsigned char>(c) < 0x20 || c == '#')
        return InvalidArgument(name + ": control characters and '#' are not allowed");
    std::string v = raw;
    while (!v.empty() && std::isspace(static_cast<unsigned char>(v.back()))) v.pop_back();
    while (!v.empty() && std::isspace(static_cast<unsigned char>(v.front()))) v.erase(v.begin());
    if (Status s = p.Set(name, v); !s.ok()) return s;
  }
  p.Reconcile();
  prefs = std::move(p);
  return OkStatus();
}

std::string VolunteerPage::UpdateConfigText(const std::string& text,
                                            const std::map<std::string, std::string>& values) {
  auto canon = [](std::string n) {
    for (char& c : n)
      c = c == '_' ? '-' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return n;
  };
  std::set<std::string> written;
  std::ostringstream out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    const auto first = line.find_first_not_of(" \t");
    const auto eq = line.find('=');
    if (first != std::string::npos && line[first] != '#' && eq != std::string::npos && eq > first) {
      std::string name = line.substr(first, eq - first);
      while (!name.empty() && std::isspace(static_cast<unsigned char>(name.back())))
        name.pop_back();
      auto it = values.find(canon(name));
      if (it != values.end()) {
        if (!written.contains(it->first)) out << it->first << " = " << it->second << "\n";
        written.insert(it->first);
        continue;
      }
    }
    out << line << "\n";
  }
  bool header = false;
  for (const auto& [name, value] : values) {
    if (written.contains(name)) continue;
    if (!header) out << "# changed on the volunteer page\n";
    header = true;
    out << name << " = " << value << "\n";
  }
  return out.str();
}

http::Response VolunteerPage::Prefs(const http::Request& req) {
  http::Response refuse;
  if (!FromPage(req, refuse)) return refuse;
  std::map<std::string, std::string> fields;
  for (const auto& [k, v] : req.params) fields[k] = v;
  if (fields.empty()) return Text(400, "no preferences given\n");
  std::lock_guard lock(mu_);
  Preferences p = config_.preferences;
  if (Status s = ApplyFields(fields, p); !s.ok()) return Text(400, s.message() + "\n");
  for (const auto& [k, v] : fields) config_.values[k] = v;
  config_.preferences = p;
  control_->SetPreferences(p);
  if (config_.config_file.empty()) {
    saved_ = "applied; not saved (the worker was started without --config)";
  } else {
    auto text = ReadFile(config_.config_file, 1 << 20);
    std::map<std::string, std::string> editable;
    for (const auto& name : EditableNames())
      if (auto it = config_.values.find(name); it != config_.values.end())
        editable[name] = it->second;
    Status s =
        WriteFileAtomic(config_.config_file, UpdateConfigText(text.ok() ? *text : "", editable));
    saved_ = s.ok() ? "applied and saved to " + config_.config_file
                    : "applied; saving failed: " + s.message();
  }
  SC_LOG(Info) << "preferences changed on the volunteer page: " << saved_;
  return Text(200, saved_ + "\n");
}

http::Response VolunteerPage::State() {
  auto view = control_->Latest();
  if (!view) return Text(503, "starting\n");
  const StatusSnapshot& s = view->status;
  std::string o =
      "{\"peer_id\":" + JsonString(s.peer_id) + ",\"coordinator\":" + JsonString(s.coordinator) +
      ",\"connected\":" + (s.connected ? "true" : "false") + ",\"state\":" + JsonString(s.state) +
      ",\"reason\":" + JsonString(s.reason) +
      ",\"owner_paused\":" + (view->owner_paused ? "true" : "false") +
      ",\"machine_cores\":" + JsonNumber(s.machine_cores) +
      ",\"max_slots\":" + JsonNumber(s.max_slots) + ",\"slots\":" + JsonNumber(s.slots) +
      ",\"other_cpu_percent\":" + JsonNumber(s.other_cpu_percent) +
      ",\"memory_available\":" + JsonNumber(static_cast<double>(s.memory_available)) +
      ",\"prefetched\":" + JsonNumber(static_cast<double>(s.prefetched)) +
      ",\"units_done\":" + JsonNumber(static_cast<double>(s.units_done)) +
      ",\"units_failed\":" + JsonNumber(static_cast<double>(s.units_failed)) +
      ",\"units_returned\":" + JsonNumber(static_cast<double>(s.units_returned)) +
      ",\"cpu_hours\":" + JsonNumber(s.cpu_seconds / 3600) +
      ",\"pauses\":" + JsonNumber(static_cast<double>(view->pauses)) +
      ",\"updated_at\":" + JsonNumber(s.updated_at);
  {
    std::lock_guard lock(mu_);
    o += ",\"validated_cpu_hours\":" +
         (validated_ < 0 ? std::string("null") : JsonNumber(validated_ / 3600));
    o += ",\"saved\":" + JsonString(saved_) +
         ",\"config_file\":" + JsonString(config_.config_file) + ",\"prefs\":{";
    bool first = true;
    for (const auto& name : EditableNames()) {
      auto it = config_.values.find(name);
      o += (first ? "" : ",") + JsonString(name) + ":" +
           JsonString(it == config_.values.end() ? "" : it->second);
      first = false;
    }
    o += "}";
  }
  o += ",\"units\":[";
  for (std::size_t i = 0; i < s.units.size(); ++i) {
    const UnitStatus& u = s.units[i];
    o += (i ? "," : "") + std::string("{\"job\":") + JsonNumber(static_cast<double>(u.job)) +
         ",\"unit\":" + JsonNumber(static_cast<double>(u.unit)) +
         ",\"task\":" + JsonString(u.task) + ",\"progress\":" + JsonNumber(u.progress) +
         ",\"waiting\":" + (u.waiting ? "true" : "false") + "}";
  }
  o += "]}";
  http::Response r;
  r.content_type = "application/json";
  r.body = std::move(o);
  return r;
}

http::Response VolunteerPage::Metrics() {
  auto view = control_->Latest();
  if (!view) return Text(503, "starting\n");
  const StatusSnapshot& s = view->status;
  metrics::Writer w;
  w.Family("sparecycles_worker_build_info", "gauge", "Always 1; the version of the worker.");
  w.Sample("sparecycles_worker_build_info", {{"version", "0.1.0"}}, 1);
  w.Gauge("sparecycles_worker_connected", "1 while the coordinator has welcomed this worker.",
          s.connected ? 1 : 0);
  w.Gauge("sparecycles_worker_machine_cores", "Cores of this machine.", s.machine_cores);
  w.Gauge("sparecycles_worker_max_slots",
          "Most cores the worker may use (its preferences, as started).", s.max_slots);
  w.Gauge("sparecycles_worker_slots", "Cores the worker may use now (0 while paused).", s.slots);
  w.Family("sparecycles_worker_state", "gauge",
           "1 for the worker's current state (running, throttled or paused).");
  for (const char* st : {"running", "throttled", "paused"})
    w.Sample("sparecycles_worker_state", {{"state", st}}, s.state == st ? 1 : 0);
  w.Family("sparecycles_worker_state_reason_info", "gauge",
           "Why the worker is not running at full strength (empty while running).");
  w.Sample("sparecycles_worker_state_reason_info", {{"state", s.state}, {"reason", s.reason}}, 1);
  w.Gauge("sparecycles_worker_owner_paused", "1 while the owner paused the worker from its page.",
          view->owner_paused ? 1 : 0);
  w.Gauge("sparecycles_worker_units_running", "Units started and not finished.",
          static_cast<double>(s.units.size()));
  w.Gauge("sparecycles_worker_units_prefetched", "Units held and not started.",
          static_cast<double>(s.prefetched));
  w.Family("sparecycles_worker_units_total", "counter",
           "Units run, by outcome (done: over every run with this state directory; failed, "
           "returned: this run).");
  w.Sample("sparecycles_worker_units_total", {{"outcome", "done"}},
           static_cast<double>(s.units_done));
  w.Sample("sparecycles_worker_units_total", {{"outcome", "failed"}},
           static_cast<double>(s.units_failed));
  w.Sample("sparecycles_worker_units_total", {{"outcome", "returned"}},
           static_cast<double>(s.units_returned));
  w.Counter("sparecycles_worker_units_resumed_total", "Units resumed from a checkpoint.",
            static_cast<double>(s.units_resumed));
  w.Counter("sparecycles_worker_cpu_donated_seconds_total",
            "CPU time spent on units, over every run with this state directory.", s.cpu_seconds);
  {
    std::lock_guard lock(mu_);
    if (validated_ >= 0)
      w.Counter("sparecycles_worker_cpu_validated_seconds_total",
                "CPU time of this peer's units the coordinator accepted (asked every 10 s; needs "
                "--clients).",
                validated_);
  }
  w.Counter("sparecycles_worker_pauses_total",
            "Times the worker went into the paused state, this run.",
            static_cast<double>(view->pauses));
  w.Counter("sparecycles_worker_paused_seconds_total",
            "Time spent paused, this run (up to the last status update).", view->paused_seconds);
  w.Gauge("sparecycles_worker_other_cpu_ratio",
          "Share of the machine's CPU other programs use (0..1).", s.other_cpu_percent / 100);
  w.Gauge("sparecycles_worker_memory_available_bytes", "Memory the worker may give to units now.",
          static_cast<double>(s.memory_available));
  w.Gauge("sparecycles_worker_status_updated_seconds",
          "When the worker last published its status, in seconds since the epoch.", s.updated_at);
  http::Response r;
  r.content_type = metrics::kContentType;
  r.body = w.text();
  return r;
}

}  // namespace sparecycles::worker
