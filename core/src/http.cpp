#include "sparecycles/core/http.hpp"

#include <httplib.h>

#include <cmath>
#include <cstdio>
#include <thread>
#include <utility>

#include "sparecycles/core/log.hpp"

namespace sparecycles::http {

namespace {
constexpr std::size_t kMaxBodyBytes = 1 << 20;
constexpr int kPoolThreads = 2;  // scrapes and page polls are rare; two is plenty and bounded

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

Request Convert(const httplib::Request& r) {
  Request out;
  out.method = r.method;
  out.path = r.path;
  out.body = r.body;
  for (const auto& [k, v] : r.params) out.params[k] = v;  // query string and form fields
  for (const auto& [k, v] : r.headers) out.headers[Lower(k)] = v;
  return out;
}

void Fill(const Response& in, httplib::Response& out) {
  out.status = in.status;
  for (const auto& [k, v] : in.headers) out.set_header(k, v);
  out.set_header("Cache-Control", "no-store");
  out.set_header("X-Content-Type-Options", "nosniff");
  out.set_content(in.body, in.content_type);
}
}  // namespace

std::string JsonString(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else if (c == '<') {
          out += "\\u003c";  // never closes a <script> when embedded in HTML
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
  return out;
}

std::string JsonNumber(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[64];
  if (v == std::floor(v) && std::fabs(v) < 1e15)
    std::snprintf(buf, sizeof(buf), "%.0f", v);
  else
    std::snprintf(buf, sizeof(buf), "%.12g", v);
  return buf;
}

Status ParseHostPort(const std::string& text, std::string& host, int& port) {
  std::string h, p;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return InvalidArgument("expected [IPv6]:PORT, got '" + text + "'");
    h = text.substr(1, close - 1);
    p = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string::npos || colon == 0)
      return InvalidArgument("expected HOST:PORT, got '" + text + "'");
    h = text.substr(0, colon);
    p = text.substr(colon + 1);
  }
  char* end = nullptr;
  const long v = std::strtol(p.c_str(), &end, 10);
  if (p.empty() || *end != '\0' || v < 0 || v > 65535)
    return InvalidArgument("bad port in '" + text + "'");
  host = h;
  port = static_cast<int>(v);
  return OkStatus();
}

bool IsLoopback(const std::string& host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

struct Server::Impl {
  httplib::Server server;
  std::thread thread;
  std::string host;
  int port = 0;
  bool started = false;
};

Server::Server() : impl_(std::make_unique<Impl>()) {
  auto& s = impl_->server;
  s.new_task_queue = [] { return new httplib::ThreadPool(kPoolThreads); };
  s.set_payload_max_length(kMaxBodyBytes);
  s.set_read_timeout(5, 0);
  s.set_write_timeout(5, 0);
  s.set_keep_alive_max_count(100);
  s.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, const std::exception_ptr&) {
        res.status = 500;
        res.set_content("internal error\n", "text/plain");
      });
}

Server::~Server() { Stop(); }

void Server::Get(const std::string& path, Handler h) {
  impl_->server.Get(path, [h = std::move(h)](const httplib::Request& req, httplib::Response& res) {
    Fill(h(Convert(req)), res);
  });
}
void Server::Post(const std::string& path, Handler h) {
  impl_->server.Post(path, [h = std::move(h)](const httplib::Request& req, httplib::Response& res) {
    Fill(h(Convert(req)), res);
  });
}

Status Server::Start(const std::string& host_port) {
  std::string host;
  int port = 0;
  SC_RETURN_IF_ERROR(ParseHostPort(host_port, host, port));
  auto& s = impl_->server;
  int bound = -1;
  if (port == 0)
    bound = s.bind_to_any_port(host);
  else
    bound = s.bind_to_port(host, port) ? port : -1;
  if (bound <= 0) return Unavailable("cannot bind HTTP on " + host_port);
  impl_->host = host;
  impl_->port = bound;
  impl_->started = true;
  impl_->thread = std::thread([this] { impl_->server.listen_after_bind(); });
  // stop() only takes effect once the accept loop runs: wait for it so Stop() never hangs.
  for (int i = 0; i < 2000 && !s.is_running(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return OkStatus();
}

std::string Server::url() const {
  const bool v6 = impl_->host.find(':') != std::string::npos;
  return "http://" + (v6 ? "[" + impl_->host + "]" : impl_->host) + ":" +
         std::to_string(impl_->port);
}
int Server::port() const { return impl_->port; }

void Server::Stop() {
  if (!impl_->started) return;
  impl_->started = false;
  impl_->server.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

}  // namespace sparecycles::http
