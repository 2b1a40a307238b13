#include "access.hpp"

#include <vector>

#include "sparecycles/core/parse_int.hpp"

namespace sparecycles::coordinator {
namespace {

std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  while (!s.empty()) {
    const auto at = s.find(sep);
    std::string_view part = s.substr(0, at);
    if (!part.empty()) out.push_back(part);
    if (at == std::string_view::npos) break;
    s.remove_prefix(at + 1);
  }
  return out;
}

std::string Short(const std::string& key) { return key.size() > 16 ? key.substr(0, 16) : key; }

Status Denied(const Caller& caller, const std::string& what, const char* needs) {
  return PermissionDenied(what + " needs the " + needs + " role; key " + Short(caller.key) +
                          "… has " + RoleNames(caller.roles) +
                          " (the coordinator's --client-keys list grants roles)");
}

// One quota: `held` already plus `more` must stay within `limit` (0 = none).
Status Within(const char* what, std::uint64_t limit, std::uint64_t held, std::uint64_t more,
              const char* flag) {
  if (limit == 0 || held + more <= limit) return OkStatus();
  return ResourceExhausted(std::string("quota: ") + what + " would be " +
                           std::to_string(held + more) + ", above this key's limit of " +
                           std::to_string(limit) + " (" + flag +
                           " or the key's line in --client-keys); wait for jobs to finish");
}

}  // namespace

Result<unsigned> ParseRoles(std::string_view names) {
  if (names == "none") return 0u;
  unsigned roles = 0;
  for (std::string_view r : Split(names, ',')) {
    if (r == "submit")
      roles |= kRoleSubmit;
    else if (r == "read")
      roles |= kRoleRead;
    else if (r == "admin")
      roles |= kRoleAdmin;
    else
      return InvalidArgument("unknown role '" + std::string(r) +
                             "' (roles: submit, read, admin, or several joined by commas)");
  }
  if (roles == 0) return InvalidArgument("no role named");
  return roles;
}

std::string RoleNames(unsigned roles) {
  if ((roles & kRoleAdmin) != 0) return "admin";
  if (roles == (kRoleSubmit | kRoleRead)) return "submit,read";
  if (roles == kRoleSubmit) return "submit";
  if (roles == kRoleRead) return "read";
  return "none";
}

Result<ClientGrant> ParseClientGrant(std::string_view column) {
  ClientGrant g;
  std::vector<std::string_view> words;
  for (std::string_view w : Split(column, ' '))
    for (std::string_view t : Split(w, '\t')) words.push_back(t);
  if (words.empty()) return g;
  std::size_t i = 0;
  if (words[0].find('=') == std::string_view::npos) {
    auto roles = ParseRoles(words[0]);
    if (!roles.ok()) return roles.status();
    if (*roles == 0) return InvalidArgument("a listed key needs a role (submit, read or admin)");
    g.roles = *roles;
    i = 1;
  }
  for (; i < words.size(); ++i) {
    const std::string_view w = words[i];
    const auto eq = w.find('=');
    if (eq == std::string_view::npos)
      return InvalidArgument("expected NAME=VALUE (jobs, units or bytes), got '" + std::string(w) +
                             "'");
    const std::string_view name = w.substr(0, eq);
    auto v = ParseInt(w.substr(eq + 1));
    if (!v.ok()) return InvalidArgument(std::string(name) + ": " + v.status().message());
    if (*v < 0) return InvalidArgument(std::string(name) + " must not be negative");
    const auto value = static_cast<std::uint64_t>(*v);
    if (name == "jobs")
      g.jobs = value;
    else if (name == "units")
      g.units = value;
    else if (name == "bytes")
      g.bytes = value;
    else
      return InvalidArgument("unknown quota '" + std::string(name) +
                             "' (quotas: jobs, units, bytes)");
  }
  return g;
}

Caller MakeCaller(const std::string& key, const std::optional<ClientGrant>& listed,
                  unsigned open_roles, const Quota& defaults) {
  Caller c;
  c.key = key;
  if (key.empty()) {
    c.roles = kRoleAdmin;  // CURVE off: no identities to tell apart
    return c;
  }
  c.roles = listed ? listed->roles : open_roles;
  if (c.admin()) return c;  // no quotas
  c.quota = defaults;
  if (listed) {
    if (listed->jobs) c.quota.jobs = *listed->jobs;
    if (listed->units) c.quota.units = *listed->units;
    if (listed->bytes) c.quota.bytes = *listed->bytes;
  }
  return c;
}

Status Authorize(const Caller& caller, ClientAction action, const std::string& job_owner) {
  if (caller.admin()) return OkStatus();
  const bool submit = (caller.roles & kRoleSubmit) != 0;
  const bool read = (caller.roles & kRoleRead) != 0;
  const bool owns = submit && !caller.key.empty() && job_owner == caller.key;
  switch (action) {
    case ClientAction::kSubmit:
      return submit ? OkStatus() : Denied(caller, "submitting a job", "submit");
    case ClientAction::kUpload:
      return submit ? OkStatus() : Denied(caller, "uploading a package", "submit");
    case ClientAction::kListPackages:
      return submit || read ? OkStatus() : Denied(caller, "listing packages", "submit or read");
    case ClientAction::kListJobs:
      return submit || read ? OkStatus() : Denied(caller, "listing jobs", "submit or read");
    case ClientAction::kListPeers:
      return read ? OkStatus() : Denied(caller, "listing peers", "read");
    case ClientAction::kSeeJob:
      return owns || read ? OkStatus() : Denied(caller, "a job of another key", "read (or admin)");
    case ClientAction::kCancelJob:
      return owns ? OkStatus() : Denied(caller, "cancelling a job of another key", "admin");
  }
  return Internal("unknown client action");
}

bool SeesAllJobs(const Caller& caller) { return caller.admin() || (caller.roles & kRoleRead) != 0; }

Status CheckJobQuota(const Caller& caller, const Usage& held, std::uint64_t units,
                     std::uint64_t bytes) {
  if (caller.admin()) return OkStatus();
  if (Status s = Within("unfinished jobs", caller.quota.jobs, held.jobs, 1, "--quota-jobs");
      !s.ok())
    return s;
  if (Status s = Within("unsettled units", caller.quota.units, held.units, units, "--quota-units");
      !s.ok())
    return s;
  return Within("bytes held", caller.quota.bytes, held.bytes, bytes, "--quota-bytes");
}

Status CheckUploadQuota(const Caller& caller, const Usage& held, std::uint64_t bytes) {
  if (caller.admin()) return OkStatus();
  return Within("bytes held", caller.quota.bytes, held.bytes, bytes, "--quota-bytes");
}

}  // namespace sparecycles::coordinator
