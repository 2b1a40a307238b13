// CURVE key files: created with the right modes, read back, and every bad file refused with an
// error that names the problem (docs/security.md, "Keys and their files").
#include "sparecycles/core/curve_keys.hpp"

#include <doctest/doctest.h>
#include <sys/stat.h>

#include <fstream>

#include "sparecycles/core/hash.hpp"
#include "temp_dir.hpp"

using namespace sparecycles;
using sparecycles::testing::TempDir;

namespace {
void Write(const std::string& path, const std::string& text, mode_t mode) {
  std::ofstream(path, std::ios::trunc) << text;
  ::chmod(path.c_str(), mode);
}
mode_t ModeOf(const std::string& path) {
  struct stat st {};
  ::stat(path.c_str(), &st);
  return st.st_mode & 0777;
}
bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}
}  // namespace

TEST_CASE("a key pair is saved with a 0600 secret and a 0644 public file and reads back") {
  InitCrypto();
  TempDir dir;
  const std::string path = dir / "sub/worker.key";
  auto made = curve::LoadOrCreateKeyPair(path, "worker");
  REQUIRE(made.ok());
  CHECK(ModeOf(path) == 0600);
  CHECK(ModeOf(dir / "sub/worker.pub") == 0644);
  auto again = curve::LoadOrCreateKeyPair(path, "worker");
  REQUIRE(again.ok());
  CHECK(again->public_key == made->public_key);
  CHECK(again->secret == made->secret);
  auto pub = curve::LoadPublicKey(dir / "sub/worker.pub");
  REQUIRE(pub.ok());
  CHECK(*pub == made->public_key);
  // The secret file also serves as a public key file (its "public" line).
  auto from_secret = curve::PublicKeyFromArg(path);
  REQUIRE(from_secret.ok());
  CHECK(*from_secret == made->public_key);
}

TEST_CASE("a secret key file open to the group or others is refused, naming the fix") {
  InitCrypto();
  TempDir dir;
  const std::string path = dir / "c.key";
  REQUIRE(curve::SaveKeyPair(path, curve::Generate(), "").ok());
  ::chmod(path.c_str(), 0640);
  auto r = curve::LoadKeyPair(path);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == StatusCode::kFailedPrecondition);
  CHECK(Contains(r.status().message(), "0640"));
  CHECK(Contains(r.status().message(), "chmod 600"));
  // LoadOrCreate must not quietly replace it with a new key either.
  CHECK_FALSE(curve::LoadOrCreateKeyPair(path, "").ok());
}

TEST_CASE("garbage, truncated and mismatched secret key files are refused as data loss") {
  InitCrypto();
  TempDir dir;
  const curve::KeyPair a = curve::Generate(), b = curve::Generate();
  struct Case {
    const char* name;
    std::string text;
    const char* says;
  };
  const Case cases[] = {
      {"garbage", "hello world\n", "expected 'public KEY'"},
      {"truncated", "public " + a.public_key.Z85() + "\n", "truncated"},
      {"short secret", "public " + a.public_key.Z85() + "\nsecret abc\n", "secret"},
      {"two pairs", "public " + a.public_key.Z85() + "\nsecret " + b.SecretZ85() + "\n",
       "does not belong"},
      {"empty", "", "truncated"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    const std::string path = dir / "bad.key";
    Write(path, c.text, 0600);
    auto r = curve::LoadKeyPair(path);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == StatusCode::kDataLoss);
    CHECK(Contains(r.status().message(), c.says));
  }
  // Far too large for a key file: refused before it is read.
  const std::string big = dir / "big.key";
  Write(big, std::string(curve::kMaxKeyFile + 1, 'x'), 0600);
  CHECK_FALSE(curve::LoadKeyPair(big).ok());
  CHECK(curve::LoadKeyPair(dir / "missing.key").status().code() == StatusCode::kNotFound);
}

TEST_CASE("public keys parse from Z85 or hex and nothing else") {
  InitCrypto();
  const curve::KeyPair a = curve::Generate();
  auto z = curve::ParsePublicKey("  " + a.public_key.Z85() + "\n");
  REQUIRE(z.ok());
  CHECK(*z == a.public_key);
  auto h = curve::ParsePublicKey(a.public_key.Hex());
  REQUIRE(h.ok());
  CHECK(*h == a.public_key);
  CHECK_FALSE(curve::ParsePublicKey("").ok());
  CHECK_FALSE(curve::ParsePublicKey(std::string(40, ' ') + "x").ok());
  CHECK_FALSE(curve::ParsePublicKey(std::string(40, '~')).ok());  // not in the Z85 alphabet
  CHECK_FALSE(curve::ParsePublicKey(std::string(64, 'g')).ok());  // not hex
  CHECK(Contains(curve::PublicKeyFromArg("/no/such/file").status().message(), "neither"));
  // A key file's text (e.g. a Secret passed as an environment variable) is read as the file.
  auto text = curve::PublicKeyFromArg("# coordinator\n" + a.public_key.Z85() + "\n");
  REQUIRE(text.ok());
  CHECK(*text == a.public_key);
}

TEST_CASE("a peer id is a stable function of the public key and differs between keys") {
  InitCrypto();
  const curve::KeyPair a = curve::Generate(), b = curve::Generate();
  const std::string id = curve::PeerIdFor(a.public_key);
  CHECK(id.rfind("peer-", 0) == 0);
  CHECK(id.size() == 5 + 32);
  CHECK(curve::PeerIdFor(a.public_key) == id);
  CHECK(curve::PeerIdFor(b.public_key) != id);
}

TEST_CASE("a key list reads files and directories, keeps roles and names a bad line") {
  InitCrypto();
  TempDir dir;
  const curve::KeyPair a = curve::Generate(), b = curve::Generate();
  const std::string list = dir / "clients";
  Write(list,
        "# who may submit\n" + a.public_key.Z85() + " submit  # alice\n\n" + b.public_key.Hex() +
            "\n",
        0644);
  auto keys = curve::LoadKeyList(list);
  REQUIRE(keys.ok());
  REQUIRE(keys->size() == 2);
  CHECK((*keys)[0].key == a.public_key);
  CHECK((*keys)[0].role == "submit");
  CHECK((*keys)[1].key == b.public_key);
  CHECK((*keys)[1].role.empty());

  Write(list, a.public_key.Z85() + "\nnot-a-key\n", 0644);
  auto bad = curve::LoadKeyList(list);
  REQUIRE_FALSE(bad.ok());
  CHECK(Contains(bad.status().message(), list + ":2"));

  const std::string keydir = dir / "workers";
  REQUIRE(curve::SavePublicKey(keydir + "/a.pub", a.public_key, "a").ok());
  REQUIRE(curve::SavePublicKey(keydir + "/b.pub", b.public_key, "").ok());
  Write(keydir + "/notes.txt", "ignored", 0644);
  auto fromdir = curve::LoadKeyList(keydir);
  REQUIRE(fromdir.ok());
  CHECK(fromdir->size() == 2);
}

TEST_CASE("a key whose Z85 holds '#' is not cut as a comment") {
  InitCrypto();
  TempDir dir;
  // Find a key with '#' in its Z85 text (about one in three has one).
  curve::KeyPair k = curve::Generate();
  for (int i = 0; i < 1000 && k.public_key.Z85().find('#') == std::string::npos; ++i)
    k = curve::Generate();
  REQUIRE(k.public_key.Z85().find('#') != std::string::npos);
  REQUIRE(curve::SaveKeyPair(dir / "k.key", k, "").ok());
  auto back = curve::LoadKeyPair(dir / "k.key");
  REQUIRE(back.ok());
  CHECK(back->public_key == k.public_key);
}
