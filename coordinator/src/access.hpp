// Who may do what on the client endpoint: the roles a client key holds, which jobs it owns, and
// the quotas that bound what one key can make the coordinator hold. Pure functions of their
// arguments, used by the event loop; no sockets, no state. docs/security.md, "Client roles".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "sparecycles/core/status.hpp"

namespace sparecycles::coordinator {

/// Roles, combinable ("submit,read"): submit = submit jobs, upload packages, see and cancel its own
/// jobs; read = list and see every job and the peers; admin = everything, without quotas.
enum Role : unsigned { kRoleSubmit = 1u, kRoleRead = 2u, kRoleAdmin = 4u };

/// Limits on what one key may have the coordinator hold at once; 0 = no limit.
struct Quota {
  std::uint64_t jobs = 0;   // unfinished jobs
  std::uint64_t units = 0;  // units of its unfinished jobs not yet settled
  std::uint64_t bytes = 0;  // bytes held for it: unfinished jobs' inputs and its packages
};

/// What a client-key list grants one key: its roles, and quota overrides of the coordinator's
/// defaults. The list's column after the key: "ROLE[,ROLE] [jobs=N] [units=N] [bytes=N]".
struct ClientGrant {
  unsigned roles = kRoleSubmit;
  std::optional<std::uint64_t> jobs, units, bytes;
};
/// Empty = submit. Errors (InvalidArgument) name the bad word.
Result<ClientGrant> ParseClientGrant(std::string_view column);
/// "submit,read", "admin", "none".
std::string RoleNames(unsigned roles);
/// "submit", "read", "admin", "submit,read" or "none" (no unlisted key may in).
Result<unsigned> ParseRoles(std::string_view names);

/// The client behind one request: its key (64 hex digits; empty when CURVE is off), its roles
/// and its effective quota.
struct Caller {
  std::string key;
  unsigned roles = 0;
  Quota quota;
  bool admin() const { return (roles & kRoleAdmin) != 0; }
};
/// The caller of a request. `listed` is what the client-key list grants the key (nullopt when it
/// is not listed: the coordinator's `open_roles` apply). Without CURVE (`key` empty) every caller
/// is admin: the endpoint cannot tell clients apart.
Caller MakeCaller(const std::string& key, const std::optional<ClientGrant>& listed,
                  unsigned open_roles, const Quota& defaults);

enum class ClientAction {
  kSubmit,        // Submit
  kUpload,        // PackagePut
  kListPackages,  // ListPackages
  kSeeJob,        // StatusRequest, Watch, FetchResult
  kCancelJob,     // CancelJob
  kListJobs,      // ListJobs (a submit-only caller sees its own)
  kListPeers,     // ListPeers
};
/// OK, or PERMISSION_DENIED naming the role the action needs. `job_owner` is the owner of the job
/// acted on (kSeeJob, kCancelJob).
Status Authorize(const Caller& caller, ClientAction action, const std::string& job_owner = {});
/// Whether ListJobs shows this caller every job (read, admin) or only its own.
bool SeesAllJobs(const Caller& caller);

/// What a key holds now.
struct Usage {
  std::uint64_t jobs = 0, units = 0, bytes = 0;
};
/// OK, or RESOURCE_EXHAUSTED naming the quota a new job of `units` units and `bytes` input bytes
/// would pass. Admins have none.
Status CheckJobQuota(const Caller& caller, const Usage& held, std::uint64_t units,
                     std::uint64_t bytes);
/// The same for an upload of a package of `bytes` bytes.
Status CheckUploadQuota(const Caller& caller, const Usage& held, std::uint64_t bytes);

}  // namespace sparecycles::coordinator
