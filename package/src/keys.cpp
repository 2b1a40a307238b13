#include "sparecycles/package/keys.hpp"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "sparecycles/core/hash.hpp"

namespace sparecycles::package {
namespace fs = std::filesystem;

namespace {

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

template <std::size_t N>
bool ParseHex(std::string_view text, std::array<std::uint8_t, N>& out) {
  if (text.size() != 2 * N) return false;
  for (std::size_t i = 0; i < N; ++i) {
    const int hi = HexDigit(text[2 * i]), lo = HexDigit(text[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<std::uint8_t>(hi * 16 + lo);
  }
  return true;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

// The meaningful lines of a key file: comments ('#') and blank lines dropped.
std::vector<std::string_view> KeyLines(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    const auto nl = text.find('\n');
    std::string_view line = Trim(text.substr(0, nl));
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    if (!line.empty() && line.front() != '#') lines.push_back(line);
  }
  return lines;
}

Result<std::string> ReadSmallFile(const std::string& path) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (ec) return NotFound("cannot read key file " + path + ": " + ec.message());
  if (size > kMaxKeyFileBytes)
    return InvalidArgument("key file " + path + " is " + std::to_string(size) +
                           " bytes; a key file is at most " + std::to_string(kMaxKeyFileBytes));
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound("cannot open key file " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Status WriteNew(const std::string& path, std::string_view text, mode_t mode, bool overwrite) {
  if (overwrite) ::unlink(path.c_str());
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
  if (fd < 0) {
    if (errno == EEXIST)
      return FailedPrecondition(path + " already exists (use --force to replace it)");
    return Unavailable("cannot create " + path + ": " + std::strerror(errno));
  }
  // The umask may only have removed bits; set the mode exactly.
  const bool ok = ::fchmod(fd, mode) == 0 &&
                  ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
                  ::fsync(fd) == 0;
  const int err = errno;
  ::close(fd);
  if (!ok) return Unavailable("cannot write " + path + ": " + std::strerror(err));
  return OkStatus();
}

}  // namespace

std::string PublicKey::Hex() const {
  return ToHex(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

std::array<std::uint8_t, 64> SecretKey::SigningKey() const {
  std::array<std::uint8_t, 64> sk{};
  std::copy(seed.begin(), seed.end(), sk.begin());
  std::copy(public_key.bytes.begin(), public_key.bytes.end(), sk.begin() + 32);
  return sk;
}

SecretKey KeyFromSeed(const std::array<std::uint8_t, 32>& seed) {
  InitCrypto();
  SecretKey key;
  key.seed = seed;
  std::array<std::uint8_t, 64> sk{};
  crypto_sign_seed_keypair(key.public_key.bytes.data(), sk.data(), seed.data());
  sodium_memzero(sk.data(), sk.size());
  return key;
}

SecretKey GenerateKey() {
  std::array<std::uint8_t, 32> seed{};
  RandomBytes(seed.data(), seed.size());
  SecretKey key = KeyFromSeed(seed);
  sodium_memzero(seed.data(), seed.size());
  return key;
}

Result<PublicKey> ParsePublicKeyHex(std::string_view text) {
  text = Trim(text);
  if (text.substr(0, 8) == "ed25519:") text.remove_prefix(8);
  PublicKey key;
  if (!ParseHex(text, key.bytes)) return InvalidArgument("a public key is 64 hexadecimal digits");
  return key;
}

std::string FormatPublicKeyFile(const PublicKey& key, std::string_view comment) {
  std::string out(kPublicKeyHeader);
  out += "\n";
  if (!comment.empty()) out += "# " + std::string(comment) + "\n";
  out += key.Hex() + "\n";
  return out;
}

std::string FormatSecretKeyFile(const SecretKey& key) {
  std::string out(kSecretKeyHeader);
  out += "\n# Keep this file secret: it signs packages that peers will run.\n";
  out += "seed " +
         ToHex(std::string_view(reinterpret_cast<const char*>(key.seed.data()), key.seed.size())) +
         "\n";
  out += "public " + key.public_key.Hex() + "\n";
  return out;
}

Result<PublicKey> ParsePublicKeyFile(std::string_view text) {
  const auto lines = KeyLines(text);
  if (lines.empty() || lines[0] != kPublicKeyHeader)
    return InvalidArgument("not a SpareCycles public key file (the first line must be '" +
                           std::string(kPublicKeyHeader) + "')");
  if (lines.size() != 2)
    return InvalidArgument("a public key file holds exactly one key line after its header");
  return ParsePublicKeyHex(lines[1]);
}

Result<SecretKey> ParseSecretKeyFile(std::string_view text) {
  const auto lines = KeyLines(text);
  if (lines.empty() || lines[0] != kSecretKeyHeader)
    return InvalidArgument("not a SpareCycles secret key file (the first line must be '" +
                           std::string(kSecretKeyHeader) + "')");
  if (lines.size() != 3 || lines[1].substr(0, 5) != "seed " || lines[2].substr(0, 7) != "public ")
    return InvalidArgument(
        "a secret key file holds a 'seed HEX' and a 'public HEX' line after its header");
  std::array<std::uint8_t, 32> seed{};
  if (!ParseHex(Trim(lines[1].substr(5)), seed))
    return InvalidArgument("the seed is not 64 hexadecimal digits");
  auto pub = ParsePublicKeyHex(lines[2].substr(7));
  if (!pub.ok()) return pub.status();
  SecretKey key = KeyFromSeed(seed);
  sodium_memzero(seed.data(), seed.size());
  if (key.public_key != *pub)
    return DataLoss("the secret key file's public key does not belong to its seed");
  return key;
}

Status WriteKeyPair(const std::string& path, const SecretKey& key, bool overwrite) {
  const fs::path p(path);
  std::error_code ec;
  if (p.has_parent_path() && !fs::exists(p.parent_path(), ec)) {
    fs::create_directories(p.parent_path(), ec);
    if (ec) return Unavailable("cannot create " + p.parent_path().string() + ": " + ec.message());
    ::chmod(p.parent_path().c_str(), 0700);
  }
  const std::string pub = path + ".pub";
  if (!overwrite) {
    // Check both first, so a refusal leaves nothing half written.
    for (const auto& f : {path, pub})
      if (fs::exists(fs::symlink_status(f, ec)))
        return FailedPrecondition(f + " already exists (use --force to replace it)");
  }
  SC_RETURN_IF_ERROR(WriteNew(path, FormatSecretKeyFile(key), 0600, overwrite));
  return WriteNew(pub, FormatPublicKeyFile(key.public_key), 0644, overwrite);
}

Result<SecretKey> ReadSecretKey(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    return NotFound("cannot read secret key " + path + ": " + std::strerror(errno));
  if ((st.st_mode & 077) != 0)
    return FailedPrecondition("secret key " + path + " may be read by others (mode " +
                              std::to_string((st.st_mode >> 6) & 7) +
                              std::to_string((st.st_mode >> 3) & 7) +
                              std::to_string(st.st_mode & 7) + "); run: chmod 600 " + path);
  auto text = ReadSmallFile(path);
  if (!text.ok()) return text.status();
  auto key = ParseSecretKeyFile(*text);
  if (!key.ok()) return Status(key.status().code(), path + ": " + key.status().message());
  return key;
}

Result<PublicKey> ReadPublicKey(const std::string& path) {
  auto text = ReadSmallFile(path);
  if (!text.ok()) return text.status();
  auto key = ParsePublicKeyFile(*text);
  if (!key.ok()) return Status(key.status().code(), path + ": " + key.status().message());
  return key;
}

Result<std::string> DefaultKeyPath() {
  if (const char* x = std::getenv("XDG_CONFIG_HOME"); x != nullptr && x[0] == '/')
    return std::string(x) + "/sparecycles/publisher.key";
  if (const char* h = std::getenv("HOME"); h != nullptr && h[0] == '/')
    return std::string(h) + "/.config/sparecycles/publisher.key";
  return FailedPrecondition(
      "neither XDG_CONFIG_HOME nor HOME is set; name the key file with --out");
}

void TrustSet::Add(const PublicKey& key) {
  if (!Contains(key)) keys_.push_back(key);
}

bool TrustSet::Contains(const PublicKey& key) const {
  return std::find(keys_.begin(), keys_.end(), key) != keys_.end();
}

Status TrustSet::AddFrom(const std::string& spec) {
  std::error_code ec;
  const auto st = fs::status(spec, ec);
  if (!ec && fs::is_directory(st)) {
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(spec, ec)) {
      if (e.path().extension() == ".pub" && e.is_regular_file(ec)) files.push_back(e.path());
      if (files.size() > kMaxTrustedKeys)
        return ResourceExhausted("trust directory " + spec + " holds more than " +
                                 std::to_string(kMaxTrustedKeys) + " keys");
    }
    if (ec) return Unavailable("cannot list " + spec + ": " + ec.message());
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
      auto key = ReadPublicKey(f.string());
      if (!key.ok()) return key.status();
      Add(*key);
    }
    return OkStatus();
  }
  if (!ec && fs::is_regular_file(st)) {
    auto key = ReadPublicKey(spec);
    if (!key.ok()) return key.status();
    Add(*key);
    return OkStatus();
  }
  auto key = ParsePublicKeyHex(spec);
  if (!key.ok())
    return InvalidArgument(
        "'" + spec + "' is neither a key file, a directory of *.pub files, nor 64 hex digits");
  Add(*key);
  return OkStatus();
}

}  // namespace sparecycles::package
