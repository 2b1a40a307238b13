// The content-addressed package store: packages survive a reopen (a restart), uploads resume
// from the bytes held, wrong offsets, oversized and tampered transfers are refused and leave
// nothing behind, an untrusted package is never stored, and a capped cache evicts the least
// recently used package first.
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "sparecycles/package/store.hpp"
#include "temp_dir.hpp"

using namespace sparecycles;
using namespace sparecycles::package;
namespace fs = std::filesystem;

namespace {

using sparecycles::testing::TempDir;

SecretKey Key() {
  std::array<std::uint8_t, 32> seed{};
  seed.fill(9);
  return KeyFromSeed(seed);
}

// A signed command package whose one data file is `size` bytes of a pattern.
std::string MakePackage(const std::string& name, std::size_t size) {
  Manifest m;
  m.name = name;
  m.version = "1";
  m.kind = Kind::kCommand;
  m.arch = "any";
  m.entry = "/bin/sh";
  m.command.required_programs = {"/bin/sh"};
  m.command.outputs = {"out"};
  m.files = {{"data.bin", 0, {}, false}};
  std::string data(size, '\0');
  for (std::size_t i = 0; i < size; ++i)
    data[i] = static_cast<char>((i * 131 + name.size()) & 0xff);
  auto p = Package::Create(m, {data});
  REQUIRE(p.ok());
  p->Sign(Key());
  return p->Encode();
}

struct Trust {
  TrustSet set;
  VerifyOptions options;
  Trust() {
    set.Add(Key().public_key);
    options.trust = &set;
  }
};

}  // namespace

TEST_CASE("a stored package survives reopening the store and is served in chunks") {
  TempDir t;
  Trust trust;
  const std::string bytes = MakePackage("alpha", 3 * kMaxChunkBytes + 123);
  Hash256 id{};
  {
    auto store = PackageStore::Open(fs::path(t.path()).string());
    REQUIRE(store.ok());
    auto put = (*store)->Put(bytes, trust.options);
    REQUIRE_MESSAGE(put.ok(), put.status().ToString());
    id = *put;
    CHECK(id == Blake2b256(bytes));
  }
  std::size_t dropped = 99;
  auto store = PackageStore::Open(fs::path(t.path()).string(), {}, &dropped);
  REQUIRE(store.ok());
  CHECK(dropped == 0);
  CHECK((*store)->Has(id));
  REQUIRE((*store)->List().size() == 1);
  CHECK((*store)->List()[0].size == bytes.size());
  auto pkg = (*store)->Load(id);
  REQUIRE(pkg.ok());
  CHECK(pkg->manifest().name == "alpha");
  std::string served;
  while (served.size() < bytes.size()) {
    auto chunk = (*store)->ReadChunk(id, served.size(), 1ull << 30);
    REQUIRE(chunk.ok());
    REQUIRE(chunk->size() <= kMaxChunkBytes);
    REQUIRE_FALSE(chunk->empty());
    served += *chunk;
  }
  CHECK(served == bytes);
  CHECK((*store)->ReadChunk(id, bytes.size(), 10)->empty());
  CHECK_FALSE((*store)->ReadChunk(id, bytes.size() + 1, 10).ok());
}

TEST_CASE("an upload interrupted by a restart resumes from the bytes already held") {
  TempDir t;
  Trust trust;
  const std::string bytes = MakePackage("beta", 2 * kMaxChunkBytes + 5);
  const Hash256 id = Blake2b256(bytes);
  {
    auto store = PackageStore::Open(fs::path(t.path()).string());
    REQUIRE(store.ok());
    REQUIRE(*(*store)->Begin(id, bytes.size()) == 0);
    REQUIRE((*store)->Append(id, 0, std::string_view(bytes).substr(0, kMaxChunkBytes)).ok());
  }  // the "process" ends mid-upload
  auto store = PackageStore::Open(fs::path(t.path()).string());
  REQUIRE(store.ok());
  CHECK_FALSE((*store)->Has(id));
  auto resume = (*store)->Begin(id, bytes.size());
  REQUIRE(resume.ok());
  CHECK(*resume == kMaxChunkBytes);
  // A chunk at any other offset is refused, and so is a changed total size.
  CHECK((*store)->Append(id, 0, "x").status().code() == StatusCode::kFailedPrecondition);
  CHECK_FALSE((*store)->Begin(id, bytes.size() + 1).ok());
  CHECK_FALSE((*store)->Finish(id, trust.options).ok());  // incomplete
  for (std::uint64_t at = *resume; at < bytes.size(); at += kMaxChunkBytes)
    REQUIRE((*store)->Append(id, at, std::string_view(bytes).substr(at, kMaxChunkBytes)).ok());
  CHECK_FALSE((*store)->Append(id, bytes.size(), "extra").ok());  // past the announced size
  auto done = (*store)->Finish(id, trust.options);
  REQUIRE_MESSAGE(done.ok(), done.status().ToString());
  CHECK((*store)->Has(id));
  CHECK(*(*store)->Begin(id, bytes.size()) == bytes.size());  // already held: nothing to send
  CHECK(fs::is_empty(fs::path(t.path()) / "partial"));
}

TEST_CASE(
    "tampered, untrusted, oversized and oversupplied transfers are refused and leave nothing") {
  TempDir t;
  Trust trust;
  StoreOptions o;
  o.max_package_bytes = 1 << 20;
  o.max_partial = 2;
  auto store = PackageStore::Open(fs::path(t.path()).string(), o);
  REQUIRE(store.ok());
  const std::string bytes = MakePackage("gamma", 1000);

  // Bytes that do not hash to the announced id.
  std::string tampered = bytes;
  tampered[tampered.size() - 1] ^= 1;
  const Hash256 id = Blake2b256(bytes);
  REQUIRE((*store)->Begin(id, tampered.size()).ok());
  REQUIRE((*store)->Append(id, 0, tampered).ok());
  auto bad = (*store)->Finish(id, trust.options);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().message().find("hash mismatch") != std::string::npos);
  CHECK_FALSE((*store)->Has(id));

  // Signed by a key nobody trusts: refused with the reason, never stored.
  TrustSet other;
  VerifyOptions strangers;
  strangers.trust = &other;
  auto untrusted = (*store)->Put(bytes, strangers);
  REQUIRE_FALSE(untrusted.ok());
  CHECK(untrusted.status().message().find("unknown signer") == 0);
  CHECK_FALSE((*store)->Has(id));

  // Over the size limit, and more transfers at once than allowed.
  CHECK((*store)->Begin(Hash256{}, (1 << 20) + 1).status().code() ==
        StatusCode::kResourceExhausted);
  Hash256 a{}, b{}, c{};
  a[0] = 1, b[0] = 2, c[0] = 3;
  REQUIRE((*store)->Begin(a, 10).ok());
  REQUIRE((*store)->Begin(b, 10).ok());
  CHECK((*store)->Begin(c, 10).status().code() == StatusCode::kUnavailable);
  (*store)->Abort(a);
  CHECK((*store)->Begin(c, 10).ok());
  CHECK_FALSE((*store)->Append(c, 0, std::string(kMaxChunkBytes + 1, 'x')).ok());
  CHECK(fs::is_empty(fs::path(t.path()) / "packages"));
}

TEST_CASE("a stored file changed on disk is dropped when the store opens or loads it") {
  TempDir t;
  Trust trust;
  const std::string bytes = MakePackage("delta", 5000);
  Hash256 id{};
  {
    auto store = PackageStore::Open(fs::path(t.path()).string());
    id = *(*store)->Put(bytes, trust.options);
  }
  const fs::path file = fs::path(t.path()) / "packages" / (ToHex(id) + ".scpkg");
  {
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    f.put('!');
  }
  std::ofstream(fs::path(t.path()) / "packages" / "junk.tmp") << "left over";
  std::size_t dropped = 0;
  auto store = PackageStore::Open(fs::path(t.path()).string(), {}, &dropped);
  REQUIRE(store.ok());
  CHECK(dropped == 1);
  CHECK_FALSE((*store)->Has(id));
  CHECK(fs::is_empty(fs::path(t.path()) / "packages"));
  // Without the check on open, Load() catches it.
  REQUIRE((*store)->Put(bytes, trust.options).ok());
  {
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    f.put('!');
  }
  StoreOptions lazy;
  lazy.verify_on_open = false;
  auto again = PackageStore::Open(fs::path(t.path()).string(), lazy);
  REQUIRE((*again)->Has(id));
  auto load = (*again)->Load(id);
  REQUIRE_FALSE(load.ok());
  CHECK(load.status().code() == StatusCode::kDataLoss);
  CHECK_FALSE((*again)->Has(id));
}

TEST_CASE("a capped cache evicts the least recently used package first") {
  TempDir t;
  Trust trust;
  const std::string p1 = MakePackage("one", 40'000), p2 = MakePackage("two", 40'000),
                    p3 = MakePackage("three", 40'000);
  StoreOptions o;
  o.capacity_bytes = p1.size() + p2.size() + 1000;  // room for two
  auto store = PackageStore::Open(fs::path(t.path()).string(), o);
  REQUIRE(store.ok());
  const Hash256 id1 = *(*store)->Put(p1, trust.options);
  const Hash256 id2 = *(*store)->Put(p2, trust.options);
  REQUIRE((*store)->Load(id1).ok());  // one is now used more recently than two
  const Hash256 id3 = *(*store)->Put(p3, trust.options);
  CHECK((*store)->Has(id1));
  CHECK_FALSE((*store)->Has(id2));
  CHECK((*store)->Has(id3));
  REQUIRE((*store)->evicted().size() == 1);
  CHECK((*store)->evicted()[0] == id2);
  CHECK((*store)->TotalBytes() <= o.capacity_bytes);
  CHECK_FALSE(fs::exists(fs::path(t.path()) / "packages" / (ToHex(id2) + ".scpkg")));
  CHECK(ParseId(ToHex(id3)) == std::optional<Hash256>(id3));
  CHECK_FALSE(ParseId("xyz").has_value());
}
