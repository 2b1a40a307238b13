// The coordinator's HTTP side: /metrics (Prometheus), /healthz, /readyz, /api/state.json and the
// dashboard at /, all rendered on the HTTP server's own threads from the snapshots LoopMetrics
// publishes; nothing here touches the event loop's state. Reads need no authentication; the one
// write (POST /api/cancel) needs the admin token and goes through the client endpoint like any
// SDK client. Owned by Coordinator::Impl; Start/Stop from the thread that owns the coordinator.
#pragma once

#include <memory>
#include <string>

#include "metrics.hpp"
#include "sparecycles/core/http.hpp"
#include "sparecycles/core/transport.hpp"

namespace sparecycles::coordinator {

class CoordinatorHttp {
 public:
  /// `admin_token` empty = writes disabled. `client_endpoint`: where cancels are sent, with the
  /// socket options in `client_config` (CURVE: the coordinator's own key, see ZapHandler).
  CoordinatorHttp(LoopMetrics& metrics, std::string admin_token, const std::string& client_endpoint,
                  net::SocketConfig client_config = {});
  ~CoordinatorHttp();
  Status Start(const std::string& host_port);
  void Stop();
  std::string url() const { return server_.url(); }

 private:
  http::Response Cancel(const http::Request& req);

  LoopMetrics& metrics_;
  std::string admin_token_, client_endpoint_;
  net::SocketConfig client_config_;
  http::Server server_;
};

/// The embedded dashboard files (generated at build time, see coordinator/CMakeLists.txt).
namespace assets {
std::string_view DashboardHtml();
std::string_view ChartJs();  // empty when Chart.js was not available at build time
}  // namespace assets

}  // namespace sparecycles::coordinator
