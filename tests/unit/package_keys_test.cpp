// Ed25519 key files and trust sets: formats, file modes, and refusals (docs/packages.md, "Keys").
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "sparecycles/package/keys.hpp"
#include "temp_dir.hpp"

using namespace sparecycles;
using namespace sparecycles::package;
namespace fs = std::filesystem;

namespace {
using sparecycles::testing::TempDir;
}  // namespace

TEST_CASE("a new key pair is written 0600 / 0644 and reads back the same") {
  TempDir tmp;
  const SecretKey key = GenerateKey();
  const std::string path = (fs::path(tmp.path()) / "cfg/publisher.key").string();
  REQUIRE(WriteKeyPair(path, key).ok());
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  REQUIRE(::stat((path + ".pub").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0644);
  auto back = ReadSecretKey(path);
  REQUIRE_MESSAGE(back.ok(), back.status().ToString());
  CHECK(back->seed == key.seed);
  CHECK(back->public_key == key.public_key);
  auto pub = ReadPublicKey(path + ".pub");
  REQUIRE(pub.ok());
  CHECK(*pub == key.public_key);
  // The text starts with its header line, readable by a person.
  std::ifstream in(path + ".pub");
  std::string first;
  std::getline(in, first);
  CHECK(first == kPublicKeyHeader);
  // Never overwritten by accident.
  Status again = WriteKeyPair(path, GenerateKey());
  CHECK(again.code() == StatusCode::kFailedPrecondition);
  CHECK(ReadSecretKey(path)->seed == key.seed);
  CHECK(WriteKeyPair(path, GenerateKey(), /*overwrite=*/true).ok());
  CHECK(ReadSecretKey(path)->seed != key.seed);
}

TEST_CASE("a secret key that others may read is refused with the fix in the message") {
  TempDir tmp;
  const std::string path = (fs::path(tmp.path()) / "k").string();
  REQUIRE(WriteKeyPair(path, GenerateKey()).ok());
  REQUIRE(::chmod(path.c_str(), 0644) == 0);
  auto k = ReadSecretKey(path);
  REQUIRE_FALSE(k.ok());
  CHECK(k.status().message().find("chmod 600") != std::string::npos);
}

TEST_CASE("malformed key files are refused") {
  const SecretKey key = GenerateKey();
  std::string sk = FormatSecretKeyFile(key);
  CHECK(ParseSecretKeyFile(sk).ok());
  CHECK_FALSE(ParseSecretKeyFile("hello\n").ok());
  CHECK_FALSE(ParsePublicKeyFile(sk).ok());  // a secret file is not a public one
  // A public line that does not belong to the seed.
  std::string wrong = sk;
  const auto at = wrong.find("public ") + 7;
  wrong[at] = wrong[at] == '0' ? '1' : '0';
  CHECK(ParseSecretKeyFile(wrong).status().code() == StatusCode::kDataLoss);
  CHECK_FALSE(ParsePublicKeyHex("abc").ok());
  CHECK_FALSE(ParsePublicKeyHex(std::string(64, 'g')).ok());
  CHECK(ParsePublicKeyHex("ed25519:" + key.public_key.Hex()).ok());
  std::string pub = FormatPublicKeyFile(key.public_key, "alice's laptop");
  auto p = ParsePublicKeyFile(pub);
  REQUIRE(p.ok());
  CHECK(*p == key.public_key);
  CHECK_FALSE(ParsePublicKeyFile(pub + key.public_key.Hex() + "\n").ok());  // two keys in one file
}

TEST_CASE("a trust set takes a directory of .pub files, a file, or a hex key") {
  TempDir tmp;
  const SecretKey a = GenerateKey(), b = GenerateKey(), c = GenerateKey();
  fs::create_directories(fs::path(tmp.path()) / "trusted");
  REQUIRE(WriteKeyPair((fs::path(tmp.path()) / "trusted/a").string(), a).ok());
  REQUIRE(WriteKeyPair((fs::path(tmp.path()) / "trusted/b").string(), b).ok());
  TrustSet dir;
  REQUIRE(dir.AddFrom((fs::path(tmp.path()) / "trusted").string()).ok());
  CHECK(dir.keys().size() == 2);  // the secret files are not read as public keys
  CHECK(dir.Contains(a.public_key));
  CHECK(dir.Contains(b.public_key));
  CHECK_FALSE(dir.Contains(c.public_key));
  TrustSet one;
  REQUIRE(one.AddFrom((fs::path(tmp.path()) / "trusted/a.pub").string()).ok());
  CHECK(one.keys().size() == 1);
  REQUIRE(one.AddFrom(c.public_key.Hex()).ok());
  CHECK(one.Contains(c.public_key));
  CHECK_FALSE(one.AddFrom("/no/such/file").ok());
  std::ofstream(fs::path(tmp.path()) / "trusted/bad.pub") << "garbage\n";
  CHECK_FALSE(TrustSet().AddFrom((fs::path(tmp.path()) / "trusted").string()).ok());
}

TEST_CASE("the default key path follows XDG_CONFIG_HOME, then HOME") {
  const char* old_xdg = std::getenv("XDG_CONFIG_HOME");
  const std::string saved = old_xdg ? old_xdg : "";
  ::setenv("XDG_CONFIG_HOME", "/tmp/xdg-test", 1);
  CHECK(*DefaultKeyPath() == "/tmp/xdg-test/sparecycles/publisher.key");
  ::unsetenv("XDG_CONFIG_HOME");
  if (const char* home = std::getenv("HOME"))
    CHECK(*DefaultKeyPath() == std::string(home) + "/.config/sparecycles/publisher.key");
  if (old_xdg) ::setenv("XDG_CONFIG_HOME", saved.c_str(), 1);
}
