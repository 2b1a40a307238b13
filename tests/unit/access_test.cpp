// Client roles and quotas (coordinator/src/access.hpp): what a client-key list line grants, what
// each role may do with its own and others' jobs, and when a quota refuses. Pure logic.
#include "access.hpp"

#include <doctest/doctest.h>

using namespace sparecycles;
using namespace sparecycles::coordinator;

namespace {

const std::string kAlice(64, 'a');
const std::string kBob(64, 'b');

Caller As(const std::string& key, const char* column, const Quota& defaults = {}) {
  auto grant = ParseClientGrant(column);
  REQUIRE_MESSAGE(grant.ok(), grant.status().ToString());
  return MakeCaller(key, *grant, kRoleSubmit, defaults);
}

}  // namespace

TEST_CASE("a key list's role column: roles, combined roles, quota overrides, and named mistakes") {
  auto empty = ParseClientGrant("");
  REQUIRE(empty.ok());
  CHECK(empty->roles == kRoleSubmit);
  CHECK_FALSE(empty->jobs);

  auto both = ParseClientGrant("submit,read jobs=3 units=1k bytes=2M");
  REQUIRE(both.ok());
  CHECK(both->roles == (kRoleSubmit | kRoleRead));
  CHECK(both->jobs == 3u);
  CHECK(both->units == 1000u);
  CHECK(both->bytes == 2000000u);

  auto quota_only = ParseClientGrant("jobs=1");  // role left out: submit
  REQUIRE(quota_only.ok());
  CHECK(quota_only->roles == kRoleSubmit);
  CHECK(quota_only->jobs == 1u);

  auto typo = ParseClientGrant("sumbit");
  CHECK(typo.status().code() == StatusCode::kInvalidArgument);
  CHECK(typo.status().message().find("sumbit") != std::string::npos);
  CHECK(ParseClientGrant("submit job=1").status().message().find("unknown quota 'job'") !=
        std::string::npos);
  CHECK_FALSE(ParseClientGrant("submit jobs=-1").ok());
  CHECK_FALSE(ParseClientGrant("submit jobs=many").ok());
  CHECK_FALSE(ParseClientGrant("submit 5").ok());
  CHECK_FALSE(ParseClientGrant("none").ok());  // a listed key with no role is a mistake

  CHECK(ParseRoles("none").value() == 0u);
  CHECK(ParseRoles("admin").value() == kRoleAdmin);
  CHECK_FALSE(ParseRoles("").ok());
  CHECK(RoleNames(kRoleSubmit | kRoleRead) == "submit,read");
}

TEST_CASE("submit sees and cancels only its own jobs; read sees all, cancels none; admin all") {
  const Caller alice = As(kAlice, "submit");
  const Caller reader = As(kBob, "read");
  const Caller admin = As(kBob, "admin");

  CHECK(Authorize(alice, ClientAction::kSubmit).ok());
  CHECK(Authorize(alice, ClientAction::kUpload).ok());
  CHECK(Authorize(alice, ClientAction::kSeeJob, kAlice).ok());
  CHECK(Authorize(alice, ClientAction::kCancelJob, kAlice).ok());
  const Status other = Authorize(alice, ClientAction::kCancelJob, kBob);
  CHECK(other.code() == StatusCode::kPermissionDenied);
  CHECK(other.message().find("admin") != std::string::npos);
  CHECK(Authorize(alice, ClientAction::kSeeJob, kBob).code() == StatusCode::kPermissionDenied);
  CHECK(Authorize(alice, ClientAction::kSeeJob, "").code() == StatusCode::kPermissionDenied);
  CHECK(Authorize(alice, ClientAction::kListPeers).code() == StatusCode::kPermissionDenied);
  CHECK(Authorize(alice, ClientAction::kListJobs).ok());
  CHECK_FALSE(SeesAllJobs(alice));

  CHECK(Authorize(reader, ClientAction::kSeeJob, kAlice).ok());
  CHECK(Authorize(reader, ClientAction::kListPeers).ok());
  CHECK(SeesAllJobs(reader));
  CHECK(Authorize(reader, ClientAction::kSubmit).code() == StatusCode::kPermissionDenied);
  CHECK(Authorize(reader, ClientAction::kUpload).code() == StatusCode::kPermissionDenied);
  CHECK(Authorize(reader, ClientAction::kCancelJob, kAlice).code() ==
        StatusCode::kPermissionDenied);
  // A read key owning a job (submitted when it had submit) still cannot act as its owner.
  CHECK(Authorize(reader, ClientAction::kCancelJob, kBob).code() == StatusCode::kPermissionDenied);

  for (auto action : {ClientAction::kSubmit, ClientAction::kUpload, ClientAction::kListPackages,
                      ClientAction::kSeeJob, ClientAction::kCancelJob, ClientAction::kListJobs,
                      ClientAction::kListPeers})
    CHECK(Authorize(admin, action, kAlice).ok());

  // CURVE off: no key to tell clients apart, every caller is admin.
  const Caller anonymous = MakeCaller("", std::nullopt, kRoleSubmit, Quota{1, 1, 1});
  CHECK(anonymous.admin());
  // An unlisted key on an open endpoint gets the open roles; none lets it do nothing.
  const Caller stranger = MakeCaller(kAlice, std::nullopt, 0, {});
  CHECK(Authorize(stranger, ClientAction::kListJobs).code() == StatusCode::kPermissionDenied);
  CHECK(Authorize(stranger, ClientAction::kSubmit).code() == StatusCode::kPermissionDenied);
}

TEST_CASE("quotas: the key's line overrides the defaults, each limit refuses what passes it") {
  const Quota defaults{2, 100, 1000};
  const Caller plain = As(kAlice, "submit", defaults);
  CHECK(plain.quota.jobs == 2);
  const Caller tight = As(kAlice, "submit jobs=1 bytes=0", defaults);
  CHECK(tight.quota.jobs == 1);
  CHECK(tight.quota.units == 100);
  CHECK(tight.quota.bytes == 0);  // 0 = no limit

  CHECK(CheckJobQuota(plain, Usage{1, 50, 500}, 50, 500).ok());  // exactly at every limit
  const Status jobs = CheckJobQuota(plain, Usage{2, 0, 0}, 1, 0);
  CHECK(jobs.code() == StatusCode::kResourceExhausted);
  CHECK(jobs.message().find("unfinished jobs") != std::string::npos);
  CHECK(jobs.message().find("--quota-jobs") != std::string::npos);
  CHECK(CheckJobQuota(plain, Usage{0, 60, 0}, 41, 0).message().find("unsettled units") !=
        std::string::npos);
  CHECK(CheckJobQuota(plain, Usage{0, 0, 999}, 1, 2).message().find("bytes held") !=
        std::string::npos);
  CHECK(CheckUploadQuota(plain, Usage{0, 0, 900}, 101).code() == StatusCode::kResourceExhausted);
  CHECK(CheckUploadQuota(plain, Usage{0, 0, 900}, 100).ok());
  CHECK(CheckJobQuota(tight, Usage{0, 0, 1ull << 40}, 1, 1ull << 40).ok());  // bytes unlimited
  CHECK(CheckJobQuota(tight, Usage{1, 0, 0}, 1, 0).code() == StatusCode::kResourceExhausted);

  const Caller admin = As(kBob, "admin", defaults);
  CHECK(CheckJobQuota(admin, Usage{1000, 1000000, 1ull << 40}, 1000000, 1ull << 40).ok());
  CHECK(CheckUploadQuota(admin, Usage{0, 0, 1ull << 40}, 1ull << 40).ok());
}
