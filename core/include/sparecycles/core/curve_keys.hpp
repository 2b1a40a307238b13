// CURVE key pairs (CurveZMQ, libsodium's crypto_box keys) and their files: creation, bounded and
// validated loading, the peer id a public key stands for, lists of allowed keys, and the per-user
// directory where a coordinator publishes its public key for programs on the same machine.
// Stateless functions; thread-safe. File formats: docs/security.md, "Keys and their files".
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sparecycles/core/status.hpp"

namespace sparecycles::curve {

inline constexpr std::size_t kKeyBytes = 32;         // a Curve25519 key
inline constexpr std::size_t kZ85Chars = 40;         // its Z85 text
inline constexpr std::size_t kMaxKeyFile = 4096;     // a key file is read up to this size
inline constexpr std::size_t kMaxKeyList = 1 << 20;  // a key list (file or all files of a dir)
inline constexpr std::size_t kMaxListedKeys = 100000;

struct PublicKey {
  std::array<std::uint8_t, kKeyBytes> bytes{};
  std::string Z85() const;
  std::string Hex() const;
  bool operator==(const PublicKey& o) const { return bytes == o.bytes; }
  bool operator!=(const PublicKey& o) const { return bytes != o.bytes; }
};

struct KeyPair {
  PublicKey public_key;
  std::array<std::uint8_t, kKeyBytes> secret{};
  std::string SecretZ85() const;
};

/// Whether this libzmq was built with CURVE (zmq_has("curve")).
bool Available();

/// A fresh key pair from the OS's randomness.
KeyPair Generate();

/// A public key written as 40 Z85 characters or 64 hex digits (surrounding blanks ignored).
/// Errors: InvalidArgument saying what is wrong.
Result<PublicKey> ParsePublicKey(std::string_view text);

/// A public key file: the key on its first line that is not blank or a `#` comment.
Result<PublicKey> LoadPublicKey(const std::string& path);
/// `arg` is a key itself (Z85 or hex) or the path of a public key file.
Result<PublicKey> PublicKeyFromArg(const std::string& arg);
/// Writes a public key file (mode 0644).
Status SavePublicKey(const std::string& path, const PublicKey& key, std::string_view comment);

/// A secret key file ("public <z85>" and "secret <z85>" lines). The file must be a regular file
/// readable by its owner only (no group or other permission bits), and the secret must produce
/// the stated public key. Errors: NotFound, FailedPrecondition (permissions), DataLoss (garbage,
/// truncated).
Result<KeyPair> LoadKeyPair(const std::string& path);
/// Writes a secret key file with mode 0600 (created so, never wider) and `<path minus .key>.pub`
/// beside it with mode 0644.
Status SaveKeyPair(const std::string& path, const KeyPair& pair, std::string_view comment);
/// The public file beside a secret key file: "x.key" -> "x.pub", else path + ".pub".
std::string PublicPathFor(const std::string& secret_path);
/// Loads `path`, or creates a new pair there when the file does not exist yet.
Result<KeyPair> LoadOrCreateKeyPair(const std::string& path, std::string_view comment);

/// The peer id a worker's key stands for: "peer-" and 32 hex digits of BLAKE2b-128(key).
std::string PeerIdFor(const PublicKey& key);

/// One entry of a key list: the key and the rest of its line (for clients: a role, later).
struct ListedKey {
  PublicKey key;
  std::string role;    // the rest of the line after the key, trimmed; empty when none
  std::string source;  // "file:line", for messages
};
/// A key list: a file with one key a line ("KEY [ROLE ...] [# comment]"), or a directory whose
/// `*.pub` files hold one key each. Bounded (kMaxKeyList bytes, kMaxListedKeys keys); any bad
/// line is an error naming file and line, so a typo never silently locks someone out or in.
Result<std::vector<ListedKey>> LoadKeyList(const std::string& path);

/// The per-user directory where coordinators publish their public keys for programs of the same
/// user on this machine: $XDG_RUNTIME_DIR/sparecycles/keys, else /tmp/sparecycles-<uid>/keys.
/// Created with mode 0700; refused when it belongs to someone else or is open to others.
Result<std::string> LocalKeyDir(bool create);
/// Publishes `key` for a bound TCP endpoint (tcp://host:port) in LocalKeyDir().
Status PublishLocalKey(const std::string& endpoint, const PublicKey& key);
/// Removes what PublishLocalKey wrote for `endpoint`, if it still holds `key`.
void UnpublishLocalKey(const std::string& endpoint, const PublicKey& key);
/// Whether `endpoint` is tcp:// on this machine's loopback or wildcard address (where
/// FindLocalKey looks).
bool IsLocalEndpoint(const std::string& endpoint);
/// The key a coordinator on this machine published for `endpoint`, when `endpoint` names this
/// machine (127.0.0.0/8, ::1, localhost, 0.0.0.0) and such a file exists.
std::optional<PublicKey> FindLocalKey(const std::string& endpoint);

}  // namespace sparecycles::curve
