// The volunteer's page on the worker: what the machine donates now and why, units in progress,
// CPU-hours contributed and validated, pause/resume and the main preferences (applied live through
// OwnerControl and saved to the config file), plus the worker's own /metrics. Bound to loopback
// only; writes need no token but must come from the page itself (a custom header and a loopback
// Host, against cross-site requests and DNS rebinding). Runs on its own threads; thread-safe.
#pragma once

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "sparecycles/core/http.hpp"
#include "sparecycles/worker/owner_control.hpp"
#include "sparecycles/worker/policy.hpp"

namespace sparecycles::worker {

struct VolunteerPageConfig {
  std::string bind = "127.0.0.1:0";  // HOST:PORT, loopback only
  std::string config_file;           // where preference changes are saved; empty = not saved
  std::string coordinator_key;       // its public key (ValidatedCpuSeconds); empty = found locally
  std::string clients_endpoint;  // the coordinator's client endpoint, for validated CPU time; empty
                                 // = unknown
  Preferences preferences;       // as the worker started
  std::map<std::string, std::string>
      values;  // the option texts the preferences came from (for the form)
};

/// CPU-seconds the coordinator at `clients` (its client endpoint) validated for `peer_id`: 0 when
/// it does not know the peer, < 0 when it cannot be asked (no answer within 3 s). Blocking.
/// `coordinator_key` (Z85/hex or file) is the key the client endpoint must prove; empty = the key
/// a coordinator on this machine published for `clients`. -1 when it cannot be asked.
double ValidatedCpuSeconds(const std::string& clients, const std::string& peer_id,
                           const std::string& coordinator_key);

class VolunteerPage {
 public:
  VolunteerPage(VolunteerPageConfig config, std::shared_ptr<OwnerControl> control);
  ~VolunteerPage();
  /// Errors: InvalidArgument for a non-loopback address, Unavailable when it cannot bind.
  Status Start();
  void Stop();
  std::string url() const { return server_.url(); }

  /// Applies form fields (option names as in --help) to `prefs`; unknown names and bad values are
  /// errors and leave `prefs` unchanged. Exposed for tests.
  static Status ApplyFields(const std::map<std::string, std::string>& fields, Preferences& prefs);
  /// Rewrites `name = value` lines of a config file's text (adding missing ones), keeping the rest.
  static std::string UpdateConfigText(const std::string& text,
                                      const std::map<std::string, std::string>& values);

 private:
  http::Response State();
  http::Response Metrics();
  http::Response Prefs(const http::Request& req);
  bool FromPage(const http::Request& req, http::Response& refuse) const;
  void PollValidated();

  VolunteerPageConfig config_;
  std::shared_ptr<OwnerControl> control_;
  http::Server server_;
  std::mutex mu_;          // guards config_.preferences, config_.values, validated_, saved_
  double validated_ = -1;  // CPU-seconds the coordinator validated for this peer; < 0 = unknown
  std::string saved_;      // outcome of the last save, for the page
  std::thread poller_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;
};

/// The embedded page (generated at build time from worker/src/volunteer.html).
namespace assets {
std::string_view VolunteerHtml();
}

}  // namespace sparecycles::worker
