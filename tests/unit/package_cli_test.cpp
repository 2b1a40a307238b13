// The `sparecycles key` and `sparecycles package` commands, run as a user would: a key is made,
// a directory is packed, signed, verified and inspected, and every refusal names its reason.
#include <doctest/doctest.h>
#include <sodium.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "process.hpp"
#include "sparecycles/core/curve_keys.hpp"

using namespace sparecycles::testing;
namespace fs = std::filesystem;

namespace {

struct Run {
  int code;
  std::string out, err;
};

Run Cli(const TempDir& dir, std::vector<std::string> args) {
  static int n = 0;
  args.insert(args.begin(), SPARECYCLES_CLI_BIN);
  const std::string prefix = dir / ("cli" + std::to_string(++n));
  Process p(args, prefix);
  auto code = p.Wait(std::chrono::seconds(60));
  REQUIRE_MESSAGE(code.has_value(), "the CLI did not finish");
  return {*code, p.Stdout(), p.Stderr()};
}

void Write(const std::string& path, std::string_view text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

}  // namespace

TEST_CASE("key new writes a 0600 secret key where XDG_CONFIG_HOME says and prints the public key") {
  TempDir dir;
  ::setenv("XDG_CONFIG_HOME", (dir / "cfg").c_str(), 1);
  Run r = Cli(dir, {"key", "new"});
  REQUIRE_MESSAGE(r.code == 0, r.err);
  const std::string key = dir / "cfg/sparecycles/publisher.key";
  struct stat st {};
  REQUIRE(::stat(key.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  CHECK(r.out.size() == 65);  // 64 hex digits and a newline
  CHECK(ReadAll(key + ".pub").find(r.out.substr(0, 64)) != std::string::npos);
  Run again = Cli(dir, {"key", "new"});
  CHECK(again.code == 2);
  CHECK(again.err.find("already exists") != std::string::npos);
  CHECK(Cli(dir, {"key", "new", "--out", dir / "other.key"}).code == 0);
  CHECK(fs::exists(dir / "other.key.pub"));
  ::unsetenv("XDG_CONFIG_HOME");
}

TEST_CASE("the client key: key new --client, key show, and made on first use by a command") {
  TempDir dir;
  ::setenv("XDG_CONFIG_HOME", (dir / "cfg").c_str(), 1);
  const std::string key = dir / "cfg/sparecycles/client.key";
  // A command that talks to a coordinator makes the key first, and says so once.
  const std::string coordinator_key = sparecycles::curve::Generate().public_key.Z85();
  Run first = Cli(dir, {"jobs", "--coordinator", "tcp://127.0.0.1:1", "--coordinator-key",
                        coordinator_key, "--timeout", "300ms"});
  CHECK(first.code != 0);  // nobody listens there
  CHECK(first.err.find("created your client key") != std::string::npos);
  struct stat st {};
  REQUIRE(::stat(key.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  Run second = Cli(dir, {"jobs", "--coordinator", "tcp://127.0.0.1:1", "--coordinator-key",
                         coordinator_key, "--timeout", "300ms"});
  CHECK(second.err.find("created your client key") == std::string::npos);
  auto pair = sparecycles::curve::LoadKeyPair(key);
  REQUIRE(pair.ok());
  Run shown = Cli(dir, {"key", "show", "--client"});
  REQUIRE_MESSAGE(shown.code == 0, shown.err);
  CHECK(shown.out == pair->public_key.Z85() + "\n");
  // key new --client refuses to replace it unless forced, and prints the new public key.
  Run again = Cli(dir, {"key", "new", "--client"});
  CHECK(again.code == 2);
  CHECK(again.err.find("already exists") != std::string::npos);
  Run forced = Cli(dir, {"key", "new", "--client", "--force"});
  REQUIRE_MESSAGE(forced.code == 0, forced.err);
  CHECK(forced.out != shown.out);
  CHECK(Cli(dir, {"key", "show", "--client"}).out == forced.out);
  // key show without --client: the publisher key, in hex.
  CHECK(Cli(dir, {"key", "show"}).code == 2);  // none yet
  Run made = Cli(dir, {"key", "new"});
  REQUIRE(made.code == 0);
  CHECK(Cli(dir, {"key", "show"}).out == made.out);
  ::unsetenv("XDG_CONFIG_HOME");
}

TEST_CASE("a package is built, signed, verified and inspected, and each refusal names its reason") {
  TempDir dir;
  REQUIRE(Cli(dir, {"key", "new", "--out", dir / "alice.key"}).code == 0);
  REQUIRE(Cli(dir, {"key", "new", "--out", dir / "mallory.key"}).code == 0);
  Write(dir / "src/package.manifest",
        "name = hashes\nversion = 1.0\nkind = command\nentry = /usr/bin/sha256sum\n"
        "require = /usr/bin/sha256sum\nsplit = files\narg = {input}\nstdout = sums.txt\n");
  Write(dir / "src/data/x.txt", "some data\n");
  const std::string pkg = dir / "h.scpkg";
  Run built = Cli(dir, {"package", "build", dir / "src", "-o", pkg});
  REQUIRE_MESSAGE(built.code == 0, built.err);
  CHECK(built.err.find("unsigned") != std::string::npos);

  Run unsigned_verify = Cli(dir, {"package", "verify", pkg, "--trust", dir / "alice.key.pub"});
  CHECK(unsigned_verify.code == 1);
  CHECK(unsigned_verify.err.find("refused: unsigned") != std::string::npos);
  CHECK(Cli(dir, {"package", "verify", pkg, "--local"}).code == 0);

  Run signed_run = Cli(dir, {"package", "sign", pkg, "--key", dir / "alice.key"});
  REQUIRE_MESSAGE(signed_run.code == 0, signed_run.err);
  Run ok = Cli(dir, {"package", "verify", pkg, "--trust", dir / "alice.key.pub"});
  CHECK_MESSAGE(ok.code == 0, ok.err);
  CHECK(ok.out == "ok " + signed_run.out);  // the id printed by sign is the verified id
  Run trust_dir =
      Cli(dir, {"package", "verify", pkg, "--trust", dir.path()});  // holds both .pub files
  CHECK(trust_dir.code == 0);

  Run unknown = Cli(dir, {"package", "verify", pkg, "--trust", dir / "mallory.key.pub"});
  CHECK(unknown.code == 1);
  CHECK(unknown.err.find("refused: unknown signer") != std::string::npos);

  // A flipped byte in the last file.
  std::string bytes = ReadAll(pkg);
  std::string tampered = bytes;
  tampered.back() = static_cast<char>(tampered.back() ^ 1);
  Write(dir / "t1.scpkg", tampered);
  Run mismatch =
      Cli(dir, {"package", "verify", dir / "t1.scpkg", "--trust", dir / "alice.key.pub"});
  CHECK(mismatch.code == 1);
  CHECK(mismatch.err.find("refused: hash mismatch") != std::string::npos);
  // A flipped byte in the signature (which sits 64 bytes before the file data).
  tampered = bytes;
  tampered[bytes.size() - 10 - 20] ^= 0x40;
  Write(dir / "t2.scpkg", tampered);
  Run bad_sig = Cli(dir, {"package", "verify", dir / "t2.scpkg", "--trust", dir / "alice.key.pub"});
  CHECK(bad_sig.code == 1);
  CHECK(bad_sig.err.find("refused: bad signature") != std::string::npos);
  // Not a package at all.
  Write(dir / "t3.scpkg", "hello");
  Run junk = Cli(dir, {"package", "verify", dir / "t3.scpkg", "--local"});
  CHECK(junk.code == 1);
  CHECK(junk.err.find("refused: malformed package") != std::string::npos);
  // Signing a tampered package is refused: a signature must not vouch for broken content.
  CHECK(Cli(dir, {"package", "sign", dir / "t1.scpkg", "--key", dir / "alice.key"}).code == 1);

  Run inspect = Cli(dir, {"package", "inspect", pkg});
  REQUIRE(inspect.code == 0);
  CHECK(inspect.out.find("name:          hashes") != std::string::npos);
  CHECK(inspect.out.find("split:         files") != std::string::npos);
  CHECK(inspect.out.find("data/x.txt") != std::string::npos);
  CHECK(inspect.out.find("signed by:     " + ReadAll(dir / "alice.key.pub").substr(34, 64)) !=
        std::string::npos);

  // Every command explains itself.
  for (const char* cmd : {"build", "sign", "verify", "inspect"}) {
    Run help = Cli(dir, {"package", cmd, "--help"});
    CHECK(help.code == 0);
    CHECK(help.out.find("Usage: sparecycles package") != std::string::npos);
  }
  CHECK(Cli(dir, {"package", "build", dir / "src"}).code == 2);  // no -o
}

TEST_CASE("package test runs a native package's units through the plugin loader and merges them") {
  TempDir dir;
  Write(
      dir / "src/package.manifest",
      "name = sumsq\nversion = 3\nkind = native\nentry = lib/sumsq.so\nsummary = sum of squares\n");
  fs::create_directories(dir / "src/lib");
  fs::copy_file(SC_TEST_PLUGIN, dir / "src/lib/sumsq.so");
  const std::string pkg = dir / "sumsq.scpkg";
  Run built = Cli(dir, {"package", "build", dir / "src", "-o", pkg});
  REQUIRE_MESSAGE(built.code == 0, built.err);
  Run run = Cli(dir, {"package", "test", pkg, "--from", "10", "--to", "20000", "--units", "5"});
  REQUIRE_MESSAGE(run.code == 0, run.err);
  std::uint64_t expected = 0;
  for (std::uint64_t i = 10; i < 20000; ++i) expected += i * i;
  CHECK(run.out == std::to_string(expected) + "\n");
  CHECK(run.err.find("unit 4:") != std::string::npos);
  Run json = Cli(dir, {"package", "test", pkg, "--to", "4", "--json"});
  CHECK(json.out == "{\"sum\":14}\n");
  // A failing unit fails the run with its reason; an unknown parameter is a usage error.
  Run failing = Cli(dir, {"package", "test", pkg, "--to", "100", "--mode", "throw"});
  CHECK(failing.code == 1);
  CHECK(failing.err.find("threw on purpose") != std::string::npos);
  CHECK(Cli(dir, {"package", "test", pkg, "--colour", "red"}).code == 2);
  // A package for another architecture is refused by verify and by test.
  Write(dir / "src/package.manifest",
        std::string("name = sumsq\nversion = 3\nkind = native\nentry = lib/sumsq.so\narch = ") +
            (std::string(SC_HOST_ARCH) == "x86_64" ? "aarch64" : "x86_64") + "\n");
  REQUIRE(Cli(dir, {"package", "build", dir / "src", "-o", dir / "other-arch.scpkg"}).code == 0);
  Run arch = Cli(dir, {"package", "verify", dir / "other-arch.scpkg", "--local"});
  CHECK(arch.code == 1);
  CHECK(arch.err.find("refused: unsupported platform") != std::string::npos);
  CHECK(Cli(dir, {"package", "test", dir / "other-arch.scpkg"}).code == 1);
  // A manifest claiming another ABI version is refused before the library is loaded.
  Write(dir / "src/package.manifest",
        "name = sumsq\nversion = 3\nkind = native\nentry = lib/sumsq.so\nabi = 7\n");
  REQUIRE(Cli(dir, {"package", "build", dir / "src", "-o", dir / "abi7.scpkg"}).code == 0);
  Run abi = Cli(dir, {"package", "test", dir / "abi7.scpkg", "--to", "10"});
  CHECK(abi.code == 2);
  CHECK(abi.err.find("declares task ABI version 7") != std::string::npos);
  // A tampered package is refused before any of its code is loaded.
  std::string bytes = ReadAll(pkg);
  bytes[bytes.size() / 2 + 200] ^= 0x10;
  Write(dir / "bad.scpkg", bytes);
  Run refused = Cli(dir, {"package", "test", dir / "bad.scpkg", "--to", "10"});
  CHECK(refused.code == 1);
  CHECK(refused.err.find("refused: hash mismatch") != std::string::npos);
}

namespace {
std::string Sha256Hex(std::string_view data) {
  unsigned char h[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(h, reinterpret_cast<const unsigned char*>(data.data()), data.size());
  static const char* d = "0123456789abcdef";
  std::string out;
  for (unsigned char c : h) out += {d[c >> 4], d[c & 15]};
  return out;
}
}  // namespace

TEST_CASE(
    "package test runs a command package per input file and writes the outputs as a directory") {
  TempDir dir;
  Write(dir / "src/package.manifest",
        "name = sums\nversion = 1\nkind = command\nentry = /usr/bin/sha256sum\nrequire = "
        "/usr/bin/sha256sum\n"
        "split = files\narg = {input_name}\nstdout = sums.txt\nexpected-time = 1s\n");
  fs::create_directories(dir / "inputs");
  std::vector<std::string> contents;
  for (int i = 0; i < 100; ++i) {
    contents.push_back("ligand " + std::to_string(i * i) + "\n");
    char name[32];
    std::snprintf(name, sizeof(name), "in-%03d.txt", i);
    Write(dir / ("inputs/" + std::string(name)), contents.back());
  }
  const std::string pkg = dir / "sums.scpkg";
  REQUIRE(Cli(dir, {"package", "build", dir / "src", "-o", pkg}).code == 0);
  Run run = Cli(dir, {"package", "test", pkg, "--input", dir / "inputs", "-o", dir / "out"});
  REQUIRE_MESSAGE(run.code == 0, run.err);
  for (int i = 0; i < 100; ++i) {
    char unit[32], name[32];
    std::snprintf(unit, sizeof(unit), "out/unit-%06d/sums.txt", i);
    std::snprintf(name, sizeof(name), "in-%03d.txt", i);
    CHECK(ReadAll(dir / unit) == Sha256Hex(contents[i]) + "  " + name + "\n");
  }
  CHECK(run.err.find("100 units, 0 failed") != std::string::npos);
  CHECK(Cli(dir, {"package", "test", pkg, "--input", dir / "inputs", "-o", dir / "out"}).code ==
        2);                                                                 // exists
  CHECK(Cli(dir, {"package", "test", pkg, "-o", dir / "out2"}).code == 2);  // no --input

  // A sweep needs no input; a failing program fails the run with its stderr.
  Write(dir / "sweep/package.manifest",
        "name = sweep\nversion = 1\nkind = command\nentry = /bin/sh\nrequire = /bin/sh\narg = -c\n"
        "arg = test {n} -ne 3 || {{ echo unit {n} is unlucky >&2; exit 1; }}; echo {n}\nsweep = n "
        "1..4\nstdout = n.txt\n");
  Run sweep_built = Cli(dir, {"package", "build", dir / "sweep", "-o", dir / "sweep.scpkg"});
  REQUIRE_MESSAGE(sweep_built.code == 0, sweep_built.err);
  Run sweep = Cli(dir, {"package", "test", dir / "sweep.scpkg", "-o", dir / "sweep-out"});
  CHECK(sweep.code == 1);
  CHECK(sweep.err.find("unit 2 failed") != std::string::npos);
  CHECK(sweep.err.find("unit 3 is unlucky") != std::string::npos);
  CHECK(ReadAll(dir / "sweep-out/unit-000003/n.txt") == "4\n");
}
