// The .scpkg format: round trips, signatures and trust, and refusal of tampered, unsigned,
// wrongly signed, traversing and oversized packages without crashing (docs/packages.md).
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "sparecycles/package/package.hpp"
#include "temp_dir.hpp"

using namespace sparecycles;
using namespace sparecycles::package;
namespace fs = std::filesystem;

namespace {

SecretKey TestKey(std::uint8_t tag) {
  std::array<std::uint8_t, 32> seed{};
  seed.fill(tag);
  return KeyFromSeed(seed);
}

Manifest NativeManifest() {
  Manifest m;
  m.name = "integrate";
  m.version = "1.0.0";
  m.summary = "adaptive quadrature";
  m.kind = Kind::kNative;
  m.arch = std::string(HostArch());
  m.entry = "lib/libintegrate.so";
  m.abi_version = 1;
  m.files = {{"lib/libintegrate.so", 0, {}, true}, {"README", 0, {}, false}};
  return m;
}

Manifest CommandManifest() {
  Manifest m;
  m.name = "sha-sweep";
  m.version = "2";
  m.kind = Kind::kCommand;
  m.arch = "any";
  m.entry = "/usr/bin/sha256sum";
  m.resources = {64ull << 20, 2, false};
  CommandSpec& c = m.command;
  c.required_programs = {"/usr/bin/sha256sum"};
  c.args = {"--tag", "{pkg}/data/seed-{seed}.txt", "{{literal}}"};
  c.split.mode = SplitMode::kSweep;
  SweepParam seed;
  seed.name = "seed";
  seed.from = 1;
  seed.to = 100;
  SweepParam mode;
  mode.name = "mode";
  mode.is_range = false;
  mode.values = {"fast", "slow"};
  c.split.sweep = {seed, mode};
  c.outputs = {"out.txt"};
  c.stdout_file = "out.txt";
  c.canonicalizer.drop_lines = {"# elapsed *"};
  c.canonicalizer.round_digits = 6;
  m.files = {{"data/seed-1.txt", 0, {}, false}};
  return m;
}

Package MakeNative() {
  auto p = Package::Create(NativeManifest(), {std::string("\x7f"
                                                          "ELF fake library bytes",
                                                          23),
                                              "read me\n"});
  REQUIRE_MESSAGE(p.ok(), p.status().ToString());
  return std::move(p).value();
}

// Where each part of an encoded package starts (docs/packages.md, "Container").
struct Layout {
  std::size_t manifest_begin, manifest_end, signature_begin, files_begin;
};
Layout LayoutOf(const Package& p) {
  Layout l;
  l.manifest_begin = 8 + 4 + 4;
  l.manifest_end = l.manifest_begin + p.manifest_bytes().size();
  l.signature_begin = l.manifest_end + 1;
  l.files_begin = l.signature_begin + (p.signature() ? 96 : 0);
  return l;
}

VerifyOptions Trusting(const TrustSet& t) {
  VerifyOptions o;
  o.trust = &t;
  return o;
}

// Assembles package bytes around arbitrary manifest bytes (what an attacker could send).
std::string RawPackage(std::string_view manifest, std::string_view tail = {}) {
  std::string out(kMagic, sizeof(kMagic));
  const std::uint32_t v = kFormatVersion, n = static_cast<std::uint32_t>(manifest.size());
  out.append(reinterpret_cast<const char*>(&v), 4);
  out.append(reinterpret_cast<const char*>(&n), 4);
  out.append(manifest);
  out.push_back('\0');  // unsigned
  out.append(tail);
  return out;
}

using sparecycles::testing::TempDir;

void WriteText(const fs::path& p, std::string_view text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << text;
}

}  // namespace

TEST_CASE("a native package survives encode and decode byte for byte") {
  Package p = MakeNative();
  CHECK(p.manifest().files[0].path == "README");  // sorted by name
  CHECK(p.manifest().files[1].size == 23);
  CHECK(p.manifest().files[1].blake2b == Blake2b256(p.file_data(1)));
  const std::string bytes = p.Encode();
  auto q = Package::Decode(bytes);
  REQUIRE_MESSAGE(q.ok(), q.status().ToString());
  CHECK(q->manifest() == p.manifest());
  CHECK(q->Encode() == bytes);
  CHECK(q->Id() == Blake2b256(bytes));
  CHECK(q->FindFile("lib/libintegrate.so") == std::optional<std::size_t>(1));
  CHECK_FALSE(q->FindFile("lib").has_value());
}

TEST_CASE("a command package with a sweep, outputs and a canonicalizer round-trips") {
  auto p = Package::Create(CommandManifest(), {"seed one\n"});
  REQUIRE_MESSAGE(p.ok(), p.status().ToString());
  auto q = Package::Decode(p->Encode());
  REQUIRE_MESSAGE(q.ok(), q.status().ToString());
  CHECK(q->manifest() == p->manifest());
  const auto& sweep = q->manifest().command.split.sweep;
  REQUIRE(sweep.size() == 2);
  CHECK(sweep[0].Count() == 100);
  CHECK(sweep[0].Value(99) == "100");
  CHECK(sweep[1].Value(1) == "slow");
}

TEST_CASE("a package signed by a trusted key verifies, and signing changes its id") {
  Package p = MakeNative();
  const Hash256 unsigned_id = p.Id();
  const SecretKey key = TestKey(1);
  p.Sign(key);
  CHECK(p.Id() != unsigned_id);
  TrustSet trust;
  trust.Add(key.public_key);
  auto q = Package::Decode(p.Encode());
  REQUIRE(q.ok());
  REQUIRE(q->signature().has_value());
  CHECK(q->signature()->signer == key.public_key);
  Verdict v = q->Verify(Trusting(trust));
  CHECK_MESSAGE(v.ok(), v.ToString());
  CHECK(q->Id() == p.Id());
}

TEST_CASE("a flipped byte in a file is refused as a hash mismatch") {
  Package p = MakeNative();
  const SecretKey key = TestKey(1);
  p.Sign(key);
  TrustSet trust;
  trust.Add(key.public_key);
  std::string bytes = p.Encode();
  const Layout l = LayoutOf(p);
  for (std::size_t at : {l.files_begin, bytes.size() - 1, l.files_begin + 9}) {
    std::string t = bytes;
    t[at] = static_cast<char>(t[at] ^ 0x01);
    auto q = Package::Decode(t);
    REQUIRE(q.ok());  // the structure is intact; only the content changed
    Verdict v = q->Verify(Trusting(trust));
    CHECK(v.refusal == Refusal::kHashMismatch);
    CHECK(v.ToString().find("hash mismatch") == 0);
  }
}

TEST_CASE("every flipped byte of a signed manifest is refused, never accepted") {
  Package p = MakeNative();
  const SecretKey key = TestKey(1);
  p.Sign(key);
  TrustSet trust;
  trust.Add(key.public_key);
  const std::string bytes = p.Encode();
  const Layout l = LayoutOf(p);
  int bad_signature = 0, malformed = 0;
  for (std::size_t at = l.manifest_begin; at < l.manifest_end; ++at) {
    std::string t = bytes;
    t[at] = static_cast<char>(t[at] ^ 0x20);
    auto q = Package::Decode(t);
    if (!q.ok()) {
      ++malformed;
      continue;
    }
    Verdict v = q->Verify(Trusting(trust));
    REQUIRE_FALSE_MESSAGE(v.ok(), "byte ", at, " flipped and still accepted");
    bad_signature += v.refusal == Refusal::kBadSignature;
  }
  CHECK(bad_signature > 0);  // e.g. the name, the summary, a file hash
  CHECK(malformed > 0);      // e.g. a length or a count
}

TEST_CASE("a flipped byte in the signature or the signer's key is a bad signature") {
  Package p = MakeNative();
  const SecretKey key = TestKey(1);
  p.Sign(key);
  TrustSet trust;
  trust.Add(key.public_key);
  const std::string bytes = p.Encode();
  const Layout l = LayoutOf(p);
  for (std::size_t at : {l.signature_begin + 40, l.signature_begin + 32, l.signature_begin + 95,
                         l.signature_begin + 3}) {
    std::string t = bytes;
    t[at] = static_cast<char>(t[at] ^ 0x80);
    auto q = Package::Decode(t);
    REQUIRE(q.ok());
    CHECK(q->Verify(Trusting(trust)).refusal == Refusal::kBadSignature);
  }
}

TEST_CASE("an unsigned package is refused where a signature is required and runs locally") {
  Package p = MakeNative();
  TrustSet trust;
  trust.Add(TestKey(1).public_key);
  Verdict v = p.Verify(Trusting(trust));
  CHECK(v.refusal == Refusal::kUnsigned);
  CHECK(v.ToString().find("unsigned") == 0);
  VerifyOptions local;
  local.require_signature = false;
  CHECK(p.Verify(local).ok());
  // Stripping the signature off a signed package gives the same refusal.
  p.Sign(TestKey(1));
  p.Unsign();
  CHECK(Package::Decode(p.Encode())->Verify(Trusting(trust)).refusal == Refusal::kUnsigned);
}

TEST_CASE("a package signed by a key nobody trusts is refused as an unknown signer") {
  Package p = MakeNative();
  p.Sign(TestKey(2));
  TrustSet trust;
  trust.Add(TestKey(1).public_key);
  Verdict v = p.Verify(Trusting(trust));
  CHECK(v.refusal == Refusal::kUnknownSigner);
  CHECK(v.detail.find(TestKey(2).public_key.Hex()) != std::string::npos);
  CHECK(p.Verify(VerifyOptions{}).refusal == Refusal::kUnknownSigner);  // no trust set at all
  // A re-signature by an attacker over a tampered manifest is still an unknown signer.
  VerifyOptions local;
  local.require_signature = false;
  CHECK(p.Verify(local).ok());
}

TEST_CASE("a package for another architecture, or of a kind not accepted, is refused") {
  Manifest m = NativeManifest();
  m.arch = std::string(HostArch()) == "x86_64" ? "aarch64" : "x86_64";
  auto p = Package::Create(m, {"lib", "readme"});
  REQUIRE(p.ok());
  VerifyOptions local;
  local.require_signature = false;
  CHECK(p->Verify(local).refusal == Refusal::kUnsupportedPlatform);
  local.check_platform = false;
  CHECK(p->Verify(local).ok());
  local.accept_native = false;
  CHECK(p->Verify(local).refusal == Refusal::kKindNotAccepted);
}

TEST_CASE("file names that traverse, are absolute or malformed are refused") {
  for (const char* bad : {"../x", "/etc/passwd", "a/../b", "a//b", "./a", "a/.", "a\\..\\b", "",
                          "a/", "x\ny", "lib/\x01"}) {
    CAPTURE(bad);
    CHECK_FALSE(ValidatePackagePath(bad).ok());
    Manifest m = NativeManifest();
    m.files.push_back({bad, 0, {}, false});
    CHECK_FALSE(Package::Create(m, {"a", "b", "c"}).ok());
    // Forged bytes carrying the name are refused by the decoder, not only by the builder.
    Manifest forged = NativeManifest();
    forged.files = {{bad, 0, {}, false}, {"lib/libintegrate.so", 0, {}, false}};
    CHECK_FALSE(Package::Decode(RawPackage(EncodeManifest(forged))).ok());
  }
  CHECK_FALSE(ValidatePackagePath(std::string(kMaxPathLength + 1, 'a')).ok());
  std::string deep;
  for (std::size_t i = 0; i <= kMaxPathDepth; ++i) deep += "d/";
  CHECK_FALSE(ValidatePackagePath(deep + "f").ok());
  CHECK(ValidatePackagePath("lib/libx.so").ok());
  CHECK(ValidatePackagePath("..hidden/x").ok());  // a name starting with dots is only a name
}

TEST_CASE("duplicate, unsorted and file-versus-directory names are refused in forged manifests") {
  Manifest m = NativeManifest();
  m.files = {{"lib/libintegrate.so", 0, {}, false}, {"lib/libintegrate.so", 0, {}, false}};
  CHECK_FALSE(Package::Decode(RawPackage(EncodeManifest(m))).ok());
  m.files = {{"lib/libintegrate.so", 0, {}, false}, {"README", 0, {}, false}};
  CHECK_FALSE(Package::Decode(RawPackage(EncodeManifest(m))).ok());
  m.files = {{"lib", 0, {}, false}, {"lib/libintegrate.so", 0, {}, false}};
  CHECK_FALSE(Package::Decode(RawPackage(EncodeManifest(m))).ok());
  m.files = {{"lib/libintegrate.so", 0, {}, false}};
  CHECK(Package::Decode(RawPackage(EncodeManifest(m))).ok());  // the control case is accepted
}

TEST_CASE("oversized counts and lengths are refused before anything is allocated") {
  // A manifest that claims 2^32-1 files in a few bytes.
  Manifest m = NativeManifest();
  m.files.clear();
  std::string manifest = EncodeManifest(m);
  // The file count sits right after the fixed fields; find it by encoding with one file more.
  const std::size_t count_at = manifest.size() - 4 /*abi*/ - 4 /*count*/;
  std::uint32_t huge = 0xffffffffu;
  std::memcpy(&manifest[count_at], &huge, 4);
  auto d = Package::Decode(RawPackage(manifest));
  REQUIRE_FALSE(d.ok());
  CHECK(d.status().message().find("exceeds the limit") != std::string::npos);
  std::uint32_t over = static_cast<std::uint32_t>(kMaxFiles + 1);
  std::memcpy(&manifest[count_at], &over, 4);
  CHECK_FALSE(Package::Decode(RawPackage(manifest)).ok());

  // A name that claims 4 GiB.
  std::string m2 = EncodeManifest(NativeManifest());
  std::memcpy(&m2[4], &huge, 4);  // the name's length
  CHECK_FALSE(Package::Decode(RawPackage(m2)).ok());

  // A manifest length over 1 MiB, and a package over the size limit.
  std::string raw = RawPackage(EncodeManifest(NativeManifest()));
  std::uint32_t big = static_cast<std::uint32_t>(kMaxManifestBytes + 1);
  std::memcpy(&raw[12], &big, 4);
  CHECK_FALSE(Package::Decode(raw).ok());
  const std::string good = MakeNative().Encode();
  DecodeOptions small;
  small.max_package_bytes = good.size() - 1;
  auto too_big = Package::Decode(good, small);
  REQUIRE_FALSE(too_big.ok());
  CHECK(too_big.status().code() == StatusCode::kResourceExhausted);

  // A file that claims more bytes than remain.
  Manifest m3 = NativeManifest();
  m3.files = {{"lib/libintegrate.so", 1ull << 40, {}, false}};
  CHECK_FALSE(Package::Decode(RawPackage(EncodeManifest(m3), "short")).ok());

  // A sweep whose product exceeds the unit limit is refused by validation.
  Manifest c = CommandManifest();
  c.command.split.sweep[0].to = 1'000'000'000;
  CHECK_FALSE(ValidateManifest(c).ok());
  c.command.split.sweep[0].to = std::numeric_limits<std::int64_t>::max();
  c.command.split.sweep[0].from = std::numeric_limits<std::int64_t>::min();
  CHECK_FALSE(ValidateManifest(c).ok());
}

TEST_CASE("every truncation and random corruption of a package is refused without a crash") {
  Package p = MakeNative();
  p.Sign(TestKey(1));
  TrustSet trust;
  trust.Add(TestKey(1).public_key);
  const std::string bytes = p.Encode();
  for (std::size_t n = 0; n < bytes.size(); ++n)
    CHECK_FALSE(Package::Decode(bytes.substr(0, n)).ok());
  CHECK_FALSE(Package::Decode(bytes + "x").ok());
  std::mt19937 rng(12345);
  int accepted = 0;
  for (int round = 0; round < 3000; ++round) {
    std::string t = bytes;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int i = 0; i < flips; ++i) t[rng() % t.size()] = static_cast<char>(rng());
    if (t == bytes) continue;
    auto q = Package::Decode(t);
    if (q.ok() && q->Verify(Trusting(trust)).ok()) ++accepted;
  }
  CHECK(accepted == 0);
}

TEST_CASE("the manifest text format fills in defaults and names the line of an error") {
  auto t = ParseManifestText(
      "# a sweep over sha256sum\n"
      "name = sweep\nversion = 1.0\nkind = command\nentry = /usr/bin/sha256sum\n"
      "require = /usr/bin/sha256sum\narg = {pkg}/in-{n}.txt\nsweep = n 1..10:3\nstdout = out.txt\n"
      "memory = 64M\nexpected-time = 2s\nround-digits = 4\ndrop-lines = *time*\n");
  REQUIRE_MESSAGE(t.ok(), t.status().ToString());
  const Manifest& m = t->manifest;
  CHECK(m.arch == "any");
  CHECK(m.command.split.mode == SplitMode::kSweep);
  CHECK(m.command.split.sweep[0].Count() == 4);  // 1, 4, 7, 10
  CHECK(m.command.outputs == std::vector<std::string>{"out.txt"});
  CHECK(m.resources.memory_bytes == 64ull << 20);
  CHECK(m.resources.expected_seconds == 2);
  CHECK(ValidateManifest(m).ok());

  auto bad = ParseManifestText("name = x\nversion = 1\nkind = command\ncolour = blue\n");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().message().find("line 4") != std::string::npos);
  CHECK_FALSE(ParseManifestText("name = x\nversion = 1\n").ok());  // no kind

  // A placeholder that nothing defines is refused by validation.
  Manifest u = m;
  u.command.args = {"{nope}"};
  CHECK_FALSE(ValidateManifest(u).ok());
  u.command.args = {"{input}"};  // only with a line or file split
  CHECK_FALSE(ValidateManifest(u).ok());
  u.command.args = {"{unclosed"};
  CHECK_FALSE(ValidateManifest(u).ok());
  u.command.args = {"{n}"};
  CHECK(ValidateManifest(u).ok());
  u.entry = "/usr/bin/other";  // absolute, but not required
  CHECK_FALSE(ValidateManifest(u).ok());
}

TEST_CASE("extraction writes every file inside a fresh directory and refuses an existing one") {
  TempDir tmp;
  Package p = MakeNative();
  const fs::path out = fs::path(tmp.path()) / "pkg";
  REQUIRE_MESSAGE(p.Extract(out.string()).ok(), "extract");
  std::ifstream in(out / "README");
  std::string text((std::istreambuf_iterator<char>(in)), {});
  CHECK(text == "read me\n");
  struct stat st {};
  REQUIRE(::stat((out / "lib/libintegrate.so").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);
  REQUIRE(::stat((out / "README").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  CHECK_FALSE(p.Extract(out.string()).ok());
}

TEST_CASE("building from a directory includes its files and refuses a link that escapes it") {
  TempDir tmp;
  const fs::path dir = fs::path(tmp.path()) / "src";
  WriteText(dir / "package.manifest",
            "name = cat\nversion = 1\nkind = command\nentry = bin/run.sh\nsplit = lines 2\narg = "
            "{input}\n"
            "stdout = out.txt\n");
  WriteText(dir / "bin/run.sh", "#!/bin/sh\ncat \"$1\"\n");
  fs::permissions(dir / "bin/run.sh", fs::perms::owner_all);
  WriteText(dir / "data/a.txt", "alpha\n");
  fs::create_symlink("a.txt", dir / "data/inside.txt");
  auto p = BuildFromPath(dir.string());
  REQUIRE_MESSAGE(p.ok(), p.status().ToString());
  const auto& files = p->manifest().files;
  REQUIRE(files.size() == 3);
  CHECK(files[0].path == "bin/run.sh");
  CHECK(files[0].executable);
  CHECK(files[2].path == "data/inside.txt");
  CHECK(p->file_data(2) == "alpha\n");
  CHECK(p->manifest().command.split.lines_per_unit == 2);

  WriteText(fs::path(tmp.path()) / "secret.txt", "not for the package\n");
  fs::create_symlink(fs::path(tmp.path()) / "secret.txt", dir / "data/escape.txt");
  auto escaped = BuildFromPath(dir.string());
  REQUIRE_FALSE(escaped.ok());
  CHECK(escaped.status().message().find("escapes") != std::string::npos);

  // The manifest path form, with an explicit file list that skips the escaping link.
  WriteText(
      dir / "package.manifest",
      "name = cat\nversion = 1\nkind = command\nentry = bin/run.sh\nsplit = files\narg = {input}\n"
      "stdout = out.txt\nfile = bin/run.sh\nfile = data/a.txt\n");
  auto listed = BuildFromPath((dir / "package.manifest").string());
  REQUIRE_MESSAGE(listed.ok(), listed.status().ToString());
  CHECK(listed->manifest().files.size() == 2);
  WriteText(dir / "package.manifest",
            "name = cat\nversion = 1\nkind = command\nentry = bin/run.sh\nstdout = o\nfile = "
            "../secret.txt\n");
  CHECK_FALSE(BuildFromPath(dir.string()).ok());
  // Over the size limit.
  CHECK(BuildFromPath((dir / "package.manifest").string(), 4).status().code() != StatusCode::kOk);
}
