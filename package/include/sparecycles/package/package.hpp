// A `.scpkg` task package: manifest + files + an optional Ed25519 signature, its bounded decoder,
// signing, verification against a set of trusted publishers, and safe extraction.
// Byte layout: docs/packages.md. A Package is a value (copyable, thread-compatible); Decode()
// takes untrusted bytes and never throws or aborts on them.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sparecycles/core/hash.hpp"
#include "sparecycles/core/status.hpp"
#include "sparecycles/package/keys.hpp"
#include "sparecycles/package/manifest.hpp"

namespace sparecycles::package {

inline constexpr char kMagic[8] = {'S', 'C', 'P', 'K', 'G', '\r', '\n', '\x1a'};
inline constexpr std::uint32_t kFormatVersion = 1;
inline constexpr std::uint64_t kDefaultMaxPackageBytes = 256ull << 20;  // 256 MiB
/// Prefix of the signed message (then the 32-byte BLAKE2b-256 of the manifest bytes).
inline constexpr std::string_view kSignatureContext = "sparecycles-package-signature-v1";

struct DecodeOptions {
  std::uint64_t max_package_bytes = kDefaultMaxPackageBytes;  // Default: 256 MiB.
};

struct Signature {
  PublicKey signer;
  std::array<std::uint8_t, 64> bytes{};
};

/// Why a package is refused; every refusal names one of these.
enum class Refusal {
  kNone = 0,
  kMalformed,            // the bytes are not a valid package
  kTooLarge,             // over the size limit
  kBadSignature,         // the signature does not match the manifest
  kHashMismatch,         // a file's bytes do not match its size or BLAKE2b-256 in the manifest
  kUnsigned,             // no signature where one is required
  kUnknownSigner,        // signed, but by a key this side does not trust
  kUnsupportedPlatform,  // built for another platform or architecture
  kKindNotAccepted,      // this side does not run packages of this kind
};
std::string_view RefusalName(Refusal r);

struct Verdict {
  Refusal refusal = Refusal::kNone;
  std::string detail;
  bool ok() const { return refusal == Refusal::kNone; }
  /// "bad signature: ..." - the reason first, for logs and users.
  std::string ToString() const;
};

struct VerifyOptions {
  /// The publishers accepted. Ignored when `require_signature` is false.
  const TrustSet* trust = nullptr;
  /// Default: a package must be signed by a key in `trust`. The local development mode turns
  /// this off (a signature, if present, must still be valid).
  bool require_signature = true;
  /// Default: the package must run on this host (platform and architecture, or arch "any").
  bool check_platform = true;
  /// Kinds accepted. Default: both.
  bool accept_native = true;
  bool accept_command = true;
};

class Package {
 public:
  /// A package from a manifest (file entries need only their paths) and the files' bytes, in the
  /// same order as `m.files`. Sorts the files, fills in sizes and hashes, validates everything.
  static Result<Package> Create(Manifest m, std::vector<std::string> contents);
  /// Parses untrusted bytes. Checks structure and limits, not hashes or the signature (Verify).
  static Result<Package> Decode(std::string_view bytes, const DecodeOptions& options = {});
  /// Reads and decodes a file, refusing one larger than the limit before reading it.
  static Result<Package> ReadFile(const std::string& path, const DecodeOptions& options = {});

  const Manifest& manifest() const { return manifest_; }
  const std::string& manifest_bytes() const { return manifest_bytes_; }
  const std::optional<Signature>& signature() const { return signature_; }
  std::string_view file_data(std::size_t i) const { return files_[i]; }
  /// The index of the file named `path`, if any.
  std::optional<std::size_t> FindFile(std::string_view path) const;

  /// Signs (or re-signs) the manifest with `key`.
  void Sign(const SecretKey& key);
  void Unsign() { signature_.reset(); }

  /// The `.scpkg` bytes.
  std::string Encode() const;
  /// The package id: BLAKE2b-256 of Encode().
  Hash256 Id() const;
  /// The message an Ed25519 signature signs (context string + BLAKE2b-256 of the manifest).
  std::string SignedMessage() const;

  /// Checks signature, hashes, trust, platform and kind, in that order (docs/packages.md).
  Verdict Verify(const VerifyOptions& options) const;

  /// Writes the files under `dir`, which must not exist yet (it is created 0700). Never follows
  /// a symbolic link and never writes outside `dir`; shipped executables get mode 0700.
  Status Extract(const std::string& dir) const;

 private:
  Manifest manifest_;
  std::string manifest_bytes_;
  std::vector<std::string> files_;
  std::optional<Signature> signature_;
};

/// Builds a package from a directory holding `package.manifest` (or from a manifest file; its
/// directory is the package root). Without `file =` lines every regular file under the root is
/// included, except the manifest. A symbolic link is followed only when it stays inside the
/// root; one that escapes is an error. Stops at `max_package_bytes`.
inline constexpr std::string_view kManifestFileName = "package.manifest";
Result<Package> BuildFromPath(const std::string& dir_or_manifest,
                              std::uint64_t max_package_bytes = kDefaultMaxPackageBytes);

/// Writes `bytes` to `path` atomically (temporary file + rename).
Status WriteFileAtomic(const std::string& path, std::string_view bytes);

}  // namespace sparecycles::package
