#include "http_server.hpp"

#include <cstring>

#include "sparecycles/core/log.hpp"
#include "sparecycles/core/protocol.hpp"
#include "sparecycles/core/transport.hpp"

namespace sparecycles::coordinator {

namespace {
// A loop turn normally takes microseconds and the loop wakes at least once a second; a loop that
// has not turned for this long is stuck (e.g. a huge merge) and the coordinator is not ready.
constexpr Duration kStuckAfter = std::chrono::seconds(5);

bool SameToken(const std::string& a, const std::string& b) {
  // Constant time in the length of the expected token.
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

http::Response Text(int status, std::string body) {
  http::Response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

// "tcp://0.0.0.0:7738" and "tcp://*:7738" are reached locally through 127.0.0.1.
std::string LocalEndpoint(const std::string& ep) {
  for (const char* any : {"tcp://0.0.0.0:", "tcp://*:"})
    if (ep.rfind(any, 0) == 0) return "tcp://127.0.0.1:" + ep.substr(std::strlen(any));
  if (ep.rfind("tcp://[::]:", 0) == 0) return "tcp://[::1]:" + ep.substr(11);
  return ep;
}
}  // namespace

CoordinatorHttp::CoordinatorHttp(LoopMetrics& metrics, std::string admin_token,
                                 const std::string& client_endpoint,
                                 net::SocketConfig client_config)
    : metrics_(metrics),
      admin_token_(std::move(admin_token)),
      client_endpoint_(LocalEndpoint(client_endpoint)),
      client_config_(std::move(client_config)) {
  server_.Get("/metrics", [this](const http::Request&) {
    auto snap = metrics_.Latest();
    if (!snap) return Text(503, "no snapshot yet\n");
    http::Response r;
    r.content_type = metrics::kContentType;
    r.body = RenderMetrics(*snap);
    return r;
  });
  server_.Get("/healthz", [](const http::Request&) { return Text(200, "ok\n"); });
  server_.Get("/readyz", [this](const http::Request&) {
    auto snap = metrics_.Latest(std::chrono::milliseconds(100));
    const Duration since_turn = SteadyClock::Instance().Now() - metrics_.last_turn();
    if (!snap || !snap->ready) return Text(503, "not ready: starting\n");
    if (since_turn > kStuckAfter)
      return Text(503, "not ready: the event loop has not turned for " +
                           std::to_string(static_cast<int>(Seconds(since_turn))) + " s\n");
    return Text(200, "ready\n");
  });
  server_.Get("/api/state.json", [this](const http::Request&) {
    auto snap = metrics_.Latest();
    if (!snap) return Text(503, "no snapshot yet\n");
    http::Response r;
    r.content_type = "application/json";
    r.body = RenderStateJson(*snap);
    return r;
  });
  server_.Get("/", [](const http::Request&) {
    http::Response r;
    r.content_type = "text/html; charset=utf-8";
    r.body = std::string(assets::DashboardHtml());
    r.headers["Content-Security-Policy"] =
        "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; "
        "connect-src 'self'; img-src 'self' data:";
    return r;
  });
  server_.Get("/assets/chart.min.js", [](const http::Request&) {
    http::Response r;
    r.content_type = "application/javascript";
    r.body = std::string(assets::ChartJs());
    if (r.body.empty())
      r.body =
          "/* Chart.js was not available at build time; the dashboard draws its own chart. */\n";
    r.headers["Cache-Control"] = "max-age=86400";
    return r;
  });
  server_.Post("/api/cancel", [this](const http::Request& req) { return Cancel(req); });
}

CoordinatorHttp::~CoordinatorHttp() { Stop(); }

Status CoordinatorHttp::Start(const std::string& host_port) {
  SC_RETURN_IF_ERROR(server_.Start(host_port));
  SC_LOG(Info) << "dashboard and metrics on " << server_.url() << "/ (" << server_.url()
               << "/metrics)" << (admin_token_.empty() ? "; read-only (no admin token)" : "");
  return OkStatus();
}

void CoordinatorHttp::Stop() { server_.Stop(); }

http::Response CoordinatorHttp::Cancel(const http::Request& req) {
  if (admin_token_.empty())
    return Text(403, "writes are disabled: start the coordinator with --http-admin-token-file\n");
  const std::string auth = req.Header("authorization");
  if (auth.rfind("Bearer ", 0) != 0 || !SameToken(auth.substr(7), admin_token_))
    return Text(401, "bad or missing admin token\n");
  auto it = req.params.find("job");
  if (it == req.params.end()) return Text(400, "missing job\n");
  char* end = nullptr;
  const unsigned long long job = std::strtoull(it->second.c_str(), &end, 10);
  if (it->second.empty() || *end != '\0' || job == 0) return Text(400, "bad job id\n");
  // The loop owns every job: ask it like any client does, over the client endpoint.
  zmq::context_t ctx{1};
  auto sock = net::ConnectDealer(ctx, client_endpoint_, client_config_);
  if (!sock.ok()) return Text(502, sock.status().ToString() + "\n");
  sock->set(zmq::sockopt::linger, 0);
  proto::CancelJob m;
  m.request_id = 1;
  m.job_id = job;
  net::SendDealer(*sock, proto::Encode(m), nullptr);
  std::vector<zmq::pollitem_t> items = {{sock->handle(), 0, ZMQ_POLLIN, 0}};
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (std::chrono::steady_clock::now() < deadline) {
    net::Poll(items, std::chrono::milliseconds(100));
    auto reply = net::RecvDealer(*sock, nullptr);
    if (!reply) continue;
    std::string_view body;
    auto type = proto::ParseHeader({static_cast<const char*>(reply->data()), reply->size()}, body);
    if (!type.ok()) return Text(502, type.status().ToString() + "\n");
    if (*type == proto::MsgType::kErrorReply) {
      proto::ErrorReply e;
      (void)proto::Decode(body, e);
      return Text(e.code == proto::ToWireCode(StatusCode::kNotFound) ? 404 : 409, e.message + "\n");
    }
    SC_LOG(Info) << "job " << job << " cancelled from the dashboard";
    return Text(200, "cancelled job " + std::to_string(job) + "\n");
  }
  return Text(504, "the coordinator did not answer\n");
}

}  // namespace sparecycles::coordinator
