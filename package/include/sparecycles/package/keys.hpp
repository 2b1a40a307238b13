// Ed25519 publisher keys (libsodium) and the sets of keys a side trusts.
// Key files are short text files: a header line naming the format, then the key in hexadecimal
// (format in docs/packages.md, "Keys"). A secret key file is created with mode 0600 and refused
// when group or others may read it. Values are plain data: thread-compatible.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "sparecycles/core/status.hpp"

namespace sparecycles::package {

inline constexpr std::string_view kPublicKeyHeader = "sparecycles-ed25519-public-key v1";
inline constexpr std::string_view kSecretKeyHeader = "sparecycles-ed25519-secret-key v1";
/// Largest key file read (a key file is under 200 bytes; the rest is room for comments).
inline constexpr std::size_t kMaxKeyFileBytes = 4096;
/// Most keys loaded from one trust directory.
inline constexpr std::size_t kMaxTrustedKeys = 1024;

struct PublicKey {
  std::array<std::uint8_t, 32> bytes{};
  /// 64 lower-case hex digits.
  std::string Hex() const;
  /// The first 16 hex digits: how logs and `inspect` name a signer.
  std::string ShortId() const { return Hex().substr(0, 16); }
  bool operator==(const PublicKey&) const = default;
  auto operator<=>(const PublicKey&) const = default;
};

struct SecretKey {
  std::array<std::uint8_t, 32> seed{};  // the Ed25519 seed; the signing key is derived from it
  PublicKey public_key;
  /// libsodium's 64-byte signing key (seed || public key).
  std::array<std::uint8_t, 64> SigningKey() const;
};

/// A fresh key pair from the OS's random source.
SecretKey GenerateKey();
/// The key pair for a given seed (deterministic; tests use it).
SecretKey KeyFromSeed(const std::array<std::uint8_t, 32>& seed);

/// Parses 64 hex digits (optionally "ed25519:" in front) into a public key.
Result<PublicKey> ParsePublicKeyHex(std::string_view text);

std::string FormatPublicKeyFile(const PublicKey& key, std::string_view comment = {});
std::string FormatSecretKeyFile(const SecretKey& key);
Result<PublicKey> ParsePublicKeyFile(std::string_view text);
Result<SecretKey> ParseSecretKeyFile(std::string_view text);

/// Writes `path` (secret, mode 0600, created exclusively) and `path`.pub (public, 0644).
/// Refuses to overwrite either file unless `overwrite`. Creates missing parent directories 0700.
Status WriteKeyPair(const std::string& path, const SecretKey& key, bool overwrite = false);
/// Reads a secret key file; refused when its mode lets group or others read it.
Result<SecretKey> ReadSecretKey(const std::string& path);
/// Reads a public key file.
Result<PublicKey> ReadPublicKey(const std::string& path);

/// The default place for a publisher's key: $XDG_CONFIG_HOME/sparecycles/publisher.key, else
/// ~/.config/sparecycles/publisher.key.
Result<std::string> DefaultKeyPath();

/// The publisher keys one side accepts.
class TrustSet {
 public:
  void Add(const PublicKey& key);
  bool Contains(const PublicKey& key) const;
  bool empty() const { return keys_.empty(); }
  const std::vector<PublicKey>& keys() const { return keys_; }

  /// Adds what `spec` names: a directory (every *.pub file in it, not recursive), a public key
  /// file, or a key written out as 64 hex digits.
  Status AddFrom(const std::string& spec);

 private:
  std::vector<PublicKey> keys_;
};

}  // namespace sparecycles::package
