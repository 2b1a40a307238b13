// Package jobs in the coordinator, without sockets: the stand-in task that treats a package's
// units and results as data, and the scheduler giving units only to peers that run packages of
// that kind and have not refused this one.
#include <doctest/doctest.h>

#include "fake_task.hpp"
#include "package_service.hpp"
#include "package_tasks.hpp"
#include "sparecycles/coordinator/scheduler.hpp"
#include "sparecycles/package/command.hpp"
#include "sparecycles/package/job.hpp"
#include "sparecycles/package/keys.hpp"
#include "temp_dir.hpp"

using namespace sparecycles;
using namespace sparecycles::coordinator;
using sparecycles::testing::HashOf;

namespace {

package::Manifest CommandManifest(std::uint8_t round_digits = 0) {
  package::Manifest m;
  m.name = "wrap";
  m.version = "1.0";
  m.kind = package::Kind::kCommand;
  m.arch = "any";
  m.entry = "/usr/bin/true";
  m.resources.expected_seconds = 2;
  m.command.canonicalizer.round_digits = round_digits;
  return m;
}

Hash256 SomeId(std::uint8_t fill) {
  Hash256 id{};
  id.fill(fill);
  return id;
}

}  // namespace

TEST_CASE("a package's stand-in task treats units and results as data") {
  const PackageTask t(SomeId(7), CommandManifest(3));
  CHECK(t.Name() == package::PackageTaskName(SomeId(7)));
  CHECK(t.PeerKey() == "@command/1");
  tasks::JobParams p;
  p.input = package::EncodeList({"u0", "u1", "u2"});
  auto plan = t.Plan(p);
  REQUIRE(plan.ok());
  CHECK(plan->max_units == 3);
  CHECK(plan->fixed_units);
  CHECK(plan->total_work == doctest::Approx(6.0));
  auto split = t.Split(p, 3);
  REQUIRE(split.ok());
  CHECK(*split == std::vector<std::string>{"u0", "u1", "u2"});
  CHECK_FALSE(t.Split(p, 2).ok());
  p.input = package::EncodeList({});
  CHECK_FALSE(t.Plan(p).ok());
  p.input = "garbage";
  CHECK_FALSE(t.Plan(p).ok());

  const std::vector<std::string> results{"r0", "r1"};
  auto merged = t.Merge(p, results);
  REQUIRE(merged.ok());
  CHECK(*package::DecodeList(*merged, 10) == results);
  CHECK(t.Summarize(*merged).starts_with("2 unit results, 4 bytes"));
  CHECK(t.ToJson(*merged) == R"({"units":2,"bytes":4})");

  // The manifest's canonicalizer, applied by the coordinator itself: replicas that differ only in
  // digits past the third agree.
  const auto a = package::EncodeOutputs({{"out.txt", "x = 3.14159\n"}});
  const auto b = package::EncodeOutputs({{"out.txt", "x = 3.14161\n"}});
  CHECK(a != b);
  CHECK(t.Canonicalize(a) == t.Canonicalize(b));
  CHECK(HashOf(t.Canonicalize(a)) ==
        HashOf(package::EncodeOutputs(
            {{"out.txt", package::CanonicalizeOutput(CommandManifest(3).command.canonicalizer,
                                                     "x = 3.14159\n")}})));
  CHECK(t.Canonicalize("not outputs") == "malformed outputs");

  package::Manifest native = CommandManifest();
  native.kind = package::Kind::kNative;
  const PackageTask n(SomeId(8), native);
  CHECK(n.PeerKey() == "@native/1");
  CHECK(n.Canonicalize("as sent") == "as sent");  // a native worker sends canonical results
}

TEST_CASE("package units go only to peers that run the kind and have not refused the package") {
  tasks::Registry registry;
  FakeClock clock;
  SchedulerConfig config;
  config.prefetch_seconds = 1e9;
  const Hash256 id = SomeId(9);
  int resolved = 0;
  config.resolve_package = [&](const std::string& task) -> Result<ResolvedTask> {
    if (task != package::PackageTaskName(id)) return NotFound("no such package");
    ++resolved;
    auto t = std::make_shared<PackageTask>(id, CommandManifest());
    return ResolvedTask{t, t->PeerKey()};
  };
  Scheduler s(config, registry);
  auto peer = [&](const std::string& name, const std::string& key) {
    PeerHello h;
    h.peer_id = name;
    h.host = name;
    h.cores = 1;
    h.work_per_second[key] = 1.0;
    return s.AddPeer(h, clock.Now());
  };
  const PeerHandle native_only = peer("native-only", "@native/1");
  const PeerHandle a = peer("a", "@command/1");
  const PeerHandle b = peer("b", "@command/1");

  proto::JobSpecWire spec;
  spec.task = package::PackageTaskName(SomeId(1));
  CHECK(s.Submit(spec, 0).status().code() == StatusCode::kNotFound);
  spec.task = package::PackageTaskName(id);
  spec.input = package::EncodeList({"unit-0", "unit-1"});
  spec.replicas = 1;
  spec.quorum = 1;
  spec.adaptive = 1;
  auto job = s.Submit(spec, 0);
  REQUIRE(job.ok());
  CHECK(resolved == 1);
  CHECK(s.FindJob(*job)->units.size() == 2);

  CHECK(s.Lease(native_only, 2, clock.Now()).empty());
  auto la = s.Lease(a, 2, clock.Now());
  REQUIRE(la.size() == 2);
  CHECK(la[0].task == spec.task);
  CHECK(la[0].unit == "unit-0");

  // a refuses the package: its leases go back without counting as runs, and b gets them.
  s.RefusePackage(a, spec.task, {la[0].lease_id, la[1].lease_id}, "unknown signer: abc",
                  clock.Now());
  CHECK(s.Lease(a, 2, clock.Now()).empty());
  auto lb = s.Lease(b, 2, clock.Now());
  REQUIRE(lb.size() == 2);
  // b refuses too: nobody is left, and the submitter is told why.
  s.RefusePackage(b, spec.task, {lb[0].lease_id, lb[1].lease_id}, "kind not accepted", clock.Now());
  const std::string waiting = s.Info(*s.FindJob(*job)).waiting;
  INFO("waiting: " << waiting);
  CHECK(waiting.find("refused") != std::string::npos);
  CHECK(waiting.find("unknown signer: abc") != std::string::npos);

  // A new peer that runs command packages takes the units and finishes the job.
  const PeerHandle c = peer("c", "@command/1");
  auto lc = s.Lease(c, 2, clock.Now());
  REQUIRE(lc.size() == 2);
  for (const auto& l : lc) {
    proto::ResultMsg r;
    r.lease_id = l.lease_id;
    r.job_id = l.job_id;
    r.unit_index = l.unit_index;
    r.payload = package::EncodeOutputs({{"out", "result of " + l.unit}});
    r.hash = HashOf(r.payload);
    s.OnResult(c, r, clock.Now(), 0);
  }
  const Job* done = s.FindJob(*job);
  REQUIRE(done->state == proto::JobState::kDone);
  auto results = package::DecodeList(done->result, 10);
  REQUIRE(results.ok());
  REQUIRE(results->size() == 2);
  CHECK(*package::DecodeOutputs((*results)[1]) ==
        package::OutputFiles{{"out", "result of unit-1"}});
}

namespace {

// Uploads `bytes` in 1 MiB chunks the way the client does; returns the last reply.
proto::PackagePutReply Upload(PackageService& s, const std::string& bytes) {
  const Hash256 id = Blake2b256(bytes);
  proto::PackagePut put;
  put.request_id = 1;
  put.package_id.assign(reinterpret_cast<const char*>(id.data()), id.size());
  put.total_size = bytes.size();
  proto::PackagePutReply r = s.OnPut(put);  // where to continue
  while (r.code == 0 && !r.complete && r.next_offset < bytes.size()) {
    put.offset = r.next_offset;
    put.bytes = bytes.substr(put.offset, proto::kMaxPackageChunkBytes);
    r = s.OnPut(put);
  }
  return r;
}

package::Package SignedCommand(const package::SecretKey& key, const std::string& name) {
  package::Manifest m = CommandManifest();
  m.name = name;
  m.files = {{"data.bin", 0, {}, false}};
  m.command.required_programs = {"/usr/bin/true"};
  m.command.outputs = {"out.txt"};
  auto p = package::Package::Create(m, {std::string(3u << 20, 'x')});  // three chunks
  REQUIRE_MESSAGE(p.ok(), p.status().ToString());
  p->Sign(key);
  return *p;
}

}  // namespace

TEST_CASE("the coordinator stores only packages that verify against its publishers") {
  sparecycles::testing::TempDir dir("sc-pkgservice");
  const package::SecretKey publisher = package::GenerateKey(), stranger = package::GenerateKey();
  const std::string key_file = dir.path() + "/publisher.pub";
  REQUIRE(
      package::WriteFileAtomic(key_file, package::FormatPublicKeyFile(publisher.public_key)).ok());
  PackageServiceConfig config;
  config.dir = dir.path() + "/packages";
  config.publishers = {key_file};
  auto service = PackageService::Open(config);
  REQUIRE(service.ok());
  PackageService& s = **service;
  CHECK(s.PublisherKeys().size() == 1);

  // Tampered after signing: a byte of a file changed, so its hash no longer matches the manifest.
  std::string tampered = SignedCommand(publisher, "tampered").Encode();
  tampered[tampered.size() - 1000] ^= 0x5a;
  proto::PackagePutReply r = Upload(s, tampered);
  CHECK(r.code != 0);
  CHECK_MESSAGE(r.message.find("hash mismatch") != std::string::npos, r.message);
  package::Package plain = SignedCommand(publisher, "unsigned");
  plain.Unsign();
  r = Upload(s, plain.Encode());
  CHECK_MESSAGE(r.message.find("unsigned") != std::string::npos, r.message);
  r = Upload(s, SignedCommand(stranger, "stranger").Encode());
  CHECK_MESSAGE(r.message.find("unknown signer") != std::string::npos, r.message);
  CHECK(s.List().packages.empty());  // nothing refused was kept
  CHECK(s.stats().uploads_refused == 3);

  const package::Package good = SignedCommand(publisher, "good");
  r = Upload(s, good.Encode());
  REQUIRE_MESSAGE(r.code == 0, r.message);
  CHECK(r.complete);
  auto resolved = s.Resolve(package::PackageTaskName(good.Id()));
  REQUIRE(resolved.ok());
  CHECK(resolved->peer_key == "@command/1");

  // Reopened (a restart): still there, and served in chunks to a peer.
  service->reset();
  auto again = PackageService::Open(config);
  REQUIRE(again.ok());
  REQUIRE((*again)->List().packages.size() == 1);
  CHECK((*again)->List().packages[0].name == "good");
  proto::PackageGet get;
  const Hash256 id = good.Id();
  get.package_id.assign(reinterpret_cast<const char*>(id.data()), id.size());
  const proto::PackageChunk c = (*again)->OnGet("peer-a", get, TimePoint{});
  CHECK(c.code == 0);
  CHECK(c.total_size == good.Encode().size());
  CHECK(c.bytes == good.Encode().substr(0, proto::kMaxPackageChunkBytes));
}
