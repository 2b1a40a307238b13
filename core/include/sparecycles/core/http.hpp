// A small HTTP/1.1 server for the read-mostly status side of the daemons (metrics, health, the
// dashboard, the volunteer's page). It owns its own threads (a pool of two) and never touches the
// caller's event loop; handlers run on those threads and must be thread-safe. Wraps Debian's
// cpp-httplib behind a pimpl so only http.cpp sees it. Bounded: 1 MiB request bodies, 5 s timeouts.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "sparecycles/core/json.hpp"
#include "sparecycles/core/status.hpp"

namespace sparecycles::http {

struct Request {
  std::string method, path, body;
  std::map<std::string, std::string> params;   // query string and url-encoded form fields
  std::map<std::string, std::string> headers;  // lower-case names
  std::string Header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? std::string() : it->second;
  }
};

struct Response {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::map<std::string, std::string> headers;
};

using Handler = std::function<Response(const Request&)>;

/// The JSON of pages and their APIs: strings HTML-safe (core/json.hpp, JsonStyle::kHtmlSafe),
/// numbers as JsonNumber.
inline std::string JsonString(std::string_view s) {
  return sparecycles::JsonString(s, JsonStyle::kHtmlSafe);
}
using sparecycles::JsonNumber;

/// "127.0.0.1:8080", "[::1]:0", "localhost:0" -> host and port. Errors: InvalidArgument.
Status ParseHostPort(const std::string& text, std::string& host, int& port);
/// True for 127.0.0.0/8, ::1 and "localhost".
bool IsLoopback(const std::string& host);

class Server {
 public:
  Server();
  ~Server();  // stops the server
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  /// Registers a handler for GET (and HEAD) or POST on an exact path. Call before Start().
  void Get(const std::string& path, Handler h);
  void Post(const std::string& path, Handler h);
  /// Binds `host:port` (port 0 = the OS picks) and starts serving on a thread of its own.
  /// Errors: InvalidArgument for a bad address, Unavailable when it cannot bind.
  Status Start(const std::string& host_port);
  /// "http://HOST:PORT" with the bound port (valid after Start()).
  std::string url() const;
  int port() const;
  /// Stops accepting and joins the threads. Idempotent.
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sparecycles::http
