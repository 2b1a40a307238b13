#include "sparecycles/core/curve_keys.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "sparecycles/core/daemon.hpp"
#include "sparecycles/core/hash.hpp"

namespace sparecycles::curve {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r'))
    s.remove_prefix(1);
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
    s.remove_suffix(1);
  return s;
}

std::string EncodeZ85(const std::uint8_t* bytes) {
  char out[kZ85Chars + 1] = {};
  zmq_z85_encode(out, bytes, kKeyBytes);
  return std::string(out, kZ85Chars);
}

bool DecodeZ85(std::string_view text, std::uint8_t* out) {
  if (text.size() != kZ85Chars) return false;
  const std::string s(text);  // zmq_z85_decode wants a terminated string
  return zmq_z85_decode(out, s.c_str()) != nullptr;
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Splits into lines, dropping comments and blanks; keeps 1-based line numbers.
std::vector<std::pair<int, std::string_view>> Lines(std::string_view text) {
  std::vector<std::pair<int, std::string_view>> out;
  int n = 0;
  while (!text.empty()) {
    ++n;
    const std::size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
    // '#' is a Z85 character, so a comment is a '#' that opens the line followed by a blank (or
    // nothing), or one after a blank: a key never holds blanks.
    for (std::size_t i = 0; i < line.size(); ++i) {
      if (line[i] != '#') continue;
      const bool opens = i == 0 && (line.size() == 1 || line[1] == ' ' || line[1] == '\t');
      const bool after_blank = i > 0 && (line[i - 1] == ' ' || line[i - 1] == '\t');
      if (opens || after_blank) {
        line = line.substr(0, i);
        break;
      }
    }
    line = Trim(line);
    if (!line.empty()) out.emplace_back(n, line);
  }
  return out;
}

Result<std::string> ReadSmall(const std::string& path, std::size_t limit) {
  std::error_code ec;
  const auto st = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(st)) return NotFound("no key file " + path);
  if (!std::filesystem::is_regular_file(st))
    return InvalidArgument(path + " is not a regular file");
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) return Unavailable("cannot read " + path + ": " + ec.message());
  if (size > limit)
    return InvalidArgument(path + " is " + std::to_string(size) + " bytes, more than a key file (" +
                           std::to_string(limit) + ")");
  return ReadFile(path, limit);
}

Status WriteWithMode(const std::string& path, const std::string& content, mode_t mode) {
  std::error_code ec;
  const std::filesystem::path p(path);
  if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path(), ec);
  if (ec) return Unavailable("cannot create " + p.parent_path().string() + ": " + ec.message());
  const std::string tmp = path + ".tmp";
  ::unlink(tmp.c_str());
  // Created with the final mode (O_EXCL, umask only narrows it): a secret is never readable by
  // others, not even for an instant.
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return Unavailable("cannot write " + tmp + ": " + std::strerror(errno));
  const char* data = content.data();
  std::size_t left = content.size();
  while (left > 0) {
    const ssize_t n = ::write(fd, data, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const std::string why = std::strerror(errno);
      ::close(fd);
      ::unlink(tmp.c_str());
      return Unavailable("cannot write " + tmp + ": " + why);
    }
    data += n;
    left -= static_cast<std::size_t>(n);
  }
  ::fchmod(fd, mode);  // exactly `mode`, whatever the umask
  ::fsync(fd);
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    ::unlink(tmp.c_str());
    return Unavailable("cannot write " + path + ": " + why);
  }
  return OkStatus();
}

// "tcp://HOST:PORT" -> (host, port); empty port when not TCP.
std::pair<std::string, std::string> HostPort(const std::string& endpoint) {
  const std::string scheme = "tcp://";
  if (endpoint.rfind(scheme, 0) != 0) return {};
  const std::string rest = endpoint.substr(scheme.size());
  const std::size_t colon = rest.rfind(':');
  if (colon == std::string::npos) return {};
  std::string host = rest.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  const std::string port = rest.substr(colon + 1);
  if (port.empty() || port.size() > 5 ||
      !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return {};
  return {host, port};
}

bool IsThisMachine(const std::string& host) {
  return host == "localhost" || host == "::1" || host == "0.0.0.0" || host == "*" || host == "::" ||
         host.rfind("127.", 0) == 0;
}

}  // namespace

std::string PublicPathFor(const std::string& secret_path) {
  const std::string ext = ".key";
  if (secret_path.size() > ext.size() &&
      secret_path.compare(secret_path.size() - ext.size(), ext.size(), ext) == 0)
    return secret_path.substr(0, secret_path.size() - ext.size()) + ".pub";
  return secret_path + ".pub";
}

std::string PublicKey::Z85() const { return EncodeZ85(bytes.data()); }
std::string PublicKey::Hex() const {
  return ToHex(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}
std::string KeyPair::SecretZ85() const { return EncodeZ85(secret.data()); }

bool Available() { return zmq_has("curve") != 0; }

KeyPair Generate() {
  KeyPair p;
  char pub[kZ85Chars + 1] = {}, sec[kZ85Chars + 1] = {};
  if (zmq_curve_keypair(pub, sec) != 0) {
    std::fprintf(stderr, "fatal: this libzmq cannot make CURVE keys (built without libsodium)\n");
    std::abort();
  }
  DecodeZ85(pub, p.public_key.bytes.data());
  DecodeZ85(sec, p.secret.data());
  return p;
}

Result<PublicKey> ParsePublicKey(std::string_view text) {
  text = Trim(text);
  PublicKey k;
  if (text.size() == kZ85Chars) {
    if (!DecodeZ85(text, k.bytes.data()))
      return InvalidArgument("not a CURVE key: 40 characters but not Z85");
    return k;
  }
  if (text.size() == 2 * kKeyBytes) {
    for (std::size_t i = 0; i < kKeyBytes; ++i) {
      const int hi = HexDigit(text[2 * i]), lo = HexDigit(text[2 * i + 1]);
      if (hi < 0 || lo < 0) return InvalidArgument("not a CURVE key: 64 characters but not hex");
      k.bytes[i] = static_cast<std::uint8_t>(hi * 16 + lo);
    }
    return k;
  }
  return InvalidArgument("not a CURVE key: expected 40 Z85 characters or 64 hex digits, got " +
                         std::to_string(text.size()) + " characters");
}

// The text of a public key file: its first line that is not a comment.
static Result<PublicKey> ParsePublicKeyFile(std::string_view text, const std::string& path) {
  const auto lines = Lines(text);
  if (lines.empty()) return DataLoss(path + " holds no key");
  std::string_view first = lines.front().second;
  // A secret key file has "public <z85>"; accept it as the public key too.
  if (first.rfind("public ", 0) == 0) first = Trim(first.substr(7));
  auto key = ParsePublicKey(first);
  if (!key.ok()) return DataLoss(path + ": " + key.status().message());
  return key;
}

Result<PublicKey> LoadPublicKey(const std::string& path) {
  auto text = ReadSmall(path, kMaxKeyFile);
  if (!text.ok()) return text.status();
  return ParsePublicKeyFile(*text, path);
}

Result<PublicKey> PublicKeyFromArg(const std::string& arg) {
  auto direct = ParsePublicKey(arg);
  if (direct.ok()) return direct;
  // The content of a key file (e.g. a Kubernetes Secret handed over as an environment variable).
  if (arg.find('\n') != std::string::npos && arg.size() <= kMaxKeyFile)
    return ParsePublicKeyFile(arg, "the key text");
  std::error_code ec;
  if (std::filesystem::exists(arg, ec)) return LoadPublicKey(arg);
  return InvalidArgument("'" + arg + "' is neither a CURVE public key nor a key file (" +
                         direct.status().message() + ")");
}

Status SavePublicKey(const std::string& path, const PublicKey& key, std::string_view comment) {
  std::string text;
  if (!comment.empty()) text += "# " + std::string(comment) + "\n";
  text += key.Z85() + "\n";
  return WriteWithMode(path, text, 0644);
}

Result<KeyPair> LoadKeyPair(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return NotFound("no key file " + path);
    return Unavailable("cannot read " + path + ": " + std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) return FailedPrecondition(path + " is not a regular file");
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return FailedPrecondition("secret key file " + path + " has mode " + mode +
                              ": it must be readable by its owner only (chmod 600 " + path + ")");
  }
  if (st.st_uid != ::geteuid())
    return FailedPrecondition("secret key file " + path + " belongs to another user");
  auto text = ReadSmall(path, kMaxKeyFile);
  if (!text.ok()) return text.status();
  std::optional<std::string_view> pub, sec;
  for (const auto& [n, line] : Lines(*text)) {
    const std::size_t sp = line.find_first_of(" \t");
    const std::string_view name = line.substr(0, sp);
    const std::string_view value = sp == std::string_view::npos ? "" : Trim(line.substr(sp));
    if (name == "public")
      pub = value;
    else if (name == "secret")
      sec = value;
    else
      return DataLoss(path + ":" + std::to_string(n) + ": expected 'public KEY' or 'secret KEY'");
  }
  if (!pub || !sec)
    return DataLoss(path + " is truncated: it needs both a 'public' and a 'secret' line");
  KeyPair p;
  auto pk = ParsePublicKey(*pub);
  if (!pk.ok()) return DataLoss(path + ": public: " + pk.status().message());
  p.public_key = *pk;
  if (!DecodeZ85(*sec, p.secret.data())) return DataLoss(path + ": secret: not 40 Z85 characters");
  // The secret must be the one of the stated public key (a file pasted together from two pairs
  // would otherwise fail only at the first handshake, far from its cause).
  char derived[kZ85Chars + 1] = {};
  const std::string sec_z85 = p.SecretZ85();
  if (zmq_curve_public(derived, sec_z85.c_str()) != 0 || p.public_key.Z85() != derived)
    return DataLoss(path + ": the secret key does not belong to the public key");
  return p;
}

Status SaveKeyPair(const std::string& path, const KeyPair& pair, std::string_view comment) {
  std::string text = "# SpareCycles CURVE key pair";
  if (!comment.empty()) text += ": " + std::string(comment);
  text += "\n# The secret line is private: keep this file mode 0600.\npublic " +
          pair.public_key.Z85() + "\nsecret " + pair.SecretZ85() + "\n";
  SC_RETURN_IF_ERROR(WriteWithMode(path, text, 0600));
  return SavePublicKey(PublicPathFor(path), pair.public_key, comment);
}

Result<KeyPair> LoadOrCreateKeyPair(const std::string& path, std::string_view comment) {
  auto loaded = LoadKeyPair(path);
  if (loaded.ok() || loaded.status().code() != StatusCode::kNotFound) return loaded;
  KeyPair fresh = Generate();
  SC_RETURN_IF_ERROR(SaveKeyPair(path, fresh, comment));
  return fresh;
}

std::string PeerIdFor(const PublicKey& key) {
  std::uint8_t digest[16];
  Blake2b(std::string_view(reinterpret_cast<const char*>(key.bytes.data()), key.bytes.size()),
          digest, sizeof(digest));
  return "peer-" + ToHex(std::string_view(reinterpret_cast<const char*>(digest), sizeof(digest)));
}

Result<std::vector<ListedKey>> LoadKeyList(const std::string& path) {
  std::error_code ec;
  std::vector<std::pair<std::string, std::string>> files;  // (name, content)
  std::size_t total = 0;
  if (std::filesystem::is_directory(path, ec)) {
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(path, ec))
      if (e.path().extension() == ".pub") names.push_back(e.path().string());
    if (ec) return Unavailable("cannot list " + path + ": " + ec.message());
    std::sort(names.begin(), names.end());
    if (names.size() > kMaxListedKeys)
      return ResourceExhausted(path + " holds more than " + std::to_string(kMaxListedKeys) +
                               " keys");
    for (const auto& n : names) {
      auto text = ReadSmall(n, kMaxKeyFile);
      if (!text.ok()) return text.status();
      total += text->size();
      if (total > kMaxKeyList)
        return ResourceExhausted(path + " holds more than " + std::to_string(kMaxKeyList) +
                                 " bytes of keys");
      files.emplace_back(n, std::move(*text));
    }
  } else {
    auto text = ReadSmall(path, kMaxKeyList);
    if (!text.ok()) return text.status();
    files.emplace_back(path, std::move(*text));
  }
  std::vector<ListedKey> out;
  for (const auto& [name, text] : files) {
    for (const auto& [n, line] : Lines(text)) {
      const std::string where = name + ":" + std::to_string(n);
      const std::size_t sp = line.find_first_of(" \t");
      auto key = ParsePublicKey(line.substr(0, sp));
      if (!key.ok()) return InvalidArgument(where + ": " + key.status().message());
      ListedKey k;
      k.key = *key;
      if (sp != std::string_view::npos) k.role = std::string(Trim(line.substr(sp)));
      k.source = where;
      out.push_back(std::move(k));
      if (out.size() > kMaxListedKeys)
        return ResourceExhausted(path + " holds more than " + std::to_string(kMaxListedKeys) +
                                 " keys");
    }
  }
  return out;
}

Result<std::string> LocalKeyDir(bool create) {
  std::string base;
  if (const char* xdg = std::getenv("XDG_RUNTIME_DIR"); xdg != nullptr && *xdg == '/')
    base = std::string(xdg) + "/sparecycles";
  else
    base = "/tmp/sparecycles-" + std::to_string(::geteuid());
  const std::string dir = base + "/keys";
  for (const std::string& d : {base, dir}) {
    if (create && ::mkdir(d.c_str(), 0700) != 0 && errno != EEXIST)
      return Unavailable("cannot create " + d + ": " + std::strerror(errno));
    struct stat st {};
    if (::lstat(d.c_str(), &st) != 0) return NotFound("no directory " + d);
    // Another user could have made /tmp/sparecycles-<uid> first and planted keys there.
    if (!S_ISDIR(st.st_mode) || st.st_uid != ::geteuid() || (st.st_mode & 022) != 0)
      return FailedPrecondition(d + " is not a directory of this user closed to others");
  }
  return dir;
}

Status PublishLocalKey(const std::string& endpoint, const PublicKey& key) {
  const auto [host, port] = HostPort(endpoint);
  if (port.empty()) return OkStatus();  // not TCP: nothing to publish
  auto dir = LocalKeyDir(true);
  if (!dir.ok()) return dir.status();
  return SavePublicKey(*dir + "/port-" + port + ".pub", key,
                       "public key of the coordinator bound to " + endpoint);
}

bool IsLocalEndpoint(const std::string& endpoint) {
  const auto [host, port] = HostPort(endpoint);
  return !port.empty() && IsThisMachine(host);
}

void UnpublishLocalKey(const std::string& endpoint, const PublicKey& key) {
  const auto [host, port] = HostPort(endpoint);
  if (port.empty()) return;
  auto dir = LocalKeyDir(false);
  if (!dir.ok()) return;
  const std::string path = *dir + "/port-" + port + ".pub";
  auto held = LoadPublicKey(path);
  if (held.ok() && *held == key) ::unlink(path.c_str());  // not a later coordinator's
}

std::optional<PublicKey> FindLocalKey(const std::string& endpoint) {
  const auto [host, port] = HostPort(endpoint);
  if (port.empty() || !IsThisMachine(host)) return std::nullopt;
  auto dir = LocalKeyDir(false);
  if (!dir.ok()) return std::nullopt;
  auto key = LoadPublicKey(*dir + "/port-" + port + ".pub");
  if (!key.ok()) return std::nullopt;
  return *key;
}

}  // namespace sparecycles::curve
