// The worker's package cache, driven without sockets: a fake coordinator serves chunks from its
// own store. Fetches resume after a restart, "busy" answers are retried, and a package that fails
// any check here (unsigned, unknown or unpinned signer, kind the owner refuses, missing program)
// is refused with its reason and never extracted.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

#include "package_cache.hpp"
#include "sparecycles/core/clock.hpp"
#include "temp_dir.hpp"

using namespace sparecycles;
using namespace sparecycles::worker;
using sparecycles::testing::TempDir;
namespace fs = std::filesystem;

namespace {

package::SecretKey Key(std::uint8_t fill) {
  std::array<std::uint8_t, 32> seed{};
  seed.fill(fill);
  return package::KeyFromSeed(seed);
}

std::string KeyBytes(const package::SecretKey& k) {
  return std::string(reinterpret_cast<const char*>(k.public_key.bytes.data()), 32);
}

// A command package holding a script and `size` bytes of data.
package::Package MakePackage(std::size_t size, const std::vector<std::string>& required = {}) {
  package::Manifest m;
  m.name = "wrap";
  m.version = "1";
  m.kind = package::Kind::kCommand;
  m.arch = "any";
  m.entry = "run.sh";
  m.command.required_programs = required;
  m.command.outputs = {"out"};
  m.files = {{"data.bin", 0, {}, false}, {"run.sh", 0, {}, true}};
  std::string data(size, '\0');
  for (std::size_t i = 0; i < size; ++i) data[i] = static_cast<char>((i * 131) & 0xff);
  auto p = package::Package::Create(m, {data, "#!/bin/sh\necho hi > out\n"});
  REQUIRE(p.ok());
  return *p;
}

// Serves one package in chunks, as the coordinator does (PackageService::OnGet).
struct FakeCoordinator {
  std::string bytes;
  Hash256 id{};
  int busy_answers = 0;
  explicit FakeCoordinator(const package::Package& p) : bytes(p.Encode()), id(p.Id()) {}
  proto::PackageChunk Serve(const proto::PackageGet& g) {
    proto::PackageChunk c;
    c.package_id = g.package_id;
    c.offset = g.offset;
    c.total_size = bytes.size();
    if (busy_answers > 0) {
      --busy_answers;
      c.code = static_cast<std::uint16_t>(StatusCode::kUnavailable);
      c.retry_ms = 100;
      return c;
    }
    c.bytes = bytes.substr(g.offset, proto::kMaxPackageChunkBytes);
    return c;
  }
};

struct Setup {
  TempDir dir{"sc-pkgcache"};
  FakeClock clock;
  PackageCacheConfig config;
  Setup() {
    config.dir = dir.path() + "/packages";
    config.pin_file = dir.path() + "/publishers.pinned";
  }
  std::unique_ptr<PackageCache> Open() {
    auto c = PackageCache::Open(config);
    REQUIRE(c.ok());
    return std::move(*c);
  }
  // Runs the fetch until the package is ready or refused, or `max_chunks` were served.
  void Pump(PackageCache& cache, FakeCoordinator& fc, int max_chunks = 1000) {
    for (int i = 0; i < max_chunks; ++i) {
      auto reqs = cache.DueRequests(clock.Now());
      if (reqs.empty()) {
        if (cache.fetching() == 0) return;
        clock.Advance(std::chrono::milliseconds(100));
        continue;
      }
      for (const auto& r : reqs) cache.OnChunk(fc.Serve(r), clock.Now());
    }
  }
};

}  // namespace

TEST_CASE("a package signed by a pinned publisher is fetched in chunks, verified and extracted") {
  Setup s;
  auto cache = s.Open();
  const auto key = Key(1);
  cache->OnPublishers({KeyBytes(key)});  // first contact: pinned
  CHECK(fs::exists(s.config.pin_file));
  auto pkg = MakePackage(2'500'000);  // three chunks
  pkg.Sign(key);
  FakeCoordinator fc(pkg);
  fc.busy_answers = 2;  // the coordinator is busy twice: asked again after retry_ms
  CHECK(cache->Want(fc.id, s.clock.Now()) == PackageCache::State::kFetching);
  s.Pump(*cache, fc);
  REQUIRE(cache->Want(fc.id, s.clock.Now()) == PackageCache::State::kReady);
  CHECK(cache->stats().retries >= 2);
  auto ref = cache->Ready(fc.id);
  REQUIRE(ref != nullptr);
  CHECK(ref->manifest.name == "wrap");
  CHECK(fs::file_size(ref->dir + "/data.bin") == 2'500'000);
  CHECK((fs::status(ref->dir + "/run.sh").permissions() & fs::perms::owner_exec) !=
        fs::perms::none);

  // A restart finds it in the cache: no fetch.
  cache.reset();
  auto again = s.Open();
  again->OnPublishers({KeyBytes(key)});
  CHECK(again->Want(fc.id, s.clock.Now()) == PackageCache::State::kReady);
  CHECK(again->DueRequests(s.clock.Now()).empty());
}

TEST_CASE("a fetch cut by a worker restart continues from the bytes already held") {
  Setup s;
  const auto key = Key(2);
  auto pkg = MakePackage(3'500'000);
  pkg.Sign(key);
  FakeCoordinator fc(pkg);
  {
    auto cache = s.Open();
    cache->OnPublishers({KeyBytes(key)});
    cache->Want(fc.id, s.clock.Now());
    s.Pump(*cache, fc, /*max_chunks=*/2);  // killed after two of four chunks
    CHECK(cache->Want(fc.id, s.clock.Now()) == PackageCache::State::kFetching);
  }
  auto cache = s.Open();
  cache->OnPublishers({KeyBytes(key)});
  cache->Want(fc.id, s.clock.Now());
  auto first = cache->DueRequests(s.clock.Now());
  REQUIRE(first.size() == 1);
  CHECK(first[0].offset == 2 * proto::kMaxPackageChunkBytes);
  cache->OnChunk(fc.Serve(first[0]), s.clock.Now());
  s.Pump(*cache, fc);
  CHECK(cache->Want(fc.id, s.clock.Now()) == PackageCache::State::kReady);
  CHECK(cache->stats().fetch_bytes == fc.bytes.size() - 2 * proto::kMaxPackageChunkBytes);
}

TEST_CASE("a package failing a check here is refused with its reason and never extracted") {
  Setup s;
  const auto pinned = Key(3), stranger = Key(4);
  auto expect_refused = [&](PackageCache& cache, const package::Package& pkg,
                            const std::string& reason) {
    FakeCoordinator fc(pkg);
    cache.Want(fc.id, s.clock.Now());
    s.Pump(cache, fc);
    CAPTURE(reason);
    REQUIRE(cache.Want(fc.id, s.clock.Now()) == PackageCache::State::kRefused);
    const auto why = cache.Refusal(fc.id);
    REQUIRE(why.has_value());
    CAPTURE(*why);
    CHECK(why->find(reason) != std::string::npos);
    CHECK(cache.Ready(fc.id) == nullptr);
    CHECK_FALSE(fs::exists(s.config.dir + "/extracted/" + ToHex(fc.id)));
  };
  auto cache = s.Open();
  cache->OnPublishers({KeyBytes(pinned)});
  expect_refused(*cache, MakePackage(100), "unsigned");
  auto by_stranger = MakePackage(101);
  by_stranger.Sign(stranger);
  expect_refused(*cache, by_stranger, "unknown signer");
  auto needs_missing = MakePackage(102, {"/usr/bin/no-such-program-here"});
  needs_missing.Sign(pinned);
  expect_refused(*cache, needs_missing, "required program missing");

  // A key the coordinator announces later is not pinned: refused until the owner trusts it.
  cache->OnPublishers({KeyBytes(pinned), KeyBytes(stranger)});
  auto later = MakePackage(103);
  later.Sign(stranger);
  expect_refused(*cache, later, "unknown signer");

  // The owner accepts only native packages.
  Setup owner;
  owner.config.accept_command = false;
  auto picky = owner.Open();
  picky->OnPublishers({KeyBytes(pinned)});
  auto cmd = MakePackage(104);
  cmd.Sign(pinned);
  FakeCoordinator fc(cmd);
  picky->Want(fc.id, owner.clock.Now());
  owner.Pump(*picky, fc);
  REQUIRE(picky->Refusal(fc.id).has_value());
  CHECK(picky->Refusal(fc.id)->find("kind not accepted") != std::string::npos);

  // --trust adds a key: the stranger's package runs.
  Setup trusting;
  trusting.config.trust = {stranger.public_key.Hex()};
  trusting.config.trust_only = true;
  auto t = trusting.Open();
  t->OnPublishers({KeyBytes(pinned)});
  FakeCoordinator fs2(later);
  t->Want(fs2.id, trusting.clock.Now());
  trusting.Pump(*t, fs2);
  CHECK(t->Want(fs2.id, trusting.clock.Now()) == PackageCache::State::kReady);
}

TEST_CASE("a relative cache directory gives the executor absolute paths") {
  Setup s;
  const fs::path before = fs::current_path();
  fs::current_path(s.dir.path());
  s.config.dir = "state/packages";  // as `--state-dir state` makes it
  auto opened = PackageCache::Open(s.config);
  fs::current_path(before);
  REQUIRE(opened.ok());
  auto& cache = *opened;
  CHECK(fs::path(cache->units_dir()).is_absolute());
  CHECK(fs::equivalent(cache->units_dir(), s.dir.path() + "/state/packages/units"));
  const auto key = Key(1);
  cache->OnPublishers({KeyBytes(key)});
  auto pkg = MakePackage(1000);
  pkg.Sign(key);
  FakeCoordinator fc(pkg);
  REQUIRE(cache->Want(fc.id, s.clock.Now()) == PackageCache::State::kFetching);
  s.Pump(*cache, fc);
  REQUIRE(cache->Want(fc.id, s.clock.Now()) == PackageCache::State::kReady);
  auto ref = cache->Ready(fc.id);
  REQUIRE(ref != nullptr);
  CHECK(fs::path(ref->dir).is_absolute());
}
